//! Reading the spot settings of a build (`spot_price`,
//! `spot_instance_types`, `spot_tags`; the value rules are in
//! [`crate::spec::spot`]).

use std::collections::BTreeMap;

use super::Reader;
use crate::diag::Diagnostic;
use crate::spec::spot::{price_problem, MAX_SPOT_INSTANCE_TYPES};
use crate::yaml::MapReader;

/// A build's spot settings, as read.
pub(super) struct Spot {
    pub price: Option<String>,
    pub types: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// True for an EC2 instance type name (`t3.small`, `m7g.large`).
pub(super) fn is_instance_type(t: &str) -> bool {
    t.contains('.')
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl Reader<'_> {
    /// Reads the spot keys; a type list or tags without a price, a bad
    /// price or type, and too many or repeated types are errors at their
    /// place.
    pub(super) fn spot(&mut self, m: &mut MapReader<'_>) -> Spot {
        let price_node = m.get("spot_price");
        let price = self.opt_str(price_node, "spot_price");
        if let (Some(p), Some(n)) = (&price, price_node) {
            if let Some((msg, help)) = price_problem(p) {
                self.err(n.error(msg).with_help(help));
            }
        }
        let types_node = m.get("spot_instance_types");
        let types = self.list(types_node, "spot_instance_types", |t| {
            if is_instance_type(t) {
                Ok(())
            } else {
                Err((
                    "invalid instance type",
                    "instance types look like `t3.small` or `m7g.large`",
                ))
            }
        });
        let tags_node = m.get("spot_tags");
        let tags = self.tags(tags_node, "spot_tags");
        if let Some(n) = types_node {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(d) = types.iter().find(|t| !seen.insert(t.as_str())) {
                self.err(
                    n.error(format!(
                        "instance type `{d}` is listed twice in spot_instance_types"
                    ))
                    .with_help("list each type once, in order of preference"),
                );
            }
            if types.len() > MAX_SPOT_INSTANCE_TYPES {
                self.err(
                    n.error(format!(
                        "spot_instance_types lists {} types; at most {MAX_SPOT_INSTANCE_TYPES}",
                        types.len()
                    ))
                    .with_help("keep the types you would really pay for"),
                );
            }
        }
        if price.is_none() {
            let unpriced = [
                (types_node, !types.is_empty(), "spot_instance_types"),
                (tags_node, !tags.is_empty(), "spot_tags"),
            ];
            for (node, set, key) in unpriced {
                if let (Some(n), true) = (node, set) {
                    self.err(Diagnostic::error(
                        Some(n.loc.clone()),
                        format!("{key} is set but spot_price is not"),
                    )
                    .with_help("set `spot_price: auto` (or a highest hourly price) to build on a spot instance"));
                }
            }
        }
        Spot { price, types, tags }
    }
}

#[cfg(test)]
mod tests {
    fn resolve(build: &str) -> Result<Vec<crate::spec::Plan>, String> {
        super::super::resolve_one_build("  ami_name: spot-image\n", build)
    }

    #[test]
    fn spot_settings_are_read_and_instance_type_may_follow_them() {
        let plans = resolve(
            "    spot_price: auto\n    spot_instance_types: [c6i.large, m6i.large]\n    spot_tags: {team: nodes}\n",
        )
        .unwrap();
        let p = &plans[0];
        assert_eq!(p.instance_type, "c6i.large");
        assert_eq!(p.spot.spot_price.as_deref(), Some("auto"));
        assert_eq!(p.spot.spot_instance_types, ["c6i.large", "m6i.large"]);
        assert_eq!(p.spot.spot_tags["team"], "nodes");
        assert_eq!(p.spot.max_price(), None);

        let plans = resolve("    instance_type: t3.small\n    spot_price: '0.05'\n").unwrap();
        assert_eq!(plans[0].spot.types(&plans[0].instance_type), ["t3.small"]);
        assert_eq!(plans[0].spot.max_price(), Some("0.05"));
        assert!(!resolve("    instance_type: t3.small\n").unwrap()[0]
            .spot
            .is_spot());
    }

    #[test]
    fn bad_spot_settings_are_errors_at_their_place() {
        let e = resolve("    instance_type: t3.small\n    spot_price: cheap\n").unwrap_err();
        assert!(
            e.contains("s.yaml:9:17: error: spot_price `cheap` is neither a number nor `auto`"),
            "{e}"
        );
        assert!(e.contains("or `auto` for the on-demand price"), "{e}");

        let e = resolve("    spot_instance_types: [t3.small]\n").unwrap_err();
        assert!(
            e.contains("s.yaml:8:26: error: spot_instance_types is set but spot_price is not"),
            "{e}"
        );
        assert!(e.contains("set `spot_price: auto`"), "{e}");

        let e =
            resolve("    spot_price: auto\n    spot_instance_types: [t3.small, T3, t3.small]\n")
                .unwrap_err();
        assert!(
            e.contains("invalid instance type `T3` in spot_instance_types"),
            "{e}"
        );
        assert!(e.contains("`t3.small` is listed twice"), "{e}");
        assert!(!e.contains("has no `instance_type`"), "{e}");
    }
}
