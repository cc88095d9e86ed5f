//! `port`: listening sockets (`tcp:22`, `tcp6:22`, `udp:53`, `udp6:53`; a
//! bare `22` is `tcp:22`) and the addresses they listen on, from
//! `/proc/net/{tcp,tcp6,udp,udp6}` of the target, read in one script.

use std::net::{Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use image_core::diag::Diagnostic;
use serde_json::Value;

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section};

/// The `port` resource type.
pub struct Port;

const PROPS: &[Property] = &[Property::value("listening"), Property::value("ip")];

/// Reads the four socket tables, each after a `#name` line.
pub const SCRIPT: &str =
    "for f in tcp tcp6 udp udp6; do echo \"#$f\"; cat /proc/net/$f 2>/dev/null; done; true";

/// Splits `tcp:22` into (`tcp`, 22).
pub fn parse_id(id: &str) -> Option<(&str, u16)> {
    let (proto, port) = id.split_once(':').unwrap_or(("tcp", id));
    if !matches!(proto, "tcp" | "tcp6" | "udp" | "udp6") {
        return None;
    }
    Some((proto, port.parse().ok()?))
}

fn addr(hex: &str) -> Option<String> {
    match hex.len() {
        8 => Some(Ipv4Addr::from(u32::from_str_radix(hex, 16).ok()?.to_le_bytes()).to_string()),
        32 => {
            let mut b = [0u8; 16];
            for w in 0..4 {
                let v = u32::from_str_radix(&hex[w * 8..w * 8 + 8], 16).ok()?;
                b[w * 4..w * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
            Some(Ipv6Addr::from(b).to_string())
        }
        _ => None,
    }
}

/// Parses the socket tables for the given ids.
pub fn parse(out: &str, ids: &[&str]) -> Vec<Observed> {
    // (proto, port, ip) of listening sockets.
    let mut listening: Vec<(String, u16, String)> = Vec::new();
    let mut proto = String::new();
    for line in out.lines() {
        if let Some(p) = line.strip_prefix('#') {
            proto = p.to_string();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[0] == "sl" {
            continue;
        }
        let Some((ip_hex, port_hex)) = f[1].split_once(':') else {
            continue;
        };
        let listen = if proto.starts_with("tcp") {
            f[3] == "0A"
        } else {
            f[3] == "07"
        };
        if !listen {
            continue;
        }
        if let (Some(ip), Ok(port)) = (addr(ip_hex), u16::from_str_radix(port_hex, 16)) {
            listening.push((proto.clone(), port, ip));
        }
    }
    ids.iter()
        .map(|id| {
            let Some((p, port)) = parse_id(id) else {
                return Observed::failed(format!("bad port `{id}`"));
            };
            let mut ips: Vec<Value> = Vec::new();
            for (lp, lport, ip) in &listening {
                if lp == p && *lport == port && !ips.iter().any(|v| v == ip.as_str()) {
                    ips.push(Value::String(ip.clone()));
                }
            }
            if ips.is_empty() {
                return Observed::missing("listening", format!("nothing listens on {id}"));
            }
            let mut o = Observed::default();
            o.set("listening", true).set("ip", ips);
            o
        })
        .collect()
}

#[async_trait]
impl Resource for Port {
    fn key(&self) -> &'static str {
        "port"
    }
    fn type_name(&self) -> &'static str {
        "Port"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn validate(&self, spec: &ResourceSpec) -> Vec<Diagnostic> {
        if parse_id(&spec.id).is_none() {
            return vec![
                Diagnostic::error(spec.loc.clone(), format!("bad port `{}`", spec.id))
                    .with_help("write tcp:PORT, tcp6:PORT, udp:PORT or udp6:PORT"),
            ];
        }
        Vec::new()
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        Some(Plan::one(specs, Section::new(SCRIPT), move |out| {
            parse(out, &ids)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables() {
        let out = "#tcp\n  sl  local_address rem_address   st\n   0: 00000000:0016 00000000:0000 0A 0\n   1: 0100007F:1F90 00000000:0000 0A 0\n   2: 0100007F:0050 0200007F:C000 01 0\n\
                   #tcp6\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A\n\
                   #udp\n   0: 00000000:0035 00000000:0000 07 0\n#udp6\n";
        let o = parse(
            out,
            &["tcp:22", "8080", "tcp6:22", "udp:53", "tcp:80", "udp6:53"],
        );
        assert_eq!(o[0].values["ip"], serde_json::json!(["0.0.0.0"]));
        assert_eq!(o[1].values["ip"], serde_json::json!(["127.0.0.1"]));
        assert_eq!(o[2].values["ip"], serde_json::json!(["::"]));
        assert_eq!(o[3].values["listening"], Value::Bool(true));
        assert_eq!(o[4].values["listening"], Value::Bool(false));
        assert_eq!(o[5].values["listening"], Value::Bool(false));
        assert!(parse_id("sctp:1").is_none());
    }
}
