//! Shared helpers: run a step list given as text against this machine
//! (LocalTarget) in a temporary directory.

#![allow(dead_code)]

use std::path::Path;

use image_core::events::{Event, Recorder};
use image_core::local::LocalTarget;
use image_provision::{parse, run, Options, Report};

/// Writes `files` (relative path, content) under `dir`, then parses and
/// runs `steps.yaml` there.
pub async fn run_in(dir: &Path, steps: &str, opts: &Options) -> (Report, Vec<Event>) {
    std::fs::write(dir.join("steps.yaml"), steps).unwrap();
    let parsed = parse::load(&dir.join("steps.yaml"), &[]).unwrap_or_else(|d| panic!("{d}"));
    let rec = Recorder::default();
    let report = run(&LocalTarget::new(), &parsed, opts, &rec).await;
    (report, rec.events())
}

/// Writes a file, creating parent directories.
pub fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Replaces `@D@` by the directory in a step list.
pub fn steps(dir: &Path, s: &str) -> String {
    s.replace("@D@", &dir.display().to_string())
}

/// Every event as text (for "no secret anywhere" checks).
pub fn events_text(events: &[Event]) -> String {
    events.iter().map(|e| format!("{e:?}\n")).collect()
}
