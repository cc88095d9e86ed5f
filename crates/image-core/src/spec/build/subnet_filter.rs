//! Reading `subnet_filter` (`filters`, `most_free`, `random`; the rules
//! are in [`crate::spec::subnet_filter`]), each problem at its
//! file:line:col.

use super::Reader;
use crate::spec::subnet_filter::SubnetFilter;
use crate::yaml::{MapReader, Node};

impl Reader<'_> {
    /// Reads `subnet_filter`; `None` when it is unset (or not a mapping,
    /// with an error).
    pub(super) fn subnet_filter(
        &mut self,
        node: Option<&Node>,
        subnet_id_set: bool,
    ) -> Option<SubnetFilter> {
        let n = node.filter(|n| !n.is_null())?;
        let mut m = MapReader::new(n, "subnet_filter", &mut self.diags)?;
        let out = SubnetFilter {
            filters: self.string_map(m.get("filters"), "subnet_filter.filters"),
            most_free: self
                .opt_bool(m.get("most_free"), "subnet_filter.most_free")
                .unwrap_or(false),
            random: self
                .opt_bool(m.get("random"), "subnet_filter.random")
                .unwrap_or(false),
        };
        m.finish(&mut self.diags);
        for (key, message, help) in out.problems(subnet_id_set) {
            let sub = key.strip_prefix("subnet_filter.").unwrap_or("");
            let at = n.get(sub).unwrap_or(n);
            self.err(at.error(message).with_help(help));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    fn resolve(build: &str) -> Result<Vec<crate::spec::Plan>, String> {
        super::super::resolve_one_build(
            "  instance_type: t3.small\n  ami_name: subnet-image\n",
            build,
        )
    }

    #[test]
    fn a_subnet_filter_is_read() {
        let p = resolve(
            "    subnet_filter:\n      filters: {\"tag:Name\": builders}\n      most_free: true\n",
        )
        .unwrap();
        let f = p[0].subnet_filter.as_ref().unwrap();
        assert_eq!(f.filters["tag:Name"], "builders");
        assert!(f.most_free && !f.random);
        assert!(resolve("    instance_type: t3.small\n").unwrap()[0]
            .subnet_filter
            .is_none());
    }

    #[test]
    fn bad_subnet_filters_are_errors_at_their_place() {
        let e = resolve("    subnet_filter:\n      most_free: true\n").unwrap_err();
        assert!(
            e.contains("s.yaml:10:7: error: subnet_filter has no filters"),
            "{e}"
        );
        let e = resolve(
            "    subnet_filter:\n      filters: {a: b}\n      most_free: true\n      random: true\n",
        )
        .unwrap_err();
        assert!(
            e.contains("s.yaml:12:15: error: subnet_filter sets both most_free and random"),
            "{e}"
        );
        let e = resolve(
            "    subnet_id: subnet-0123456789abcdef0\n    subnet_filter:\n      filters: {a: b}\n",
        )
        .unwrap_err();
        assert!(
            e.contains("s.yaml:11:7: error: subnet_id and subnet_filter are both set"),
            "{e}"
        );
        let e = resolve("    subnet_filter:\n      filters: {a: b}\n      most_fre: true\n")
            .unwrap_err();
        assert!(e.contains("most_free"), "{e}");
        let e = resolve("    subnet_filter:\n      filters: {a: b}\n      random: often\n")
            .unwrap_err();
        assert!(e.contains("s.yaml:11:15: error"), "{e}");
    }
}
