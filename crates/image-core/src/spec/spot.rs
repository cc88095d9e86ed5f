//! The spot-instance settings (packer `amazon-ebs`'s `spot_price`,
//! `spot_instance_types`, `spot_tags`): the rules on their values, in one
//! place for the definition reader (`build.rs`, with file:line:col) and
//! image-aws's request check.
//!
//! `spot_price` is the highest hourly price paid for the build instance:
//! a decimal number of US dollars (`0.05`), or `auto` for the on-demand
//! price of the type. A price of `0` (packer's "not spot") is refused
//! rather than read as "off": leave the setting out instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A build's spot settings: the definition's keys, and the EC2 request's
/// (image-aws `BuildRequest::spot`). Spot is off without `spot_price`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotOptions {
    /// `auto` or the highest hourly price in US dollars (`0.05`); `None`:
    /// an on-demand instance.
    pub spot_price: Option<String>,
    /// The types the spot request may use, in order of preference (empty:
    /// the build's `instance_type`).
    pub spot_instance_types: Vec<String>,
    /// Tags of the spot request: its temporary launch template and its
    /// EC2 Fleet (packer tags the spot request).
    pub spot_tags: BTreeMap<String, String>,
}

impl SpotOptions {
    /// True when the build instance is a spot instance.
    pub fn is_spot(&self) -> bool {
        self.spot_price.is_some()
    }

    /// The highest price to send (`None` for `auto`: EC2's default, the
    /// on-demand price).
    pub fn max_price(&self) -> Option<&str> {
        self.spot_price.as_deref().filter(|p| *p != "auto")
    }

    /// The types to ask for: `spot_instance_types`, else `instance_type`.
    pub fn types<'a>(&'a self, instance_type: &'a str) -> Vec<&'a str> {
        if self.spot_instance_types.is_empty() {
            vec![instance_type]
        } else {
            self.spot_instance_types
                .iter()
                .map(String::as_str)
                .collect()
        }
    }

    /// Every problem with these settings (the definition reader reports
    /// the same rules at their file:line:col).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.spot_price {
            if let Some((msg, help)) = price_problem(p) {
                out.push(format!("{msg}: {help}"));
            }
        } else if !self.spot_instance_types.is_empty() || !self.spot_tags.is_empty() {
            out.push("spot_instance_types or spot_tags without spot_price".to_string());
        }
        if self.spot_instance_types.len() > MAX_SPOT_INSTANCE_TYPES {
            out.push(format!(
                "spot_instance_types lists {} types; at most {MAX_SPOT_INSTANCE_TYPES}",
                self.spot_instance_types.len()
            ));
        }
        out
    }
}

/// At most this many instance types in `spot_instance_types` (each is a
/// pool per subnet or availability zone in one EC2 Fleet request).
pub const MAX_SPOT_INSTANCE_TYPES: usize = 20;

/// What is wrong with a `spot_price` value, with a help line; `None` when
/// it is `auto` or a positive decimal number with at most 5 decimals.
pub fn price_problem(s: &str) -> Option<(String, &'static str)> {
    const HELP: &str =
        "give the highest hourly price in US dollars, like `0.05`, or `auto` for the on-demand price";
    if s == "auto" {
        return None;
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && frac.is_empty()
        || !digits(whole)
        || !digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return Some((
            format!("spot_price `{s}` is neither a number nor `auto`"),
            HELP,
        ));
    }
    if frac.len() > 5 {
        return Some((format!("spot_price `{s}` has more than 5 decimals"), HELP));
    }
    if s.bytes().all(|b| b == b'0' || b == b'.') {
        return Some((
            format!("spot_price `{s}` is zero"),
            "leave spot_price out for an on-demand instance",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        for ok in ["auto", "0.05", "1", "12.5", ".5", "0.00001"] {
            assert_eq!(price_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "cheap", "-1", "0", "0.0", "1.", "1e3", "0.000001", "1,5", "Auto",
        ] {
            assert!(price_problem(bad).is_some(), "{bad}");
        }
    }
}
