//! Play keywords and the play's `roles:` list.

use std::path::PathBuf;
use std::sync::Arc;

use image_core::diag::did_you_mean;
use image_core::yaml::{Node, Value};
use serde_json::Map;

use super::Loader;
use crate::task::{Action, Handler, Play, RoleFrom, Task, VarsFile};

/// Every play keyword of ansible-core 2.19.
const PLAY_KEYS: &[&str] = &[
    "hosts",
    "name",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "vars",
    "vars_files",
    "vars_prompt",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "roles",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "fact_path",
    "environment",
    "tags",
    "remote_user",
    "port",
    "serial",
    "strategy",
    "throttle",
    "timeout",
    "any_errors_fatal",
    "max_fail_percentage",
    "ignore_errors",
    "ignore_unreachable",
    "connection",
    "collections",
    "module_defaults",
    "check_mode",
    "diff",
    "no_log",
    "order",
    "force_handlers",
    "run_once",
    "debugger",
];

/// Whether a list item is a play.
pub(super) fn is_play(n: &Node) -> bool {
    n.get("hosts").is_some()
        || super::import_playbook::target(n).is_some()
        || (["tasks", "roles", "pre_tasks", "post_tasks"]
            .iter()
            .any(|k| n.get(k).is_some())
            && n.get("block").is_none())
}

impl Loader {
    pub(super) fn play(&mut self, n: &Node, dir: &Arc<PathBuf>) -> Play {
        self.handlers.clear();
        self.handler_roles.clear();
        self.roles.clear();
        self.public_roles.clear();
        let mut p = Play {
            loc: Some(n.loc.clone()),
            gather_facts: true,
            ..Default::default()
        };
        let Some(pairs) = n.as_map() else {
            self.diags.push(
                n.type_error("a play", "a mapping")
                    .with_help("a play is a mapping with `hosts:` and `tasks:`"),
            );
            return p;
        };
        if let Some(k) = n.get("import_playbook") {
            self.diags.push(
                k.error("import_playbook is not supported")
                    .with_help("list the plays in one file"),
            );
            return p;
        }
        let mut sections: [Vec<Task>; 4] = Default::default();
        let mut play_handlers = Vec::new();
        for (k, v) in pairs {
            let key = k.as_key().unwrap_or_default();
            if self.inherit_keyword(&key, v, &mut p.keywords) {
                continue;
            }
            match key.as_str() {
                // One host, chosen on the command line: nothing to pick,
                // order or batch.
                "hosts" => {
                    p.hosts = v.scalar_string().or_else(|| {
                        let items = v.as_seq()?;
                        let names: Option<Vec<String>> =
                            items.iter().map(|i| i.scalar_string()).collect();
                        names.map(|n| n.join(","))
                    })
                }
                "serial" | "strategy" | "order" | "throttle" | "timeout" | "collections"
                | "debugger" | "gather_timeout" | "fact_path" => {}
                "gather_subset" => {
                    p.gather_subset = match v.as_seq() {
                        Some(items) => items.iter().filter_map(|i| i.scalar_string()).collect(),
                        None => crate::facts::subset_spec(
                            v.scalar_string().map(serde_json::Value::String).as_ref(),
                        ),
                    }
                }
                "remote_user" | "port" | "connection" => {
                    self.diags.push(
                        super::task::warning(k, format!("play keyword `{key}` has no effect"))
                            .with_help("the host and user are chosen on the command line"),
                    );
                }
                "name" => p.name = v.scalar_string(),
                "gather_facts" => p.gather_facts = self.bool(v, "gather_facts").unwrap_or(true),
                "any_errors_fatal" => {
                    p.any_errors_fatal = self.bool(v, "any_errors_fatal").unwrap_or(false)
                }
                "force_handlers" => {
                    p.force_handlers = self.bool(v, "force_handlers").unwrap_or(false)
                }
                "max_fail_percentage" => {
                    p.max_fail_percentage = v.scalar_string().and_then(|s| s.parse().ok());
                    if p.max_fail_percentage.is_none() {
                        self.diags.push(
                            v.type_error("max_fail_percentage", "a number")
                                .with_help("give a percentage, e.g. `max_fail_percentage: 20`"),
                        );
                    }
                }
                "vars" => {
                    let m = self.map(v, "vars");
                    p.vars.extend(m);
                }
                "vars_files" => p.vars_files = self.vars_files(v, dir),
                "vars_prompt" => {
                    self.diags.push(
                        k.error("vars_prompt is not supported: image-cli runs without a terminal")
                            .with_help("give the values with -e NAME=VALUE (or a vars file)"),
                    );
                }
                "pre_tasks" => sections[0] = self.tasks(v, dir, "pre_tasks"),
                "roles" => sections[1] = self.play_roles(v, dir),
                "tasks" => sections[2] = self.tasks(v, dir, "tasks"),
                "post_tasks" => sections[3] = self.tasks(v, dir, "post_tasks"),
                "handlers" => play_handlers = self.tasks(v, dir, "handlers"),
                _ => {
                    let mut d = k.error(format!("unknown play keyword `{key}`"));
                    d = match did_you_mean(&key, PLAY_KEYS.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help("play keywords are those of ansible-core (hosts, tasks, roles, handlers, vars, …); put modules under `tasks:`"),
                    };
                    self.diags.push(d);
                }
            }
        }
        for role in std::mem::take(&mut self.public_roles) {
            for (d, _) in role.all_deps() {
                p.role_defaults.extend(d.defaults.clone());
                p.role_vars.extend(d.vars.clone());
            }
            p.role_defaults.extend(role.defaults.clone());
            p.role_vars.extend(role.vars.clone());
        }
        p.sections = sections.into_iter().collect();
        // ansible's order: the roles' handlers, then the play's own.
        p.handlers = std::mem::take(&mut self.handlers);
        p.handlers.extend(
            play_handlers
                .into_iter()
                .map(|task| Handler { task, role: None }),
        );
        p
    }

    fn vars_files(&mut self, v: &Node, dir: &Arc<PathBuf>) -> Vec<VarsFile> {
        let items: Vec<&Node> = match &v.value {
            Value::Seq(s) => s.iter().collect(),
            Value::Null => Vec::new(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for i in items {
            let candidates = match &i.value {
                Value::Seq(_) => self.str_list(i, "vars_files"),
                _ => self.string(i, "vars_files").into_iter().collect(),
            };
            self.check_templates(i);
            out.push(VarsFile {
                candidates,
                loc: i.loc.clone(),
                dir: dir.clone(),
            });
        }
        out
    }

    fn play_roles(&mut self, v: &Node, dir: &Arc<PathBuf>) -> Vec<Task> {
        let Some(items) = v.as_seq() else {
            self.diags.push(
                v.type_error("roles", "a list")
                    .with_help("list the roles: `roles: [common, {role: web, port: 80}]`"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(t) = self.role_entry(item, dir, dir) {
                if let Action::Role { role, .. } = &t.action {
                    self.public_roles.push(role.clone());
                }
                out.push(t);
            }
        }
        out
    }

    /// One `roles:` or `dependencies:` entry: a name, or a mapping with
    /// `role:` (or `name:`), task keywords, `vars:` and role params.
    pub(super) fn role_entry(
        &mut self,
        item: &Node,
        dir: &Arc<PathBuf>,
        lookup_dir: &std::path::Path,
    ) -> Option<Task> {
        let mut t = self.blank_task(item, dir);
        let mut params = Map::new();
        let mut name = None;
        match &item.value {
            Value::Str(s) => name = Some(s.clone()),
            Value::Map(pairs) => {
                for (k, val) in pairs {
                    let key = k.as_key().unwrap_or_default();
                    if self.inherit_keyword(&key, val, &mut t.kw) {
                        continue;
                    }
                    match key.as_str() {
                        "role" | "name" => name = val.scalar_string(),
                        "when" => t.when = self.conditions(val),
                        "vars" => t.vars = self.map(val, "vars"),
                        _ => {
                            self.check_templates(val);
                            params.insert(key, val.to_json());
                        }
                    }
                }
            }
            _ => {
                self.diags.push(
                    item.type_error("a role", "a name or a mapping")
                        .with_help("give the role's name, or `{role: NAME, …}`"),
                );
                return None;
            }
        }
        let Some(name) = name else {
            self.diags.push(
                item.error("role entry without `role:`")
                    .with_help("name the role: `- role: NAME`"),
            );
            return None;
        };
        if name.contains("{{") {
            self.diags.push(
                item.error("a role listed in `roles:` or `dependencies:` needs a static name")
                    .with_help("use `include_role` for a templated name"),
            );
            return None;
        }
        let role = self.role(&name, &RoleFrom::default(), item, lookup_dir)?;
        t.action = Action::Role {
            name,
            role,
            params,
            dedup: true,
        };
        Some(t)
    }
}
