//! The `json` format, with goss's field names: `results[]` (`resource-type`,
//! `resource-id`, `property`, `expected`, `found`, `successful`, `skipped`,
//! `result`, `err`, `duration` in nanoseconds, `title`, `meta`,
//! `summary-line`) and `summary` (`test-count`, `failed-count`,
//! `skipped-count`, `total-duration`, `summary-line`).

use serde_json::{json, Value};

use crate::report::{Report, Status};

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The report as a JSON value.
pub fn to_value(report: &Report) -> Value {
    let results: Vec<Value> = report
        .results
        .iter()
        .map(|r| {
            json!({
                "resource-type": r.resource_type,
                "resource-id": r.resource_id,
                "property": r.property,
                "title": r.title,
                "meta": r.meta,
                "expected": [r.expected.to_string()],
                "found": r.found.as_ref().map(|f| vec![f.to_string()]),
                "successful": r.successful(),
                "skipped": r.skipped(),
                "result": match r.status { Status::Passed => 0, Status::Failed => 1, Status::Skipped => 2 },
                "err": r.error,
                "duration": nanos(r.duration),
                "summary-line": r.summary_line(),
                "location": r.location,
            })
        })
        .collect();
    json!({
        "results": results,
        "summary": {
            "test-count": report.test_count(),
            "failed-count": report.failed_count(),
            "skipped-count": report.skipped_count(),
            "total-duration": nanos(report.duration),
            "attempts": report.attempts,
            "retry-timed-out": report.timed_out,
            "summary-line": format!(
                "{}, Duration: {:.3}s",
                report.count_line(),
                report.duration.as_secs_f64()
            ),
        }
    })
}

/// Renders the report (pretty-printed).
pub fn render(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&to_value(report)).unwrap_or_default();
    s.push('\n');
    s
}
