//! `user`: accounts from `getent passwd` and their groups from `id -Gn`, all
//! users in one shell script.

use async_trait::async_trait;
use serde_json::Value;

use super::{observe_ids, quote_all, Observed, Probe, Property, Resource, ResourceSpec};

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
    format!(
        "i=0; for u in {}; do if e=$(getent passwd -- \"$u\"); then printf '%s\\tP\\t%s\\n' $i \"$e\"; printf '%s\\tG\\t%s\\n' $i \"$(id -Gn -- \"$u\" 2>/dev/null)\"; else printf '%s\\tN\\n' $i; fi; i=$((i+1)); done",
        quote_all(users.iter().copied())
    )
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
    async fn observe(&self, probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        observe_ids(probe, specs, script, parse).await
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
