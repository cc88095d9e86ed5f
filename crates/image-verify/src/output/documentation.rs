//! The `documentation` format: one line per check, then the failures and
//! the totals.

use crate::report::Report;

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    for r in &report.results {
        if !r.title.is_empty() {
            s.push_str(&format!("Title: {}\n", r.title));
        }
        s.push_str(&r.summary_line());
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&super::failures_section(report));
    s.push('\n');
    s.push_str(&super::total_line(report));
    s.push('\n');
    s.push_str(&report.count_line());
    s.push('\n');
    s
}
