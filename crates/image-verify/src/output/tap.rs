//! The `tap` format (TAP version 12, as goss): `1..N`, then `ok N - ...` /
//! `not ok N - ...` per check, skipped checks as `ok N - ... # SKIP`.
//! Descriptions are one line, with `#` escaped.

use crate::report::{Report, Status};

fn description(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('#', "\\#")
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut s = format!("1..{}\n", report.test_count());
    for (i, r) in report.results.iter().enumerate() {
        let n = i + 1;
        let d = description(&r.summary_line());
        match r.status {
            Status::Passed => s.push_str(&format!("ok {n} - {d}\n")),
            Status::Failed => s.push_str(&format!("not ok {n} - {d}\n")),
            Status::Skipped => s.push_str(&format!("ok {n} - {d} # SKIP\n")),
        }
    }
    s
}
