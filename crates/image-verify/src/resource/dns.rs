//! `dns`: whether a name resolves *on the target* and to which addresses,
//! with `getent ahosts` (`A:name` uses `ahostsv4`, `AAAA:name` `ahostsv6`)
//! under coreutils' `timeout`, all names in parallel in one script.
//! `timeout` is in milliseconds (default 500, as goss). Other record types
//! and `server` need `dig` and are not supported.

use async_trait::async_trait;
use image_core::diag::Diagnostic;
use image_core::target::shell_quote;
use serde_json::Value;

use super::{all_failed, Observed, Probe, Property, Resource, ResourceSpec};

/// The `dns` resource type.
pub struct Dns;

const PROPS: &[Property] = &[Property::value("resolvable"), Property::value("addrs")];

/// Splits `A:name` into (getent database, name).
pub fn parse_id(id: &str) -> Result<(&'static str, &str), String> {
    match id.split_once(':') {
        Some(("A", n)) => Ok(("ahostsv4", n)),
        Some(("AAAA", n)) => Ok(("ahostsv6", n)),
        Some((t, _)) if t.chars().all(|c| c.is_ascii_uppercase()) => Err(format!(
            "DNS record type {t} needs `dig` on the target and is not supported; only A, AAAA and plain names are"
        )),
        _ => Ok(("ahosts", id)),
    }
}

/// The probe for `(database, name, seconds)` jobs.
pub fn script(jobs: &[(&str, &str, f64)]) -> String {
    let mut s = String::from(
        "r() { if o=$(timeout \"$4\" getent \"$2\" \"$3\" 2>/dev/null); then printf '%s\\n' \"$o\" | while read -r a _; do printf '%s\\tA\\t%s\\n' \"$1\" \"$a\"; done; printf '%s\\tY\\n' \"$1\"; else printf '%s\\tN\\n' \"$1\"; fi; }\n",
    );
    for (i, (db, name, secs)) in jobs.iter().enumerate() {
        s.push_str(&format!("r {i} {db} {} {secs:.3} &\n", shell_quote(name)));
    }
    s.push_str("wait\n");
    s
}

/// Parses the probe output.
pub fn parse(out: &str, n: usize) -> Vec<Observed> {
    (0..n)
        .map(|i| {
            let mut addrs: Vec<Value> = Vec::new();
            let mut state = None;
            for l in out.lines() {
                let mut f = l.splitn(3, '\t');
                if f.next().and_then(|x| x.parse::<usize>().ok()) != Some(i) {
                    continue;
                }
                match (f.next(), f.next()) {
                    (Some("A"), Some(a)) if !addrs.iter().any(|x| x == a) => {
                        addrs.push(Value::String(a.to_string()));
                    }
                    (Some("Y"), _) => state = Some(true),
                    (Some("N"), _) => state = Some(false),
                    _ => {}
                }
            }
            match state {
                Some(true) => {
                    let mut o = Observed::default();
                    o.set("resolvable", true).set("addrs", addrs);
                    o
                }
                Some(false) => Observed::missing("resolvable", "name does not resolve"),
                None => Observed::failed("no result"),
            }
        })
        .collect()
}

#[async_trait]
impl Resource for Dns {
    fn key(&self) -> &'static str {
        "dns"
    }
    fn type_name(&self) -> &'static str {
        "DNS"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn settings(&self) -> &'static [&'static str] {
        &["timeout", "server"]
    }
    fn aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[("resolveable", "resolvable")]
    }
    fn validate(&self, spec: &ResourceSpec) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        if let Err(e) = parse_id(&spec.id) {
            d.push(Diagnostic::error(spec.loc.clone(), e));
        }
        if spec.settings.contains_key("server") {
            d.push(Diagnostic::error(
                spec.loc.clone(),
                "dns `server` needs `dig` on the target and is not supported",
            ));
        }
        d
    }
    async fn observe(&self, probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        let mut jobs = Vec::new();
        for s in specs {
            match parse_id(&s.id) {
                Ok((db, name)) => jobs.push((db, name, s.timeout(500).as_secs_f64())),
                Err(e) => return all_failed(specs, &e),
            }
        }
        match probe.sh_stdout(&script(&jobs)).await {
            Ok(out) => parse(&out, specs.len()),
            Err(e) => all_failed(specs, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let out = "0\tA\t127.0.0.1\n0\tA\t127.0.0.1\n0\tA\t::1\n0\tY\n1\tN\n";
        let o = parse(out, 2);
        assert_eq!(
            o[0].values["addrs"],
            serde_json::json!(["127.0.0.1", "::1"])
        );
        assert_eq!(o[1].values["resolvable"], Value::Bool(false));
        assert_eq!(parse_id("A:x").unwrap(), ("ahostsv4", "x"));
        assert!(parse_id("MX:x").is_err());
    }
}
