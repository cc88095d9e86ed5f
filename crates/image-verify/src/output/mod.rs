//! Renderers of a [`Report`], one file per format, as goss prints them:
//! [`documentation`], [`rspecish`] (the default), [`json`], [`junit`],
//! [`tap`] and silent.

pub mod documentation;
pub mod json;
pub mod junit;
pub mod rspecish;
pub mod tap;

use std::fmt;
use std::str::FromStr;

use crate::report::Report;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Every check on a line, then failures and totals.
    Documentation,
    /// Dots, then failures and totals (goss's default).
    #[default]
    Rspecish,
    /// goss's JSON document.
    Json,
    /// JUnit XML.
    Junit,
    /// Test Anything Protocol.
    Tap,
    /// Nothing; only the exit code.
    Silent,
}

impl OutputFormat {
    /// Every format's name.
    pub const NAMES: &'static [&'static str] = &[
        "documentation",
        "rspecish",
        "json",
        "junit",
        "tap",
        "silent",
    ];
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "documentation" => OutputFormat::Documentation,
            "rspecish" => OutputFormat::Rspecish,
            "json" => OutputFormat::Json,
            "junit" => OutputFormat::Junit,
            "tap" => OutputFormat::Tap,
            "silent" => OutputFormat::Silent,
            other => {
                return Err(format!(
                    "unknown format `{other}`; one of: {}",
                    Self::NAMES.join(", ")
                ))
            }
        })
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            OutputFormat::Documentation => "documentation",
            OutputFormat::Rspecish => "rspecish",
            OutputFormat::Json => "json",
            OutputFormat::Junit => "junit",
            OutputFormat::Tap => "tap",
            OutputFormat::Silent => "silent",
        };
        f.write_str(s)
    }
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: OutputFormat) -> String {
    match format {
        OutputFormat::Documentation => documentation::render(report),
        OutputFormat::Rspecish => rspecish::render(report),
        OutputFormat::Json => json::render(report),
        OutputFormat::Junit => junit::render(report),
        OutputFormat::Tap => tap::render(report),
        OutputFormat::Silent => String::new(),
    }
}

/// `Total Duration: 0.123s`.
pub(crate) fn total_line(report: &Report) -> String {
    format!("Total Duration: {:.3}s", report.duration.as_secs_f64())
}

/// The failures (and skipped checks) section shared by the text formats.
pub(crate) fn failures_section(report: &Report) -> String {
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.successful() && !r.skipped())
        .map(|r| r.failure_text())
        .collect();
    let skipped: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.skipped())
        .map(|r| r.summary_line())
        .collect();
    if failed.is_empty() && skipped.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nFailures/Skipped:\n\n");
    for f in failed {
        s.push_str(&f);
        s.push('\n');
    }
    for k in skipped {
        s.push_str(&k);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests;
