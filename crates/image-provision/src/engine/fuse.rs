//! A task that runs for real carries the checks of the tasks after it
//! (issue #16).
//!
//! A task the look-ahead cannot check (`shell`, `command`, `wait_for`:
//! modules whose real run is one command,
//! [`Module::one_exec`](crate::modules::Module::one_exec)) cost a round
//! trip of its own, and the checks of the tasks after it another.
//! When such a task is reached with the last task calm (see
//! `lookahead`), runs (its conditions hold) and has no loop, `until`,
//! delegation or check mode, its module runs for real through a
//! [`Coalesce`] together with the checks of the tasks after it, as its
//! lead run: its command runs first, alone, and the checks start only
//! when it has ended, so they see what it did, as they would in a batch
//! of their own after it. One exec for both.
//!
//! Its result waits in the look-ahead (`Ahead::take_led`) and the task
//! takes it instead of running its module: `changed_when`,
//! `failed_when`, `register`, `notify`, the recap and a failure that
//! stops the play are as without the batch. The checks' results are kept
//! for the tasks after it as any look-ahead's are (a result the task
//! registers leaves valid those that do not use it, see `lookahead`).
//! They are dropped when the lead run touched the host again after the
//! checks began (a second command, a file moved: [`Coalesce::tainted`]),
//! and when its connection dropped the task runs again as without the
//! batch (a lost connection is retried once). The command's reported
//! duration (`delta`) includes the checks' time.

use async_trait::async_trait;
use image_core::target::{Become, Exec, FileMeta, Output, Target, TargetError};

use super::coalesce::Coalesce;
use super::lookahead::{checked, sets_vars, stays_local};
use super::scope::{Scope, Settings};
use super::Runner;
use crate::modules::{ModuleCtx, ModuleError, ModuleResult};
use crate::task::{Action, Task};

/// The lead run's view of a [`Coalesce`]: its commands go first.
struct Lead<'c, 'a>(&'c Coalesce<'a>);

#[async_trait]
impl Target for Lead<'_, '_> {
    fn name(&self) -> String {
        self.0.inner().name()
    }

    async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError> {
        self.0.exec_as(cmd, true).await
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        meta: &FileMeta,
        become_: Option<&Become>,
    ) -> Result<(), TargetError> {
        self.0.lead_acts();
        self.0.inner().put(path, content, meta, become_).await
    }

    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        self.0.lead_acts();
        self.0.inner().get(path, become_).await
    }

    async fn reconnect(&self) -> Result<(), TargetError> {
        self.0.inner().reconnect().await
    }
}

impl Runner<'_> {
    /// Runs `t` for real with the checks of the tasks of `rest` (those
    /// after it in its list) in one batch, when it can lead one (see the
    /// module docs) and at least one of them can be checked. False when
    /// nothing ran.
    pub(super) async fn fuse(&mut self, t: &Task, rest: &[Task], scope: &Scope) -> bool {
        let Action::Module { module, args } = &t.action else {
            return false;
        };
        let st = Settings::of(t, scope, self.opts);
        if !module.one_exec()
            || t.loop_.is_some()
            || t.until.is_some()
            || sets_vars(*module)
            || stays_local(*module)
            || st.delegate_to.is_some()
            || st.check
        {
            return false;
        }
        let vars = self.vars_for(scope, t, None);
        let conds: Vec<String> = scope.when.iter().chain(&t.when).cloned().collect();
        // Judged as the checks after it are (`lookahead`): it runs here.
        let Some(Some((ctx, prep))) = self.runs_here(t, *module, args, &conds, &vars, &st, scope)
        else {
            return false;
        };
        let (covered, probes) =
            self.plan_ahead(rest.iter(), scope, t.register.iter().cloned().collect());
        if probes.is_empty() {
            return false;
        }
        let facts = self.st.facts.layer();
        let co = Coalesce::new(self.target, probes.len() + 1);
        let lead_target = Lead(&co);
        let mctx = ModuleCtx {
            target: &lead_target,
            become_: st.become_.clone(),
            env: prep.env.clone(),
            check: false,
            probe: false,
            diff: st.diff,
            templates: &self.tmpl,
            vars: &ctx,
            search: &prep.search,
            facts: &self.module_facts,
        };
        let lead = async {
            let r = module.run(&mctx, &prep.args).await;
            co.done().await;
            r
        };
        let checks = futures::future::join_all(probes.iter().map(|(_, p)| self.check_one(&co, p)));
        let (led, results) = futures::join!(lead, checks);
        let tainted = co.tainted();
        let results = checked(probes, results, &facts);
        let led = match led {
            Ok(r) => r,
            // Runs again as without the batch (a lost connection is
            // retried once after a reconnect).
            Err(ModuleError::Target(e)) if e.is_connection_lost() => return true,
            Err(e) => ModuleResult::fail(e.to_string()),
        };
        self.ahead.clear();
        if !tainted {
            self.ahead.keep(covered, results);
        }
        self.ahead.lead(t, led);
        true
    }
}
