//! Results: what one module run (one loop item) did, its event, its entry
//! in the report, and the recap counts (one per task, as ansible's).

use std::time::{Duration, Instant};

use image_core::events::{Event, Outcome};
use serde_json::{json, Map, Value as Json};

use super::scope::Settings;
use super::{Runner, Stop};
use crate::diff::Diff;
use crate::modules::ModuleResult;
use crate::task::{Action, Task};
use crate::{TaskResult, CENSORED};

/// What one run of a module (one loop item) did.
pub(super) struct ItemOut {
    pub changed: bool,
    pub failed: bool,
    pub skipped: bool,
    pub unreachable: bool,
    pub msg: String,
    pub diff: Vec<Diff>,
    pub result: Json,
    pub facts: Option<Map<String, Json>>,
    pub ansible_facts: Option<Map<String, Json>>,
    pub include_vars: Option<Map<String, Json>>,
}

impl ItemOut {
    pub fn failed(msg: String) -> Self {
        ItemOut {
            changed: false,
            failed: true,
            skipped: false,
            unreachable: false,
            result: json!({"failed": true, "changed": false, "msg": msg}),
            msg,
            diff: Vec::new(),
            facts: None,
            ansible_facts: None,
            include_vars: None,
        }
    }

    pub fn ok(result: Json) -> Self {
        ItemOut {
            changed: false,
            failed: false,
            skipped: false,
            unreachable: false,
            msg: String::new(),
            diff: Vec::new(),
            result,
            facts: None,
            ansible_facts: None,
            include_vars: None,
        }
    }

    pub fn skipped(cond: &str) -> Self {
        ItemOut {
            skipped: true,
            result: json!({"skipped": true, "changed": false, "false_condition": cond, "skip_reason": "Conditional result was False"}),
            msg: format!("skipped: `{cond}` is false"),
            ..ItemOut::ok(Json::Null)
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.failed || self.unreachable {
            Outcome::Failed
        } else if self.skipped {
            Outcome::Skipped
        } else if self.changed {
            Outcome::Changed
        } else {
            Outcome::Ok
        }
    }
}

/// A module's result as an item result with ansible's keys.
pub(super) fn to_item(r: ModuleResult) -> ItemOut {
    let mut m = r.data.clone();
    m.insert("changed".into(), json!(r.changed));
    m.insert("failed".into(), json!(r.failed));
    if r.skipped {
        m.insert("skipped".into(), json!(true));
    }
    // A module's own `msg` value (debug's, any type) wins over the text.
    if let Some(msg) = &r.msg {
        m.entry("msg").or_insert_with(|| json!(msg));
    }
    if !r.diff.is_empty() {
        m.insert(
            "diff".into(),
            serde_json::to_value(&r.diff).unwrap_or(Json::Null),
        );
    }
    if let Some(f) = &r.facts {
        m.insert("ansible_facts".into(), Json::Object(f.clone()));
    }
    // Facts a module returns (getent, package_facts, ...) are in its
    // registered result too, as ansible's.
    if let Some(f) = &r.ansible_facts {
        m.entry("ansible_facts")
            .or_insert_with(|| Json::Object(f.clone()));
    }
    ItemOut {
        changed: r.changed,
        failed: r.failed,
        skipped: r.skipped,
        unreachable: false,
        msg: r.msg.unwrap_or_default(),
        diff: r.diff,
        result: Json::Object(m),
        facts: r.facts,
        ansible_facts: r.ansible_facts,
        include_vars: r.include_vars,
    }
}

/// Whether a task's message is worth printing when it did not fail.
fn module_speaks(t: &Task) -> bool {
    matches!(&t.action, Action::Module { module, .. } if matches!(module.name(), "debug" | "assert" | "fail" | "pause"))
}

impl Runner<'_> {
    /// Counts a task's outcome in the recap (once per task); an ignored
    /// failure counts as ok and ignored (and changed), as ansible's.
    pub(super) fn count(&mut self, outcome: Outcome, ignored: bool, changed: bool) {
        let rc = &mut self.report.recap;
        match outcome {
            Outcome::Failed if ignored => {
                rc.ok += 1;
                rc.ignored += 1;
                if changed {
                    rc.changed += 1;
                }
            }
            Outcome::Failed => rc.failed += 1,
            Outcome::Skipped => rc.skipped += 1,
            Outcome::Changed => {
                rc.ok += 1;
                rc.changed += 1;
            }
            Outcome::Ok => rc.ok += 1,
        }
    }

    /// The event and report entry of one task or loop item.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &mut self,
        t: &Task,
        name: &str,
        item: Option<String>,
        out: &ItemOut,
        st: &Settings,
        t0: Instant,
    ) {
        let outcome = out.outcome();
        let ignored = out.failed && st.ignore_errors;
        let msg = if st.no_log && !out.skipped {
            CENSORED.to_string()
        } else {
            out.msg.clone()
        };
        let mut text = match &item {
            Some(i) => format!("item={i}"),
            None => String::new(),
        };
        if out.unreachable {
            text = format!(
                "{text}{}unreachable: {msg}",
                if text.is_empty() { "" } else { ": " }
            );
        } else if !msg.is_empty() && (outcome == Outcome::Failed || module_speaks(t)) {
            text = format!("{text}{}{msg}", if text.is_empty() { "" } else { ": " });
        }
        if ignored {
            text.push_str(" (ignored)");
        }
        self.emit(Event::finished(
            &self.opts.build,
            name,
            outcome,
            t0.elapsed(),
            text,
        ));
        let diff = if st.no_log || !st.diff {
            Vec::new()
        } else {
            out.diff.clone()
        };
        for d in &diff {
            self.emit(Event::Message {
                build: self.opts.build.clone(),
                text: d.unified(),
            });
        }
        self.report.results.push(TaskResult {
            task: name.to_string(),
            loc: t.loc.clone(),
            item,
            outcome,
            msg,
            diff,
            ignored,
            unreachable: out.unreachable,
            elapsed: t0.elapsed(),
            result: if st.no_log {
                json!({"censored": CENSORED, "changed": out.changed, "failed": out.failed})
            } else {
                out.result.clone()
            },
        });
    }

    /// A task that failed before any module ran (a broken include, an
    /// unreadable vars file): reported, counted, and the play stops.
    pub(super) fn fail_structural(&mut self, t: &Task, msg: String) -> Result<(), Stop> {
        let name = t.display_name();
        self.emit(Event::finished(
            &self.opts.build,
            &name,
            Outcome::Failed,
            Duration::ZERO,
            msg.clone(),
        ));
        self.report.recap.failed += 1;
        self.report.results.push(TaskResult {
            task: name.clone(),
            loc: t.loc.clone(),
            item: None,
            outcome: Outcome::Failed,
            msg: msg.clone(),
            diff: Vec::new(),
            ignored: false,
            unreachable: false,
            elapsed: Duration::ZERO,
            result: json!({"failed": true, "msg": msg}),
        });
        let name = if t.name.is_some() {
            name
        } else {
            String::new()
        };
        self.failed_task = Some(json!({
            "task": {"name": name},
            "result": {"failed": true, "msg": msg},
        }));
        Err(Stop::Failed)
    }
}
