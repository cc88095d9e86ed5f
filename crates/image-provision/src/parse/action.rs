//! What a task does: a module call (arguments checked against what the
//! module takes), an include or import, a role, `meta`, `setup`,
//! `group_by`. Names we do not know are errors when they look like a
//! misspelling, else the task fails when a run reaches it.

use std::path::PathBuf;
use std::sync::Arc;

use image_core::diag::did_you_mean;
use image_core::yaml::{Node, Value};
use serde_json::{Map, Value as Json};

use super::free_form::free_form;
use super::task::{warning, KEYWORDS};
use super::{Include, Loader};
use crate::modules::{self, FreeForm, Module};
use crate::task::{Action, RoleFrom, Task};

/// Actions the engine runs itself.
const ENGINE_ACTIONS: &[&str] = &[
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "meta",
    "import_playbook",
    "setup",
    "gather_facts",
    "group_by",
    "include",
];

/// `meta:` actions.
const METAS: &[&str] = &[
    "flush_handlers",
    "noop",
    "end_play",
    "end_host",
    "end_batch",
    "end_role",
    "clear_facts",
    "clear_host_errors",
    "refresh_inventory",
    "reset_connection",
];

/// `ansible.builtin.copy` -> `copy` (the namespaces whose modules we run
/// under their short names).
pub fn strip_fqcn(key: &str) -> &str {
    key.strip_prefix("ansible.builtin.")
        .or_else(|| key.strip_prefix("ansible.posix."))
        .or_else(|| key.strip_prefix("community.general."))
        .or_else(|| key.strip_prefix("ansible.legacy."))
        .unwrap_or(key)
}

/// The keyword or module `key` is likely a misspelling of (`None` for
/// known names, FQCNs and names close to nothing we know).
pub(super) fn typo(key: &str) -> Option<&'static str> {
    let short = strip_fqcn(key);
    if key.contains('.') || modules::lookup(key).is_some() || ENGINE_ACTIONS.contains(&short) {
        return None;
    }
    let cands = KEYWORDS
        .iter()
        .chain(modules::NAMES)
        .chain(ENGINE_ACTIONS)
        .copied();
    did_you_mean(short, cands)
}

impl Loader {
    pub(super) fn action(
        &mut self,
        k: &Node,
        v: &Node,
        args_kw: Option<&Node>,
        t: &Task,
        dir: &Arc<PathBuf>,
    ) -> Option<Action> {
        let key = k.as_key().unwrap_or_default();
        let short = strip_fqcn(&key);
        Some(match short {
            "meta" => {
                let m = v.scalar_string().unwrap_or_default();
                if !METAS.contains(&m.as_str()) {
                    self.diags.push(
                        v.error(format!("unknown meta action `{m}`"))
                            .with_help(format!("use one of: {}", METAS.join(", "))),
                    );
                } else if m == "refresh_inventory" {
                    self.diags.push(
                        v.error("meta: refresh_inventory is not supported")
                            .with_help(
                                "image-cli has no inventory: the host is given on the command line",
                            ),
                    );
                }
                Action::Meta(m)
            }
            "include" => {
                self.diags.push(
                    k.error("`include` was removed in ansible-core 2.16")
                        .with_help("use `include_tasks` or `import_tasks`"),
                );
                return None;
            }
            "import_playbook" => {
                self.diags.push(
                    k.error("import_playbook is not supported")
                        .with_help("list the plays in one file"),
                );
                return None;
            }
            "import_tasks" | "include_tasks" => {
                let (file, apply) = match &v.value {
                    Value::Map(_) => {
                        let file = v
                            .get("file")
                            .or_else(|| v.get("_raw_params"))
                            .and_then(Node::scalar_string);
                        let apply = v.get("apply").map(|a| self.apply(a, dir));
                        for (kk, _) in v.as_map().unwrap_or_default() {
                            let kn = kk.as_key().unwrap_or_default();
                            if !["file", "_raw_params", "apply"].contains(&kn.as_str()) {
                                self.diags.push(
                                    kk.error(format!("unknown key `{kn}` in {short}"))
                                        .with_help("known keys: file, apply (include_tasks only)"),
                                );
                            }
                        }
                        (file, apply.flatten())
                    }
                    _ => (v.scalar_string(), None),
                };
                let Some(file) = file.filter(|f| !f.is_empty()) else {
                    self.diags.push(
                        v.error(format!("{short} needs a file"))
                            .with_help(format!("name the task file: `{short}: other.yml`")),
                    );
                    return None;
                };
                if short == "include_tasks" {
                    if !file.contains("{{") {
                        // A role's handlers include files from its tasks/.
                        let mut p = dir.join(&file);
                        if !p.is_file() && dir.ends_with("handlers") {
                            if let Some(r) = dir.parent() {
                                p = r.join("tasks").join(&file);
                            }
                        }
                        self.includes.push(Include::Tasks(p, v.loc.clone()));
                    }
                    return Some(Action::IncludeTasks {
                        file,
                        apply: apply.map(Box::new),
                    });
                }
                if file.contains("{{") {
                    self.diags.push(
                        v.error("import_tasks needs a static file name")
                            .with_help("use include_tasks for a templated file name"),
                    );
                    return None;
                }
                if t.loop_.is_some() {
                    self.diags.push(
                        v.error("import_tasks cannot loop")
                            .with_help("use include_tasks to loop over a file"),
                    );
                }
                let tasks = self.task_file(&dir.join(&file), v).unwrap_or_default();
                Action::Block {
                    block: tasks,
                    rescue: Vec::new(),
                    always: Vec::new(),
                }
            }
            "include_role" | "import_role" => return self.role_action(short, v, t, dir),
            "setup" | "gather_facts" => Action::Facts {
                module: short.to_string(),
                args: self.plain_args(v, args_kw, short),
            },
            "group_by" => Action::GroupBy {
                args: self.plain_args(v, args_kw, short),
            },
            _ => match modules::lookup(&key) {
                Some(module) => self.module_action(module, &key, v, args_kw)?,
                None => {
                    if let Some(s) = typo(&key) {
                        self.diags.push(
                            k.error(format!("unknown module or task keyword `{key}`"))
                                .with_help(format!("did you mean `{s}`?")),
                        );
                        return None;
                    }
                    self.check_templates(v);
                    let msg = format!(
                        "module `{key}` is not available in image-cli (at {})",
                        k.loc
                    );
                    self.diags.push(
                        warning(k, format!("module `{key}` is not available in image-cli"))
                            .with_help("a run fails at this task if it is not skipped"),
                    );
                    Action::Missing { module: key, msg }
                }
            },
        })
    }

    /// `apply:` of an include: keywords for the included tasks.
    fn apply(&mut self, a: &Node, dir: &Arc<PathBuf>) -> Option<Task> {
        let Some(pairs) = a.as_map() else {
            self.diags.push(
                a.type_error("apply", "a mapping of task keywords")
                    .with_help("e.g. `apply: {become: true, tags: [x]}`"),
            );
            return None;
        };
        let mut t = self.blank_task(a, dir);
        for (k, v) in pairs {
            let key = k.as_key().unwrap_or_default();
            if self.inherit_keyword(&key, v, &mut t.kw) {
                continue;
            }
            match key.as_str() {
                "when" => t.when = self.conditions(v),
                "vars" => t.vars = self.map(v, "vars"),
                _ => self
                    .diags
                    .push(k.error(format!("`{key}` cannot be applied to included tasks")).with_help("`apply:` takes task keywords such as become, tags, when, environment, vars")),
            }
        }
        Some(t)
    }

    fn role_action(
        &mut self,
        short: &str,
        v: &Node,
        t: &Task,
        dir: &Arc<PathBuf>,
    ) -> Option<Action> {
        // `include_role: name=x tasks_from=y`: the same as a mapping.
        let kv;
        let v = match &v.value {
            Value::Str(s) => {
                let pairs = free_form(s, FreeForm::KeyValue, &[])
                    .into_iter()
                    .map(|(k, val)| {
                        let at = |value| Node {
                            value,
                            loc: v.loc.clone(),
                        };
                        (
                            at(Value::Str(k)),
                            at(Value::Str(crate::modules::json_to_string(&val))),
                        )
                    })
                    .collect();
                kv = Node {
                    value: Value::Map(pairs),
                    loc: v.loc.clone(),
                };
                &kv
            }
            _ => v,
        };
        let Some(pairs) = v.as_map() else {
            self.diags.push(
                v.type_error(short, "a mapping with `name:`")
                    .with_help(format!("e.g. `{short}: {{name: myrole}}`")),
            );
            return None;
        };
        let mut name = None;
        let mut from = RoleFrom::default();
        let mut public = None;
        let mut allow_duplicates = true;
        let mut apply = None;
        for (kk, vv) in pairs {
            let kn = kk.as_key().unwrap_or_default();
            match kn.as_str() {
                "name" | "role" => name = vv.scalar_string(),
                "tasks_from" => from.tasks = vv.scalar_string(),
                "vars_from" => from.vars = vv.scalar_string(),
                "defaults_from" => from.defaults = vv.scalar_string(),
                "handlers_from" => from.handlers = vv.scalar_string(),
                "public" => public = self.bool(vv, "public"),
                "allow_duplicates" => {
                    allow_duplicates = self.bool(vv, "allow_duplicates").unwrap_or(true)
                }
                "apply" if short == "include_role" => apply = self.apply(vv, dir),
                "rolespec_validate" => {}
                _ => self
                    .diags
                    .push(kk.error(format!("unknown key `{kn}` in {short}")).with_help("known keys: name, tasks_from, vars_from, defaults_from, handlers_from, public, allow_duplicates, apply (include_role only)")),
            }
        }
        let Some(name) = name else {
            self.diags.push(
                v.error(format!("{short} needs `name:`"))
                    .with_help(format!("name the role: `{short}: {{name: myrole}}`")),
            );
            return None;
        };
        if short == "include_role" {
            self.include_role_seen = true;
            if !name.contains("{{")
                && ![&from.tasks, &from.vars, &from.defaults, &from.handlers]
                    .iter()
                    .any(|f| f.as_deref().is_some_and(|f| f.contains("{{")))
            {
                self.includes.push(Include::Role(
                    name.clone(),
                    from.clone(),
                    (**dir).clone(),
                    v.loc.clone(),
                ));
            }
            return Some(Action::IncludeRole {
                name,
                from,
                public: public.unwrap_or(false),
                allow_duplicates,
                apply: apply.map(Box::new),
            });
        }
        if name.contains("{{") {
            self.diags.push(
                v.error("import_role needs a static role name")
                    .with_help("use include_role for a templated name"),
            );
            return None;
        }
        if t.loop_.is_some() {
            self.diags.push(
                v.error("import_role cannot loop")
                    .with_help("use include_role to loop over a role"),
            );
        }
        let role = self.role(&name, &from, v, dir)?;
        // import_role exposes its defaults and vars to the whole play.
        self.public_roles.push(role.clone());
        Some(Action::Role {
            name,
            role,
            params: Map::new(),
            dedup: false,
        })
    }

    /// Arguments of an engine action (`setup`, `group_by`), as written.
    fn plain_args(&mut self, v: &Node, args_kw: Option<&Node>, what: &str) -> Map<String, Json> {
        let mut args = Map::new();
        if let Some(a) = args_kw {
            args.extend(self.map(a, "args"));
        }
        match &v.value {
            Value::Null => {}
            Value::Map(_) => args.extend(self.map(v, what)),
            Value::Str(s) => args.extend(free_form(s, FreeForm::KeyValue, &[])),
            _ => self.diags.push(
                v.type_error(&format!("arguments of `{what}`"), "a mapping")
                    .with_help(
                        "give the arguments as a mapping, e.g. `key: value` lines under the module",
                    ),
            ),
        }
        args
    }

    fn module_action(
        &mut self,
        module: &'static dyn Module,
        key: &str,
        v: &Node,
        args_kw: Option<&Node>,
    ) -> Option<Action> {
        let mut args = Map::new();
        if let Some(a) = args_kw {
            if a.as_map().is_some() {
                args.extend(self.map(a, "args"));
            } else if a.as_str().is_some_and(|s| s.contains("{{")) {
                // `args: "{{ some_dict }}"`: known when the task runs.
                args.insert("__args_template".into(), a.to_json());
            } else {
                self.diags.push(
                    a.type_error("args", "a mapping")
                        .with_help("give `args:` as a mapping of the module's parameters"),
                );
            }
        }
        match &v.value {
            Value::Null => {}
            Value::Map(_) => {
                for (ak, av) in self.map(v, module.name()) {
                    args.insert(ak, av);
                }
            }
            Value::Str(s) => {
                args.extend(free_form(s, module.free_form(), module.params()));
            }
            _ if module.any_params() => {}
            _ => {
                self.diags.push(
                    v.type_error(
                        &format!("arguments of `{key}`"),
                        "a mapping or a `key=value` string",
                    )
                    .with_help(
                        "give the arguments as a mapping, e.g. `key: value` lines under the module",
                    ),
                );
                return None;
            }
        }
        self.check_templates(v);
        if let Some(msg) = self.check_args(module, &args, v) {
            return Some(Action::Missing {
                module: key.to_string(),
                msg,
            });
        }
        Some(Action::Module { module, args })
    }

    /// Parameters the module does not take, or required ones missing: a
    /// warning here; the message the task fails with when reached.
    fn check_args(
        &mut self,
        module: &dyn Module,
        args: &Map<String, Json>,
        at: &Node,
    ) -> Option<String> {
        if module.any_params() || args.contains_key("__args_template") {
            return None;
        }
        let params = module.params();
        let free = module.free_form() == FreeForm::Command;
        let mut unknown = Vec::new();
        for k in args.keys() {
            if params.contains(&k.as_str()) || (free && k == "_raw_params") {
                continue;
            }
            let loc = at
                .as_map()
                .and_then(|ps| ps.iter().find(|(kk, _)| kk.as_key().as_deref() == Some(k)))
                .map(|(kk, _)| kk.loc.clone())
                .unwrap_or_else(|| at.loc.clone());
            // A likely misspelling is refused now; a parameter we do not
            // have fails the task when it runs (ansible checks arguments
            // when the module runs).
            let d = match did_you_mean(k, params.iter().copied()) {
                Some(s) => image_core::diag::Diagnostic::error(
                    loc,
                    format!("unknown parameter `{k}` for module `{}`", module.name()),
                )
                .with_help(format!("did you mean `{s}`?")),
                None => image_core::diag::Diagnostic::warning(
                    loc,
                    format!("unknown parameter `{k}` for module `{}`", module.name()),
                )
                .with_help(format!(
                    "`{}` takes: {}; a run fails at this task if it is not skipped",
                    module.name(),
                    params.join(", ")
                )),
            };
            self.diags.push(d);
            unknown.push(k.clone());
        }
        if !unknown.is_empty() {
            let mut supported: Vec<&str> = params.to_vec();
            supported.sort_unstable();
            return Some(format!(
                "Unsupported parameters for ({}) module: {}. Supported parameters include: {} (at {})",
                module.name(),
                unknown.join(", "),
                supported.join(", "),
                at.loc
            ));
        }
        let mut missing = Vec::new();
        for r in module.required() {
            let alts: Vec<&str> = r.split('|').collect();
            let given = alts.iter().any(|a| args.contains_key(*a))
                || (free && args.contains_key("_raw_params"));
            if !given {
                missing.push(alts.join("` or `"));
            }
        }
        if !missing.is_empty() {
            let msg = format!(
                "module `{}` needs `{}`",
                module.name(),
                missing.join("`, `")
            );
            self.diags.push(warning(at, msg.clone()));
            return Some(format!(
                "missing required arguments: {} (at {})",
                missing.join(", "),
                at.loc
            ));
        }
        None
    }
}
