//! A plan's gossfiles as steps of a pipeline: [`load_verify_files`] loads a
//! plan's `verify` (or `test_verify`) files with its `verify_vars`, checked
//! as root, before anything is called; [`run_file`] checks a host with one of
//! them, reporting it as a step (`verify FILE`) with an event for each failed
//! check. The build (before the AMI is made) and `image-cli test` (on an
//! instance of the AMI) both run their gossfiles this way.
//!
//! ```no_run
//! # async fn demo(plan: &image_core::spec::Plan, target: &dyn image_core::target::Target) {
//! use image_core::diag::Diagnostics;
//! use image_core::events::NoEvents;
//! let mut diags = Diagnostics::default();
//! let files = image_verify::plan::load_verify_files(plan, &plan.verify, &mut diags);
//! if diags.has_errors() {
//!     eprint!("{diags}");
//!     return;
//! }
//! for f in &files {
//!     let checked = image_verify::plan::run_file(&plan.name, f, target, &NoEvents).await;
//!     if !checked.passed() {
//!         eprintln!("{}", checked.message);
//!     }
//! }
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use image_core::diag::Diagnostics;
use image_core::events::{Event, EventSink, Outcome};
use image_core::spec::{FileRef, Plan};
use image_core::target::Target;
use serde_json::Value as Json;

use crate::report::Report;
use crate::suite::Suite;
use crate::VerifyOptions;

/// A plan's gossfile, loaded with the plan's `verify_vars`, checked as root.
pub struct VerifyFile {
    /// The gossfile.
    pub path: PathBuf,
    /// Its resources, rendered and parsed.
    pub suite: Arc<Suite>,
    /// How it is run.
    pub opts: VerifyOptions,
}

/// Loads `files` (a plan's `verify` or `test_verify`) with the plan's
/// `verify_vars`; problems (and warnings) go to `diags`.
pub fn load_verify_files(
    plan: &Plan,
    files: &[FileRef],
    diags: &mut Diagnostics,
) -> Vec<VerifyFile> {
    let vars_inline = if plan.verify_vars.is_empty() {
        Vec::new()
    } else {
        vec![Json::Object(plan.verify_vars.clone()).to_string()]
    };
    let mut out = Vec::new();
    for f in files {
        let opts = VerifyOptions {
            gossfile: f.path.clone(),
            become_: true,
            vars_inline: vars_inline.clone(),
            ..VerifyOptions::default()
        };
        match opts.load() {
            Ok(suite) => {
                diags.extend(suite.warnings.clone());
                out.push(VerifyFile {
                    path: f.path.clone(),
                    suite: Arc::new(suite),
                    opts,
                });
            }
            Err(d) => diags.extend(d),
        }
    }
    out
}

/// What checking a host with one gossfile found.
#[derive(Debug, Clone)]
pub struct FileChecked {
    /// The results.
    pub report: Report,
    /// `summary (file:line)` of each failed check.
    pub failures: Vec<String>,
    /// The step's message: the counts when it passed, else
    /// `FILE: N of M checks failed: the first three failures`.
    pub message: String,
}

impl FileChecked {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.report.passed()
    }
}

/// How a file is named in a step: its file name.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Checks `target` with `f` as the step `verify FILE` of `build`: emits the
/// step's start, a message per failed check and its end on `events`.
pub async fn run_file(
    build: &str,
    f: &VerifyFile,
    target: &dyn Target,
    events: &dyn EventSink,
) -> FileChecked {
    let step = format!("verify {}", file_name(&f.path));
    let t0 = Instant::now();
    events.emit(&Event::StepStarted {
        build: build.to_string(),
        step: step.clone(),
    });
    let report = crate::runner::run(&f.suite, target, &f.opts.run_options()).await;
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.successful() && !r.skipped())
        .map(|r| format!("{} ({})", r.summary_line(), r.location))
        .collect();
    for fail in &failures {
        events.emit(&Event::Message {
            build: build.to_string(),
            text: format!("verify: {fail}"),
        });
    }
    let (outcome, message) = if report.passed() {
        (Outcome::Ok, report.count_line())
    } else {
        let first: Vec<&str> = failures.iter().take(3).map(String::as_str).collect();
        (
            Outcome::Failed,
            format!(
                "{}: {} of {} checks failed: {}{}",
                f.path.display(),
                report.failed_count(),
                report.test_count(),
                first.join("; "),
                if failures.len() > 3 { "; …" } else { "" }
            ),
        )
    };
    events.emit(&Event::finished(
        build,
        &step,
        outcome,
        t0.elapsed(),
        message.clone(),
    ));
    FileChecked {
        report,
        failures,
        message,
    }
}
