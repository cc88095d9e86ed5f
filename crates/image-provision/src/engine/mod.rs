//! Running a step list as ansible-core 2.19 runs a playbook against one
//! host: plays (facts, `vars_files`, play keywords), sections with their
//! handler flushes, blocks with rescue/always, static roles with their
//! dependencies, dynamic includes loaded when reached, loops, conditions,
//! retries, handlers, tags, check and diff mode, `no_log`, delegation to
//! the controller.
//!
//! - `scope`: what a task inherits; `vars`: variable precedence;
//!   `var_cache`: the variable layers tasks share, kept while unchanged.
//! - `task_run`: one task (its loop, conditions, recap); `attempt`:
//!   one module run with retries and `changed_when`/`failed_when`;
//!   `batch`: a loop's items checked in one round trip; `lookahead`: the
//!   tasks ahead checked in one round trip; `fuse`: a task that runs for
//!   real carries the checks of the tasks after it; `coalesce`: the
//!   target that folds concurrent checks into one exec.
//! - [`include`]: `include_tasks` / `include_role`; `control`: `meta`,
//!   handlers, `setup`, `group_by`; `record`: results and events;
//!   `loops`: loop items; `tags`: tag selection.
//!
//! A task whose connection drops is retried once after a reconnect; if that
//! fails the host is reported unreachable and the run stops.

mod attempt;
mod batch;
mod coalesce;
mod control;
mod fuse;
mod include;
mod lookahead;
mod loops;
mod prefetch;
mod record;
mod scope;
mod tags;
mod task_run;
mod var_cache;
mod vars;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use image_core::events::{Event, EventSink, Outcome};
use image_core::local::LocalTarget;
use image_core::target::Target;
use serde_json::{Map, Value as Json};

use crate::parse::LoadCtx;
use crate::task::{Action, Handler, Play, RoleFrom, Steps, Task};
use crate::template::Templater;
use crate::{facts, Options, Report, TaskResult};
use scope::{RoleInst, Scope};

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a list of tasks stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A task failed (not rescued, not ignored).
    Failed,
    /// The host could not be reached.
    Unreachable,
    /// `meta: end_play` / `end_host` / `end_batch`.
    EndPlay,
    /// `meta: end_role`.
    EndRole,
}

/// Variables and state that live across tasks.
#[derive(Default)]
struct State {
    /// Facts visible as variables (gathered by a play or `setup`).
    facts: var_cache::Facts,
    /// `set_fact` / registered.
    host_vars: Map<String, Json>,
    /// `include_vars`.
    include_vars: Map<String, Json>,
    /// The play's `vars:`.
    play_vars: Map<String, Json>,
    /// The play's `vars_files:`.
    vars_files: Map<String, Json>,
    /// Defaults of the play's public roles.
    role_defaults: Map<String, Json>,
    /// Vars of the play's public roles.
    role_vars: Map<String, Json>,
    /// Groups added by `group_by`.
    groups: Vec<String>,
    /// The play's name.
    play_name: Option<String>,
    /// Names of the roles of the play.
    play_roles: Vec<String>,
}

struct Runner<'a> {
    target: &'a dyn Target,
    local: LocalTarget,
    opts: &'a Options,
    sink: &'a dyn EventSink,
    tmpl: Templater,
    host: String,
    base_dir: PathBuf,
    load: LoadCtx,
    st: var_cache::Tracked,
    /// Facts of the host for the modules (always gathered once).
    module_facts: Map<String, Json>,
    handlers: Vec<Handler>,
    notified: Vec<bool>,
    handler_roles: HashSet<String>,
    roles_done: HashSet<String>,
    role_cache: HashMap<(String, RoleFrom, PathBuf), crate::parse::LoadedRole>,
    started: bool,
    failed_task: Option<Json>,
    root: Scope,
    depth: usize,
    /// The last failure was an included file that could not be loaded:
    /// ansible counts it as failed even when a rescue runs.
    load_failure: bool,
    /// The tasks ahead checked in one batch (`lookahead`).
    ahead: lookahead::Ahead,
    report: Report,
}

/// Most nested includes a run follows (ansible has no limit; a loop of
/// includes that include themselves would never end).
const MAX_DEPTH: usize = 64;

/// Runs `steps` on `target`: every play in order. Task failures and an
/// unreachable host are in the [`Report`]; events go to `sink` as tasks
/// start and finish.
///
/// The future is boxed so that it is `Send` for the caller's lifetimes: an
/// `async fn` here would make callers inside `#[async_trait]` methods fail
/// with "implementation of `Send` is not general enough".
pub fn run<'a>(
    target: &'a dyn Target,
    steps: &'a Steps,
    opts: &'a Options,
    sink: &'a dyn EventSink,
) -> Fut<'a, Report> {
    Box::pin(run_inner(target, steps, opts, sink))
}

async fn run_inner(
    target: &dyn Target,
    steps: &Steps,
    opts: &Options,
    sink: &dyn EventSink,
) -> Report {
    let host = target.name();
    // `playbook_dir` is absolute, as ansible's.
    let base_dir = steps
        .file
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let mut r = Runner {
        target,
        local: LocalTarget::new(),
        opts,
        sink,
        tmpl: Templater::new(),
        host: host.clone(),
        load: LoadCtx {
            base_dir: base_dir.clone(),
            roles_path: steps.roles_path.clone(),
        },
        base_dir,
        st: var_cache::Tracked::default(),
        module_facts: Map::new(),
        handlers: Vec::new(),
        notified: Vec::new(),
        handler_roles: HashSet::new(),
        roles_done: HashSet::new(),
        role_cache: HashMap::new(),
        started: opts.start_at_task.is_none(),
        failed_task: None,
        root: Scope::default(),
        depth: 0,
        load_failure: false,
        ahead: Default::default(),
        report: Report {
            host,
            ..Default::default()
        },
    };
    let mut gathered = false;
    for play in &steps.plays {
        // Modules need the host's facts (package manager, init system)
        // even when the play does not gather them as variables.
        if !gathered {
            match r.gather(play.gather_facts, steps, play).await {
                Ok(()) => gathered = true,
                Err(()) => return r.report,
            }
        } else if play.gather_facts && r.gather(true, steps, play).await.is_err() {
            return r.report;
        }
        if let Err(Stop::Failed | Stop::Unreachable) = r.play(play).await {
            break;
        }
    }
    r.report
}

impl<'a> Runner<'a> {
    fn emit(&self, e: Event) {
        self.sink.emit(&e);
    }

    /// Gathers facts; `visible` makes them variables (and a recap line,
    /// as ansible's "Gathering Facts" task).
    /// They are gathered with the play's `become`, as ansible does.
    async fn gather(&mut self, visible: bool, steps: &Steps, play: &Play) -> Result<(), ()> {
        let become_ = scope::become_of(&play.keywords, self.opts);
        let t0 = Instant::now();
        if visible {
            self.emit(Event::StepStarted {
                build: self.opts.build.clone(),
                step: "Gathering Facts".into(),
            });
        }
        let subset = facts::Subset::from_spec(&play.gather_subset);
        let mut gathered = facts::gather_subset(self.target, become_.clone(), &subset).await;
        if matches!(&gathered, Err(e) if e.is_connection_lost())
            && self.target.reconnect().await.is_ok()
        {
            gathered = facts::gather_subset(self.target, become_, &subset).await;
        }
        match gathered {
            Ok(f) => {
                self.module_facts = f.clone();
                if visible {
                    self.st.facts.extend(subset.visible(f));
                    self.emit(Event::finished(
                        &self.opts.build,
                        "Gathering Facts",
                        Outcome::Ok,
                        t0.elapsed(),
                        "",
                    ));
                    self.report.recap.ok += 1;
                }
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.emit(Event::finished(
                    &self.opts.build,
                    "Gathering Facts",
                    Outcome::Failed,
                    t0.elapsed(),
                    format!("unreachable: {msg}"),
                ));
                self.report.recap.unreachable += 1;
                self.report.results.push(TaskResult {
                    task: "Gathering Facts".into(),
                    loc: image_core::diag::Location::new(steps.file.display().to_string(), 1, 1),
                    item: None,
                    outcome: Outcome::Failed,
                    msg,
                    diff: Vec::new(),
                    ignored: false,
                    unreachable: true,
                    elapsed: t0.elapsed(),
                    result: Json::Null,
                });
                Err(())
            }
        }
    }

    async fn play(&mut self, play: &Play) -> Result<(), Stop> {
        self.st.play_vars = play.vars.clone();
        self.st.vars_files = Map::new();
        self.st.role_defaults = play.role_defaults.clone();
        self.st.role_vars = play.role_vars.clone();
        self.st.play_name = play.name.clone().or_else(|| play.hosts.clone());
        self.st.play_roles = play
            .sections
            .iter()
            .flatten()
            .filter_map(|t| match &t.action {
                Action::Role { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        self.handlers = play.handlers.clone();
        self.notified = vec![false; self.handlers.len()];
        self.handler_roles = self
            .handlers
            .iter()
            .filter_map(|h| h.role.as_ref().map(|r| r.name.clone()))
            .collect();
        self.roles_done.clear();
        if let Some(name) = &play.name {
            self.emit(Event::Message {
                build: self.opts.build.clone(),
                text: format!("PLAY [{name}]"),
            });
        }
        let root = Scope::play(&play.keywords);
        self.root = root.clone();
        if let Err(msg) = self.load_vars_files(play, &root) {
            let t = Task::synthetic("vars_files", play.loc.clone());
            return self.fail_structural(&t, msg);
        }
        // Handlers run after pre_tasks, after roles + tasks, after post_tasks.
        let groups: Vec<Vec<&Vec<Task>>> = match play.sections.len() {
            4 => vec![
                vec![&play.sections[0]],
                vec![&play.sections[1], &play.sections[2]],
                vec![&play.sections[3]],
            ],
            _ => vec![play.sections.iter().collect()],
        };
        for g in groups {
            for section in g {
                match self.list(section, &root).await {
                    Ok(()) | Err(Stop::EndRole) => {}
                    Err(Stop::EndPlay) => return Ok(()),
                    Err(e) => {
                        if e == Stop::Failed && play.force_handlers {
                            let _ = self.flush().await;
                        }
                        return Err(e);
                    }
                }
            }
            match self.flush().await {
                Ok(()) | Err(Stop::EndRole) => {}
                Err(Stop::EndPlay) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `vars_files`: each entry's first existing candidate, templated with
    /// the play's variables; none found is an error.
    fn load_vars_files(&mut self, play: &Play, root: &Scope) -> Result<(), String> {
        for vf in &play.vars_files {
            let probe = Task::synthetic("vars_files", Some(vf.loc.clone()));
            let ctx = self.tmpl.context(self.vars_for(root, &probe, None));
            let mut found = None;
            for c in &vf.candidates {
                let name = self
                    .tmpl
                    .render_str(c, &ctx)
                    .map_err(|e| format!("vars_files `{c}` ({}): {e}", vf.loc))?;
                let p = vf.dir.join(&name);
                if p.is_file() {
                    found = Some(p);
                    break;
                }
            }
            let Some(p) = found else {
                return Err(format!(
                    "vars_files: none of {} found ({})",
                    vf.candidates.join(", "),
                    vf.loc
                ));
            };
            let m = crate::parse::load_vars(&p).map_err(|d| d.to_string())?;
            self.st.vars_files.extend(m);
        }
        Ok(())
    }

    fn list<'s>(&'s mut self, tasks: &'s [Task], scope: &'s Scope) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            // A batch covers tasks of one list, while it runs.
            self.ahead.clear();
            for (i, t) in tasks.iter().enumerate() {
                if !self.ahead.covers(t) {
                    self.ahead.clear();
                }
                let res = match &t.action {
                    Action::Module { .. } => self.run_task(t, &tasks[i + 1..], scope).await,
                    _ => self.task(t, scope).await,
                };
                if res.is_err() {
                    self.ahead.clear();
                    return res;
                }
            }
            self.ahead.clear();
            Ok(())
        })
    }

    fn task<'s>(&'s mut self, t: &'s Task, scope: &'s Scope) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            match &t.action {
                Action::Block {
                    block,
                    rescue,
                    always,
                } => {
                    let child = scope.child(t);
                    self.block(block, rescue, always, &child).await
                }
                Action::Role {
                    name,
                    role,
                    params,
                    dedup,
                } => {
                    let key = role_key(name, params, t);
                    let inst = RoleInst {
                        role: role.clone(),
                        params: Arc::new(params.clone()),
                        vars_kw: Arc::new(t.vars.clone()),
                        key: key.clone(),
                    };
                    if *dedup && !role.allow_duplicates && self.roles_done.contains(&key) {
                        return Ok(());
                    }
                    // The call's `vars:` are role vars (in `inst`), not task vars.
                    let child = scope.child_parts(None, &t.when, &t.kw);
                    self.run_role(inst, &child).await
                }
                Action::IncludeTasks { .. } | Action::IncludeRole { .. } => {
                    self.include(t, scope).await
                }
                _ => self.run_task(t, &[], scope).await,
            }
        })
    }

    /// A role: its dependencies (once each per play unless they allow
    /// duplicates), then its tasks, with the role on the scope's chain.
    fn run_role<'s>(&'s mut self, inst: RoleInst, scope: &'s Scope) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            let mut child = scope.clone();
            child.roles.push(inst.clone());
            for dep in &inst.role.deps {
                match self.task(dep, &child).await {
                    Ok(()) | Err(Stop::EndRole) => {}
                    Err(e) => return Err(e),
                }
            }
            let res = self.list(&inst.role.tasks, &child).await;
            self.roles_done.insert(inst.key.clone());
            match res {
                Err(Stop::EndRole) => Ok(()),
                other => other,
            }
        })
    }

    async fn block(
        &mut self,
        block: &[Task],
        rescue: &[Task],
        always: &[Task],
        scope: &Scope,
    ) -> Result<(), Stop> {
        self.load_failure = false;
        let mut res = self.list(block, scope).await;
        if res == Err(Stop::Failed) && !rescue.is_empty() {
            if !std::mem::take(&mut self.load_failure) {
                self.report.recap.failed = self.report.recap.failed.saturating_sub(1);
                self.report.recap.rescued += 1;
            }
            let mut rs = scope.clone();
            if let Some(f) = self.failed_task.clone() {
                let mut m = Map::new();
                m.insert(
                    "ansible_failed_task".into(),
                    f.get("task").cloned().unwrap_or(Json::Null),
                );
                m.insert(
                    "ansible_failed_result".into(),
                    f.get("result").cloned().unwrap_or(Json::Null),
                );
                rs.vars.push(Arc::new(m));
            }
            res = self.list(rescue, &rs).await;
        }
        if !matches!(res, Err(Stop::Unreachable | Stop::EndPlay)) && !always.is_empty() {
            self.list(always, scope).await?;
        }
        res
    }
}

/// The key that makes a role run once per play: as ansible's role cache,
/// its name, params, `when`, tags and `vars:`.
fn role_key(name: &str, params: &Map<String, Json>, t: &Task) -> String {
    format!(
        "{name}{}{:?}{:?}{}",
        Json::Object(params.clone()),
        t.when,
        t.kw.tags,
        Json::Object(t.vars.clone())
    )
}

impl Task {
    /// A task that stands for engine work (`vars_files`, ...), for errors.
    fn synthetic(name: &str, loc: Option<image_core::diag::Location>) -> Task {
        Task {
            name: Some(name.to_string()),
            loc: loc.unwrap_or_else(|| image_core::diag::Location::new("", 1, 1)),
            action: Action::Meta("noop".into()),
            when: Vec::new(),
            loop_: None,
            register: None,
            changed_when: None,
            failed_when: None,
            retries: None,
            delay: None,
            until: None,
            notify: Vec::new(),
            listen: Vec::new(),
            kw: Default::default(),
            vars: Map::new(),
            dir: Arc::new(PathBuf::new()),
        }
    }
}
