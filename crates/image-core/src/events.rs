//! Build events: what a build, a provisioning run or a verification is doing,
//! for progress bars, `--json` output and embedders.
//!
//! Producers call [`EventSink::emit`]; the CLI renders events with indicatif
//! or prints one JSON object per line. Events never carry secrets: values of
//! `no_log` steps and private keys are redacted before they get here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, nothing changed.
    Ok,
    /// Done, something changed.
    Changed,
    /// Not run.
    Skipped,
    /// Failed.
    Failed,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A pipeline step (AWS step, provisioning task, verify resource) started.
    StepStarted {
        /// The build's name (empty outside a build).
        build: String,
        /// The step's name.
        step: String,
    },
    /// A step finished.
    StepFinished {
        /// The build's name.
        build: String,
        /// The step's name.
        step: String,
        /// How it ended.
        outcome: Outcome,
        /// How long it took, in milliseconds.
        elapsed_ms: u64,
        /// A short message (an error, an id).
        message: String,
    },
    /// A line worth showing (a created resource id, a warning).
    Message {
        /// The build's name.
        build: String,
        /// The text.
        text: String,
    },
}

impl Event {
    /// A finished event with the elapsed time from a [`Duration`].
    pub fn finished(
        build: &str,
        step: &str,
        outcome: Outcome,
        elapsed: Duration,
        message: impl Into<String>,
    ) -> Self {
        Event::StepFinished {
            build: build.to_string(),
            step: step.to_string(),
            outcome,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            message: message.into(),
        }
    }
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Receives one event. Must not block for long.
    fn emit(&self, event: &Event);
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}

/// Keeps every event in memory (tests, embedders that report at the end).
#[derive(Debug, Default, Clone)]
pub struct Recorder(pub Arc<Mutex<Vec<Event>>>);

impl Recorder {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}
