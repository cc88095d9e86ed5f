//! Renderers of a [`Report`], one file per format, as goss prints them:
//! [`documentation`], [`rspecish`] (the default), [`json`], [`junit`],
//! [`nagios`], [`prometheus`], [`structured`], [`tap`] and silent, with
//! goss's `--format-options` ([`FormatOptions`]) and per-format exit codes
//! ([`exit_code`]).

pub mod documentation;
pub mod json;
pub mod junit;
pub mod nagios;
pub mod prometheus;
pub mod rspecish;
pub mod structured;
pub mod tap;

use std::fmt;
use std::str::FromStr;

use crate::report::{short, ExitCode, Report, Status, TestResult};

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
    /// One Nagios status line (exit 2 when a check failed).
    Nagios,
    /// Prometheus text exposition format.
    Prometheus,
    /// goss's structured JSON (always exits 0).
    Structured,
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
        "nagios",
        "prometheus",
        "structured",
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
            "nagios" => OutputFormat::Nagios,
            "prometheus" => OutputFormat::Prometheus,
            "structured" => OutputFormat::Structured,
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
            OutputFormat::Nagios => "nagios",
            OutputFormat::Prometheus => "prometheus",
            OutputFormat::Structured => "structured",
            OutputFormat::Silent => "silent",
        };
        f.write_str(s)
    }
}

/// goss's `--format-options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// `perfdata` (nagios): append performance data.
    pub perfdata: bool,
    /// `verbose` (nagios: failure lines; prometheus: `resource_id` label).
    pub verbose: bool,
    /// `pretty` (json, structured): indented JSON.
    pub pretty: bool,
    /// `sort` (structured and others): results sorted by type and id.
    pub sort: bool,
    /// `exclude_raw`: leave the raw (untransformed) value out of failures.
    pub exclude_raw: bool,
}

impl FormatOptions {
    /// Every option's name.
    pub const NAMES: &'static [&'static str] =
        &["perfdata", "verbose", "pretty", "sort", "exclude_raw"];

    /// Parses option names (each may be a comma-separated list, as goss's
    /// flag accepts).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut o = FormatOptions::default();
        for n in names.into_iter().flat_map(|n| n.split(',')) {
            match n.trim() {
                "perfdata" => o.perfdata = true,
                "verbose" => o.verbose = true,
                "pretty" => o.pretty = true,
                "sort" => o.sort = true,
                "exclude_raw" => o.exclude_raw = true,
                "" => {}
                other => {
                    return Err(format!(
                        "unknown format option `{other}`; one of: {}",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// Renders `report` in `format` with default options.
pub fn render(report: &Report, format: OutputFormat) -> String {
    render_with(report, format, &FormatOptions::default())
}

/// Renders `report` in `format` with `opts`.
pub fn render_with(report: &Report, format: OutputFormat, opts: &FormatOptions) -> String {
    let sorted;
    let report = if opts.sort {
        let mut r = report.clone();
        r.results.sort_by(|a, b| {
            (&a.resource_type, &a.resource_id).cmp(&(&b.resource_type, &b.resource_id))
        });
        sorted = r;
        &sorted
    } else {
        report
    };
    match format {
        OutputFormat::Documentation => documentation::render(report),
        OutputFormat::Rspecish => rspecish::render(report),
        OutputFormat::Json => json::render(report),
        OutputFormat::Junit => junit::render(report),
        OutputFormat::Tap => tap::render(report),
        OutputFormat::Nagios => nagios::render(report, opts),
        OutputFormat::Prometheus => prometheus::render(report, opts),
        OutputFormat::Structured => structured::render(report, opts),
        OutputFormat::Silent => String::new(),
    }
}

/// The exit code of a run shown in `format`, as goss: nagios exits 2
/// (CRITICAL) when a check failed, structured always 0; with retries
/// exhausted, 3.
pub fn exit_code(report: &Report, format: OutputFormat) -> ExitCode {
    match (format, report.exit_code()) {
        (OutputFormat::Structured, ExitCode::Failed) => ExitCode::Passed,
        (OutputFormat::Nagios, ExitCode::Failed) => ExitCode::Critical,
        (_, code) => code,
    }
}

/// goss's `humanizeResult`: `Type: id: property: matches expectation:
/// EXPECTED`, `...: skipped`, or for a failure `Type: id: property:` then
/// `Expected FOUND MESSAGE EXPECTED` (or `Error ERR`), on one line when
/// `compact`, else on several.
pub fn humanize(r: &TestResult, compact: bool, opts: &FormatOptions) -> String {
    let _ = opts.exclude_raw; // we keep no raw value apart from the found one
    let name = r.name();
    match r.status {
        Status::Passed => format!("{name}: matches expectation: {}", r.expected),
        Status::Skipped => format!("{name}: skipped"),
        Status::Failed => {
            let sep = if compact { " " } else { "\n" };
            // goss indents values (and errors) by 4 spaces when not compact.
            let ind = |t: String| {
                if compact {
                    t
                } else {
                    t.lines()
                        .map(|l| format!("    {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            };
            let body = match (&r.found, &r.error) {
                (None, Some(e)) => format!("Error{sep}{}", ind(e.clone())),
                (found, _) => {
                    let found = found.clone().unwrap_or(serde_json::Value::Null);
                    format!(
                        "Expected{sep}{}{sep}{}{sep}{}",
                        ind(short(&found)),
                        r.verb,
                        ind(r.expected.to_string())
                    )
                }
            };
            format!("{name}:{sep}{body}")
        }
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
