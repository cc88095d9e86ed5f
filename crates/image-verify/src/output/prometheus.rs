//! The `prometheus` format (goss's `outputs/prometheus.go`): Prometheus's
//! text exposition format with goss's four counters, families sorted by
//! name, labels by name, series by label values:
//!
//! - `goss_tests_outcomes_total{outcome,type}`: checks per resource type
//!   and outcome (`pass`, `fail`, `skip`);
//! - `goss_tests_outcomes_duration_milliseconds{outcome,type}`: their
//!   summed durations;
//! - `goss_tests_run_outcomes_total{outcome}` and
//!   `goss_tests_run_duration_milliseconds{outcome}`: the run as a whole.
//!
//! With the `verbose` option the per-check series also carry `resource_id`.

use std::collections::BTreeMap;

use super::FormatOptions;
use crate::report::{Report, Status};

fn outcome(s: Status) -> &'static str {
    match s {
        Status::Passed => "pass",
        Status::Failed => "fail",
        Status::Skipped => "skip",
    }
}

/// goss's rule for the run's outcome: a failure wins, then a pass, then a
/// skip.
fn can_change(current: &str, result: &str) -> bool {
    match current {
        "skip" => true,
        "fail" => false,
        "pass" => result != "skip",
        _ => result == "fail",
    }
}

/// A label value escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A value as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (what
/// the exposition format uses): exponent form below 1e-4 and from 1e6.
pub fn go_float(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Renders the report.
pub fn render(report: &Report, opts: &FormatOptions) -> String {
    // (sorted label pairs) -> (count, milliseconds)
    let mut tests: BTreeMap<Vec<(&str, String)>, (u64, u64)> = BTreeMap::new();
    let mut overall = "unknown";
    let mut first = true;
    for r in &report.results {
        let o = outcome(r.status);
        let mut labels = vec![("outcome", o.to_string())];
        if opts.verbose {
            labels.push(("resource_id", r.resource_id.clone()));
        }
        labels.push(("type", r.resource_type.to_lowercase()));
        let e = tests.entry(labels).or_default();
        e.0 += 1;
        e.1 += u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX);
        if first || can_change(overall, o) {
            overall = o;
            first = false;
        }
    }
    let series = |labels: &[(&str, String)]| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = String::new();
    let mut family = |name: &str, help: &str, lines: Vec<String>| {
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for l in lines {
            s.push_str(&format!("{name}{l}\n"));
        }
    };
    family(
        "goss_tests_outcomes_duration_milliseconds",
        "The duration of tests from this run. Note; tests run concurrently.",
        tests
            .iter()
            .map(|(l, (_, ms))| format!("{{{}}} {}", series(l), go_float(*ms as f64)))
            .collect(),
    );
    family(
        "goss_tests_outcomes_total",
        "The number of test-outcomes from this run.",
        tests
            .iter()
            .map(|(l, (n, _))| format!("{{{}}} {}", series(l), go_float(*n as f64)))
            .collect(),
    );
    let run_ms = report.duration.as_millis() as f64;
    family(
        "goss_tests_run_duration_milliseconds",
        "The end-to-end duration of this run.",
        vec![format!("{{outcome=\"{overall}\"}} {}", go_float(run_ms))],
    );
    family(
        "goss_tests_run_outcomes_total",
        "The outcomes of this run as a whole.",
        vec![format!("{{outcome=\"{overall}\"}} 1")],
    );
    s
}
