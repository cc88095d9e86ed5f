//! Tasks the engine does itself: `meta`, handlers (notify by name, by
//! `role : name` or by `listen` topic; run in definition order when
//! flushed), `setup`/`gather_facts` as tasks, `group_by`.

use image_core::events::Event;
use serde_json::{json, Map, Value as Json};

use super::record::ItemOut;
use super::scope::{Scope, Settings};
use super::{Fut, Runner, Stop};
use crate::facts;
use crate::modules::json_to_string;
use crate::task::Task;
use crate::template::Ctx;

impl Runner<'_> {
    pub(super) async fn meta(&mut self, t: &Task, m: &str, scope: &Scope) -> Result<(), Stop> {
        let ctx = self.tmpl.context(self.vars_for(scope, t, None));
        let conds: Vec<String> = scope.when.iter().chain(&t.when).cloned().collect();
        if let Some(out) = self.check_when(&conds, &ctx) {
            if out.failed {
                return self.fail_structural(t, out.msg);
            }
            self.record_meta_skip(t, m, scope);
            return Ok(());
        }
        match m {
            "flush_handlers" => self.flush().await,
            "end_play" | "end_host" | "end_batch" => Err(Stop::EndPlay),
            "end_role" => Err(Stop::EndRole),
            "clear_facts" => {
                self.st.facts.clear();
                Ok(())
            }
            "reset_connection" => {
                if self.target.reconnect().await.is_err() {
                    return Err(Stop::Unreachable);
                }
                Ok(())
            }
            // noop, clear_host_errors (one host: nothing to clear).
            _ => Ok(()),
        }
    }

    /// A meta task whose `when` is false: ansible reports the ones that
    /// evaluate it as skipped, with its reason (not counted in the recap).
    fn record_meta_skip(&mut self, t: &Task, m: &str, scope: &Scope) {
        let host = self.host.clone();
        let role = scope
            .roles
            .last()
            .map(|r| r.role.name.clone())
            .unwrap_or_default();
        let tail = match m {
            "flush_handlers" => format!(", not running handlers for {host}"),
            "clear_facts" => format!(", not clearing facts and fact cache for {host}"),
            "clear_host_errors" => format!(", not clearing host error state for {host}"),
            "end_batch" => ", continuing current batch".into(),
            "end_play" => ", continuing play".into(),
            "end_host" => format!(", continuing execution for {host}"),
            "end_role" => format!("continuing role {role} for {host}"),
            // noop, reset_connection, refresh_inventory: not reported.
            _ => return,
        };
        let reason = format!("{m} conditional evaluated to False{tail}");
        let out = ItemOut {
            skipped: true,
            msg: reason.clone(),
            result: json!({"msg": "", "skipped": true, "skip_reason": reason}),
            ..ItemOut::ok(Json::Null)
        };
        let st = Settings::of(t, scope, self.opts);
        self.record(
            t,
            &t.display_name(),
            None,
            &out,
            &st,
            std::time::Instant::now(),
        );
    }

    /// Marks the handlers `n` names (by name, `role : name`, or topic).
    pub(super) fn notify(&mut self, n: &str, from: &str) {
        let mut found = false;
        for (i, h) in self.handlers.iter().enumerate() {
            let name = h.task.name.as_deref();
            let qualified = h
                .role
                .as_ref()
                .zip(name)
                .map(|(r, hn)| format!("{} : {hn}", r.name));
            if name == Some(n)
                || qualified.as_deref() == Some(n)
                || h.task.listen.iter().any(|l| l == n)
            {
                self.notified[i] = true;
                found = true;
            }
        }
        if !found {
            self.emit(Event::Message {
                build: self.opts.build.clone(),
                text: format!("warning: task `{from}` notifies `{n}`, which is no handler"),
            });
        }
    }

    /// Runs the notified handlers, in definition order, until none is left.
    pub(super) fn flush<'s>(&'s mut self) -> Fut<'s, Result<(), Stop>> {
        Box::pin(async move {
            let mut rounds = 0;
            while self.notified.iter().any(|n| *n) && rounds < 100 {
                rounds += 1;
                for i in 0..self.handlers.len() {
                    if !self.notified[i] {
                        continue;
                    }
                    self.notified[i] = false;
                    let h = self.handlers[i].clone();
                    let mut scope = self.root.clone();
                    if let Some(r) = &h.role {
                        scope.roles.push(super::scope::RoleInst {
                            role: r.clone(),
                            params: Default::default(),
                            vars_kw: Default::default(),
                            key: String::new(),
                        });
                    }
                    match self.task(&h.task, &scope).await {
                        Ok(()) | Err(Stop::EndRole) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(())
        })
    }

    /// `setup` / `gather_facts` as a task: facts become variables.
    pub(super) async fn setup_task(
        &mut self,
        args: &Map<String, Json>,
        ctx: &Ctx,
        st: &Settings,
    ) -> ItemOut {
        let (filter, spec) = match self.tmpl.render(&Json::Object(args.clone()), ctx) {
            Ok(Json::Object(m)) => (
                m.get("filter").cloned(),
                facts::subset_spec(m.get("gather_subset")),
            ),
            Ok(_) => (None, facts::subset_spec(None)),
            Err(e) => return ItemOut::failed(format!("template error in arguments: {e}")),
        };
        let subset = facts::Subset::from_spec(&spec);
        match facts::gather_subset(self.target, st.become_.clone(), &subset).await {
            Ok(f) => {
                let f = subset.visible(f);
                let keep: Vec<String> = match &filter {
                    Some(Json::Array(a)) => a.iter().map(json_to_string).collect(),
                    Some(Json::String(s)) if !s.is_empty() => vec![s.clone()],
                    _ => Vec::new(),
                };
                let f: Map<String, Json> = f
                    .into_iter()
                    .filter(|(k, _)| {
                        keep.is_empty()
                            || keep
                                .iter()
                                .any(|p| glob_match(p, k) || glob_match(p, &facts::result_key(k)))
                    })
                    .collect();
                // The registered result names them as setup returns them.
                let named: Map<String, Json> = f
                    .iter()
                    .map(|(k, v)| (facts::result_key(k), v.clone()))
                    .collect();
                let mut out = ItemOut::ok(json!({"changed": false, "ansible_facts": named}));
                out.ansible_facts = Some(f);
                out
            }
            Err(e) => {
                let mut o = ItemOut::failed(e.to_string());
                o.unreachable = e.is_connection_lost();
                o
            }
        }
    }

    /// `group_by: key=... parents=...`: the host joins the group.
    pub(super) fn group_by(&mut self, args: &Map<String, Json>, ctx: &Ctx) -> ItemOut {
        let a = match self.tmpl.render(&Json::Object(args.clone()), ctx) {
            Ok(Json::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(e) => return ItemOut::failed(format!("template error in arguments: {e}")),
        };
        let Some(key) = a.get("key").map(json_to_string).filter(|k| !k.is_empty()) else {
            return ItemOut::failed("the 'key' param is required when using group_by".into());
        };
        let key = key.replace([' ', '-', '.', '/'], "_");
        let mut parents: Vec<String> = match a.get("parents") {
            Some(Json::Array(p)) => p.iter().map(json_to_string).collect(),
            Some(p) => vec![json_to_string(p)],
            None => vec!["all".into()],
        };
        parents.retain(|p| p != "all");
        let mut changed = false;
        for g in std::iter::once(&key).chain(parents.iter()) {
            if !self.st.groups.contains(g) {
                self.st.groups.push(g.clone());
                changed = true;
            }
        }
        let mut out =
            ItemOut::ok(json!({"changed": changed, "add_group": key, "parent_groups": parents}));
        out.changed = changed;
        out
    }
}

/// `*` globs of `setup: filter`.
fn glob_match(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((a, b)) => {
            s.starts_with(a) && s.len() >= a.len() + b.len() && glob_match_rest(b, &s[a.len()..])
        }
    }
}

fn glob_match_rest(pat: &str, s: &str) -> bool {
    if pat.is_empty() {
        return true;
    }
    (0..=s.len()).any(|i| s.is_char_boundary(i) && glob_match(pat, &s[i..]))
}
