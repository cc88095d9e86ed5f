//! Tests of every output format on a report with a pass, a failure, an
//! error and a skip.

use super::*;
use crate::report::{Status, TestResult};
use serde_json::{json, Value};
use std::time::Duration;

fn result(property: &str, status: Status, found: Option<Value>, error: Option<&str>) -> TestResult {
    TestResult {
        resource_type: "File".into(),
        resource_id: "/etc/<x> & \"y\"".into(),
        property: property.into(),
        title: String::new(),
        meta: Value::Null,
        expected: json!("0644"),
        found,
        status,
        error: error.map(str::to_string),
        duration: Duration::from_millis(3),
        location: "g.yaml:3:5".into(),
        verb: "to equal".into(),
    }
}

fn report() -> Report {
    Report {
        results: vec![
            result("exists", Status::Passed, Some(json!(true)), None),
            result("mode", Status::Failed, Some(json!("0600")), None),
            result("owner", Status::Failed, None, Some("no such file # really")),
            result("group", Status::Skipped, None, None),
        ],
        duration: Duration::from_millis(12),
        attempts: 1,
        timed_out: false,
    }
}

/// A minimal XML well-formedness check: balanced tags, quoted attributes,
/// no raw `<` or `&` in text.
pub fn check_xml(s: &str) -> Result<(), String> {
    let body = s
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .ok_or("missing XML declaration")?;
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    let mut roots = 0;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if text.contains('>') || (text.contains('&') && !valid_entities(text)) {
            return Err(format!("bad text {text:?}"));
        }
        let end = rest[i..].find('>').ok_or("unclosed tag")? + i;
        let tag = &rest[i + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("close without open")?;
            if open != name {
                return Err(format!("</{name}> closes <{open}>"));
            }
        } else {
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().ok_or("empty tag")?;
            let attrs = &tag[name.len()..];
            if attrs.matches('"').count() % 2 != 0 || attrs.contains('<') {
                return Err(format!("bad attributes in <{tag}>"));
            }
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        rest = &rest[end + 1..];
    }
    if !stack.is_empty() || roots != 1 || !rest.trim().is_empty() {
        return Err(format!("unbalanced: {stack:?}, {roots} roots"));
    }
    Ok(())
}

fn valid_entities(text: &str) -> bool {
    text.match_indices('&').all(|(i, _)| {
        ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
            .iter()
            .any(|e| text[i..].starts_with(e))
    })
}

#[test]
fn junit_is_well_formed_xml() {
    let x = render(&report(), OutputFormat::Junit);
    check_xml(&x).unwrap_or_else(|e| panic!("{e}\n{x}"));
    assert!(
        x.contains("tests=\"4\" failures=\"2\" skipped=\"1\""),
        "{x}"
    );
    assert!(x.contains("&lt;x&gt; &amp; &quot;y&quot;"), "{x}");
    assert!(x.contains("<skipped/>"));
    assert!(check_xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a><b></a></b>").is_err());
    assert!(check_xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>x & y</a>").is_err());
    assert_eq!(junit::timestamp(0), "1970-01-01T00:00:00Z");
    assert_eq!(junit::timestamp(1_709_251_199), "2024-02-29T23:59:59Z");
}

#[test]
fn json_has_goss_field_names() {
    let v: Value = serde_json::from_str(&render(&report(), OutputFormat::Json)).unwrap();
    let r = &v["results"][1];
    assert_eq!(r["resource-type"], "File");
    assert_eq!(r["property"], "mode");
    assert_eq!(r["expected"], json!(["\"0644\""]));
    assert_eq!(r["found"], json!(["\"0600\""]));
    assert_eq!(r["successful"], false);
    assert_eq!(r["result"], 1);
    assert_eq!(r["duration"], 3_000_000);
    assert_eq!(v["results"][2]["err"], "no such file # really");
    assert_eq!(v["results"][3]["skipped"], true);
    assert_eq!(v["summary"]["test-count"], 4);
    assert_eq!(v["summary"]["failed-count"], 2);
    assert_eq!(v["summary"]["skipped-count"], 1);
    assert_eq!(v["summary"]["total-duration"], 12_000_000);
}

#[test]
fn tap_is_valid() {
    let t = render(&report(), OutputFormat::Tap);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "1..4");
    assert!(lines[1].starts_with("ok 1 - File: "));
    assert!(lines[2].starts_with("not ok 2 - "));
    assert!(
        lines[3].starts_with("not ok 3 - ") && lines[3].contains("\\# really"),
        "{}",
        lines[3]
    );
    assert!(lines[4].starts_with("ok 4 - ") && lines[4].ends_with(" # SKIP"));
    assert_eq!(lines.len(), 5);
}

#[test]
fn text_formats() {
    let d = render(&report(), OutputFormat::Documentation);
    assert!(
        d.contains("File: /etc/<x> & \"y\": exists: matches expectation: \"0644\"\n"),
        "{d}"
    );
    assert!(
        d.contains("mode: doesn't match, expect: \"0644\" found: \"0600\""),
        "{d}"
    );
    assert!(d.contains("Failures/Skipped:"), "{d}");
    assert!(
        d.contains("Expected\n    \"0600\"\nto equal\n    \"0644\""),
        "{d}"
    );
    assert!(d.contains("owner: Error: no such file"), "{d}");
    assert!(
        d.ends_with("Total Duration: 0.012s\nCount: 4, Failed: 2, Skipped: 1\n"),
        "{d}"
    );
    let r = render(&report(), OutputFormat::Rspecish);
    assert!(r.starts_with(".FFS\n"), "{r}");
    assert_eq!(render(&report(), OutputFormat::Silent), "");
}

#[test]
fn exit_codes() {
    let mut r = report();
    assert_eq!(r.exit_code().code(), 1);
    r.timed_out = true;
    assert_eq!(r.exit_code().code(), 3);
    r.results.retain(|x| x.status != Status::Failed);
    assert_eq!(r.exit_code().code(), 0);
    assert_eq!(crate::report::ExitCode::BadSpec.code(), 78);
}

/// Golden outputs, written from goss's `outputs/nagios.go`,
/// `prometheus.go` (client_golang's text encoder) and `structured.go`.
fn golden(name: &str) -> String {
    let path = format!("{}/src/output/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn nagios_golden_and_exit_code() {
    let r = report();
    assert_eq!(render(&r, OutputFormat::Nagios), golden("nagios.txt"));
    let o = FormatOptions::parse(["perfdata,verbose"]).unwrap();
    assert_eq!(
        render_with(&r, OutputFormat::Nagios, &o),
        golden("nagios-perfdata-verbose.txt")
    );
    assert_eq!(exit_code(&r, OutputFormat::Nagios).code(), 2);
    let mut ok = report();
    ok.results.retain(|x| x.status != Status::Failed);
    assert_eq!(
        render_with(&ok, OutputFormat::Nagios, &o),
        "GOSS OK - Count: 2, Failed: 0, Skipped: 1, Duration: 0.012s|total=2 failed=0 skipped=1 duration=0.012s\n"
    );
    assert_eq!(exit_code(&ok, OutputFormat::Nagios).code(), 0);
    assert!(FormatOptions::parse(["colour"]).is_err());
}

#[test]
fn prometheus_golden() {
    let r = report();
    assert_eq!(
        render(&r, OutputFormat::Prometheus),
        golden("prometheus.txt")
    );
    let o = FormatOptions::parse(["verbose"]).unwrap();
    let v = render_with(&r, OutputFormat::Prometheus, &o);
    assert!(
        v.contains("goss_tests_outcomes_total{outcome=\"fail\",resource_id=\"/etc/<x> & \\\"y\\\"\",type=\"file\"} 2\n"),
        "{v}"
    );
    assert_eq!(exit_code(&r, OutputFormat::Prometheus).code(), 1);
    assert_eq!(prometheus::go_float(12.0), "12");
    assert_eq!(prometheus::go_float(1_234_567.0), "1.234567e+06");
    assert_eq!(prometheus::go_float(0.5), "0.5");
}

#[test]
fn structured_golden_and_exit_code() {
    let r = report();
    let s = render(&r, OutputFormat::Structured);
    assert_eq!(s.lines().count(), 1, "compact by default");
    let o = FormatOptions::parse(["pretty"]).unwrap();
    assert_eq!(
        render_with(&r, OutputFormat::Structured, &o),
        golden("structured-pretty.json")
    );
    // goss's structured output exits 0 even with failures.
    assert_eq!(exit_code(&r, OutputFormat::Structured).code(), 0);
}
