//! One task that does something (a module, a module we lack, `setup`,
//! `group_by`, `meta`): tags, `--start-at-task`, the loop with its
//! deferred errors (as ansible's TaskExecutor: an undefined loop is only an
//! error when the task's `when` holds), one recap count, `register`,
//! `notify`, and stopping on failure.

use std::time::{Duration, Instant};

use image_core::events::{Event, Outcome};
use serde_json::{json, Value as Json};

use super::lookahead;
use super::loops::loop_vars;
use super::record::ItemOut;
use super::scope::{Scope, Settings};
use super::{Runner, Stop};
use crate::task::{Action, Task};
use crate::template::Layers;
use crate::CENSORED;

impl Runner<'_> {
    /// Runs `t`; `rest` are the tasks after it in its list (see
    /// `lookahead`).
    pub(super) async fn run_task(
        &mut self,
        t: &Task,
        rest: &[Task],
        scope: &Scope,
    ) -> Result<(), Stop> {
        let mut tags = scope.tags.clone();
        tags.extend(t.kw.tags.iter().cloned());
        if !self.tags_ok(&tags) {
            return Ok(());
        }
        let raw_name = t.display_name();
        if !self.started {
            if self.opts.start_at_task.as_deref() == Some(raw_name.as_str()) {
                self.started = true;
            } else {
                return Ok(());
            }
        }
        if let Action::Meta(m) = &t.action {
            return self.meta(t, m, scope).await;
        }
        let base = self.vars_for(scope, t, None);
        let name = if raw_name.contains("{{") {
            let ctx = self.tmpl.context(base.clone());
            self.tmpl.render_str(&raw_name, &ctx).unwrap_or(raw_name)
        } else {
            raw_name
        };
        let st = Settings::of(t, scope, self.opts);
        self.emit(Event::StepStarted {
            build: self.opts.build.clone(),
            step: name.clone(),
        });
        let conds: Vec<String> = scope.when.iter().chain(&t.when).cloned().collect();
        let t0 = Instant::now();
        // The batch's checks count in the first task's time.
        self.look_ahead(t, rest, scope).await;

        let (outcome, register_value, any_changed, ignored) = if let Some(l) = &t.loop_ {
            let ctx = self.tmpl.context(base.clone());
            let items = match self.loop_items(l, &base, &ctx) {
                Ok(i) => i,
                Err(msg) => {
                    // ansible: the loop's error counts only if the task
                    // is not skipped by its `when`.
                    let out = match self.check_when(&conds, &ctx) {
                        Some(skip) => skip,
                        None => ItemOut::failed(msg),
                    };
                    return self.finish_single(t, &name, out, &st, t0, scope).await;
                }
            };
            if items.is_empty() {
                let out = ItemOut {
                    skipped: true,
                    msg: "No items in the list".into(),
                    result: json!({"changed": false, "skipped": true, "skipped_reason": "No items in the list", "results": []}),
                    ..ItemOut::ok(Json::Null)
                };
                return self.finish_single(t, &name, out, &st, t0, scope).await;
            }
            let pause = match &l.pause {
                Some(p) => self.number(p, &ctx).unwrap_or(0.0).max(0.0),
                None => 0.0,
            };
            let mut probed = if self.ahead.covers(t) {
                vec![None; items.len()]
            } else {
                self.probe_loop(t, &conds, l, &items, &st, scope).await
            };
            // Probe results hold until an item runs its module for real.
            let mut acted = false;
            let mut results = Vec::new();
            let (mut changed, mut failed, mut all_skipped) = (false, false, true);
            for i in 0..items.len() {
                if i > 0 && pause > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                }
                let item = items[i].clone();
                let lv = loop_vars(l, i, &items);
                let vars = self.vars_for(scope, t, Some(&lv));
                let label = match &l.label {
                    Some(lab) => {
                        let c = self.tmpl.context(vars.clone());
                        self.tmpl
                            .render_str(lab, &c)
                            .unwrap_or_else(|_| lab.clone())
                    }
                    None => label_of(&item),
                };
                let label = if st.no_log {
                    "(censored)".to_string()
                } else {
                    label
                };
                // The batched check counts in the first item's time.
                let ti = if i == 0 { t0 } else { Instant::now() };
                let pre = if acted {
                    None
                } else {
                    probed[i]
                        .take()
                        .or_else(|| self.take_ahead(t, Some(i), &vars, &st, scope))
                };
                let batched = pre.is_some();
                let mut out = self.item(t, &conds, vars.clone(), &st, scope, pre).await;
                if !batched && !out.skipped {
                    acted = true;
                }
                // The item's result holds its loop variables (also as
                // reported per item, as ansible does).
                if let Json::Object(m) = &mut out.result {
                    m.insert(l.loop_var.clone(), item.clone());
                    m.insert("ansible_loop_var".into(), json!(l.loop_var));
                    if let Some(iv) = &l.index_var {
                        m.insert(iv.clone(), json!(i));
                        m.insert("ansible_index_var".into(), json!(iv));
                    }
                    if let Some(al) = lv.get("ansible_loop") {
                        m.insert("ansible_loop".into(), al.clone());
                    }
                }
                self.apply_vars(&out, &st);
                self.record(t, &name, Some(label), &out, &st, ti);
                if out.unreachable && !st.ignore_unreachable {
                    self.report.recap.unreachable += 1;
                    return Err(Stop::Unreachable);
                }
                changed |= out.changed;
                failed |= out.failed;
                all_skipped &= out.skipped;
                let r = out.result;
                if !l.break_when.is_empty() {
                    let mut bv = vars;
                    if let Some(reg) = &t.register {
                        bv.insert(reg.clone(), r.clone());
                    }
                    let bctx = self.tmpl.context(bv);
                    let stop = l
                        .break_when
                        .iter()
                        .all(|c| self.tmpl.cond(c, &bctx).unwrap_or(false));
                    results.push(r);
                    if stop {
                        break;
                    }
                } else {
                    results.push(r);
                }
            }
            if acted && !stays_local(t) {
                // What the batch's later checks saw may have changed.
                self.ahead.clear();
            }
            let outcome = if failed {
                Outcome::Failed
            } else if all_skipped {
                Outcome::Skipped
            } else if changed {
                Outcome::Changed
            } else {
                Outcome::Ok
            };
            let msg = if failed {
                "One or more items failed"
            } else if all_skipped {
                "All items skipped"
            } else {
                "All items completed"
            };
            let mut reg =
                json!({"results": results, "changed": changed, "msg": msg, "skipped": all_skipped});
            if failed {
                reg["failed"] = json!(true);
            }
            (outcome, reg, changed, failed && st.ignore_errors)
        } else {
            if let (Some(r), Action::Module { module, args }) = (self.ahead.take_led(t), &t.action)
            {
                // It ran with the checks after it, its conditions holding
                // (see `fuse`); those checks saw what it did.
                let out = self
                    .attempt(t, *module, args, base, &st, scope, Some(r))
                    .await;
                return self.finish_single(t, &name, out, &st, t0, scope).await;
            }
            let pre = self.take_ahead(t, None, &base, &st, scope);
            let batched = pre.is_some();
            let out = self.item(t, &conds, base, &st, scope, pre).await;
            if !batched && !out.skipped && !stays_local(t) {
                self.ahead.clear();
            }
            return self.finish_single(t, &name, out, &st, t0, scope).await;
        };
        self.finish(
            t,
            &name,
            outcome,
            register_value,
            any_changed,
            ignored,
            &st,
            scope,
        )
    }

    /// A task without a loop (or whose loop did not run).
    async fn finish_single(
        &mut self,
        t: &Task,
        name: &str,
        out: ItemOut,
        st: &Settings,
        t0: Instant,
        scope: &Scope,
    ) -> Result<(), Stop> {
        self.apply_vars(&out, st);
        self.record(t, name, None, &out, st, t0);
        if out.unreachable && !st.ignore_unreachable {
            self.report.recap.unreachable += 1;
            return Err(Stop::Unreachable);
        }
        let ignored =
            (out.failed && st.ignore_errors) || (out.unreachable && st.ignore_unreachable);
        self.finish(
            t,
            name,
            out.outcome(),
            out.result,
            out.changed,
            ignored,
            st,
            scope,
        )
    }

    /// Registers, counts, notifies, and stops on an unignored failure.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        t: &Task,
        name: &str,
        outcome: Outcome,
        register_value: Json,
        any_changed: bool,
        ignored: bool,
        st: &Settings,
        scope: &Scope,
    ) -> Result<(), Stop> {
        if let Some(reg) = &t.register {
            self.st
                .host_vars
                .insert(reg.clone(), register_value.clone());
        }
        self.count(outcome, ignored, any_changed);
        // A command's change says nothing about whether the host is
        // already in shape (a re-run changes it too): the calm stays as
        // the task before left it.
        let says_nothing =
            matches!(&t.action, Action::Module { module, .. } if module.always_changes());
        self.ahead.calm = match outcome {
            Outcome::Failed => false,
            Outcome::Changed if says_nothing => self.ahead.calm,
            Outcome::Changed => false,
            _ => true,
        };
        if any_changed && !t.notify.is_empty() && outcome != Outcome::Failed {
            let ctx = self.tmpl.context(self.vars_for(scope, t, None));
            for n in &t.notify {
                let n = self.tmpl.render_str(n, &ctx).unwrap_or_else(|_| n.clone());
                self.notify(&n, name);
            }
        }
        if outcome == Outcome::Failed && !ignored {
            // ansible's `ansible_failed_task.name` is empty for an unnamed task.
            let name = if t.name.is_some() { name } else { "" };
            self.failed_task = Some(json!({
                "task": {"name": name},
                "result": if st.no_log { json!({"censored": CENSORED}) } else { register_value },
            }));
            return Err(Stop::Failed);
        }
        Ok(())
    }

    /// `None` when every condition holds; else the skipped (or failed)
    /// result.
    pub(super) fn check_when(
        &self,
        conds: &[String],
        ctx: &crate::template::Ctx,
    ) -> Option<ItemOut> {
        for c in conds {
            match self.tmpl.cond(c, ctx) {
                Ok(true) => {}
                Ok(false) => return Some(ItemOut::skipped(c)),
                Err(e) => {
                    return Some(ItemOut::failed(format!(
                        "The conditional check '{c}' failed. The error was: {e}"
                    )))
                }
            }
        }
        None
    }

    /// One item of a task: its conditions, then what it does (`pre`: the
    /// module's result from the loop's batched check).
    async fn item(
        &mut self,
        t: &Task,
        conds: &[String],
        vars: Layers,
        st: &Settings,
        scope: &Scope,
        pre: Option<crate::modules::ModuleResult>,
    ) -> ItemOut {
        let ctx = self.tmpl.context(vars.clone());
        if let Some(out) = self.check_when(conds, &ctx) {
            return out;
        }
        match &t.action {
            Action::Module { module, args } => {
                self.attempt(t, *module, args, vars, st, scope, pre).await
            }
            Action::Missing { msg, .. } => ItemOut::failed(msg.clone()),
            Action::Facts { args, .. } => self.setup_task(args, &ctx, st).await,
            Action::GroupBy { args } => self.group_by(args, &ctx),
            _ => ItemOut::ok(json!({"changed": false})),
        }
    }

    /// set_fact, facts of `setup`-like modules and include_vars go to
    /// their precedence levels (not to this host when delegated with
    /// `delegate_facts`).
    pub(super) fn apply_vars(&mut self, out: &ItemOut, st: &Settings) {
        if st.delegate_to.is_some() && st.delegate_facts {
            return;
        }
        if let Some(f) = &out.facts {
            self.st.host_vars.extend(f.clone());
        }
        if let Some(f) = &out.ansible_facts {
            self.st.facts.extend(f.clone());
            self.module_facts.extend(f.clone());
        }
        if let Some(f) = &out.include_vars {
            self.st.include_vars.extend(f.clone());
        }
    }

    /// A number keyword (`retries`, `delay`, `pause`): a number, or a
    /// template that renders to one.
    pub(super) fn number(&self, v: &Json, ctx: &crate::template::Ctx) -> Result<f64, String> {
        let r = self.tmpl.render(v, ctx).map_err(|e| e.to_string())?;
        match &r {
            Json::Number(n) => n.as_f64().ok_or_else(|| format!("`{n}` is not a number")),
            Json::String(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("`{s}` is not a number")),
            other => Err(format!("`{other}` is not a number")),
        }
    }
}

/// True for a task of a module that never touches the host.
fn stays_local(t: &Task) -> bool {
    matches!(&t.action, Action::Module { module, .. } if lookahead::stays_local(*module))
}

fn label_of(item: &Json) -> String {
    match item {
        Json::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
