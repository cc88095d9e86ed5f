//! The `junit` format: one `<testsuite name="goss">` with a `<testcase>` per
//! check (`<failure>` or `<skipped/>` inside), all text XML-escaped.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::{Report, Status};

/// Escapes text for XML content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuite name=\"goss\" errors=\"0\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">\n",
        report.test_count(),
        report.failed_count(),
        report.skipped_count(),
        report.duration.as_secs_f64(),
        timestamp(now)
    ));
    for r in &report.results {
        let name = format!("{} {} {}", r.resource_type, r.resource_id, r.property);
        s.push_str(&format!(
            "<testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">\n",
            escape(&name),
            escape(&r.resource_type),
            r.duration.as_secs_f64()
        ));
        match r.status {
            Status::Passed => {}
            Status::Skipped => s.push_str("<skipped/>\n"),
            Status::Failed => s.push_str(&format!(
                "<failure message=\"{}\">{}</failure>\n",
                escape(&r.summary_line()),
                escape(&r.failure_text())
            )),
        }
        s.push_str(&format!(
            "<system-out>{}</system-out>\n",
            escape(&r.summary_line())
        ));
        s.push_str("</testcase>\n");
    }
    s.push_str("</testsuite>\n");
    s
}
