//! `dns`: whether a name resolves *on the target* and to what, as goss.
//!
//! - Without `server`, goss asks the system resolver (`net.LookupHost`,
//!   whatever the `TYPE:` prefix): here `getent ahosts` under coreutils'
//!   `timeout`, all names in parallel in one script.
//! - With `server` (`host` or `host:port`, port 53 by default), goss sends
//!   DNS queries of the record type of the id's prefix: `A`, `AAAA`, `CAA`,
//!   `CNAME`, `MX`, `NS`, `PTR` (of an address), `SRV`, `SSHFP`, `TXT`; no
//!   prefix asks for A and AAAA. The queries are built here
//!   ([`crate::dnswire`]) and sent from the target with bash's `/dev/udp`,
//!   `dd` and `od`: no `dig` needed. Answers print as goss's (`10 mx.host.`,
//!   `0 5 443 target.`).
//!
//! `timeout` is in milliseconds (default 500, as goss); like goss, a lookup
//! that times out is tried 3 times. A name with no answer is not
//! `resolvable` (its `addrs` are then skipped).

use async_trait::async_trait;
use image_core::diag::Diagnostic;
use image_core::target::shell_quote;
use serde_json::Value;

use super::{all_failed, Observed, Probe, Property, Resource, ResourceSpec};
use crate::dnswire;
use crate::gather::{Plan, Section};

/// The `dns` resource type.
pub struct Dns;

const PROPS: &[Property] = &[Property::value("resolvable"), Property::value("addrs")];

/// Splits `TYPE:name` (TYPE in capitals, as goss) into the type and name.
pub fn split_id(id: &str) -> (Option<&str>, &str) {
    match id.split_once(':') {
        Some((t, n)) if !t.is_empty() && t.chars().all(|c| c.is_ascii_uppercase()) => (Some(t), n),
        _ => (None, id),
    }
}

/// The record types asked for an id with a server.
fn query_types(qtype: Option<&str>) -> Result<Vec<u16>, String> {
    match qtype {
        None => Ok(vec![1, 28]),
        Some(t) => dnswire::type_code(t).map(|c| vec![c]).ok_or_else(|| {
            let names: Vec<&str> = dnswire::TYPES.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown DNS record type `{t}`; goss knows {}",
                names.join(", ")
            )
        }),
    }
}

/// `host`, `host:port`, `[v6]:port` -> (host, port).
pub fn parse_server(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    let (host, port) = if let Some(r) = s.strip_prefix('[') {
        let (h, rest) = r.split_once(']').ok_or(format!("bad DNS server `{s}`"))?;
        (h, rest.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("bad DNS server port in `{s}`"))?,
        None => 53,
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c))
    {
        return Err(format!("bad DNS server `{s}`"));
    }
    Ok((host.to_string(), port))
}

/// The system-resolver probe for `(name, seconds)` jobs.
pub fn script(jobs: &[(&str, f64)]) -> String {
    let mut s = String::from(
        "r() { if o=$(timeout \"$3\" getent ahosts \"$2\" 2>/dev/null); then printf '%s\\n' \"$o\" | while read -r a _; do printf '%s\\tA\\t%s\\n' \"$1\" \"$a\"; done; printf '%s\\tY\\n' \"$1\"; else printf '%s\\tN\\n' \"$1\"; fi; }\n",
    );
    for (i, (name, secs)) in jobs.iter().enumerate() {
        s.push_str(&format!("r {i} {} {secs:.3} &\n", shell_quote(name)));
    }
    s.push_str("wait\n");
    s
}

/// Parses the system-resolver probe output.
pub fn parse(out: &str, n: usize) -> Vec<Observed> {
    (0..n)
        .map(|i| {
            let mut addrs: Vec<String> = Vec::new();
            let mut state = None;
            for l in out.lines() {
                let mut f = l.splitn(3, '\t');
                if f.next().and_then(|x| x.parse::<usize>().ok()) != Some(i) {
                    continue;
                }
                match (f.next(), f.next()) {
                    (Some("A"), Some(a)) if !addrs.iter().any(|x| x == a) => {
                        addrs.push(a.to_string());
                    }
                    (Some("Y"), _) => state = Some(true),
                    (Some("N"), _) => state = Some(false),
                    _ => {}
                }
            }
            match state {
                Some(true) => resolved(addrs),
                Some(false) => resolved(Vec::new()),
                None => Observed::failed("no result"),
            }
        })
        .collect()
}

/// goss: resolvable when there is an answer; addresses sorted.
fn resolved(mut addrs: Vec<String>) -> Observed {
    addrs.sort();
    let mut o = Observed::default();
    o.set("resolvable", !addrs.is_empty()).set(
        "addrs",
        addrs.into_iter().map(Value::String).collect::<Vec<_>>(),
    );
    o
}

/// The query probe: one line `I<TAB>RC<TAB>HEX` per query `I`, each query
/// tried up to 3 times while it times out.
pub fn query_script(jobs: &[(String, u16, f64, Vec<u8>)]) -> String {
    let mut s = String::from(
        "q() { n=0; while :; do o=$(timeout \"$4\" bash -c 'exec 3<>\"/dev/udp/$0/$1\" || exit 9; printf \"$2\" >&3 && dd bs=65535 count=1 <&3 2>/dev/null | od -An -v -tx1' \"$2\" \"$3\" \"$5\"); rc=$?; n=$((n+1)); [ $rc -eq 124 ] && [ $n -lt 3 ] || break; done; printf '%s\\t%s\\t%s\\n' \"$1\" \"$rc\" \"$(printf '%s' \"$o\" | tr '\\n' ' ')\"; }\n",
    );
    for (i, (host, port, secs, pkt)) in jobs.iter().enumerate() {
        s.push_str(&format!(
            "q {i} {} {port} {secs:.3} {} &\n",
            shell_quote(host),
            shell_quote(&dnswire::printf_escaped(pkt))
        ));
    }
    s.push_str("wait\n");
    s
}

/// One query of a spec: (spec index, record type).
type Query = (usize, u16);

async fn observe_with_servers(
    probe: &Probe<'_>,
    specs: &[&ResourceSpec],
    idx: &[usize],
) -> Vec<(usize, Observed)> {
    let mut jobs = Vec::new();
    let mut queries: Vec<Query> = Vec::new();
    let mut out: Vec<(usize, Observed)> = Vec::new();
    for &i in idx {
        let s = specs[i];
        let (qtype, name) = split_id(&s.id);
        let server = s.setting_str("server").unwrap_or_default();
        let prepared = parse_server(&server).and_then(|(host, port)| {
            let name = if qtype == Some("PTR") {
                dnswire::reverse_name(name)?
            } else {
                name.to_string()
            };
            let mut js = Vec::new();
            for t in query_types(qtype)? {
                let id = u16::try_from(jobs.len() + js.len()).unwrap_or(0);
                js.push((
                    t,
                    (
                        host.clone(),
                        port,
                        s.timeout(500).as_secs_f64(),
                        dnswire::query(id, &name, t)?,
                    ),
                ));
            }
            Ok(js)
        });
        match prepared {
            Ok(js) => {
                for (t, j) in js {
                    queries.push((i, t));
                    jobs.push(j);
                }
            }
            Err(e) => out.push((i, Observed::failed(e))),
        }
    }
    if jobs.is_empty() {
        return out;
    }
    let text = match probe.sh_stdout(&query_script(&jobs)).await {
        Ok(t) => t,
        Err(e) => {
            out.extend(idx.iter().map(|i| (*i, Observed::failed(e.clone()))));
            return out;
        }
    };
    let mut per_spec: std::collections::BTreeMap<usize, Result<Vec<String>, String>> =
        Default::default();
    for (q, (i, t)) in queries.iter().enumerate() {
        let line = text
            .lines()
            .find(|l| l.split('\t').next().and_then(|x| x.parse::<usize>().ok()) == Some(q));
        let res = match line.map(|l| l.splitn(3, '\t').skip(1).collect::<Vec<_>>()) {
            Some(f) if f.first() == Some(&"0") => {
                let bytes = dnswire::from_od(f.get(1).copied().unwrap_or(""));
                if bytes.get(..2) != Some(&(q as u16).to_be_bytes()[..]) {
                    Err("DNS reply does not answer the query".to_string())
                } else {
                    dnswire::answers(&bytes, *t)
                }
            }
            Some(f) if f.first() == Some(&"124") => Err(format!(
                "DNS lookup timed out ({}ms)",
                specs[*i].timeout(500).as_millis()
            )),
            Some(f) => Err(format!(
                "DNS query could not be sent (exit {})",
                f.first().copied().unwrap_or("?")
            )),
            None => Err("no result".to_string()),
        };
        let entry = per_spec.entry(*i).or_insert_with(|| Ok(Vec::new()));
        match (entry.as_mut(), res) {
            (Ok(all), Ok(mut more)) => all.append(&mut more),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {}
        }
    }
    for (i, r) in per_spec {
        out.push((
            i,
            match r {
                Ok(addrs) => resolved(addrs),
                Err(e) => Observed::failed(e),
            },
        ));
    }
    out
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
        let (qtype, name) = split_id(&spec.id);
        match spec.setting_str("server").filter(|s| !s.is_empty()) {
            Some(server) => {
                if let Err(e) = query_types(qtype).and_then(|_| parse_server(&server)) {
                    d.push(Diagnostic::error(spec.loc.clone(), e).with_help("write the id as `TYPE:name` (A, AAAA, CNAME, MX, NS, PTR, SRV, TXT, CAA) and `server` as HOST or HOST:PORT"));
                }
                if qtype == Some("PTR") {
                    if let Err(e) = dnswire::reverse_name(name) {
                        d.push(Diagnostic::error(spec.loc.clone(), e).with_help("a PTR query takes an IP address, e.g. `PTR:127.0.0.1`"));
                    }
                }
            }
            None if qtype.is_some_and(|t| t != "A" && t != "AAAA") => d.push(
                Diagnostic::warning(
                    spec.loc.clone(),
                    format!(
                        "without `server`, goss resolves `{name}` with the system resolver (addresses), not as a {} record",
                        qtype.unwrap_or_default()
                    ),
                )
                .with_help("add `server: <dns server>` to query the record type"),
            ),
            None => {}
        }
        d
    }
    /// Gathered only when no spec names a `server` (one section of
    /// system-resolver lookups); queries to servers are observed apart.
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        if specs
            .iter()
            .any(|s| s.setting_str("server").is_some_and(|s| !s.is_empty()))
        {
            return None;
        }
        let jobs: Vec<(&str, f64)> = specs
            .iter()
            .map(|s| (split_id(&s.id).1, s.timeout(500).as_secs_f64()))
            .collect();
        let n = jobs.len();
        let section = Section::new(script(&jobs));
        Some(Plan::one(specs, section, move |out| parse(out, n)))
    }
    async fn observe(&self, probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        let (with, without): (Vec<usize>, Vec<usize>) = (0..specs.len()).partition(|i| {
            specs[*i]
                .setting_str("server")
                .is_some_and(|s| !s.is_empty())
        });
        let mut out: Vec<Observed> = vec![Observed::failed("not observed"); specs.len()];
        if !without.is_empty() {
            let jobs: Vec<(&str, f64)> = without
                .iter()
                .map(|i| {
                    (
                        split_id(&specs[*i].id).1,
                        specs[*i].timeout(500).as_secs_f64(),
                    )
                })
                .collect();
            let obs = match probe.sh_stdout(&script(&jobs)).await {
                Ok(text) => parse(&text, jobs.len()),
                Err(e) => all_failed(&without.iter().map(|i| specs[*i]).collect::<Vec<_>>(), &e),
            };
            for (i, o) in without.iter().zip(obs) {
                out[*i] = o;
            }
        }
        if !with.is_empty() {
            for (i, o) in observe_with_servers(probe, specs, &with).await {
                out[i] = o;
            }
        }
        out
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
        assert_eq!(split_id("A:x"), (Some("A"), "x"));
        assert_eq!(split_id("x:80"), (None, "x:80"));
        assert_eq!(parse_server("10.0.2.3").unwrap(), ("10.0.2.3".into(), 53));
        assert_eq!(parse_server("[::1]:5353").unwrap(), ("::1".into(), 5353));
        assert!(parse_server("a b").is_err());
        assert!(query_types(Some("HINFO")).is_err());
    }

    /// A DNS server on this machine answering every query from `records`
    /// (type -> rdata), NXDOMAIN for `nx.test`; the probe runs through
    /// the local target's shell, bash's /dev/udp, dd and od.
    #[tokio::test]
    async fn record_types_through_a_server() {
        use crate::dnswire::tests::{reply, wire};
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let q = buf[..n].to_vec();
                let qtype = u16::from_be_bytes([q[n - 4], q[n - 3]]);
                let nx = q.windows(7).any(|w| w == b"\x02nx\x04tes");
                let mut mx = vec![0, 10];
                mx.extend(wire("mail.example.test"));
                let mut srv = vec![0, 0, 0, 5, 1, 187];
                srv.extend(wire("a.example.test"));
                let all: Vec<(u16, Vec<u8>)> = vec![
                    (1, vec![192, 0, 2, 1]),
                    (28, {
                        let mut v = vec![0u8; 16];
                        v[0] = 0x20;
                        v[1] = 1;
                        v[15] = 1;
                        v
                    }),
                    (15, mx),
                    (33, srv),
                    (16, b"\x04v=ok".to_vec()),
                    (12, wire("ptr.example.test")),
                    (257, b"\x00\x05issueca.test".to_vec()),
                ];
                let recs: Vec<(u16, Vec<u8>)> =
                    all.into_iter().filter(|(t, _)| *t == qtype).collect();
                let r = if nx {
                    reply(&q, 3, &[])
                } else {
                    reply(&q, 0, &recs)
                };
                let _ = sock.send_to(&r, from).await;
            }
        });
        let server = format!("127.0.0.1:{port}");
        let src = format!(
            "dns:\n  MX:example.test: {{resolvable: true, server: \"{server}\", addrs: [\"10 mail.example.test.\"]}}\n\
               \x20 SRV:_x._tcp.example.test: {{resolvable: true, server: \"{server}\", addrs: [\"0 5 443 a.example.test.\"]}}\n\
               \x20 TXT:example.test: {{resolvable: true, server: \"{server}\", addrs: [v=ok]}}\n\
               \x20 PTR:192.0.2.1: {{resolvable: true, server: \"{server}\", addrs: [ptr.example.test.]}}\n\
               \x20 CAA:example.test: {{resolvable: true, server: \"{server}\", addrs: [\"0 issue ca.test\"]}}\n\
               \x20 example.test: {{resolvable: true, server: \"{server}\", addrs: {{consist-of: [192.0.2.1, \"2001::1\"]}}}}\n\
               \x20 CNAME:example.test: {{resolvable: false, server: \"{server}\"}}\n\
               \x20 A:nx.test: {{resolvable: false, server: \"{server}\", addrs: [x]}}\n\
               \x20 localhost: {{resolvable: true}}\n"
        );
        let data = crate::template::TemplateData::default();
        let suite = crate::suite::load_str("g.yaml", &src, std::path::Path::new("."), &data)
            .unwrap_or_else(|d| panic!("{d}"));
        let report = crate::runner::run(
            &suite,
            &image_core::local::LocalTarget::new(),
            &Default::default(),
        )
        .await;
        let bad: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.status == crate::report::Status::Failed)
            .map(|r| r.summary_line())
            .collect();
        assert!(bad.is_empty(), "{bad:#?}");
        assert_eq!(report.test_count(), 16);
        assert_eq!(
            report.skipped_count(),
            1,
            "addrs of a name that does not resolve"
        );
    }
}
