//! `interface`: network interfaces from `/sys/class/net` (existence, `mtu`)
//! and their addresses from `ip -o addr show dev IF` (iproute2), in one
//! script.

use async_trait::async_trait;
use serde_json::Value;

use super::{quote_all, Observed, Property, Resource, ResourceSpec};
use crate::gather::Plan;

/// The `interface` resource type.
pub struct Interface;

const PROPS: &[Property] = &[
    Property::value("exists"),
    Property::value("addrs"),
    Property::value("mtu"),
];

/// The probe: `i<TAB>E<TAB>mtu`, then `i<TAB>A<TAB>ip-o-line` per address,
/// or `i<TAB>N`.
pub fn script(ifs: &[&str]) -> String {
    format!(
        "i=0; for n in {}; do if [ -d \"/sys/class/net/$n\" ]; then read -r m < \"/sys/class/net/$n/mtu\"; printf '%s\\tE\\t%s\\n' $i \"$m\"; \
         ip -o addr show dev \"$n\" 2>/dev/null | while IFS= read -r l; do printf '%s\\tA\\t%s\\n' $i \"$l\"; done; \
         else printf '%s\\tN\\n' $i; fi; i=$((i+1)); done",
        quote_all(ifs.iter().copied())
    )
}

/// Parses the probe output.
pub fn parse(out: &str, ifs: &[&str]) -> Vec<Observed> {
    let mut obs: Vec<Observed> = ifs
        .iter()
        .map(|n| Observed::failed(format!("no record for interface {n}")))
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
            "N" => *o = Observed::missing("exists", format!("interface {} does not exist", ifs[i])),
            "E" => {
                *o = Observed::default();
                o.set("exists", true)
                    .set(
                        "mtu",
                        rest.trim()
                            .parse::<u64>()
                            .map(Value::from)
                            .unwrap_or(Value::Null),
                    )
                    .set("addrs", Value::Array(Vec::new()));
            }
            "A" => {
                // `2: eth0    inet 10.0.2.100/24 brd ... scope global eth0`
                let w: Vec<&str> = rest.split_whitespace().collect();
                if let Some(pos) = w.iter().position(|x| *x == "inet" || *x == "inet6") {
                    if let (Some(a), Some(Value::Array(list))) =
                        (w.get(pos + 1), o.values.get_mut("addrs"))
                    {
                        list.push(Value::String((*a).to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    obs
}

#[async_trait]
impl Resource for Interface {
    fn key(&self) -> &'static str {
        "interface"
    }
    fn type_name(&self) -> &'static str {
        "Interface"
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
        let out = "0\tE\t65536\n0\tA\t1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n0\tA\t1: lo    inet6 ::1/128 scope host\n1\tN\n";
        let o = parse(out, &["lo", "eth9"]);
        assert_eq!(
            o[0].values["addrs"],
            serde_json::json!(["127.0.0.1/8", "::1/128"])
        );
        assert_eq!(o[0].values["mtu"], Value::from(65536));
        assert_eq!(o[1].values["exists"], Value::Bool(false));
    }
}
