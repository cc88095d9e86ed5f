//! The `structured` format (goss's `outputs/structured.go`): a JSON
//! document `{"results": [...], "summary": {...}, "summary-line": ...}`
//! whose results carry goss's `TestResult` fields (`successful`, `skipped`,
//! `resource-id`, `resource-type`, `property`, `title`, `meta`, `result`,
//! `err`, `matcher-result` {`actual`, `expected`, `message`}, `duration` in
//! nanoseconds) plus `summary-line` and `summary-line-compact`. Compact by
//! default, indented with the `pretty` option. goss exits 0 with this
//! format whatever the results (see [`super::exit_code`]).

use serde_json::{json, Value};

use super::{humanize, FormatOptions};
use crate::report::{Report, Status};

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The report as goss's structured JSON value.
pub fn to_value(report: &Report, opts: &FormatOptions) -> Value {
    let results: Vec<Value> = report
        .results
        .iter()
        .map(|r| {
            let matcher = match r.status {
                Status::Skipped => json!({}),
                Status::Passed => json!({
                    "actual": r.found,
                    "expected": r.expected,
                    "message": "matches expectation",
                }),
                Status::Failed => json!({
                    "actual": r.found,
                    "expected": r.expected,
                    "message": r.verb,
                }),
            };
            json!({
                "successful": r.successful(),
                "skipped": r.skipped(),
                "resource-id": r.resource_id,
                "resource-type": r.resource_type,
                "property": r.property,
                "title": r.title,
                "meta": r.meta,
                "result": match r.status { Status::Passed => 0, Status::Failed => 1, Status::Skipped => 2 },
                "err": r.error,
                "matcher-result": matcher,
                "duration": nanos(r.duration),
                "summary-line": humanize(r, false, opts),
                "summary-line-compact": humanize(r, true, opts),
            })
        })
        .collect();
    json!({
        "results": results,
        "summary": {
            "test-count": report.test_count(),
            "failed-count": report.failed_count(),
            "total-duration": nanos(report.duration),
        },
        "summary-line": format!(
            "Count: {}, Failed: {}, Duration: {:.3}s",
            report.test_count(),
            report.failed_count(),
            report.duration.as_secs_f64()
        ),
    })
}

/// Renders the report.
pub fn render(report: &Report, opts: &FormatOptions) -> String {
    let v = to_value(report, opts);
    let mut s = if opts.pretty {
        serde_json::to_string_pretty(&v)
    } else {
        serde_json::to_string(&v)
    }
    .unwrap_or_default();
    s.push('\n');
    s
}
