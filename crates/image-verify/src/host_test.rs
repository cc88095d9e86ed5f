//! A test of a booted host, as `image-cli test` runs it on an instance of a
//! built AMI: the plan's `test_verify` gossfiles (see [`crate::plan`]), then
//! shell commands (output streamed, a non-zero exit fails), then optionally
//! the node conformance suite ([`crate::conformance`]). The first failure
//! stops the test. Each part is a step on the [`EventSink`]; what was found
//! is kept in a [`TestRecord`] (serde for `--json`,
//! [`TestRecord::summary_lines`] for people), complete up to where the test
//! stopped, even when it was cancelled.
//!
//! ```no_run
//! # async fn demo(plan: &image_core::spec::Plan, target: &dyn image_core::target::Target) {
//! use image_core::diag::Diagnostics;
//! use image_core::events::NoEvents;
//! use image_verify::host_test::{HostTest, PrintOutput};
//! let mut diags = Diagnostics::default();
//! let files = image_verify::plan::load_verify_files(plan, &plan.test_verify, &mut diags);
//! let test = HostTest::new(files, vec!["systemctl is-active containerd".into()], None);
//! let res = test.run(&plan.name, target, &NoEvents, &PrintOutput).await;
//! for line in test.record().summary_lines() {
//!     println!("{line}");
//! }
//! if let Err(e) = res {
//!     eprintln!("error: {e}");
//! }
//! # }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use image_core::events::{Event, EventSink, Outcome};
use image_core::stream::stream_exec;
use image_core::target::{Target, TargetError};
use serde::Serialize;

use crate::conformance;
use crate::output::{self, OutputFormat};
use crate::plan::{file_name, run_file, VerifyFile};
use crate::report::Report;

/// How often a command's streamed output is fetched.
const COMMAND_POLL: Duration = Duration::from_millis(500);

/// Where the output of a test goes (progress goes to the [`EventSink`]).
pub trait TestOutput: Send + Sync {
    /// The results of one gossfile (e.g. rendered as goss's rspecish).
    fn verify_report(&self, file: &Path, report: &Report);
    /// One line of output of a command (`source` `command`) or of the
    /// conformance suite (`conformance`), while it runs.
    fn line(&self, source: &str, text: &str);
}

/// A [`TestOutput`] printing to stdout: gossfile results as rspecish, then
/// output lines as they come.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintOutput;

impl TestOutput for PrintOutput {
    fn verify_report(&self, _file: &Path, report: &Report) {
        print!("{}", output::render(report, OutputFormat::Rspecish));
    }
    fn line(&self, _source: &str, text: &str) {
        println!("{text}");
    }
}

/// What one gossfile found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRecord {
    /// The gossfile.
    pub file: PathBuf,
    /// Every check passed.
    pub passed: bool,
    /// goss's count line (`Count: 5, Failed: 0, Skipped: 0`).
    pub summary: String,
    /// `summary (file:line)` of each failed check.
    pub failures: Vec<String>,
}

/// What one command did.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRecord {
    /// The shell line.
    pub command: String,
    /// Its exit status, when it ran to the end.
    pub exit_status: Option<i32>,
    /// Why it could not be run or waited for.
    pub error: Option<String>,
}

/// What a test found, in order, up to where it stopped.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TestRecord {
    /// The gossfiles checked.
    pub verify: Vec<VerifyRecord>,
    /// The commands run.
    pub commands: Vec<CommandRecord>,
    /// The conformance run, when the suite ran.
    pub conformance: Option<conformance::Report>,
    /// Why the conformance suite could not run.
    pub conformance_error: Option<String>,
}

impl TestRecord {
    /// One indented line per part: `  verify goss.yaml: passed (Count: …)`,
    /// `` command `id`: exit 0 ``, `  conformance Kubernetes v1.31.4 …`.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.verify {
            out.push(format!(
                "  verify {}: {} ({})",
                file_name(&f.file),
                if f.passed { "passed" } else { "FAILED" },
                f.summary
            ));
        }
        for c in &self.commands {
            match (c.exit_status, &c.error) {
                (Some(s), _) => out.push(format!("  command `{}`: exit {s}", c.command)),
                (None, Some(e)) => out.push(format!("  command `{}`: {e}", c.command)),
                (None, None) => {}
            }
        }
        if let Some(c) = &self.conformance {
            out.push(format!(
                "  conformance Kubernetes {} ({}): {} (ginkgo exit {}, {} test(s), {} failure(s)); results: {}",
                c.version,
                c.arch,
                if c.passed() { "passed" } else { "FAILED" },
                c.exit_status,
                c.junit.tests,
                c.junit.failures,
                c.results_dir.display()
            ));
        }
        out
    }
}

/// Why a test failed: a message for people and, when the failure was not a
/// check's verdict, its cause.
#[derive(Debug)]
pub struct TestFailure {
    /// What failed (`goss.yaml: 1 of 5 checks failed: …`, `` command `x` exited 3 ``).
    pub message: String,
    /// The error underneath, if any.
    pub cause: Option<FailureCause>,
}

/// The error underneath a [`TestFailure`].
#[derive(Debug)]
pub enum FailureCause {
    /// The host could not run a command.
    Target(TargetError),
    /// The conformance suite could not be run.
    Conformance(conformance::Error),
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TestFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Some(FailureCause::Target(e)) => Some(e),
            Some(FailureCause::Conformance(e)) => Some(e),
            None => None,
        }
    }
}

impl TestFailure {
    fn msg(message: String) -> Self {
        TestFailure {
            message,
            cause: None,
        }
    }
}

/// The checks of a test, and what they found so far.
pub struct HostTest {
    verify: Vec<VerifyFile>,
    commands: Vec<String>,
    conformance: Option<conformance::Options>,
    record: Mutex<TestRecord>,
}

/// Hands the suite's progress to the events and its output to the test's.
struct SuiteSink<'a> {
    build: &'a str,
    events: &'a dyn EventSink,
    out: &'a dyn TestOutput,
}

impl conformance::Sink for SuiteSink<'_> {
    fn status(&self, text: &str) {
        self.events.emit(&Event::Message {
            build: self.build.to_string(),
            text: format!("conformance: {text}"),
        });
    }
    fn line(&self, text: &str) {
        self.out.line("conformance", text);
    }
}

impl HostTest {
    /// A test with these gossfiles (loaded, e.g. by
    /// [`crate::plan::load_verify_files`]), commands and, with options, the
    /// conformance suite.
    pub fn new(
        verify: Vec<VerifyFile>,
        commands: Vec<String>,
        conformance: Option<conformance::Options>,
    ) -> Self {
        HostTest {
            verify,
            commands,
            conformance,
            record: Mutex::new(TestRecord::default()),
        }
    }

    /// What the test found so far.
    pub fn record(&self) -> TestRecord {
        self.recorded().clone()
    }

    fn recorded(&self) -> MutexGuard<'_, TestRecord> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the checks on `target` for `build`, in order, stopping at the
    /// first failure.
    pub async fn run(
        &self,
        build: &str,
        target: &dyn Target,
        events: &dyn EventSink,
        out: &dyn TestOutput,
    ) -> Result<(), TestFailure> {
        for f in &self.verify {
            let checked = run_file(build, f, target, events).await;
            out.verify_report(&f.path, &checked.report);
            self.recorded().verify.push(VerifyRecord {
                file: f.path.clone(),
                passed: checked.passed(),
                summary: checked.report.count_line(),
                failures: checked.failures.clone(),
            });
            if !checked.passed() {
                return Err(TestFailure::msg(checked.message));
            }
        }
        for (i, c) in self.commands.iter().enumerate() {
            self.command(build, i + 1, c, target, events, out).await?;
        }
        if let Some(opts) = &self.conformance {
            self.conformance(build, opts, target, events, out).await?;
        }
        Ok(())
    }

    async fn command(
        &self,
        build: &str,
        n: usize,
        command: &str,
        target: &dyn Target,
        events: &dyn EventSink,
        out: &dyn TestOutput,
    ) -> Result<(), TestFailure> {
        let step = format!("command {n}");
        let t0 = started(events, build, &step);
        events.emit(&Event::Message {
            build: build.to_string(),
            text: format!("$ {command}"),
        });
        let on_line = |l: &str| out.line("command", l);
        let r = stream_exec(target, command, None, COMMAND_POLL, &on_line).await;
        self.recorded().commands.push(CommandRecord {
            command: command.to_string(),
            exit_status: r.as_ref().ok().copied(),
            error: r.as_ref().err().map(|e| e.to_string()),
        });
        let finished = |outcome, msg: String| {
            events.emit(&Event::finished(build, &step, outcome, t0.elapsed(), msg));
        };
        match r {
            Ok(0) => {
                finished(Outcome::Ok, format!("`{command}`: exit 0"));
                Ok(())
            }
            Ok(s) => {
                let msg = format!("command `{command}` exited {s}");
                finished(Outcome::Failed, msg.clone());
                Err(TestFailure::msg(msg))
            }
            Err(e) => {
                finished(Outcome::Failed, format!("command `{command}`: {e}"));
                Err(TestFailure {
                    message: format!("command `{command}`"),
                    cause: Some(FailureCause::Target(e)),
                })
            }
        }
    }

    async fn conformance(
        &self,
        build: &str,
        opts: &conformance::Options,
        target: &dyn Target,
        events: &dyn EventSink,
        out: &dyn TestOutput,
    ) -> Result<(), TestFailure> {
        let step = "conformance";
        let t0 = started(events, build, step);
        let sink = SuiteSink { build, events, out };
        let finished = |outcome, msg: String| {
            events.emit(&Event::finished(build, step, outcome, t0.elapsed(), msg));
        };
        match conformance::run(target, opts, &sink).await {
            Ok(report) => {
                let passed = report.passed();
                let msg = report.summary();
                self.recorded().conformance = Some(report);
                if passed {
                    finished(Outcome::Ok, msg);
                    Ok(())
                } else {
                    finished(Outcome::Failed, msg.clone());
                    Err(TestFailure::msg(format!("conformance suite failed: {msg}")))
                }
            }
            Err(e) => {
                self.recorded().conformance_error = Some(e.to_string());
                finished(Outcome::Failed, e.to_string());
                Err(TestFailure {
                    message: "conformance suite not run".to_string(),
                    cause: Some(FailureCause::Conformance(e)),
                })
            }
        }
    }
}

fn started(events: &dyn EventSink, build: &str, step: &str) -> Instant {
    events.emit(&Event::StepStarted {
        build: build.to_string(),
        step: step.to_string(),
    });
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_core::local::LocalTarget;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl TestOutput for Lines {
        fn verify_report(&self, file: &Path, report: &Report) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}: {}", file.display(), report.count_line()));
        }
        fn line(&self, source: &str, text: &str) {
            self.0.lock().unwrap().push(format!("{source}: {text}"));
        }
    }

    #[tokio::test]
    async fn commands_stream_and_the_first_failure_stops_the_test() {
        let t = LocalTarget::new();
        let test = HostTest::new(
            Vec::new(),
            vec![
                "echo one; echo two >&2".into(),
                "echo about-to-fail; exit 3".into(),
                "echo must-not-run".into(),
            ],
            None,
        );
        let out = Lines::default();
        let e = test
            .run("b", &t, &image_core::events::NoEvents, &out)
            .await
            .expect_err("the second command fails");
        assert_eq!(e.message, "command `echo about-to-fail; exit 3` exited 3");
        assert_eq!(
            *out.0.lock().unwrap(),
            ["command: one", "command: two", "command: about-to-fail"]
        );
        let r = test.record();
        assert_eq!(r.commands.len(), 2);
        assert_eq!(r.commands[1].exit_status, Some(3));
        assert_eq!(
            r.summary_lines(),
            [
                "  command `echo one; echo two >&2`: exit 0",
                "  command `echo about-to-fail; exit 3`: exit 3"
            ]
        );
    }
}
