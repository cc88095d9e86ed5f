//! Showing what builds are doing: [`Progress`] keeps one indicatif line per
//! build (its current step and elapsed time) and prints a line per finished
//! step above them; [`JsonLines`] prints one JSON event per line for
//! machines. Both are [`EventSink`]s.
//!
//! Without a terminal on stderr the bars are hidden and [`Progress`] prints
//! plain lines, so logs of CI runs stay readable.
//!
//! Both write through [`image_core::redact::global`]: every line and JSON
//! object they print has the definition's sensitive values masked, whatever
//! event or result it came from.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use image_core::events::{Event, EventSink, Outcome};
use image_core::redact;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Per-build progress lines on stderr.
pub struct Progress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    tty: bool,
    /// Show provisioning tasks and verify checks too, not only pipeline steps.
    verbose: bool,
}

impl Progress {
    /// Draws on stderr when it is a terminal, else prints plain lines.
    pub fn stderr(verbose: bool) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let target = if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            tty,
            verbose,
        }
    }

    fn bar(&self, build: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(build.to_string())
            .or_insert_with(|| {
                let style = ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix:.bold} [{elapsed_precise}] {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(style);
                b.set_prefix(build.to_string());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            })
            .clone()
    }

    fn line(&self, text: String) {
        let text = redact::global().redact_string(&text);
        if self.tty {
            let _ = self.multi.println(text);
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// Marks `build` done: its line shows `text` and stops.
    pub fn finish(&self, build: &str, text: &str) {
        let bar = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(build);
        if let Some(b) = bar {
            b.finish_with_message(redact::global().redact_string(text));
        }
    }

    /// Prints `text` above the bars.
    pub fn println(&self, text: impl Into<String>) {
        self.line(text.into());
    }

    /// Removes every bar (before printing the final table).
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

/// Pipeline steps of image-aws (everything else is a task or check).
const PIPELINE_STEPS: [&str; 16] = [
    "validate",
    "regions",
    "source_ami",
    "key_pair",
    "security_group",
    "instance",
    "connect",
    "provision",
    "stop",
    "image",
    "copy",
    "permissions",
    "deprecate",
    "finalize",
    "test",
    "cleanup",
];

fn is_pipeline_step(step: &str) -> bool {
    PIPELINE_STEPS.contains(&step)
}

fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Changed => "done",
        Outcome::Skipped => "skipped",
        Outcome::Failed => "FAILED",
    }
}

impl EventSink for Progress {
    fn emit(&self, event: &Event) {
        match event {
            Event::StepStarted { build, step } => {
                self.bar(build)
                    .set_message(redact::global().redact_string(step));
            }
            Event::StepFinished {
                build,
                step,
                outcome,
                elapsed_ms,
                message,
            } => {
                let important = is_pipeline_step(step)
                    || step.starts_with("provision ")
                    || step.starts_with("verify ")
                    || *outcome == Outcome::Failed;
                if important || self.verbose {
                    let secs = *elapsed_ms as f64 / 1000.0;
                    self.line(format!(
                        "[{build}] {step}: {} ({secs:.1}s) {message}",
                        mark(*outcome)
                    ));
                }
            }
            Event::Message { build, text } => self.line(format!("[{build}] {text}")),
        }
    }
}

/// One JSON object per event on stdout.
#[derive(Debug, Default)]
pub struct JsonLines;

impl JsonLines {
    /// Prints any JSON value as one line, sensitive values masked.
    pub fn print(value: &serde_json::Value) {
        let mut value = value.clone();
        redact::global().redact_json(&mut value);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }
}

impl EventSink for JsonLines {
    fn emit(&self, event: &Event) {
        match serde_json::to_value(event) {
            Ok(v) => Self::print(&v),
            Err(e) => tracing::warn!("cannot serialise an event: {e}"),
        }
    }
}
