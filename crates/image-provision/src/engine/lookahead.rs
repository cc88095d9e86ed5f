//! The tasks ahead checked in one round trip (issue #16).
//!
//! When a task of a list is reached, the engine looks at it and the tasks
//! that follow it in the same list. Every module run among them whose
//! check-mode run is a pure probe ([`Module::check_is_probe`]: it changes
//! nothing, and when it sees no change a real run would change nothing
//! and return the same result) is checked now, speculatively, with the
//! variables as they are, all at once through one [`super::coalesce`]
//! exec, loop items included.
//!
//! The tasks then run in order as without the batch; a task (or item)
//! takes its batched result instead of running its module only when
//!
//! - its check saw no change and no failure (else it runs for real),
//! - its variables are still exactly the ones the check was made with,
//!   or, for a module that reads no variable beyond its arguments
//!   ([`Module::reads_vars`]), its rendered arguments, environment and
//!   privilege are (a result registered on the way that the task does not
//!   use leaves its check valid), and
//! - no task before it in the batch has run a module for real since the
//!   check: the first one that does may have changed what the later
//!   checks saw, so every batched result left is dropped there.
//!
//! So what each task sees and does, its result, `register`, `notify`, the
//! recap and the order of effects are those of a run without the batch.
//! The look-ahead covers, in order: module tasks that can be checked
//! (with their loops), tasks skipped by their tags or `when`, and tasks of
//! modules that never touch the host ([`stays_local`]: debug, assert,
//! fail, set_fact, include_vars). It ends after a task that sets
//! variables or facts (`set_fact`, `getent`, `package_facts`,
//! `service_facts`: what follows would be checked with stale ones), and
//! before anything else: blocks, includes, roles, `meta`, `until`, a
//! loop's `pause`, delegation, a module that is not a probe. Only when
//! the last task ran without change is a batch tried (a first run, where
//! tasks change, does not pay for checks it cannot use); a module that
//! changes on every run ([`Module::always_changes`]: `command`, `shell`)
//! leaves that as the task before it left it.

use std::collections::HashMap;
use std::sync::Arc;

use image_core::target::Become;
use serde_json::{Map, Value as Json};

use super::attempt::Prepared;
use super::batch::{usable, Probe, MAX_BATCH};
use super::loops::loop_vars;
use super::scope::{Scope, Settings};
use super::Runner;
use crate::modules::{Module, ModuleResult};
use crate::task::{Action, Task};
use crate::template::{Ctx, Layers};

/// A task's identity while its list runs (tasks do not move then).
fn key(t: &Task) -> usize {
    t as *const Task as usize
}

/// True for modules that never touch the host: running them between
/// batched tasks leaves the batch's checks valid.
pub(super) fn stays_local(module: &dyn Module) -> bool {
    matches!(
        module.name(),
        "debug" | "assert" | "fail" | "set_fact" | "include_vars"
    )
}

/// True when what `t` runs with (its arguments, variables, loop items,
/// environment, privilege) names `var` (as a word): its check would be
/// made before `var` holds what the task will see.
fn uses(t: &Task, var: &str) -> bool {
    let word = |text: &str| {
        text.match_indices(var).any(|(i, _)| {
            let ident = |c: char| c.is_alphanumeric() || c == '_';
            !text[..i].ends_with(ident) && !text[i + var.len()..].starts_with(ident)
        })
    };
    let json = |v: &Json| word(&v.to_string());
    let args = match &t.action {
        Action::Module { args, .. } => args.values().any(json),
        _ => true,
    };
    args || t.vars.values().any(json)
        || t.loop_.as_ref().is_some_and(|l| json(&l.items))
        || t.kw.environment.as_ref().is_some_and(json)
        || t.kw.become_user.as_deref().is_some_and(word)
}

/// Modules that set variables (facts included): the look-ahead ends after
/// them, since the checks of the tasks after them would be made with
/// variables about to change, and so be of no use (those tasks then get a
/// look-ahead of their own, with the new variables).
pub(super) fn sets_vars(module: &dyn Module) -> bool {
    matches!(
        module.name(),
        "set_fact" | "include_vars" | "getent" | "package_facts" | "service_facts" | "hostname"
    )
}

/// The tasks a look-ahead covers and their checks, by task and loop item.
pub(super) type Planned<'r> = (Vec<usize>, Vec<((usize, Option<usize>), Probe<'r>)>);

/// Usable results by task and loop item.
pub(super) type Results = HashMap<(usize, Option<usize>), Checked>;

/// The usable results of `probes` (run in order as `results`), with the
/// variables each was made with.
pub(super) fn checked(
    probes: Vec<((usize, Option<usize>), Probe)>,
    results: Vec<Result<ModuleResult, crate::modules::ModuleError>>,
    facts: &Arc<Map<String, Json>>,
) -> Results {
    probes
        .into_iter()
        .zip(results)
        .filter_map(|((k, p), r)| {
            let result = usable(r)?;
            Some((
                k,
                Checked {
                    vars: p.vars,
                    result,
                    args: p.prep.args.0,
                    env: p.prep.env,
                    become_: p.become_,
                    check: p.check,
                    diff: p.diff,
                    facts: facts.clone(),
                },
            ))
        })
        .collect()
}

/// A batched check's result with what it was made with.
pub(super) struct Checked {
    vars: Layers,
    result: ModuleResult,
    /// The rendered arguments and environment.
    args: Map<String, Json>,
    env: Vec<(String, String)>,
    become_: Option<Become>,
    check: bool,
    diff: bool,
    /// The host's facts then (the same allocation while they are the
    /// same: a module may read them, `package` its manager).
    facts: Arc<Map<String, Json>>,
}

/// The batched results of the tasks ahead (see the module docs).
pub(super) struct Ahead {
    /// The tasks the batch covers.
    covered: Vec<usize>,
    /// Usable results by task and loop item.
    results: Results,
    /// The result of a task that already ran for real, with the checks
    /// of the tasks after it (see `fuse`).
    led: Option<(usize, ModuleResult)>,
    /// The last task ran without change: a batch is worth trying.
    pub calm: bool,
}

impl Default for Ahead {
    fn default() -> Self {
        Ahead {
            covered: Vec::new(),
            results: HashMap::new(),
            led: None,
            calm: true,
        }
    }
}

impl Ahead {
    /// True when the batch covers `t`.
    pub fn covers(&self, t: &Task) -> bool {
        self.covered.contains(&key(t))
    }

    /// Drops the batch (something ran for real, or its list ended).
    pub fn clear(&mut self) {
        self.covered.clear();
        self.results.clear();
        self.led = None;
    }

    /// Keeps `results` ([`checked`]) for the tasks `covered`.
    pub(super) fn keep(&mut self, covered: Vec<usize>, results: Results) {
        self.covered = covered;
        self.results = results;
    }

    /// Keeps the result of `t`, which ran for real with the batch.
    pub(super) fn lead(&mut self, t: &Task, result: ModuleResult) {
        self.led = Some((key(t), result));
    }

    /// The result of `t` if it already ran for real with the batch (its
    /// conditions held then, with the same variables).
    pub fn take_led(&mut self, t: &Task) -> Option<ModuleResult> {
        match self.led.take() {
            Some((k, r)) if k == key(t) => Some(r),
            _ => None,
        }
    }

    /// The batched check of `t` (loop item `item`), if it saw no change.
    fn remove(&mut self, t: &Task, item: Option<usize>) -> Option<Checked> {
        self.results.remove(&(key(t), item))
    }
}

/// What the look-ahead does with one task.
enum Step<'r> {
    /// Covered, with these checks (none: skipped, nothing to check).
    Take(Vec<(Option<usize>, Probe<'r>)>),
    /// Covered, and the look-ahead ends after it.
    Last(Vec<(Option<usize>, Probe<'r>)>),
    /// Not covered; the look-ahead ends before it.
    Stop,
}

impl Runner<'_> {
    /// Checks `t` and the tasks of `rest` (those after it in its list)
    /// in one batch, when the last task ran without change and at least
    /// two module runs can be checked.
    pub(super) async fn look_ahead(&mut self, t: &Task, rest: &[Task], scope: &Scope) {
        if !self.ahead.calm || !self.started || self.ahead.covers(t) {
            return;
        }
        if self.fuse(t, rest, scope).await {
            return;
        }
        let (covered, probes) = self.plan_ahead(std::iter::once(t).chain(rest), scope, Vec::new());
        if probes.len() < 2 {
            return;
        }
        let list: Vec<&Probe> = probes.iter().map(|(_, p)| p).collect();
        let facts = self.st.facts.layer();
        let results = self.check_all(&list).await;
        let results = checked(probes, results, &facts);
        self.ahead.keep(covered, results);
    }

    /// The tasks of `tasks` the look-ahead covers, in order, and their
    /// checks (see [`Step`]).
    /// `registered`: names registered before them (by the task that leads
    /// the batch, see `fuse`).
    pub(super) fn plan_ahead<'t>(
        &self,
        tasks: impl Iterator<Item = &'t Task>,
        scope: &Scope,
        mut registered: Vec<String>,
    ) -> Planned<'_> {
        let mut covered = Vec::new();
        let mut probes: Vec<((usize, Option<usize>), Probe)> = Vec::new();
        for t in tasks {
            if probes.len() >= MAX_BATCH {
                break;
            }
            // A check made before a result it uses is registered would be
            // of no use: the look-ahead ends before such a task.
            if let Action::Module { module, .. } = &t.action {
                if !registered.is_empty()
                    && (module.reads_vars() || registered.iter().any(|r| uses(t, r)))
                {
                    break;
                }
            }
            registered.extend(t.register.iter().cloned());
            let (checks, last) = match self.plan(t, scope) {
                Step::Take(c) => (c, false),
                Step::Last(c) => (c, true),
                Step::Stop => break,
            };
            covered.push(key(t));
            probes.extend(checks.into_iter().map(|(i, p)| ((key(t), i), p)));
            if last {
                break;
            }
        }
        (covered, probes)
    }

    /// The batched result of `t` (loop item `item`), if its check saw no
    /// change and was made with what the task would run with now: the
    /// same variables, or (a result registered since, say) for a module
    /// that reads no variable beyond its arguments, the same rendered
    /// arguments, environment and privilege.
    pub(super) fn take_ahead(
        &mut self,
        t: &Task,
        item: Option<usize>,
        vars: &Layers,
        st: &Settings,
        scope: &Scope,
    ) -> Option<ModuleResult> {
        let c = self.ahead.remove(t, item)?;
        if c.vars == *vars {
            return Some(c.result);
        }
        let Action::Module { module, args } = &t.action else {
            return None;
        };
        if module.reads_vars()
            || !Arc::ptr_eq(&c.facts, &self.st.facts.layer())
            || c.become_ != st.become_
            || (c.check, c.diff) != (st.check, st.diff)
        {
            return None;
        }
        let ctx = self.tmpl.context(vars.clone());
        let p = self.prepare(t, *module, args, &ctx, scope, st).ok()?;
        (p.args.0 == c.args && p.env == c.env).then_some(c.result)
    }

    /// How the look-ahead takes `t` (see [`Step`]).
    fn plan(&self, t: &Task, scope: &Scope) -> Step<'_> {
        let mut tags = scope.tags.clone();
        tags.extend(t.kw.tags.iter().cloned());
        if !self.tags_ok(&tags) {
            // Not run at all.
            return Step::Take(Vec::new());
        }
        let Action::Module { module, args } = &t.action else {
            return Step::Stop;
        };
        if t.until.is_some() || t.loop_.as_ref().is_some_and(|l| l.pause.is_some()) {
            return Step::Stop;
        }
        let st = Settings::of(t, scope, self.opts);
        if st.delegate_to.is_some() {
            return Step::Stop;
        }
        // A registered result does not end it: the checks after it hold
        // when what they were made with comes out the same (`take_ahead`).
        let ends = sets_vars(*module);
        if stays_local(*module) {
            return if ends {
                Step::Last(Vec::new())
            } else {
                Step::Take(Vec::new())
            };
        }
        let conds: Vec<String> = scope.when.iter().chain(&t.when).cloned().collect();
        let base = self.vars_for(scope, t, None);
        let mut checks = Vec::new();
        let mut complete = true;
        match &t.loop_ {
            None => match self.probe(t, *module, args, &conds, base, &st, scope) {
                Some(Some(p)) => checks.push((None, p)),
                Some(None) => {}
                None => return Step::Stop,
            },
            Some(l) => {
                let ctx = self.tmpl.context(base.clone());
                let Ok(items) = self.loop_items(l, &base, &ctx) else {
                    return Step::Stop;
                };
                for i in 0..items.len() {
                    let lv = loop_vars(l, i, &items);
                    let vars = self.vars_for(scope, t, Some(&lv));
                    match self.probe(t, *module, args, &conds, vars, &st, scope) {
                        Some(Some(p)) => checks.push((Some(i), p)),
                        Some(None) => {}
                        // This item runs for real: the batch is of no
                        // use after it.
                        None => {
                            complete = false;
                            break;
                        }
                    }
                }
            }
        }
        if ends || !complete {
            Step::Last(checks)
        } else {
            Step::Take(checks)
        }
    }

    /// What a task (or item) runs its module with on this host, now:
    /// `Some(None)` when its conditions skip it, `None` when they fail,
    /// its arguments do not render, or it is delegated to the controller.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn runs_here(
        &self,
        t: &Task,
        module: &'static dyn Module,
        args: &Map<String, Json>,
        conds: &[String],
        vars: &Layers,
        st: &Settings,
        scope: &Scope,
    ) -> Option<Option<(Ctx, Prepared<'_>)>> {
        let ctx = self.tmpl.context(vars.clone());
        match self.check_when(conds, &ctx) {
            Some(out) if out.skipped && !out.failed => return Some(None),
            Some(_) => return None,
            None => {}
        }
        let prep = self.prepare(t, module, args, &ctx, scope, st).ok()?;
        (!prep.local).then_some(Some((ctx, prep)))
    }

    /// The check of one task or item: `Some(None)` when its conditions
    /// skip it, `None` when it cannot be checked.
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &self,
        t: &Task,
        module: &'static dyn Module,
        args: &Map<String, Json>,
        conds: &[String],
        vars: Layers,
        st: &Settings,
        scope: &Scope,
    ) -> Option<Option<Probe<'_>>> {
        let Some((ctx, prep)) = self.runs_here(t, module, args, conds, &vars, st, scope)? else {
            return Some(None);
        };
        if !module.check_is_probe(&prep.args, &self.module_facts) {
            return None;
        }
        Some(Some(Probe {
            module,
            vars,
            ctx,
            prep,
            become_: st.become_.clone(),
            diff: st.diff,
            check: st.check,
        }))
    }
}
