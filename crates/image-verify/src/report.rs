//! Structured results: one [`TestResult`] per checked property, and the
//! [`Report`] of a run with its summary and exit code. Embedders (the AMI
//! build refuses to create an image when [`Report::passed`] is false) and
//! the renderers of [`crate::output`] read these.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// goss's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExitCode {
    /// 0: every check passed.
    Passed = 0,
    /// 1: a check failed.
    Failed = 1,
    /// 2: a check failed, in the `nagios` format (Nagios's CRITICAL).
    Critical = 2,
    /// 3: checks still failed when `--retry-timeout` ran out.
    RetryTimeout = 3,
    /// 78: the gossfile, vars or options are invalid.
    BadSpec = 78,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Matched.
    Passed,
    /// Did not match, or could not be observed.
    Failed,
    /// `skip: true`.
    Skipped,
}

/// One property of one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// As goss names it: `File`, `Package`, `KernelParam`.
    pub resource_type: String,
    /// The resource's id (path, package, command line).
    pub resource_id: String,
    /// The property (`mode`, `exit-status`).
    pub property: String,
    /// The resource's `title`.
    pub title: String,
    /// The resource's `meta`.
    pub meta: Value,
    /// The expectation (a value, or a matcher as `{"lt": 500}`).
    pub expected: Value,
    /// What was found; `None` when it could not be observed.
    pub found: Option<Value>,
    /// How the check ended.
    pub status: Status,
    /// Why it failed beyond expected vs found (an observation error, the
    /// patterns not found).
    pub error: Option<String>,
    /// How long observing took (shared by the resources observed together).
    pub duration: Duration,
    /// Where the property was written (`file:line:col`).
    pub location: String,
    /// The matcher's verb ("to equal", "to contain elements").
    pub verb: String,
}

impl TestResult {
    /// True when it passed.
    pub fn successful(&self) -> bool {
        self.status == Status::Passed
    }

    /// True when skipped.
    pub fn skipped(&self) -> bool {
        self.status == Status::Skipped
    }

    /// `File: /etc/passwd: mode` (goss's prefix).
    pub fn name(&self) -> String {
        format!(
            "{}: {}: {}",
            self.resource_type, self.resource_id, self.property
        )
    }

    /// goss's one-line summary: `...: matches expectation: true`,
    /// `...: doesn't match, expect: "0600" found: "0644"`, `...: skipped`.
    pub fn summary_line(&self) -> String {
        let name = self.name();
        match self.status {
            Status::Passed => format!("{name}: matches expectation: {}", self.expected),
            Status::Skipped => format!("{name}: skipped"),
            Status::Failed => match (&self.found, &self.error) {
                (None, Some(e)) => format!("{name}: Error: {e}"),
                (found, err) => {
                    let mut s = format!(
                        "{name}: doesn't match, expect: {} found: {}",
                        self.expected,
                        short(&found.clone().unwrap_or(Value::Null))
                    );
                    if let Some(e) = err {
                        s.push_str(&format!(" ({e})"));
                    }
                    s
                }
            },
        }
    }

    /// The multi-line explanation of a failure, in goss's documentation
    /// style.
    pub fn failure_text(&self) -> String {
        let mut s = String::new();
        if !self.title.is_empty() {
            s.push_str(&format!("Title: {}\n", self.title));
        }
        match (&self.found, &self.error) {
            (None, Some(e)) => s.push_str(&format!("{}: Error: {e}\n", self.name())),
            (found, err) => {
                s.push_str(&format!(
                    "{}:\nExpected\n    {}\n{}\n    {}\n",
                    self.name(),
                    short(&found.clone().unwrap_or(Value::Null)),
                    self.verb,
                    self.expected
                ));
                if let Some(e) = err {
                    s.push_str(&format!("{e}\n"));
                }
            }
        }
        s.push_str(&format!("  (at {})\n", self.location));
        s
    }
}

/// A found value for messages, long text cut.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 400 {
        let cut: String = s.chars().take(400).collect();
        format!("{cut}...\" ({} bytes)", s.len())
    } else {
        s
    }
}

/// The results of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Every check, in gossfile order.
    pub results: Vec<TestResult>,
    /// Wall time of the last attempt.
    pub duration: Duration,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// Failures remained when `--retry-timeout` ran out.
    pub timed_out: bool,
}

impl Report {
    /// Number of checks.
    pub fn test_count(&self) -> usize {
        self.results.len()
    }

    /// Number of failed checks.
    pub fn failed_count(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count()
    }

    /// Number of skipped checks.
    pub fn skipped_count(&self) -> usize {
        self.results.iter().filter(|r| r.skipped()).count()
    }

    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failed_count() == 0
    }

    /// The exit code: 0, 1, or 3 when retrying timed out.
    pub fn exit_code(&self) -> ExitCode {
        match (self.passed(), self.timed_out) {
            (true, _) => ExitCode::Passed,
            (false, true) => ExitCode::RetryTimeout,
            (false, false) => ExitCode::Failed,
        }
    }

    /// `Count: 10, Failed: 2, Skipped: 0`.
    pub fn count_line(&self) -> String {
        format!(
            "Count: {}, Failed: {}, Skipped: {}",
            self.test_count(),
            self.failed_count(),
            self.skipped_count()
        )
    }
}
