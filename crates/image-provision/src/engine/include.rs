//! `include_tasks` and `include_role`, as ansible runs them: the include
//! is a task of its own (its `when` and loop decided once, here; one recap
//! `ok` per included item), the file or role is read when reached (a
//! module we lack on a branch never taken is no error), and the included
//! tasks inherit only the include's `vars` (and `apply:`).

use std::path::PathBuf;
use std::sync::Arc;

use image_core::events::{Event, Outcome};
use serde_json::{json, Map, Value as Json};

use super::loops::loop_vars;
use super::scope::{RoleInst, Scope};
use super::{Runner, Stop, MAX_DEPTH};
use crate::task::{Action, Task};

impl Runner<'_> {
    pub(super) async fn include(&mut self, t: &Task, scope: &Scope) -> Result<(), Stop> {
        let mut tags = scope.tags.clone();
        tags.extend(t.kw.tags.iter().cloned());
        if !self.tags_ok(&tags) {
            return Ok(());
        }
        if !self.started {
            // --start-at-task looks inside includes.
            if self.opts.start_at_task.as_deref() == t.name.as_deref() {
                self.started = true;
            }
        }
        let base = self.vars_for(scope, t, None);
        let ctx = self.tmpl.context(base.clone());
        let conds: Vec<String> = scope.when.iter().chain(&t.when).cloned().collect();
        let name = t.display_name();
        let items: Vec<Option<Map<String, Json>>> = match &t.loop_ {
            None => vec![None],
            Some(l) => match self.loop_items(l, &base, &ctx) {
                Ok(items) => (0..items.len())
                    .map(|i| Some(loop_vars(l, i, &items)))
                    .collect(),
                Err(msg) => {
                    return match self.check_when(&conds, &ctx) {
                        Some(out) if out.skipped => self.skip_include(t, &name),
                        Some(out) => self.include_failed(t, scope, out.msg),
                        None => self.include_failed(t, scope, msg),
                    };
                }
            },
        };
        if items.is_empty() {
            return self.skip_include(t, &name);
        }
        let mut ran_any = false;
        for lv in items {
            let vars = self.vars_for(scope, t, lv.as_ref());
            let ictx = self.tmpl.context(vars);
            match self.check_when(&conds, &ictx) {
                None => {}
                Some(out) if out.skipped => continue,
                Some(out) => return self.include_failed(t, scope, out.msg),
            }
            ran_any = true;
            if self.depth >= MAX_DEPTH {
                return self.fail_structural(
                    t,
                    format!("includes nested deeper than {MAX_DEPTH} (an include that includes itself?)"),
                );
            }
            self.depth += 1;
            let res = match &t.action {
                Action::IncludeTasks { file, apply } => {
                    self.include_tasks(t, file, apply.as_deref(), lv, &ictx, scope)
                        .await
                }
                Action::IncludeRole {
                    name: rname,
                    from,
                    public,
                    apply,
                    ..
                } => {
                    self.include_role(t, rname, from, *public, apply.as_deref(), lv, &ictx, scope)
                        .await
                }
                _ => Ok(()),
            };
            self.depth -= 1;
            res?;
        }
        if !ran_any {
            return self.skip_include(t, &name);
        }
        Ok(())
    }

    /// An include that could not be done: a failure of the include task
    /// (ignored with its `ignore_errors`, as ansible's).
    fn include_failed(&mut self, t: &Task, scope: &Scope, msg: String) -> Result<(), Stop> {
        let st = super::scope::Settings::of(t, scope, self.opts);
        if !st.ignore_errors {
            return self.fail_structural(t, msg);
        }
        let out = super::record::ItemOut::failed(msg);
        self.record(
            t,
            &t.display_name(),
            None,
            &out,
            &st,
            std::time::Instant::now(),
        );
        self.count(Outcome::Failed, true, false);
        Ok(())
    }

    fn skip_include(&mut self, t: &Task, name: &str) -> Result<(), Stop> {
        self.emit(Event::finished(
            &self.opts.build,
            name,
            Outcome::Skipped,
            std::time::Duration::ZERO,
            "",
        ));
        self.report.results.push(crate::TaskResult {
            task: name.to_string(),
            loc: t.loc.clone(),
            item: None,
            outcome: Outcome::Skipped,
            msg: String::new(),
            diff: Vec::new(),
            ignored: false,
            unreachable: false,
            elapsed: std::time::Duration::ZERO,
            result: json!({"skipped": true, "changed": false}),
        });
        self.count(Outcome::Skipped, false, false);
        Ok(())
    }

    /// "included: FILE": one `ok` in the recap per included item.
    fn included(&mut self, t: &Task, what: &str) {
        let name = t.display_name();
        self.emit(Event::finished(
            &self.opts.build,
            &name,
            Outcome::Ok,
            std::time::Duration::ZERO,
            format!("included: {what}"),
        ));
        self.report.results.push(crate::TaskResult {
            task: name,
            loc: t.loc.clone(),
            item: None,
            outcome: Outcome::Ok,
            msg: format!("included: {what}"),
            diff: Vec::new(),
            ignored: false,
            unreachable: false,
            elapsed: std::time::Duration::ZERO,
            result: json!({"changed": false, "include": what}),
        });
        self.count(Outcome::Ok, false, false);
    }

    /// Where an included file is: beside the including file, then (for a
    /// role's handlers and tasks) the role's `tasks/` and `handlers/`,
    /// then the step list's directory.
    fn resolve_include(&self, t: &Task, scope: &Scope, file: &str) -> PathBuf {
        let p = PathBuf::from(file);
        if p.is_absolute() {
            return p;
        }
        let mut cands = vec![t.dir.join(file)];
        if let Some(r) = scope.role() {
            cands.push(r.dir.join("tasks").join(file));
            cands.push(r.dir.join("handlers").join(file));
        }
        cands.push(self.base_dir.join(file));
        cands
            .iter()
            .find(|c| c.is_file())
            .cloned()
            .unwrap_or_else(|| cands[0].clone())
    }

    #[allow(clippy::too_many_arguments)]
    async fn include_tasks(
        &mut self,
        t: &Task,
        file: &str,
        apply: Option<&Task>,
        lv: Option<Map<String, Json>>,
        ctx: &crate::template::Ctx,
        scope: &Scope,
    ) -> Result<(), Stop> {
        let rendered = match self.tmpl.render_str(file, ctx) {
            Ok(p) => p,
            Err(e) => return self.include_failed(t, scope, format!("include_tasks `{file}`: {e}")),
        };
        let path = self.resolve_include(t, scope, &rendered);
        let loaded = match crate::parse::load_tasks(&path, &self.load) {
            Ok(l) => l,
            Err(d) => {
                self.load_failure = true;
                return self.fail_structural(
                    t,
                    format!(
                        "include_tasks {}: {}",
                        path.display(),
                        d.to_string().trim_end()
                    ),
                );
            }
        };
        self.included(t, &path.display().to_string());
        let child = scope.include(t, lv, apply);
        self.list(&loaded.value, &child).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn include_role(
        &mut self,
        t: &Task,
        name: &str,
        from: &crate::task::RoleFrom,
        public: bool,
        apply: Option<&Task>,
        lv: Option<Map<String, Json>>,
        ctx: &crate::template::Ctx,
        scope: &Scope,
    ) -> Result<(), Stop> {
        let name = match self.tmpl.render_str(name, ctx) {
            Ok(n) => n.trim().to_string(),
            Err(e) => return self.include_failed(t, scope, format!("include_role `{name}`: {e}")),
        };
        let mut from = from.clone();
        for f in [
            &mut from.tasks,
            &mut from.vars,
            &mut from.defaults,
            &mut from.handlers,
        ]
        .into_iter()
        .flatten()
        {
            match self.tmpl.render_str(f, ctx) {
                Ok(r) => *f = r,
                Err(e) => return self.include_failed(t, scope, format!("include_role: {e}")),
            }
        }
        let key = (name.clone(), from.clone(), (*t.dir).clone());
        let (role, handlers) = match self.role_cache.get(&key) {
            Some(r) => r.clone(),
            None => match crate::parse::load_role(&name, &from, &t.loc, &t.dir, &self.load) {
                Ok(l) => {
                    self.role_cache.insert(key, l.value.clone());
                    l.value
                }
                Err(d) => {
                    self.load_failure = true;
                    return self.fail_structural(
                        t,
                        format!("include_role {name}: {}", d.to_string().trim_end()),
                    );
                }
            },
        };
        // The role's handlers join the play's (once per role).
        for h in handlers {
            if !self.handlers.iter().any(|x| x.task.loc == h.task.loc) {
                self.handlers.push(h);
                self.notified.push(false);
            }
        }
        self.handler_roles.insert(name.clone());
        self.included(t, &name);
        if !self.st.play_roles.contains(&name) {
            self.st.play_roles.push(name.clone());
        }
        let child = scope.include(t, lv, apply);
        let inst = RoleInst {
            role: role.clone(),
            params: Arc::new(Map::new()),
            vars_kw: Arc::new(Map::new()),
            key: format!("include {name}{}", Json::Object(t.vars.clone())),
        };
        let res = self.run_role(inst, &child).await;
        if public {
            for (d, _) in role.all_deps() {
                self.st.role_defaults.extend(d.defaults.clone());
                self.st.role_vars.extend(d.vars.clone());
            }
            self.st.role_defaults.extend(role.defaults.clone());
            self.st.role_vars.extend(role.vars.clone());
        }
        res
    }
}
