//! Running a step list: plays, sections, blocks with rescue/always, roles,
//! includes, loops, conditions, retries, handlers, tags, check and diff
//! mode, `no_log`, and variable precedence as ansible's:
//! role defaults < play vars / vars_files < role vars < block vars < task
//! vars < include_vars < set_fact / registered < role params < extra vars.
//!
//! A task whose connection drops is retried once after a reconnect; if that
//! fails the host is reported unreachable and the run stops.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image_core::events::{Event, EventSink, Outcome};
use image_core::target::{Become, Target};
use serde_json::{json, Map, Value as Json};

use crate::diff::Diff;
use crate::modules::{json_to_string, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::task::{Action, Handler, LoopKind, LoopSpec, Play, Role, Steps, Task};
use crate::template::{Ctx, Templater, OMIT};
use crate::{facts, Options, Report, TaskResult, CENSORED};

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a list of tasks stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Failed,
    Unreachable,
    EndPlay,
}

/// Keywords inherited from blocks, roles and includes.
#[derive(Clone, Default)]
struct Scope {
    vars: Vec<Arc<Map<String, Json>>>,
    roles: Vec<Arc<Role>>,
    params: Vec<Arc<Map<String, Json>>>,
    when: Vec<String>,
    tags: Vec<String>,
    become_: Option<bool>,
    become_user: Option<String>,
    env: Vec<Json>,
    check_mode: Option<bool>,
    diff: Option<bool>,
    no_log: Option<bool>,
    ignore_errors: Option<bool>,
}

impl Scope {
    fn child(&self, t: &Task) -> Scope {
        let mut s = self.clone();
        if !t.vars.is_empty() {
            s.vars.push(Arc::new(t.vars.clone()));
        }
        s.when.extend(t.when.iter().cloned());
        s.tags.extend(t.tags.iter().cloned());
        s.become_ = t.become_.or(s.become_);
        s.become_user = t.become_user.clone().or(s.become_user);
        if let Some(e) = &t.environment {
            s.env.push(e.clone());
        }
        s.check_mode = t.check_mode.or(s.check_mode);
        s.diff = t.diff.or(s.diff);
        s.no_log = t.no_log.or(s.no_log);
        s.ignore_errors = t.ignore_errors.or(s.ignore_errors);
        s
    }
}

/// Per-task settings after inheritance.
struct Settings {
    check: bool,
    diff: bool,
    no_log: bool,
    ignore_errors: bool,
    become_: Option<Become>,
}

/// What one run of a module (one loop item) did.
struct ItemOut {
    changed: bool,
    failed: bool,
    skipped: bool,
    unreachable: bool,
    msg: String,
    diff: Vec<Diff>,
    result: Json,
    facts: Option<Map<String, Json>>,
    ansible_facts: Option<Map<String, Json>>,
    include_vars: Option<Map<String, Json>>,
}

impl ItemOut {
    fn failed(msg: String) -> Self {
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

    fn skipped(cond: &str) -> Self {
        ItemOut {
            changed: false,
            failed: false,
            skipped: true,
            unreachable: false,
            result: json!({"skipped": true, "changed": false, "false_condition": cond, "skip_reason": "Conditional result was False"}),
            msg: format!("skipped: `{cond}` is false"),
            diff: Vec::new(),
            facts: None,
            ansible_facts: None,
            include_vars: None,
        }
    }

    fn outcome(&self) -> Outcome {
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

struct Runner<'a> {
    target: &'a dyn Target,
    opts: &'a Options,
    sink: &'a dyn EventSink,
    tmpl: Templater,
    host: String,
    base_dir: PathBuf,
    facts: Map<String, Json>,
    host_vars: Map<String, Json>,
    include_vars: Map<String, Json>,
    play_vars: Map<String, Json>,
    role_defaults: Map<String, Json>,
    role_vars: Map<String, Json>,
    play_env: Option<Json>,
    handlers: Vec<Handler>,
    notified: Vec<bool>,
    roles_done: HashSet<String>,
    started: bool,
    failed_task: Option<Json>,
    root: Scope,
    report: Report,
}

/// Runs `steps` on `target`: gathers facts (one round trip), then every
/// play. Task failures and an unreachable host are in the [`Report`];
/// events go to `sink` as tasks start and finish.
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
    let mut r = Runner {
        target,
        opts,
        sink,
        tmpl: Templater::new(),
        host: host.clone(),
        base_dir: steps
            .file
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
        facts: Map::new(),
        host_vars: Map::new(),
        include_vars: Map::new(),
        play_vars: Map::new(),
        role_defaults: Map::new(),
        role_vars: Map::new(),
        play_env: None,
        handlers: Vec::new(),
        notified: Vec::new(),
        roles_done: HashSet::new(),
        started: opts.start_at_task.is_none(),
        failed_task: None,
        root: Scope::default(),
        report: Report {
            host,
            ..Default::default()
        },
    };
    let t0 = Instant::now();
    r.emit(Event::StepStarted {
        build: opts.build.clone(),
        step: "Gathering Facts".into(),
    });
    let mut gathered = facts::gather(target).await;
    if matches!(&gathered, Err(e) if e.is_connection_lost()) && target.reconnect().await.is_ok() {
        gathered = facts::gather(target).await;
    }
    match gathered {
        Ok(f) => {
            r.facts = f;
            r.emit(Event::finished(
                &opts.build,
                "Gathering Facts",
                Outcome::Ok,
                t0.elapsed(),
                "",
            ));
            r.report.recap.ok += 1;
        }
        Err(e) => {
            let msg = e.to_string();
            r.emit(Event::finished(
                &opts.build,
                "Gathering Facts",
                Outcome::Failed,
                t0.elapsed(),
                format!("unreachable: {msg}"),
            ));
            r.report.recap.unreachable += 1;
            r.report.results.push(TaskResult {
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
            return r.report;
        }
    }
    for play in &steps.plays {
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

    async fn play(&mut self, play: &Play) -> Result<(), Stop> {
        self.play_vars = play.vars.clone();
        self.role_defaults = play.role_defaults.clone();
        self.role_vars = play.role_vars.clone();
        self.play_env = play.environment.clone();
        self.handlers = play.handlers.clone();
        self.notified = vec![false; self.handlers.len()];
        self.roles_done.clear();
        if let Some(name) = &play.name {
            self.emit(Event::Message {
                build: self.opts.build.clone(),
                text: format!("PLAY [{name}]"),
            });
        }
        let root = Scope {
            become_: play.become_,
            become_user: play.become_user.clone(),
            tags: play.tags.clone(),
            ..Default::default()
        };
        self.root = root.clone();
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
                    Ok(()) => {}
                    Err(Stop::EndPlay) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            match self.flush().await {
                Ok(()) => {}
                Err(Stop::EndPlay) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn flush<'s>(&'s mut self) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            while self.notified.iter().any(|n| *n) {
                for i in 0..self.handlers.len() {
                    if !self.notified[i] {
                        continue;
                    }
                    self.notified[i] = false;
                    let h = self.handlers[i].clone();
                    let mut scope = self.root.clone();
                    if let Some(r) = &h.role {
                        scope.roles.push(r.clone());
                    }
                    self.task(&h.task, &scope).await?;
                }
            }
            Ok(())
        })
    }

    fn list<'s>(&'s mut self, tasks: &'s [Task], scope: &'s Scope) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            for t in tasks {
                self.task(t, scope).await?;
            }
            Ok(())
        })
    }

    fn task<'s>(&'s mut self, t: &'s Task, scope: &'s Scope) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            match &t.action {
                Action::Module { module, args } => self.module_task(t, *module, args, scope).await,
                Action::Block {
                    block,
                    rescue,
                    always,
                } => {
                    let child = scope.child(t);
                    if let Some(l) = &t.loop_ {
                        // A looped include: the tasks once per item.
                        let ctx = self.tmpl.context(self.vars_for(&child, t, None));
                        let items = match self.loop_items(l, &ctx) {
                            Ok(i) => i,
                            Err(msg) => return self.fail_structural(t, msg),
                        };
                        for (i, item) in items.into_iter().enumerate() {
                            let mut c = child.clone();
                            c.vars.push(Arc::new(loop_vars(l, i, item, 0)));
                            self.block(block, rescue, always, &c).await?;
                        }
                        return Ok(());
                    }
                    self.block(block, rescue, always, &child).await
                }
                Action::Role {
                    name, role, params, ..
                } => {
                    let key = format!("{name}{}", Json::Object(params.clone()));
                    let mut child = scope.child(t);
                    for dep in &role.deps {
                        if let Action::Role {
                            name: dn,
                            params: dp,
                            ..
                        } = &dep.action
                        {
                            let dk = format!("{dn}{}", Json::Object(dp.clone()));
                            if self.roles_done.contains(&dk) {
                                continue;
                            }
                        }
                        self.task(dep, &child).await?;
                    }
                    self.roles_done.insert(key);
                    child.roles.push(role.clone());
                    // `vars:` of the role call are role params, like its own.
                    let mut all = t.vars.clone();
                    all.extend(params.clone());
                    if !all.is_empty() {
                        child.params.push(Arc::new(all));
                    }
                    self.list(&role.tasks, &child).await
                }
                Action::Include { file } => {
                    let child = scope.child(t);
                    let ctx = self.tmpl.context(self.vars_for(&child, t, None));
                    let path = match self.tmpl.render_str(file, &ctx) {
                        Ok(p) => t.dir.join(p),
                        Err(e) => return self.fail_structural(t, format!("include_tasks: {e}")),
                    };
                    let tasks = match crate::parse::load_tasks(&path) {
                        Ok(ts) => ts,
                        Err(d) => return self.fail_structural(t, d.to_string()),
                    };
                    let items = match &t.loop_ {
                        Some(l) => match self.loop_items(l, &ctx) {
                            Ok(i) => Some(i),
                            Err(msg) => return self.fail_structural(t, msg),
                        },
                        None => None,
                    };
                    let mut c = child.clone();
                    c.when.clear();
                    for w in &child.when {
                        match self.tmpl.cond(w, &ctx) {
                            Ok(true) => {}
                            Ok(false) => return Ok(()),
                            Err(e) => return self.fail_structural(t, e.to_string()),
                        }
                    }
                    match (items, &t.loop_) {
                        (Some(items), Some(l)) => {
                            for (i, item) in items.into_iter().enumerate() {
                                let mut c2 = c.clone();
                                c2.vars.push(Arc::new(loop_vars(l, i, item, 0)));
                                self.list(&tasks, &c2).await?;
                            }
                            Ok(())
                        }
                        _ => self.list(&tasks, &c).await,
                    }
                }
                Action::Meta(m) => {
                    let ctx = self.tmpl.context(self.vars_for(scope, t, None));
                    for w in scope.when.iter().chain(&t.when) {
                        if !self.tmpl.cond(w, &ctx).unwrap_or(false) {
                            return Ok(());
                        }
                    }
                    match m.as_str() {
                        "flush_handlers" => self.flush().await,
                        "end_play" | "end_host" | "end_batch" => Err(Stop::EndPlay),
                        "clear_facts" => {
                            self.host_vars.clear();
                            Ok(())
                        }
                        "reset_connection" => {
                            if self.target.reconnect().await.is_err() {
                                return Err(Stop::Unreachable);
                            }
                            Ok(())
                        }
                        _ => Ok(()),
                    }
                }
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
        let mut res = self.list(block, scope).await;
        if res == Err(Stop::Failed) && !rescue.is_empty() {
            self.report.recap.failed = self.report.recap.failed.saturating_sub(1);
            self.report.recap.rescued += 1;
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
        if res != Err(Stop::Unreachable) && !always.is_empty() {
            self.list(always, scope).await?;
        }
        res
    }

    fn fail_structural(&mut self, t: &Task, msg: String) -> Result<(), Stop> {
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
            task: name,
            loc: t.loc.clone(),
            item: None,
            outcome: Outcome::Failed,
            msg,
            diff: Vec::new(),
            ignored: false,
            unreachable: false,
            elapsed: Duration::ZERO,
            result: Json::Null,
        });
        Err(Stop::Failed)
    }

    fn tags_ok(&self, tags: &[String]) -> bool {
        let o = self.opts;
        let has = |list: &[String], t: &str| list.iter().any(|x| x == t);
        let inter = |a: &[String], b: &[String]| a.iter().any(|x| b.contains(x));
        if !o.skip_tags.is_empty()
            && (inter(tags, &o.skip_tags)
                || (has(&o.skip_tags, "tagged") && !tags.is_empty())
                || (has(&o.skip_tags, "untagged") && tags.is_empty()))
        {
            return false;
        }
        let never = has(tags, "never");
        if o.tags.is_empty() || has(&o.tags, "all") {
            return !never || (has(tags, "never") && inter(tags, &o.tags));
        }
        if has(tags, "always") && !has(&o.skip_tags, "always") {
            return true;
        }
        let selected = tags
            .iter()
            .any(|t| t != "never" && t != "always" && o.tags.contains(t))
            || (has(&o.tags, "tagged") && !tags.is_empty())
            || (has(&o.tags, "untagged") && tags.is_empty())
            || (never && has(&o.tags, "never"));
        selected
    }

    fn search_dirs(&self, scope: &Scope, t: &Task) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = scope.roles.iter().rev().map(|r| r.dir.clone()).collect();
        v.push((*t.dir).clone());
        if t.dir.as_path() != self.base_dir {
            v.push(self.base_dir.clone());
        }
        v
    }

    fn vars_for(
        &self,
        scope: &Scope,
        t: &Task,
        extra: Option<&Map<String, Json>>,
    ) -> Map<String, Json> {
        let mut m = Map::new();
        for (k, v) in &self.facts {
            m.insert(format!("ansible_{k}"), v.clone());
        }
        m.insert("ansible_facts".into(), Json::Object(self.facts.clone()));
        m.insert("inventory_hostname".into(), json!(self.host));
        m.insert(
            "inventory_hostname_short".into(),
            json!(self.host.split('.').next().unwrap_or("")),
        );
        m.insert("ansible_check_mode".into(), json!(self.opts.check));
        m.insert("ansible_diff_mode".into(), json!(self.opts.diff));
        m.insert(
            "playbook_dir".into(),
            json!(self.base_dir.display().to_string()),
        );
        m.insert("groups".into(), json!({"all": [self.host]}));
        m.insert("group_names".into(), json!([]));
        m.extend(self.role_defaults.clone());
        for r in &scope.roles {
            m.extend(r.defaults.clone());
        }
        m.extend(self.play_vars.clone());
        m.extend(self.role_vars.clone());
        for r in &scope.roles {
            m.extend(r.vars.clone());
        }
        if let Some(r) = scope.roles.last() {
            m.insert("role_name".into(), json!(r.name));
            m.insert("role_path".into(), json!(r.dir.display().to_string()));
        }
        for v in &scope.vars {
            m.extend((**v).clone());
        }
        m.extend(t.vars.clone());
        m.extend(self.include_vars.clone());
        m.extend(self.host_vars.clone());
        if let Some(e) = extra {
            m.extend(e.clone());
        }
        for p in &scope.params {
            m.extend((**p).clone());
        }
        m.extend(self.opts.extra_vars.clone());
        let dirs: Vec<Json> = self
            .search_dirs(scope, t)
            .iter()
            .map(|d| json!(d.display().to_string()))
            .collect();
        m.insert("__search_dirs".into(), Json::Array(dirs));
        m
    }

    fn loop_items(&self, l: &LoopSpec, ctx: &Ctx) -> Result<Vec<Json>, String> {
        let v = self
            .tmpl
            .render(&l.items, ctx)
            .map_err(|e| format!("error in loop: {e}"))?;
        Ok(match (&l.kind, v) {
            (LoopKind::Dict, Json::Object(m)) => m
                .into_iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect(),
            (LoopKind::Dict, other) => {
                return Err(format!("with_dict needs a mapping, got {other}"));
            }
            (LoopKind::Items, Json::Array(a)) => a
                .into_iter()
                .flat_map(|x| match x {
                    Json::Array(inner) => inner,
                    other => vec![other],
                })
                .collect(),
            (LoopKind::Items, Json::Null) => Vec::new(),
            (LoopKind::Items, other) => vec![other],
            (LoopKind::List, Json::Array(a)) => a,
            (LoopKind::List, other) => {
                return Err(format!(
                    "loop needs a list, got {}",
                    serde_json::to_string(&other).unwrap_or_default()
                ))
            }
        })
    }

    fn settings(&self, t: &Task, scope: &Scope) -> Settings {
        let become_on = t.become_.or(scope.become_).unwrap_or(self.opts.become_);
        let user = t
            .become_user
            .clone()
            .or_else(|| scope.become_user.clone())
            .or_else(|| self.opts.become_user.clone())
            .unwrap_or_else(|| "root".into());
        Settings {
            check: t.check_mode.or(scope.check_mode).unwrap_or(self.opts.check),
            diff: t.diff.or(scope.diff).unwrap_or(self.opts.diff),
            no_log: t.no_log.or(scope.no_log).unwrap_or(false),
            ignore_errors: t.ignore_errors.or(scope.ignore_errors).unwrap_or(false),
            become_: become_on.then_some(Become { user }),
        }
    }

    async fn module_task(
        &mut self,
        t: &Task,
        module: &'static dyn Module,
        args: &Map<String, Json>,
        scope: &Scope,
    ) -> Result<(), Stop> {
        let mut tags = scope.tags.clone();
        tags.extend(t.tags.iter().cloned());
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
        let base = self.vars_for(scope, t, None);
        let name = if raw_name.contains("{{") {
            let ctx = self.tmpl.context(base.clone());
            self.tmpl.render_str(&raw_name, &ctx).unwrap_or(raw_name)
        } else {
            raw_name
        };
        let st = self.settings(t, scope);
        self.emit(Event::StepStarted {
            build: self.opts.build.clone(),
            step: name.clone(),
        });
        let conds: Vec<String> = scope.when.iter().chain(&t.when).cloned().collect();
        let env = scope.env.iter().cloned().chain(t.environment.clone());
        let env: Vec<Json> = self.play_env.clone().into_iter().chain(env).collect();
        let search = self.search_dirs(scope, t);
        let t0 = Instant::now();

        let (outcome, register_value, any_changed, ignored) = if let Some(l) = &t.loop_ {
            let ctx = self.tmpl.context(base.clone());
            let items = match self.loop_items(l, &ctx) {
                Ok(i) => i,
                Err(msg) => vec![json!({"__loop_error": msg})],
            };
            let mut results = Vec::new();
            let (mut changed, mut failed, mut all_skipped) = (false, false, true);
            let n = items.len();
            for (i, item) in items.into_iter().enumerate() {
                if let Some(msg) = item.get("__loop_error").and_then(Json::as_str) {
                    let out = ItemOut::failed(msg.to_string());
                    self.record(t, &name, None, &out, &st, t0, false);
                    failed = true;
                    all_skipped = false;
                    break;
                }
                if i > 0 && l.pause > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(l.pause)).await;
                }
                let lv = loop_vars(l, i, item.clone(), n);
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
                let ti = Instant::now();
                let out = self
                    .attempt(t, module, args, &conds, vars, &st, &env, &search)
                    .await;
                self.apply_vars(&out);
                self.record(t, &name, Some(label), &out, &st, ti, false);
                if out.unreachable {
                    self.report.recap.unreachable += 1;
                    return Err(Stop::Unreachable);
                }
                changed |= out.changed;
                failed |= out.failed;
                all_skipped &= out.skipped;
                let mut r = out.result;
                if let Json::Object(m) = &mut r {
                    m.insert(l.loop_var.clone(), item.clone());
                    m.insert("ansible_loop_var".into(), json!(l.loop_var));
                    m.insert("item".into(), item);
                }
                results.push(r);
            }
            let outcome = if failed {
                Outcome::Failed
            } else if all_skipped && !results.is_empty() {
                Outcome::Skipped
            } else if changed {
                Outcome::Changed
            } else {
                Outcome::Ok
            };
            let mut reg = json!({"results": results, "changed": changed, "failed": failed, "msg": if failed {"One or more items failed"} else {"All items completed"}});
            if all_skipped && n > 0 {
                reg["skipped"] = json!(true);
            }
            (outcome, reg, changed, failed && st.ignore_errors)
        } else {
            let out = self
                .attempt(t, module, args, &conds, base, &st, &env, &search)
                .await;
            self.apply_vars(&out);
            self.record(t, &name, None, &out, &st, t0, true);
            if out.unreachable {
                self.report.recap.unreachable += 1;
                return Err(Stop::Unreachable);
            }
            (
                out.outcome(),
                out.result,
                out.changed,
                out.failed && st.ignore_errors,
            )
        };
        if let Some(reg) = &t.register {
            self.host_vars.insert(reg.clone(), register_value.clone());
        }
        let rc = &mut self.report.recap;
        match outcome {
            Outcome::Failed if ignored => rc.ignored += 1,
            Outcome::Failed => rc.failed += 1,
            Outcome::Skipped => rc.skipped += 1,
            Outcome::Changed => {
                rc.ok += 1;
                rc.changed += 1;
            }
            Outcome::Ok => rc.ok += 1,
        }
        if any_changed && !t.notify.is_empty() && outcome != Outcome::Failed {
            let ctx = self.tmpl.context(self.vars_for(scope, t, None));
            for n in &t.notify {
                let n = self.tmpl.render_str(n, &ctx).unwrap_or_else(|_| n.clone());
                let mut found = false;
                for (i, h) in self.handlers.iter().enumerate() {
                    if h.task.name.as_deref() == Some(n.as_str()) || h.task.listen.contains(&n) {
                        self.notified[i] = true;
                        found = true;
                    }
                }
                if !found {
                    self.emit(Event::Message {
                        build: self.opts.build.clone(),
                        text: format!("warning: task `{name}` notifies `{n}`, which is no handler"),
                    });
                }
            }
        }
        if outcome == Outcome::Failed && !ignored {
            self.failed_task = Some(json!({
                "task": {"name": name},
                "result": if st.no_log { json!({"censored": CENSORED}) } else { register_value },
            }));
            return Err(Stop::Failed);
        }
        Ok(())
    }

    fn apply_vars(&mut self, out: &ItemOut) {
        if let Some(f) = &out.facts {
            self.host_vars.extend(f.clone());
        }
        if let Some(f) = &out.ansible_facts {
            self.facts.extend(f.clone());
        }
        if let Some(f) = &out.include_vars {
            self.include_vars.extend(f.clone());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        t: &Task,
        name: &str,
        item: Option<String>,
        out: &ItemOut,
        st: &Settings,
        t0: Instant,
        _single: bool,
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

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        t: &Task,
        module: &'static dyn Module,
        args: &Map<String, Json>,
        conds: &[String],
        vars: Map<String, Json>,
        st: &Settings,
        env: &[Json],
        search: &[PathBuf],
    ) -> ItemOut {
        let ctx = self.tmpl.context(vars.clone());
        for c in conds {
            match self.tmpl.cond(c, &ctx) {
                Ok(true) => {}
                Ok(false) => return ItemOut::skipped(c),
                Err(e) => return ItemOut::failed(format!("the condition `{c}` failed: {e}")),
            }
        }
        let rendered = match self.tmpl.render(&Json::Object(args.clone()), &ctx) {
            Ok(Json::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(e) => return ItemOut::failed(format!("template error in arguments: {e}")),
        };
        let args = Args(strip_omit(rendered));
        let mut env_pairs = Vec::new();
        for e in env {
            match self.tmpl.render(e, &ctx) {
                Ok(Json::Object(m)) => {
                    for (k, v) in m {
                        env_pairs.retain(|(kk, _): &(String, String)| *kk != k);
                        env_pairs.push((k, json_to_string(&v)));
                    }
                }
                Ok(Json::Null) => {}
                Ok(other) => {
                    return ItemOut::failed(format!("environment must be a mapping, got {other}"))
                }
                Err(e) => return ItemOut::failed(format!("template error in environment: {e}")),
            }
        }
        let mctx = ModuleCtx {
            target: self.target,
            become_: st.become_.clone(),
            env: env_pairs,
            check: st.check,
            diff: st.diff,
            templates: &self.tmpl,
            vars: &ctx,
            search,
            facts: &self.facts,
        };
        let retries = match (&t.until, &t.retries) {
            (None, _) => 0,
            (Some(_), None) => 3,
            (Some(_), Some(v)) => match self.number(v, &ctx) {
                Ok(n) if n >= 0.0 => n as u32,
                Ok(n) => return ItemOut::failed(format!("retries must be >= 0, got {n}")),
                Err(e) => return ItemOut::failed(format!("retries: {e}")),
            },
        };
        let delay = match &t.delay {
            None => 5.0,
            Some(v) => match self.number(v, &ctx) {
                Ok(n) if n >= 0.0 => n,
                Ok(n) => return ItemOut::failed(format!("delay must be >= 0, got {n}")),
                Err(e) => return ItemOut::failed(format!("delay: {e}")),
            },
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = match module.run(&mctx, &args).await {
                Err(ModuleError::Target(e)) if e.is_connection_lost() => {
                    self.emit(Event::Message {
                        build: self.opts.build.clone(),
                        text: format!(
                            "{}: connection lost ({e}); reconnecting and retrying the task once",
                            self.host
                        ),
                    });
                    match self.target.reconnect().await {
                        Ok(()) => module.run(&mctx, &args).await,
                        Err(e2) => Err(ModuleError::Target(e2)),
                    }
                }
                other => other,
            };
            let r = match res {
                Ok(r) => r,
                Err(ModuleError::Target(e)) if e.is_connection_lost() => {
                    let mut o = ItemOut::failed(e.to_string());
                    o.unreachable = true;
                    return o;
                }
                Err(e) => ModuleResult::fail(e.to_string()),
            };
            let mut out = to_item(r);
            if t.changed_when.is_some() || t.failed_when.is_some() || t.until.is_some() {
                let mut v2 = vars.clone();
                if let Some(reg) = &t.register {
                    v2.insert(reg.clone(), out.result.clone());
                }
                if let Json::Object(m) = &out.result {
                    for (k, v) in m {
                        v2.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                let c2 = self.tmpl.context(v2);
                let all = |cs: &[String]| -> Result<bool, String> {
                    for c in cs {
                        match self.tmpl.cond(c, &c2) {
                            Ok(true) => {}
                            Ok(false) => return Ok(false),
                            Err(e) => return Err(format!("the condition `{c}` failed: {e}")),
                        }
                    }
                    Ok(true)
                };
                if let Some(cw) = &t.changed_when {
                    match all(cw) {
                        Ok(b) => out.changed = b,
                        Err(e) => return ItemOut::failed(e),
                    }
                }
                if let Some(fw) = &t.failed_when {
                    match all(fw) {
                        Ok(b) => {
                            out.failed = b;
                            if b && out.msg.is_empty() {
                                out.msg = format!("failed_when is true: {}", fw.join(" and "));
                            }
                        }
                        Err(e) => return ItemOut::failed(e),
                    }
                }
                if let Some(u) = &t.until {
                    match all(u) {
                        Ok(true) => {}
                        Ok(false) if attempt <= retries => {
                            self.emit(Event::Message {
                                build: self.opts.build.clone(),
                                text: format!(
                                    "FAILED - RETRYING: {} ({} retries left)",
                                    t.display_name(),
                                    retries + 1 - attempt
                                ),
                            });
                            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                            continue;
                        }
                        Ok(false) => {
                            out.failed = true;
                            if out.msg.is_empty() {
                                out.msg =
                                    format!("gave up after {attempt} attempts: until is false");
                            }
                        }
                        Err(e) => return ItemOut::failed(e),
                    }
                }
                if let Json::Object(m) = &mut out.result {
                    m.insert("changed".into(), json!(out.changed));
                    m.insert("failed".into(), json!(out.failed));
                    m.insert("attempts".into(), json!(attempt));
                }
            }
            return out;
        }
    }
}

impl Runner<'_> {
    /// A number keyword (`retries`, `delay`): a number, or a template that
    /// renders to one.
    fn number(&self, v: &Json, ctx: &Ctx) -> Result<f64, String> {
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

/// Whether a task's message is worth printing when it did not fail.
fn module_speaks(t: &Task) -> bool {
    matches!(&t.action, Action::Module { module, .. } if matches!(module.name(), "debug" | "assert" | "fail" | "pause"))
}

fn to_item(r: ModuleResult) -> ItemOut {
    let mut m = r.data.clone();
    m.insert("changed".into(), json!(r.changed));
    m.insert("failed".into(), json!(r.failed));
    if r.skipped {
        m.insert("skipped".into(), json!(true));
    }
    if let Some(msg) = &r.msg {
        m.insert("msg".into(), json!(msg));
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

fn strip_omit(m: Map<String, Json>) -> Map<String, Json> {
    m.into_iter()
        .filter(|(_, v)| v.as_str() != Some(OMIT))
        .map(|(k, v)| {
            let v = match v {
                Json::Object(inner) => Json::Object(strip_omit(inner)),
                other => other,
            };
            (k, v)
        })
        .collect()
}

fn loop_vars(l: &LoopSpec, i: usize, item: Json, n: usize) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert(l.loop_var.clone(), item);
    m.insert("ansible_loop_var".into(), json!(l.loop_var));
    if let Some(iv) = &l.index_var {
        m.insert(iv.clone(), json!(i));
        m.insert("ansible_index_var".into(), json!(iv));
    }
    m.insert(
        "ansible_loop".into(),
        json!({"index": i + 1, "index0": i, "first": i == 0, "last": n > 0 && i + 1 == n, "length": n}),
    );
    m
}

fn label_of(item: &Json) -> String {
    match item {
        Json::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
