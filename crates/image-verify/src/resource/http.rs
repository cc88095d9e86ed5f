//! `http`: an HTTP request made *from the target* with `curl` (which must be
//! installed there; Debian, Ubuntu and AL2023 images have it), one process
//! per URL, concurrently. Checks `status`, `body` and `headers` (both text:
//! line patterns; headers as goss has them, one `Name: value` line per
//! value, names in Go's canonical case, sorted). Settings as goss: `method`,
//! `request-headers`, `request-body`, `allow-insecure`,
//! `no-follow-redirects`, `timeout` (ms, default 5000), `username`,
//! `password`, `ca-file`, `cert-file`, `key-file`, `proxy`.

use async_trait::async_trait;
use image_core::target::shell_quote;
use serde_json::Value;

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section, SectionResult};

/// The `http` resource type.
pub struct Http;

const PROPS: &[Property] = &[
    Property::value("status"),
    Property::text("body"),
    Property::text("headers"),
];

const TRAILER: &str = "\n#IMAGE-VERIFY-STATUS ";

/// The curl command line for a spec.
pub fn command(s: &ResourceSpec) -> String {
    let mut c = String::from(
        "command -v curl >/dev/null 2>&1 || { echo 'http checks need curl on the target' >&2; exit 127; }; curl -sS -i",
    );
    if !s.setting_bool("no-follow-redirects") {
        c.push_str(" -L");
    }
    if s.setting_bool("allow-insecure") {
        c.push_str(" -k");
    }
    c.push_str(&format!(" --max-time {:.3}", s.timeout(5000).as_secs_f64()));
    if let Some(m) = s.setting_str("method") {
        c.push_str(&format!(" -X {}", shell_quote(&m)));
    }
    match s.settings.get("request-headers") {
        Some(Value::Array(hs)) => {
            for h in hs {
                c.push_str(&format!(" -H {}", shell_quote(&crate::matcher::as_text(h))));
            }
        }
        Some(Value::Object(m)) => {
            for (k, v) in m {
                c.push_str(&format!(
                    " -H {}",
                    shell_quote(&format!("{k}: {}", crate::matcher::as_text(v)))
                ));
            }
        }
        _ => {}
    }
    if s.settings.contains_key("request-body") {
        c.push_str(" --data-binary @-");
    }
    if let Some(u) = s.setting_str("username") {
        let p = s.setting_str("password").unwrap_or_default();
        c.push_str(&format!(" -u {}", shell_quote(&format!("{u}:{p}"))));
    }
    for (key, flag) in [
        ("ca-file", "--cacert"),
        ("cert-file", "--cert"),
        ("key-file", "--key"),
        ("proxy", "-x"),
    ] {
        if let Some(v) = s.setting_str(key) {
            c.push_str(&format!(" {flag} {}", shell_quote(&v)));
        }
    }
    c.push_str(&format!(
        " -w {} -- {}",
        shell_quote(&format!("{TRAILER}%{{http_code}}")),
        shell_quote(&s.id)
    ));
    c
}

/// Splits curl `-i` output into (status, headers, body).
pub fn parse(out: &str) -> Option<(u16, Vec<String>, String)> {
    let (resp, code) = out.rsplit_once(TRAILER)?;
    let status: u16 = code.trim().parse().ok()?;
    let mut rest = resp;
    let mut headers = Vec::new();
    while rest.starts_with("HTTP/") {
        let (block, after) = match rest.find("\r\n\r\n") {
            Some(i) => (&rest[..i], &rest[i + 4..]),
            None => match rest.find("\n\n") {
                Some(i) => (&rest[..i], &rest[i + 2..]),
                None => (rest, ""),
            },
        };
        headers = block
            .lines()
            .skip(1)
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        rest = after;
    }
    Some((status, headers, rest.to_string()))
}

#[async_trait]
impl Resource for Http {
    fn key(&self) -> &'static str {
        "http"
    }
    fn type_name(&self) -> &'static str {
        "HTTP"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn settings(&self) -> &'static [&'static str] {
        &[
            "allow-insecure",
            "no-follow-redirects",
            "timeout",
            "method",
            "request-headers",
            "request-body",
            "username",
            "password",
            "ca-file",
            "cert-file",
            "key-file",
            "proxy",
        ]
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let sections = specs
            .iter()
            .map(|s| Section {
                script: command(s),
                timeout: Some(s.timeout(5000) + std::time::Duration::from_secs(5)),
                stdin: s.setting_str("request-body").map(String::into_bytes),
                // No sudo: a request does not need root.
                no_become: true,
                users: false,
            })
            .collect();
        Some(Plan {
            sections,
            read: Box::new(|res| res.into_iter().map(read).collect()),
        })
    }
}

/// The response headers as goss's `Headers` reader: `Name: value` lines,
/// names canonicalised as Go's `textproto` does (`content-type` ->
/// `Content-Type`), sorted.
pub fn goss_headers(headers: &[String]) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .filter_map(|h| {
            let (name, value) = h.split_once(':')?;
            Some(format!("{}: {}", canonical_name(name.trim()), value.trim()))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn canonical_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// What one request got.
fn read(res: SectionResult) -> Observed {
    match res {
        Ok(out) if out.status == 0 => match parse(&out.stdout_str()) {
            Some((status, headers, body)) => {
                let mut o = Observed::default();
                o.set("status", status)
                    .set("headers", goss_headers(&headers))
                    .set("body", body);
                o
            }
            None => Observed::failed("unparseable curl output"),
        },
        Ok(out) => Observed::failed(format!(
            "curl exited with {}: {}",
            out.status,
            out.stderr_str().trim()
        )),
        Err(e) => Observed::failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redirects() {
        let out = "HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\nworld\n#IMAGE-VERIFY-STATUS 200";
        let (s, h, b) = parse(out).unwrap();
        assert_eq!(s, 200);
        assert_eq!(h, vec!["Content-Type: text/plain"]);
        assert_eq!(b, "hello\nworld");
    }

    #[test]
    fn headers_as_goss_reads_them() {
        let h = vec![
            "x-b: 2".to_string(),
            "content-type: text/plain; charset=utf-8".to_string(),
            "X-A:1".to_string(),
        ];
        assert_eq!(
            goss_headers(&h),
            "Content-Type: text/plain; charset=utf-8\nX-A: 1\nX-B: 2"
        );
    }
}
