//! What `image-cli provision` prints while a step list runs, as
//! `ansible-playbook` does: [`TaskPrinter`] is an event sink writing one line
//! per finished task (`changed: [host] name (item=x) (12 ms): message`),
//! or with [`TaskPrinter::json`] every event as one JSON object per line,
//! each finished task carrying its SSH round trips (`round_trips`:
//! commands, uploads and downloads) and its time in microseconds
//! (`elapsed_us`), both since the previous task event;
//! [`TaskPrinter::recap`] prints the closing recap.
//!
//! ```no_run
//! # async fn demo(t: Box<dyn image_core::target::Target>, steps: &image_provision::Steps) {
//! use image_core::target::Target;
//! use image_provision::{print::TaskPrinter, round_trips::Counting};
//! let target = Counting::new(t);
//! let printer = TaskPrinter::text(target.name()).with_round_trips(target.counter());
//! let report = image_provision::run(&target, steps, &Default::default(), &printer).await;
//! printer.recap(&report);
//! # }
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use image_core::events::{Event, EventSink, Outcome};
use serde_json::Value as Json;

use crate::round_trips::RoundTrips;
use crate::Report;

/// Prints task lines (or JSON events) on stdout as tasks finish.
pub struct TaskPrinter {
    host: String,
    json: bool,
    trips: RoundTrips,
    seen: AtomicU64,
    last: Mutex<Instant>,
}

impl TaskPrinter {
    /// Text lines naming `host`.
    pub fn text(host: impl Into<String>) -> Self {
        TaskPrinter {
            host: host.into(),
            json: false,
            trips: RoundTrips::default(),
            seen: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    /// One JSON object per event.
    pub fn json(host: impl Into<String>) -> Self {
        TaskPrinter {
            json: true,
            ..TaskPrinter::text(host)
        }
    }

    /// Counts round trips with `trips` (from
    /// [`crate::round_trips::Counting::counter`]) for the JSON events.
    pub fn with_round_trips(mut self, trips: RoundTrips) -> Self {
        self.trips = trips;
        self
    }

    /// Prints the recap: `RECAP host : ok=N changed=N ...`, or a `recap`
    /// JSON object.
    pub fn recap(&self, report: &Report) {
        if self.json {
            println!(
                "{}",
                serde_json::json!({"event": "recap", "host": report.host, "recap": report.recap})
            );
        } else {
            println!("\nRECAP {} : {}", report.host, report.recap);
        }
    }

    fn json_line(&self, event: &Event) -> Json {
        let now = self.trips.get();
        let before = self.seen.swap(now, Ordering::Relaxed);
        let us = match self.last.lock() {
            Ok(mut t) => {
                let us = t.elapsed().as_micros();
                *t = Instant::now();
                us
            }
            Err(_) => 0,
        };
        let mut v = serde_json::to_value(event).unwrap_or_default();
        if let (Event::StepFinished { .. }, Json::Object(m)) = (event, &mut v) {
            m.insert("round_trips".into(), Json::from(now.saturating_sub(before)));
            m.insert(
                "elapsed_us".into(),
                Json::from(u64::try_from(us).unwrap_or(u64::MAX)),
            );
        }
        v
    }

    /// The text line of `event`, if it has one.
    fn text_line(&self, event: &Event) -> Option<String> {
        match event {
            Event::StepStarted { .. } => None,
            Event::StepFinished {
                step,
                outcome,
                elapsed_ms,
                message,
                ..
            } => {
                let word = match outcome {
                    Outcome::Ok => "ok",
                    Outcome::Changed => "changed",
                    Outcome::Skipped => "skipping",
                    Outcome::Failed => "failed",
                };
                let (item, rest) = match message.strip_prefix("item=") {
                    Some(m) => match m.split_once(": ") {
                        Some((i, r)) => (format!(" (item={i})"), r.to_string()),
                        None => (format!(" (item={m})"), String::new()),
                    },
                    None => (String::new(), message.clone()),
                };
                let rest = if rest.is_empty() || (*outcome == Outcome::Skipped) {
                    String::new()
                } else {
                    format!(": {rest}")
                };
                Some(format!(
                    "{word}: [{}] {step}{item} ({elapsed_ms} ms){rest}",
                    self.host
                ))
            }
            Event::Message { text, .. } => Some(text.trim_end().to_string()),
        }
    }
}

impl EventSink for TaskPrinter {
    fn emit(&self, event: &Event) {
        let line = if self.json {
            Some(self.json_line(event).to_string())
        } else {
            self.text_line(event)
        };
        if let Some(line) = line {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(outcome: Outcome, message: &str) -> Event {
        Event::StepFinished {
            build: String::new(),
            step: "install".into(),
            outcome,
            elapsed_ms: 7,
            message: message.into(),
        }
    }

    #[test]
    fn text_lines_as_ansible_playbook() {
        let p = TaskPrinter::text("root@h:22");
        assert_eq!(
            p.text_line(&finished(Outcome::Changed, "item=a: done"))
                .unwrap(),
            "changed: [root@h:22] install (item=a) (7 ms): done"
        );
        assert_eq!(
            p.text_line(&finished(Outcome::Skipped, "when was false"))
                .unwrap(),
            "skipping: [root@h:22] install (7 ms)"
        );
        assert!(p
            .text_line(&Event::StepStarted {
                build: String::new(),
                step: "x".into()
            })
            .is_none());
    }

    #[test]
    fn json_events_carry_round_trips() {
        let p = TaskPrinter::json("h");
        let v = p.json_line(&finished(Outcome::Ok, ""));
        assert_eq!(v["round_trips"], 0);
        assert!(v["elapsed_us"].is_u64());
    }
}
