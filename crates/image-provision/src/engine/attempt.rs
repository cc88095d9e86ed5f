//! One module run for one task or loop item: arguments (with
//! `module_defaults` under them, `omit` dropped), environment, the target
//! (this host, or the controller for `delegate_to: localhost`), then
//! `until`/`retries`/`delay` and `changed_when`/`failed_when`.

use std::time::Duration;

use image_core::events::Event;
use image_core::target::Target;
use serde_json::{json, Map, Value as Json};

use super::record::{to_item, ItemOut};
use super::scope::{Scope, Settings};
use super::Runner;
use crate::modules::{json_to_string, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::task::Task;
use crate::template::{Ctx, Layers, OMIT};

/// Names that mean the controller.
const LOCALHOST: &[&str] = &["localhost", "127.0.0.1", "::1"];

impl Runner<'_> {
    /// The target a task runs on.
    fn delegate(&self, st: &Settings, ctx: &Ctx) -> Result<(&dyn Target, bool), String> {
        let Some(d) = &st.delegate_to else {
            return Ok((self.target, false));
        };
        let d = self
            .tmpl
            .render_str(d, ctx)
            .map_err(|e| format!("delegate_to: {e}"))?;
        if d == self.host || d.is_empty() || d == OMIT {
            Ok((self.target, false))
        } else if LOCALHOST.contains(&d.as_str()) {
            Ok((&self.local, true))
        } else {
            Err(format!(
                "delegate_to `{d}`: image-cli runs a step list on one host; only `localhost` (this machine) can be delegated to"
            ))
        }
    }

    /// `module_defaults` for `module`, outermost first, rendered.
    fn module_defaults(
        &self,
        scope: &Scope,
        t: &Task,
        module: &str,
        ctx: &Ctx,
    ) -> Result<Map<String, Json>, String> {
        let mut out = Map::new();
        let layers = scope
            .module_defaults
            .iter()
            .chain(t.kw.module_defaults.iter());
        for layer in layers {
            let maps: Vec<&Json> = match layer {
                Json::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for m in maps {
                let Json::Object(m) = m else { continue };
                for (k, v) in m {
                    let short = crate::parse::strip_fqcn(k);
                    if short == module {
                        let r = self
                            .tmpl
                            .render(v, ctx)
                            .map_err(|e| format!("module_defaults: {e}"))?;
                        if let Json::Object(a) = r {
                            out.extend(a);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// What a module runs with for one task or item: the rendered
    /// arguments (module defaults under them, `omit` dropped), the
    /// environment, the target and the search path; or why the item
    /// fails.
    pub(super) fn prepare(
        &self,
        t: &Task,
        module: &'static dyn Module,
        args: &Map<String, Json>,
        ctx: &Ctx,
        scope: &Scope,
        st: &Settings,
    ) -> Result<Prepared<'_>, String> {
        let mut all = self.module_defaults(scope, t, module.name(), ctx)?;
        let mut args = args.clone();
        if let Some(tmpl) = args.remove("__args_template") {
            match self.tmpl.render(&tmpl, ctx) {
                Ok(Json::Object(m)) => {
                    for (k, v) in m {
                        args.entry(k).or_insert(v);
                    }
                }
                Ok(other) => return Err(format!("args must be a mapping, got {other}")),
                Err(e) => return Err(format!("template error in args: {e}")),
            }
        }
        let rendered = match self.tmpl.render(&Json::Object(args), ctx) {
            Ok(Json::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(e) => return Err(format!("template error in arguments: {e}")),
        };
        all.extend(rendered);
        let args = Args(strip_omit(all));
        let mut env: Vec<(String, String)> = Vec::new();
        for e in scope.env.iter().chain(t.kw.environment.iter()) {
            match self.tmpl.render(e, ctx) {
                Ok(Json::Object(m)) => {
                    for (k, v) in m {
                        env.retain(|(kk, _)| *kk != k);
                        env.push((k, json_to_string(&v)));
                    }
                }
                Ok(Json::Null) => {}
                Ok(other) => return Err(format!("environment must be a mapping, got {other}")),
                Err(e) => return Err(format!("template error in environment: {e}")),
            }
        }
        let (target, local) = self.delegate(st, ctx)?;
        Ok(Prepared {
            args,
            env,
            target,
            local,
            search: self.search_dirs(scope, t),
        })
    }

    /// Runs the module (or takes `pre`, the result a loop's batched
    /// check already had for this item, see `batch`), then applies
    /// `until`/`retries`, `changed_when` and `failed_when`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn attempt(
        &self,
        t: &Task,
        module: &'static dyn Module,
        args: &Map<String, Json>,
        vars: Layers,
        st: &Settings,
        scope: &Scope,
        mut pre: Option<ModuleResult>,
    ) -> ItemOut {
        let ctx = self.tmpl.context(vars.clone());
        let p = if pre.is_some() {
            None
        } else {
            match self.prepare(t, module, args, &ctx, scope, st) {
                Ok(p) => Some(p),
                Err(msg) => return ItemOut::failed(msg),
            }
        };
        let mctx = p.as_ref().map(|p| ModuleCtx {
            target: p.target,
            become_: st.become_.clone(),
            env: p.env.clone(),
            check: st.check,
            probe: false,
            diff: st.diff,
            templates: &self.tmpl,
            vars: &ctx,
            search: &p.search,
            facts: &self.module_facts,
        });
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
            let res = match (pre.take(), &p, &mctx) {
                (Some(r), _, _) => Ok(r),
                (None, Some(p), Some(mctx)) => self.run_once(module, mctx, p).await,
                _ => Err(ModuleError::Arg(
                    "internal: a batched result was used twice".into(),
                )),
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
                        v2.insert_missing(k, || v.clone());
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

/// What a module runs with (see [`Runner::prepare`]).
pub(super) struct Prepared<'r> {
    /// The rendered arguments.
    pub args: Args,
    /// `environment:`.
    pub env: Vec<(String, String)>,
    /// This host, or the controller when delegated to it.
    pub target: &'r dyn Target,
    /// True when `target` is the controller.
    pub local: bool,
    /// Where `src:` files are searched.
    pub search: Vec<std::path::PathBuf>,
}

impl Runner<'_> {
    /// One module run; a lost connection is retried once after a
    /// reconnect.
    async fn run_once(
        &self,
        module: &'static dyn Module,
        mctx: &ModuleCtx<'_>,
        p: &Prepared<'_>,
    ) -> Result<ModuleResult, ModuleError> {
        match module.run(mctx, &p.args).await {
            Err(ModuleError::Target(e)) if e.is_connection_lost() => {
                self.emit(Event::Message {
                    build: self.opts.build.clone(),
                    text: format!(
                        "{}: connection lost ({e}); reconnecting and retrying the task once",
                        self.host
                    ),
                });
                match p.target.reconnect().await {
                    Ok(()) => module.run(mctx, &p.args).await,
                    Err(e2) => Err(ModuleError::Target(e2)),
                }
            }
            other => other,
        }
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
