//! The `rspecish` format (goss's default): a `.`, `F` or `S` per check,
//! then the failures and the totals.

use crate::report::{Report, Status};

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut s: String = report
        .results
        .iter()
        .map(|r| match r.status {
            Status::Passed => '.',
            Status::Failed => 'F',
            Status::Skipped => 'S',
        })
        .collect();
    s.push_str("\n\n");
    s.push_str(&super::failures_section(report));
    s.push('\n');
    s.push_str(&super::total_line(report));
    s.push('\n');
    s.push_str(&report.count_line());
    s.push('\n');
    s
}
