//! A loop's items checked in one round trip (issue #16).
//!
//! Before the items of a loop run one by one, every item whose module says
//! its check-mode run is a pure probe for these arguments
//! ([`Module::check_is_probe`]) runs in check mode, all items at once,
//! through [`Coalesce`]: a target that folds the commands the items send
//! into one `sh` script (one SSH exec) and hands each item its own output.
//! An item whose check reports no change and no failure needs no real run:
//! the real run would find the same state and do nothing, so the check's
//! result is its result.
//!
//! The items still run in order with their conditions, labels and
//! registered results, as without the batch. Only a prefix is taken from
//! the batch: the first item that runs its module for real (its check saw
//! a change, a failure, or it could not be checked) may change what the
//! later items' checks saw, so every item after it runs its module as it
//! would without the batch. Loops with `until`, `loop_control.pause`
//! (time passes between items) or fewer than two items are not batched;
//! neither are items delegated to the controller.

use image_core::target::Become;
use serde_json::Value as Json;

use super::attempt::Prepared;
use super::coalesce::Coalesce;
use super::loops::loop_vars;
use super::scope::{Scope, Settings};
use super::Runner;
use crate::modules::{Module, ModuleCtx, ModuleError, ModuleResult};
use crate::task::{Action, LoopSpec, Task};
use crate::template::{Ctx, Layers};

/// At most this many module runs are checked in one exec.
pub(super) const MAX_BATCH: usize = 256;

/// One check-mode run to make in a batch.
pub(super) struct Probe<'r> {
    /// The module.
    pub module: &'static dyn Module,
    /// The variables of the task or item (kept to tell, when the task is
    /// reached, whether they are still the same).
    pub vars: Layers,
    /// Its template context.
    pub ctx: Ctx,
    /// Its arguments, environment and search path.
    pub prep: Prepared<'r>,
    /// Its privilege.
    pub become_: Option<Become>,
    /// `--diff`.
    pub diff: bool,
    /// The run it stands for is in check mode too (`--check`,
    /// `check_mode: true`).
    pub check: bool,
}

/// The result of a check that a real run can take: no change, no
/// failure, nothing the check could not see.
pub(super) fn usable(r: Result<ModuleResult, ModuleError>) -> Option<ModuleResult> {
    r.ok()
        .filter(|r| !r.changed && !r.failed && !r.skipped && !r.not_a_probe)
}

impl Runner<'_> {
    /// The check-mode results of the items that can be checked in one
    /// batch (`None` for the others), index by index.
    pub(super) async fn probe_loop(
        &self,
        t: &Task,
        conds: &[String],
        l: &LoopSpec,
        items: &[Json],
        st: &Settings,
        scope: &Scope,
    ) -> Vec<Option<ModuleResult>> {
        let mut out: Vec<Option<ModuleResult>> = vec![None; items.len()];
        let Action::Module { module, args } = &t.action else {
            return out;
        };
        if items.len() < 2 || t.until.is_some() || l.pause.is_some() {
            return out;
        }
        let mut probes = Vec::new();
        for i in 0..items.len() {
            let lv = loop_vars(l, i, items);
            let vars = self.vars_for(scope, t, Some(&lv));
            let ctx = self.tmpl.context(vars.clone());
            if self.check_when(conds, &ctx).is_some() {
                continue;
            }
            let Ok(p) = self.prepare(t, *module, args, &ctx, scope, st) else {
                continue;
            };
            if p.local || !module.check_is_probe(&p.args, &self.module_facts) {
                continue;
            }
            probes.push((
                i,
                Probe {
                    module: *module,
                    vars,
                    ctx,
                    prep: p,
                    become_: st.become_.clone(),
                    diff: st.diff,
                    check: st.check,
                },
            ));
        }
        if probes.len() < 2 {
            return out;
        }
        for chunk in probes.chunks(MAX_BATCH) {
            let list: Vec<&Probe> = chunk.iter().map(|(_, p)| p).collect();
            let results = self.check_all(&list).await;
            for ((i, _), r) in chunk.iter().zip(results) {
                out[*i] = usable(r);
            }
        }
        out
    }

    /// Check-mode runs of `probes` through one [`Coalesce`]: as many
    /// execs as the run with the most commands sends (one per privilege).
    pub(super) async fn check_all(
        &self,
        probes: &[&Probe<'_>],
    ) -> Vec<Result<ModuleResult, ModuleError>> {
        let co = Coalesce::new(self.target, probes.len());
        futures::future::join_all(probes.iter().map(|p| self.check_one(&co, p))).await
    }

    /// The check-mode run of `p` through `co` (one of its runs).
    pub(super) async fn check_one(
        &self,
        co: &Coalesce<'_>,
        p: &Probe<'_>,
    ) -> Result<ModuleResult, ModuleError> {
        let mctx = ModuleCtx {
            target: co,
            become_: p.become_.clone(),
            env: p.prep.env.clone(),
            check: true,
            probe: !p.check,
            diff: p.diff,
            templates: &self.tmpl,
            vars: &p.ctx,
            search: &p.prep.search,
            facts: &self.module_facts,
        };
        let r = p.module.run(&mctx, &p.prep.args).await;
        co.done().await;
        r
    }
}
