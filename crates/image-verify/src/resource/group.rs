//! `group`: groups from one `getent group g1 g2 ...` call.

use async_trait::async_trait;
use serde_json::Value;

use super::{quote_all, Observed, Property, Resource, ResourceSpec};
use crate::gather::Plan;

/// The `group` resource type.
pub struct Group;

const PROPS: &[Property] = &[Property::value("exists"), Property::value("gid")];

/// The probe script.
pub fn script(groups: &[&str]) -> String {
    format!(
        "getent group -- {}; true",
        quote_all(groups.iter().copied())
    )
}

/// Parses `name:x:gid:members` lines.
pub fn parse(out: &str, groups: &[&str]) -> Vec<Observed> {
    groups
        .iter()
        .map(|g| {
            let entry = out.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && (f[0] == *g || f[2] == *g)).then_some(f)
            });
            match entry {
                Some(f) => {
                    let mut o = Observed::default();
                    o.set("exists", true).set(
                        "gid",
                        f[2].parse::<u64>().map(Value::from).unwrap_or(Value::Null),
                    );
                    o
                }
                None => Observed::missing("exists", format!("group {g} does not exist")),
            }
        })
        .collect()
}

#[async_trait]
impl Resource for Group {
    fn key(&self) -> &'static str {
        "group"
    }
    fn type_name(&self) -> &'static str {
        "Group"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        Some(Plan::ids(specs, script, parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let o = parse("root:x:0:\nadm:x:4:syslog\n", &["adm", "nope"]);
        assert_eq!(o[0].values["gid"], Value::from(4));
        assert_eq!(o[1].values["exists"], Value::Bool(false));
    }
}
