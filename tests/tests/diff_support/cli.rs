//! image-cli's side: the library (`image_provision::parse::load` then
//! `image_provision::run`, what `image-cli provision` calls) on a target over
//! SSH, its [`image_provision::Report`] mapped to [`Observed`] tasks (loop
//! items folded into one task, as ansible reports them).

use std::path::Path;

use image_core::events::Recorder;
use image_core::target::Target;
use image_provision::{parse, Options};
use serde_json::{json, Map, Value as Json};

use super::observed::{split_loc, Observed, Status};

/// What image-cli did with one playbook.
pub enum CliRun {
    /// Refused before the first task (the diagnostics).
    Refused(String),
    /// Ran: its tasks, and whether the run failed.
    Ran {
        /// The tasks in run order.
        tasks: Vec<Observed>,
        /// A task failed (not ignored, not rescued) or the host was unreachable.
        failed: bool,
    },
}

/// Runs `playbook` on `target` with `extra` vars (as `-e`).
pub async fn run(target: &dyn Target, playbook: &Path, extra: &Map<String, Json>) -> CliRun {
    let steps = match parse::load(playbook, &[]) {
        Ok(s) => s,
        Err(d) => return CliRun::Refused(d.to_string()),
    };
    let opts = Options {
        extra_vars: extra.clone(),
        ..Default::default()
    };
    let report = image_provision::run(target, &steps, &opts, &Recorder::default()).await;
    let failed = report.failed();
    let mut tasks: Vec<Observed> = Vec::new();
    let mut items: Vec<(Status, Json)> = Vec::new();
    let mut looped = false;
    for r in &report.results {
        let Some((file, line)) = split_loc(&r.loc.to_string()) else {
            continue;
        };
        // Fact gathering, and includes that ran (ansible reports neither).
        let included = r.msg.starts_with("included")
            && matches!(
                r.outcome,
                image_core::events::Outcome::Ok | image_core::events::Outcome::Changed
            );
        if r.task == "Gathering Facts" || included {
            continue;
        }
        let status = match r.outcome {
            image_core::events::Outcome::Ok => Status::Ok,
            image_core::events::Outcome::Changed => Status::Changed,
            image_core::events::Outcome::Failed => Status::Failed,
            image_core::events::Outcome::Skipped => Status::Skipped,
        };
        let same = tasks
            .last()
            .is_some_and(|t| t.file == file && t.line == line && r.item.is_some() && looped);
        if !same {
            finish(&mut tasks, &mut items, looped);
            looped = r.item.is_some();
            tasks.push(Observed {
                file,
                line,
                name: r.task.clone(),
                status,
                action: String::new(),
                result: r.result.clone(),
            });
        }
        if looped {
            items.push((status, r.result.clone()));
        }
    }
    finish(&mut tasks, &mut items, looped);
    CliRun::Ran { tasks, failed }
}

/// Folds the collected loop items into the last task.
fn finish(tasks: &mut [Observed], items: &mut Vec<(Status, Json)>, looped: bool) {
    if !looped || items.is_empty() {
        items.clear();
        return;
    }
    if let Some(t) = tasks.last_mut() {
        let statuses: Vec<Status> = items.iter().map(|(s, _)| *s).collect();
        t.status = Status::of_items(&statuses);
        let results: Vec<Json> = items.drain(..).map(|(_, r)| r).collect();
        // The loop's own `msg`, by ansible's rule (the report holds the
        // items only, like its per-item callbacks).
        let msg = match t.status {
            Status::Failed => "One or more items failed",
            Status::Skipped => "All items skipped",
            Status::Ok | Status::Changed => "All items completed",
        };
        t.result = json!({ "results": results, "msg": msg });
    }
}
