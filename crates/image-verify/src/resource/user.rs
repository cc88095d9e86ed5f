//! `user`: accounts from `getent passwd` and their groups from `id -Gn`, all
//! users in one shell script.

use async_trait::async_trait;
use serde_json::Value;

use image_core::target::shell_quote;

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section};

/// The `user` resource type.
pub struct User;

const PROPS: &[Property] = &[
    Property::value("exists"),
    Property::value("uid"),
    Property::value("gid"),
    Property::value("groups"),
    Property::value("home"),
    Property::value("shell"),
];

/// The probe: `i<TAB>P<TAB>passwd-line`, `i<TAB>G<TAB>groups` or `i<TAB>N`.
pub fn script(users: &[&str]) -> String {
    let all: Vec<(&str, bool)> = users.iter().map(|u| (*u, true)).collect();
    script_for(&all)
}

/// [`script`] for `(user, with groups)`: `id -Gn` runs only for the users
/// whose `groups` are wanted.
pub fn script_for(users: &[(&str, bool)]) -> String {
    let mut s = String::from(
        "u() { if e=$(getent passwd -- \"$2\"); then printf '%s\\tP\\t%s\\n' $1 \"$e\"; \
         [ $3 = 1 ] && printf '%s\\tG\\t%s\\n' $1 \"$(id -Gn -- \"$2\" 2>/dev/null)\"; \
         else printf '%s\\tN\\n' $1; fi; }\n",
    );
    for (i, (name, groups)) in users.iter().enumerate() {
        s.push_str(&format!(
            "u {i} {} {}\n",
            shell_quote(name),
            u8::from(*groups)
        ));
    }
    s.push_str("true\n");
    s
}

/// Parses the probe output.
pub fn parse(out: &str, users: &[&str]) -> Vec<Observed> {
    let mut obs: Vec<Observed> = users
        .iter()
        .map(|u| Observed::failed(format!("no record for user {u}")))
        .collect();
    for line in out.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(i), Some(tag)) = (f.next().and_then(|i| i.parse::<usize>().ok()), f.next())
        else {
            continue;
        };
        let Some(o) = obs.get_mut(i) else { continue };
        let rest = f.next().unwrap_or("");
        match tag {
            "N" => *o = Observed::missing("exists", format!("user {} does not exist", users[i])),
            "P" => {
                let p: Vec<&str> = rest.split(':').collect();
                if p.len() < 7 {
                    *o = Observed::failed(format!("bad passwd entry: {rest}"));
                    continue;
                }
                let num = |s: &str| s.parse::<u64>().map(Value::from).unwrap_or(Value::Null);
                *o = Observed::default();
                o.set("exists", true)
                    .set("uid", num(p[2]))
                    .set("gid", num(p[3]))
                    .set("home", p[5])
                    .set("shell", p[6]);
            }
            "G" => {
                let groups: Vec<Value> = rest
                    .split_whitespace()
                    .map(|g| Value::String(g.to_string()))
                    .collect();
                o.set("groups", groups);
            }
            _ => {}
        }
    }
    obs
}

#[async_trait]
impl Resource for User {
    fn key(&self) -> &'static str {
        "user"
    }
    fn type_name(&self) -> &'static str {
        "User"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        // Every property when nothing is checked (`verify add`).
        let jobs: Vec<(&str, bool)> = specs
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.checks.is_empty() || s.checks_property("groups"),
                )
            })
            .collect();
        let ids: Vec<&'s str> = specs.iter().map(|s| s.id.as_str()).collect();
        let section = Section::new(script_for(&jobs));
        Some(Plan::one(specs, section, move |out| parse(out, &ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let out = "0\tP\troot:x:0:0:root:/root:/bin/bash\n0\tG\troot adm\n1\tN\n";
        let o = parse(out, &["root", "ghost"]);
        assert_eq!(o[0].values["uid"], Value::from(0));
        assert_eq!(o[0].values["groups"], serde_json::json!(["root", "adm"]));
        assert_eq!(o[0].values["shell"], "/bin/bash");
        assert_eq!(o[1].values["exists"], Value::Bool(false));
    }
}
