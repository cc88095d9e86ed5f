//! `addr`: whether `tcp://HOST:PORT` (or `udp://`) is reachable *from the
//! target*, by opening the socket with bash's `/dev/tcp` under coreutils'
//! `timeout`. All addresses are tried in parallel in one script. `timeout`
//! is in milliseconds (default 500, as goss). Needs bash on the target.

use async_trait::async_trait;
use image_core::diag::Diagnostic;
use image_core::target::shell_quote;

use super::{all_failed, Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section};

/// The `addr` resource type.
pub struct Addr;

const PROPS: &[Property] = &[Property::value("reachable")];

/// Splits `tcp://host:port` into (proto, host, port).
pub fn parse_id(id: &str) -> Option<(&str, &str, u16)> {
    let (proto, rest) = id.split_once("://")?;
    if !matches!(proto, "tcp" | "udp") {
        return None;
    }
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((proto, host, port.parse().ok()?))
}

/// The probe for `(proto, host, port, timeout seconds)` jobs.
pub fn script(jobs: &[(&str, &str, u16, f64)]) -> String {
    let mut s = String::from(
        "command -v bash >/dev/null 2>&1 || { echo 'addr checks need bash on the target' >&2; exit 3; }\n\
         r() { if timeout \"$5\" bash -c 'exec 3<>\"/dev/$0/$1/$2\"' \"$2\" \"$3\" \"$4\" 2>/dev/null; then printf '%s\\t1\\n' \"$1\"; else printf '%s\\t0\\n' \"$1\"; fi; }\n",
    );
    for (i, (proto, host, port, secs)) in jobs.iter().enumerate() {
        s.push_str(&format!(
            "r {i} {proto} {} {port} {secs:.3} &\n",
            shell_quote(host)
        ));
    }
    s.push_str("wait\n");
    s
}

#[async_trait]
impl Resource for Addr {
    fn key(&self) -> &'static str {
        "addr"
    }
    fn type_name(&self) -> &'static str {
        "Addr"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn settings(&self) -> &'static [&'static str] {
        &["timeout", "local-address"]
    }
    fn validate(&self, spec: &ResourceSpec) -> Vec<Diagnostic> {
        if parse_id(&spec.id).is_none() {
            return vec![
                Diagnostic::error(spec.loc.clone(), format!("bad address `{}`", spec.id))
                    .with_help("write tcp://HOST:PORT or udp://HOST:PORT"),
            ];
        }
        Vec::new()
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let mut jobs = Vec::new();
        for s in specs {
            let Some((p, h, port)) = parse_id(&s.id) else {
                let e = all_failed(specs, &format!("bad address `{}`", s.id));
                return Some(Plan {
                    sections: Vec::new(),
                    read: Box::new(move |_| e),
                });
            };
            jobs.push((p, h, port, s.timeout(500).as_secs_f64()));
        }
        let n = specs.len();
        let section = Section::new(script(&jobs));
        Some(Plan::one(specs, section, move |out| read(out, n)))
    }
}

/// One observation per address from the probe's `I<TAB>0|1` lines.
fn read(out: &str, n: usize) -> Vec<Observed> {
    (0..n)
        .map(|i| {
            let hit = out.lines().find_map(|l| {
                let (idx, v) = l.split_once('\t')?;
                (idx.parse::<usize>().ok()? == i).then_some(v == "1")
            });
            match hit {
                Some(r) => {
                    let mut o = Observed::default();
                    o.set("reachable", r);
                    o
                }
                None => Observed::failed("no result"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            parse_id("tcp://example.com:443"),
            Some(("tcp", "example.com", 443))
        );
        assert_eq!(parse_id("udp://[::1]:53"), Some(("udp", "::1", 53)));
        assert!(parse_id("example.com:443").is_none());
    }
}
