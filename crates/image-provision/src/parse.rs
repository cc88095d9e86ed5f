//! Loading a step list: YAML with positions -> typed [`Steps`].
//!
//! The whole tree is read and checked before anything runs: every play,
//! task, block, `import_tasks`, statically named `include_tasks`, role
//! (`roles:`, `import_role`, `include_role`, `meta` dependencies) and
//! `vars_files`. Unknown keywords and modules, unknown module parameters,
//! wrong types and Jinja syntax errors are all reported with `file:line:col`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image_core::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use image_core::yaml::{self, Node, Value};
use serde_json::{Map, Value as Json};

use crate::modules::{self, FreeForm};
use crate::task::{Action, Handler, LoopKind, LoopSpec, Play, Role, Steps, Task};
use crate::template::Templater;

/// Task keywords (everything that is not a module).
const KEYWORDS: &[&str] = &[
    "name",
    "args",
    "when",
    "loop",
    "with_items",
    "with_list",
    "with_dict",
    "loop_control",
    "register",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "retries",
    "delay",
    "until",
    "notify",
    "listen",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "environment",
    "vars",
    "tags",
    "check_mode",
    "diff",
    "no_log",
    "block",
    "rescue",
    "always",
    "run_once",
    "any_errors_fatal",
    "ignore_unreachable",
    "timeout",
    "debugger",
    "throttle",
    "collections",
    "delegate_to",
    "local_action",
    "connection",
    "async",
    "poll",
    "action",
];

/// Keywords accepted and ignored (single host, no async).
const IGNORED: &[&str] = &[
    "become_method",
    "become_flags",
    "run_once",
    "any_errors_fatal",
    "ignore_unreachable",
    "timeout",
    "debugger",
    "throttle",
    "collections",
];

/// Keywords we do not support, with why.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "delegate_to",
        "there is one target; run the step on it or locally",
    ),
    ("local_action", "there is one target"),
    ("connection", "the connection is chosen on the command line"),
    ("async", "tasks run in sequence"),
    ("poll", "tasks run in sequence"),
    ("action", "write the module as the key (`copy: ...`)"),
];

/// Modules that are really keywords of the engine.
const ENGINE_ACTIONS: &[&str] = &[
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "meta",
    "import_playbook",
];

const PLAY_KEYS: &[&str] = &[
    "hosts",
    "name",
    "become",
    "become_user",
    "become_method",
    "vars",
    "vars_files",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "roles",
    "gather_facts",
    "environment",
    "tags",
    "remote_user",
    "serial",
    "strategy",
    "any_errors_fatal",
    "max_fail_percentage",
    "connection",
    "collections",
    "module_defaults",
    "check_mode",
    "diff",
    "no_log",
    "order",
    "force_handlers",
];

/// Reads `path` and everything it pulls in. `roles_path` is searched for
/// roles after `roles/` next to the file.
pub fn load(path: &Path, roles_path: &[PathBuf]) -> Result<Steps, Diagnostics> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(Diagnostic::error(
            Location::new(path.display().to_string(), 1, 1),
            format!("cannot read step list: {e}"),
        ))
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_str(&path.display().to_string(), &src, &dir, roles_path).map(|mut s| {
        s.file = path.to_path_buf();
        s
    })
}

/// Reads a YAML/JSON variables file (`-e @vars.yml`, `vars_files`): a
/// mapping, or nothing. Errors name the file and the place.
pub fn load_vars(path: &Path) -> Result<Map<String, Json>, Diagnostics> {
    let at = || Location::new(path.display().to_string(), 1, 1);
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(Diagnostic::error(
            at(),
            format!("cannot read variables: {e}"),
        ))
    })?;
    let doc = yaml::parse(&path.display().to_string(), &text).map_err(Diagnostics::from)?;
    match doc.to_json() {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(Map::new()),
        _ => Err(Diagnostics::from(Diagnostic::error(
            at(),
            "a variables file must hold a mapping",
        ))),
    }
}

/// Parses a step list given as text; `dir` is where relative files are.
pub fn parse_str(
    name: &str,
    src: &str,
    dir: &Path,
    roles_path: &[PathBuf],
) -> Result<Steps, Diagnostics> {
    let mut l = Loader {
        roles_path: roles_path.to_vec(),
        base_dir: dir.to_path_buf(),
        diags: Diagnostics::default(),
        roles: HashMap::new(),
        loading: Vec::new(),
        handlers: Vec::new(),
        handler_roles: HashSet::new(),
        tmpl: Templater::new(),
    };
    let doc = yaml::parse(name, src).map_err(Diagnostics::from)?;
    let dir = Arc::new(dir.to_path_buf());
    let plays = l.document(&doc, &dir);
    let mut d = l.diags.sorted();
    d.0.dedup();
    d.into_result(Steps {
        file: PathBuf::from(name),
        plays,
    })
}

/// Loads a task file at run time (a templated `include_tasks`).
pub fn load_tasks(path: &Path) -> Result<Vec<Task>, Diagnostics> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut l = Loader {
        roles_path: Vec::new(),
        base_dir: dir.clone(),
        diags: Diagnostics::default(),
        roles: HashMap::new(),
        loading: Vec::new(),
        handlers: Vec::new(),
        handler_roles: HashSet::new(),
        tmpl: Templater::new(),
    };
    let at = Node {
        value: Value::Null,
        loc: Location::new(path.display().to_string(), 1, 1),
    };
    let tasks = l.task_file(path, &at).unwrap_or_default();
    l.diags.into_result(tasks)
}

struct Loader {
    roles_path: Vec<PathBuf>,
    base_dir: PathBuf,
    diags: Diagnostics,
    roles: HashMap<(String, String), Arc<Role>>,
    loading: Vec<String>,
    handlers: Vec<Handler>,
    handler_roles: HashSet<String>,
    tmpl: Templater,
}

fn is_play(n: &Node) -> bool {
    n.get("hosts").is_some()
        || (["tasks", "roles", "pre_tasks", "post_tasks"]
            .iter()
            .any(|k| n.get(k).is_some())
            && n.get("block").is_none())
}

impl Loader {
    fn document(&mut self, doc: &Node, dir: &Arc<PathBuf>) -> Vec<Play> {
        let Some(items) = doc.as_seq() else {
            if !doc.is_null() {
                self.diags
                    .push(doc.type_error("a step list", "a list of tasks or plays"));
            }
            return Vec::new();
        };
        if items.first().is_some_and(is_play) {
            items
                .iter()
                .filter_map(|n| {
                    if is_play(n) {
                        Some(self.play(n, dir))
                    } else {
                        self.diags.push(n.error(
                            "this list holds plays: every item needs `hosts:` and `tasks:`",
                        ));
                        None
                    }
                })
                .collect()
        } else {
            self.handlers.clear();
            self.handler_roles.clear();
            self.roles.clear();
            let tasks = self.tasks(doc, dir, "step list");
            vec![Play {
                loc: Some(doc.loc.clone()),
                gather_facts: true,
                sections: vec![tasks],
                handlers: std::mem::take(&mut self.handlers),
                ..Default::default()
            }]
        }
    }

    fn play(&mut self, n: &Node, dir: &Arc<PathBuf>) -> Play {
        self.handlers.clear();
        self.handler_roles.clear();
        self.roles.clear();
        let mut p = Play {
            loc: Some(n.loc.clone()),
            gather_facts: true,
            ..Default::default()
        };
        let Some(pairs) = n.as_map() else {
            self.diags.push(n.type_error("a play", "a mapping"));
            return p;
        };
        let mut sections: [Vec<Task>; 4] = Default::default();
        for (k, v) in pairs {
            let key = k.as_key().unwrap_or_default();
            match key.as_str() {
                "hosts"
                | "remote_user"
                | "serial"
                | "strategy"
                | "any_errors_fatal"
                | "max_fail_percentage"
                | "collections"
                | "order"
                | "force_handlers" => {}
                "name" => p.name = v.scalar_string(),
                "become" => p.become_ = self.bool(v, "become"),
                "become_user" => p.become_user = self.string(v, "become_user"),
                "become_method" => {}
                "gather_facts" => p.gather_facts = self.bool(v, "gather_facts").unwrap_or(true),
                "vars" => {
                    let m = self.map(v, "vars");
                    p.vars.extend(m);
                }
                "vars_files" => {
                    for f in self.str_list(v, "vars_files") {
                        if let Some(m) = self.vars_file(&dir.join(&f), v) {
                            p.vars.extend(m);
                        }
                    }
                }
                "environment" => p.environment = Some(v.to_json()),
                "tags" => p.tags = self.str_list(v, "tags"),
                "pre_tasks" => sections[0] = self.tasks(v, dir, "pre_tasks"),
                "roles" => sections[1] = self.play_roles(v, dir, &mut p),
                "tasks" => sections[2] = self.tasks(v, dir, "tasks"),
                "post_tasks" => sections[3] = self.tasks(v, dir, "post_tasks"),
                "handlers" => {
                    let hs = self.tasks(v, dir, "handlers");
                    self.handlers
                        .extend(hs.into_iter().map(|task| Handler { task, role: None }));
                }
                "connection" | "check_mode" | "diff" | "no_log" | "module_defaults" => {
                    self.diags.push(k.error(format!(
                        "play keyword `{key}` is not supported; give it on the command line or per task"
                    )));
                }
                _ => {
                    let mut d = k.error(format!("unknown play keyword `{key}`"));
                    if let Some(s) = did_you_mean(&key, PLAY_KEYS.iter().copied()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    self.diags.push(d);
                }
            }
        }
        // Role handlers come after the play's own in ansible's order only
        // for roles; keep definition order: roles' first, then the play's.
        p.sections = sections.into_iter().collect();
        p.handlers = std::mem::take(&mut self.handlers);
        p
    }

    fn play_roles(&mut self, v: &Node, dir: &Arc<PathBuf>, play: &mut Play) -> Vec<Task> {
        let Some(items) = v.as_seq() else {
            self.diags.push(v.type_error("roles", "a list"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let mut t = self.blank_task(item, dir);
            let mut params = Map::new();
            let mut name = None;
            match &item.value {
                Value::Str(s) => name = Some(s.clone()),
                Value::Map(pairs) => {
                    for (k, val) in pairs {
                        let key = k.as_key().unwrap_or_default();
                        match key.as_str() {
                            "role" | "name" => name = val.scalar_string(),
                            "when" => t.when = self.conditions(val),
                            "tags" => t.tags = self.str_list(val, "tags"),
                            "become" => t.become_ = self.bool(val, "become"),
                            "become_user" => t.become_user = self.string(val, "become_user"),
                            "environment" => t.environment = Some(val.to_json()),
                            "no_log" => t.no_log = self.bool(val, "no_log"),
                            "vars" => params.extend(self.map(val, "vars")),
                            _ => {
                                params.insert(key, val.to_json());
                            }
                        }
                    }
                }
                _ => {
                    self.diags
                        .push(item.type_error("a role", "a name or a mapping"));
                    continue;
                }
            }
            let Some(name) = name else {
                self.diags.push(item.error("role entry without `role:`"));
                continue;
            };
            if let Some(role) = self.role(&name, "main", item, dir) {
                play.role_defaults.extend(role.defaults.clone());
                play.role_vars.extend(role.vars.clone());
                t.action = Action::Role {
                    name,
                    role,
                    params,
                    public: true,
                };
                out.push(t);
            }
        }
        out
    }

    fn blank_task(&self, n: &Node, dir: &Arc<PathBuf>) -> Task {
        Task {
            name: None,
            loc: n.loc.clone(),
            action: Action::Meta("noop".into()),
            when: Vec::new(),
            loop_: None,
            register: None,
            changed_when: None,
            failed_when: None,
            ignore_errors: None,
            retries: None,
            delay: None,
            until: None,
            notify: Vec::new(),
            listen: Vec::new(),
            become_: None,
            become_user: None,
            environment: None,
            vars: Map::new(),
            tags: Vec::new(),
            check_mode: None,
            diff: None,
            no_log: None,
            dir: dir.clone(),
        }
    }

    fn tasks(&mut self, n: &Node, dir: &Arc<PathBuf>, what: &str) -> Vec<Task> {
        match &n.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items.iter().filter_map(|i| self.task(i, dir)).collect(),
            _ => {
                self.diags.push(n.type_error(what, "a list of tasks"));
                Vec::new()
            }
        }
    }

    fn task_file(&mut self, path: &Path, at: &Node) -> Option<Vec<Task>> {
        let name = path.display().to_string();
        if self.loading.contains(&name) {
            self.diags.push(at.error(format!(
                "{name} includes itself (through {})",
                self.loading.join(" -> ")
            )));
            return None;
        }
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                self.diags
                    .push(at.error(format!("cannot read {name}: {e}")));
                return None;
            }
        };
        let doc = match yaml::parse(&name, &src) {
            Ok(d) => d,
            Err(d) => {
                self.diags.push(d);
                return None;
            }
        };
        let dir = Arc::new(path.parent().map(Path::to_path_buf).unwrap_or_default());
        self.loading.push(name);
        let t = self.tasks(&doc, &dir, "a task file");
        self.loading.pop();
        Some(t)
    }

    fn vars_file(&mut self, path: &Path, at: &Node) -> Option<Map<String, Json>> {
        let name = path.display().to_string();
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                self.diags
                    .push(at.error(format!("cannot read {name}: {e}")));
                return None;
            }
        };
        match yaml::parse(&name, &src) {
            Ok(doc) => Some(self.map(&doc, "a vars file")),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn find_role_dir(&self, name: &str, dir: &Path) -> Option<PathBuf> {
        let mut cands = vec![dir.join("roles").join(name)];
        if let Some(parent) = dir.parent() {
            // Inside a role's tasks/: roles beside it.
            if let Some(gp) = parent.parent() {
                cands.push(gp.join(name));
            }
        }
        cands.push(self.base_dir.join("roles").join(name));
        cands.extend(self.roles_path.iter().map(|p| p.join(name)));
        cands.push(self.base_dir.join(name));
        cands.into_iter().find(|c| {
            ["tasks", "meta", "defaults", "handlers", "vars"]
                .iter()
                .any(|s| c.join(s).is_dir())
        })
    }

    fn role(&mut self, name: &str, tasks_from: &str, at: &Node, dir: &Path) -> Option<Arc<Role>> {
        if name.contains("{{") {
            self.diags
                .push(at.error("role names must be static (no templates)"));
            return None;
        }
        let key = (name.to_string(), tasks_from.to_string());
        if let Some(r) = self.roles.get(&key) {
            return Some(r.clone());
        }
        let Some(rdir) = self.find_role_dir(name, dir) else {
            let mut searched = vec![dir.join("roles").display().to_string()];
            searched.extend(self.roles_path.iter().map(|p| p.display().to_string()));
            self.diags.push(
                at.error(format!("role `{name}` not found"))
                    .with_help(format!(
                        "looked in {}; add --roles-path",
                        searched.join(", ")
                    )),
            );
            return None;
        };
        let tag = format!("role {name}");
        if self.loading.contains(&tag) {
            self.diags
                .push(at.error(format!("role `{name}` depends on itself")));
            return None;
        }
        self.loading.push(tag);
        let yml = |sub: &str, file: &str| -> Option<PathBuf> {
            ["yml", "yaml"]
                .iter()
                .map(|e| rdir.join(sub).join(format!("{file}.{e}")))
                .find(|p| p.is_file())
        };
        let defaults = yml("defaults", "main")
            .and_then(|p| self.vars_file(&p, at))
            .unwrap_or_default();
        let vars = yml("vars", "main")
            .and_then(|p| self.vars_file(&p, at))
            .unwrap_or_default();
        let mut deps = Vec::new();
        if let Some(meta) = yml("meta", "main") {
            deps = self.role_deps(&meta, at, &rdir);
        }
        let tasks = match yml("tasks", tasks_from) {
            Some(p) => self.task_file(&p, at).unwrap_or_default(),
            None if tasks_from != "main" => {
                self.diags
                    .push(at.error(format!("role `{name}` has no tasks/{tasks_from}.yml")));
                Vec::new()
            }
            None => Vec::new(),
        };
        let handlers = match yml("handlers", "main") {
            Some(p) => self.task_file(&p, at).unwrap_or_default(),
            None => Vec::new(),
        };
        self.loading.pop();
        let role = Arc::new(Role {
            name: name.to_string(),
            dir: rdir,
            defaults,
            vars,
            tasks,
            handlers,
            deps,
        });
        if self.handler_roles.insert(name.to_string()) {
            for h in &role.handlers {
                self.handlers.push(Handler {
                    task: h.clone(),
                    role: Some(role.clone()),
                });
            }
        }
        self.roles.insert(key, role.clone());
        Some(role)
    }

    fn role_deps(&mut self, meta: &Path, at: &Node, rdir: &Path) -> Vec<Task> {
        let name = meta.display().to_string();
        let Ok(src) = std::fs::read_to_string(meta) else {
            self.diags.push(at.error(format!("cannot read {name}")));
            return Vec::new();
        };
        let doc = match yaml::parse(&name, &src) {
            Ok(d) => d,
            Err(d) => {
                self.diags.push(d);
                return Vec::new();
            }
        };
        let Some(deps) = doc.get("dependencies") else {
            return Vec::new();
        };
        let Some(items) = deps.as_seq() else {
            self.diags.push(deps.type_error("dependencies", "a list"));
            return Vec::new();
        };
        let dir = Arc::new(rdir.join("meta"));
        let mut out = Vec::new();
        for item in items {
            let mut t = self.blank_task(item, &dir);
            let mut params = Map::new();
            let mut rname = item.as_str().map(str::to_string);
            if let Some(pairs) = item.as_map() {
                for (k, v) in pairs {
                    let key = k.as_key().unwrap_or_default();
                    match key.as_str() {
                        "role" | "name" => rname = v.scalar_string(),
                        "when" => t.when = self.conditions(v),
                        "tags" => t.tags = self.str_list(v, "tags"),
                        "become" => t.become_ = self.bool(v, "become"),
                        "vars" => params.extend(self.map(v, "vars")),
                        _ => {
                            params.insert(key, v.to_json());
                        }
                    }
                }
            }
            let Some(rname) = rname else {
                self.diags.push(item.error("dependency without `role:`"));
                continue;
            };
            let parent = rdir.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir_for_lookup = parent.parent().map(Path::to_path_buf).unwrap_or_default();
            if let Some(role) = self.role(&rname, "main", item, &dir_for_lookup) {
                t.action = Action::Role {
                    name: rname,
                    role,
                    params,
                    public: true,
                };
                out.push(t);
            }
        }
        out
    }

    fn task(&mut self, n: &Node, dir: &Arc<PathBuf>) -> Option<Task> {
        let Some(pairs) = n.as_map() else {
            self.diags.push(n.type_error("a task", "a mapping"));
            return None;
        };
        let mut t = self.blank_task(n, dir);
        let mut action: Option<(Node, Node)> = None;
        let mut args_kw: Option<&Node> = None;
        let (mut block, mut rescue, mut always) = (None, None, None);
        let mut loop_control: Option<&Node> = None;
        for (k, v) in pairs {
            let key = k.as_key().unwrap_or_default();
            match key.as_str() {
                "name" => t.name = v.scalar_string(),
                "when" => t.when = self.conditions(v),
                "loop" | "with_list" | "with_items" | "with_dict" => {
                    if t.loop_.is_some() {
                        self.diags.push(k.error("a task can have only one loop"));
                    }
                    let kind = match key.as_str() {
                        "with_items" => LoopKind::Items,
                        "with_dict" => LoopKind::Dict,
                        _ => LoopKind::List,
                    };
                    self.check_templates(v);
                    t.loop_ = Some(LoopSpec {
                        kind,
                        items: v.to_json(),
                        loop_var: "item".into(),
                        label: None,
                        index_var: None,
                        pause: 0.0,
                    });
                }
                "loop_control" => loop_control = Some(v),
                "register" => t.register = self.string(v, "register"),
                "changed_when" => t.changed_when = Some(self.conditions(v)),
                "failed_when" => t.failed_when = Some(self.conditions(v)),
                "until" => t.until = Some(self.conditions(v)),
                "ignore_errors" => t.ignore_errors = self.bool(v, "ignore_errors"),
                "retries" => {
                    t.retries = match &v.value {
                        Value::Int(i) => Some(Json::from((*i).max(0))),
                        Value::Str(s) if s.contains("{{") => {
                            self.check_templates(v);
                            Some(Json::String(s.clone()))
                        }
                        _ => {
                            self.diags.push(v.type_error("retries", "an integer"));
                            None
                        }
                    }
                }
                "delay" => {
                    t.delay = match &v.value {
                        Value::Int(i) => Some(Json::from(*i)),
                        Value::Float(f) => Some(Json::from(*f)),
                        Value::Str(s) if s.contains("{{") => {
                            self.check_templates(v);
                            Some(Json::String(s.clone()))
                        }
                        _ => {
                            self.diags
                                .push(v.type_error("delay", "a number of seconds"));
                            None
                        }
                    }
                }
                "notify" => t.notify = self.str_list(v, "notify"),
                "listen" => t.listen = self.str_list(v, "listen"),
                "become" => t.become_ = self.bool(v, "become"),
                "become_user" => t.become_user = self.string(v, "become_user"),
                "environment" => {
                    self.check_templates(v);
                    t.environment = Some(v.to_json())
                }
                "vars" => t.vars = self.map(v, "vars"),
                "tags" => t.tags = self.str_list(v, "tags"),
                "check_mode" => t.check_mode = self.bool(v, "check_mode"),
                "diff" => t.diff = self.bool(v, "diff"),
                "no_log" => t.no_log = self.bool(v, "no_log"),
                "args" => args_kw = Some(v),
                "block" => block = Some(v),
                "rescue" => rescue = Some(v),
                "always" => always = Some(v),
                k2 if IGNORED.contains(&k2) => {}
                k2 if UNSUPPORTED.iter().any(|(u, _)| *u == k2) => {
                    let why = UNSUPPORTED
                        .iter()
                        .find(|(u, _)| *u == k2)
                        .map(|(_, w)| *w)
                        .unwrap_or_default();
                    self.diags.push(
                        k.error(format!("task keyword `{key}` is not supported"))
                            .with_help(why),
                    );
                }
                _ => {
                    let short = strip_fqcn(&key);
                    if modules::lookup(&key).is_none() && !ENGINE_ACTIONS.contains(&short) {
                        let cands = KEYWORDS
                            .iter()
                            .chain(modules::NAMES)
                            .chain(ENGINE_ACTIONS)
                            .copied();
                        let mut d = k.error(format!("unknown module or task keyword `{key}`"));
                        if let Some(s) = did_you_mean(short, cands) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        self.diags.push(d);
                        return None;
                    }
                    if let Some((prev, _)) = &action {
                        self.diags.push(k.error(format!(
                            "a task runs one module, this one has `{}` and `{key}`",
                            prev.as_key().unwrap_or_default()
                        )));
                        return None;
                    }
                    action = Some((k.clone(), v.clone()));
                }
            }
        }
        if let Some(lc) = loop_control {
            self.loop_control(lc, &mut t);
        }
        if block.is_some() || rescue.is_some() || always.is_some() {
            if let Some((k, _)) = &action {
                self.diags.push(k.error("a block cannot also run a module"));
                return None;
            }
            if block.is_none() {
                self.diags
                    .push(n.error("`rescue`/`always` without `block`"));
            }
            if t.loop_.is_some() {
                self.diags
                    .push(n.error("a block cannot loop; loop over include_tasks instead"));
            }
            t.action = Action::Block {
                block: block
                    .map(|b| self.tasks(b, dir, "block"))
                    .unwrap_or_default(),
                rescue: rescue
                    .map(|b| self.tasks(b, dir, "rescue"))
                    .unwrap_or_default(),
                always: always
                    .map(|b| self.tasks(b, dir, "always"))
                    .unwrap_or_default(),
            };
            return Some(t);
        }
        let Some((k, v)) = action else {
            self.diags.push(
                n.error("task has no module")
                    .with_help("add a module such as `command:`, `copy:` or `apt:`"),
            );
            return None;
        };
        let key = k.as_key().unwrap_or_default();
        let short = strip_fqcn(&key);
        t.action = match short {
            "meta" => {
                let m = v.scalar_string().unwrap_or_default();
                const METAS: &[&str] = &[
                    "flush_handlers",
                    "noop",
                    "end_play",
                    "end_host",
                    "end_batch",
                    "clear_facts",
                    "clear_host_errors",
                    "refresh_inventory",
                    "reset_connection",
                ];
                if !METAS.contains(&m.as_str()) {
                    self.diags.push(v.error(format!(
                        "unknown meta action `{m}`; known: {}",
                        METAS.join(", ")
                    )));
                }
                Action::Meta(m)
            }
            "import_tasks" | "include_tasks" => {
                let file = match &v.value {
                    Value::Map(_) => v.get("file").and_then(Node::scalar_string),
                    _ => v.scalar_string(),
                };
                let Some(file) = file.filter(|f| !f.is_empty()) else {
                    self.diags.push(v.error(format!("{short} needs a file")));
                    return None;
                };
                if file.contains("{{") {
                    if short == "import_tasks" {
                        self.diags.push(v.error(
                            "import_tasks needs a static file name; use include_tasks for templates",
                        ));
                        return None;
                    }
                    Action::Include { file }
                } else {
                    // Resolved now; a looped include runs its tasks once per item.
                    let tasks = self.task_file(&dir.join(&file), &v).unwrap_or_default();
                    Action::Block {
                        block: tasks,
                        rescue: Vec::new(),
                        always: Vec::new(),
                    }
                }
            }
            "include_role" | "import_role" => {
                let mut r = MapReaderLite::new(&v);
                let name = r.str("name");
                let tasks_from = r.str("tasks_from").unwrap_or_else(|| "main".into());
                let public = r.bool("public").unwrap_or(short == "import_role");
                let mut params = Map::new();
                if let Some(vars) = r.node("vars") {
                    params = self.map(vars, "vars");
                }
                for k in [
                    "apply",
                    "defaults_from",
                    "vars_from",
                    "handlers_from",
                    "allow_duplicates",
                    "rolespec_validate",
                ] {
                    r.allow(k);
                }
                for d in r.unknown(short) {
                    self.diags.push(d);
                }
                let Some(name) = name else {
                    self.diags.push(v.error(format!("{short} needs `name:`")));
                    return None;
                };
                let role = self.role(&name, &tasks_from, &v, dir)?;
                Action::Role {
                    name,
                    role,
                    params,
                    public,
                }
            }
            "import_playbook" => {
                self.diags
                    .push(k.error("import_playbook is not supported; list the plays in one file"));
                return None;
            }
            _ => {
                let module = modules::lookup(&key)?;
                let mut args = Map::new();
                if let Some(a) = args_kw {
                    if a.as_map().is_some() {
                        args.extend(self.map(a, "args"));
                    } else {
                        self.diags.push(a.type_error("args", "a mapping"));
                    }
                }
                match &v.value {
                    Value::Null => {}
                    Value::Map(_) => {
                        for (ak, av) in self.map(&v, module.name()) {
                            args.insert(ak, av);
                        }
                    }
                    Value::Str(s) => {
                        args.extend(free_form(s, module.free_form(), module.params()));
                    }
                    _ if module.any_params() => {}
                    _ => {
                        self.diags.push(v.type_error(
                            &format!("arguments of `{key}`"),
                            "a mapping or a `key=value` string",
                        ));
                        return None;
                    }
                }
                self.check_args(module, &args, &v);
                self.check_templates(&v);
                Action::Module { module, args }
            }
        };
        Some(t)
    }

    fn check_args(&mut self, module: &dyn modules::Module, args: &Map<String, Json>, at: &Node) {
        if module.any_params() {
            return;
        }
        let params = module.params();
        let free = module.free_form() == FreeForm::Command;
        for k in args.keys() {
            if params.contains(&k.as_str()) || (free && k == "_raw_params") {
                continue;
            }
            let loc = at
                .as_map()
                .and_then(|ps| ps.iter().find(|(kk, _)| kk.as_key().as_deref() == Some(k)))
                .map(|(kk, _)| kk.loc.clone())
                .unwrap_or_else(|| at.loc.clone());
            let mut d = Diagnostic::error(
                loc,
                format!("unknown parameter `{k}` for module `{}`", module.name()),
            );
            d = match did_you_mean(k, params.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("`{}` takes: {}", module.name(), params.join(", "))),
            };
            self.diags.push(d);
        }
        for r in module.required() {
            let alts: Vec<&str> = r.split('|').collect();
            let given = alts.iter().any(|a| args.contains_key(*a))
                || (free && args.contains_key("_raw_params"));
            if !given {
                self.diags.push(at.error(format!(
                    "module `{}` needs `{}`",
                    module.name(),
                    alts.join("` or `")
                )));
            }
        }
    }

    fn loop_control(&mut self, n: &Node, t: &mut Task) {
        let Some(l) = t.loop_.as_mut() else {
            self.diags.push(n.error("loop_control without a loop"));
            return;
        };
        let Some(pairs) = n.as_map() else {
            self.diags.push(n.type_error("loop_control", "a mapping"));
            return;
        };
        for (k, v) in pairs {
            match k.as_key().unwrap_or_default().as_str() {
                "loop_var" => l.loop_var = v.scalar_string().unwrap_or_else(|| "item".into()),
                "label" => l.label = v.scalar_string(),
                "index_var" => l.index_var = v.scalar_string(),
                "pause" => l.pause = v.scalar_string().and_then(|s| s.parse().ok()).unwrap_or(0.0),
                "extended" | "extended_allitems" => {}
                other => self.diags.push(k.error(format!(
                    "unknown key `{other}` in loop_control (loop_var, label, index_var, pause, extended)"
                ))),
            }
        }
    }

    fn conditions(&mut self, v: &Node) -> Vec<String> {
        let items: Vec<&Node> = match &v.value {
            Value::Seq(s) => s.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for i in items {
            let expr = match &i.value {
                Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
                Value::Str(s) => strip_braces(s),
                Value::Int(_) | Value::Float(_) => i.scalar_string().unwrap_or_default(),
                _ => {
                    self.diags
                        .push(i.type_error("a condition", "an expression"));
                    continue;
                }
            };
            if let Err(e) = self.tmpl.check_expr(&expr) {
                self.diags
                    .push(i.error(format!("bad condition `{expr}`: {e}")));
            }
            out.push(expr);
        }
        out
    }

    fn check_templates(&mut self, n: &Node) {
        match &n.value {
            Value::Str(s) if s.contains("{{") || s.contains("{%") => {
                if let Err(e) = self.tmpl.check_template(s) {
                    self.diags.push(n.error(format!("bad template: {e}")));
                }
            }
            Value::Seq(items) => items.iter().for_each(|i| self.check_templates(i)),
            Value::Map(pairs) => pairs.iter().for_each(|(_, v)| self.check_templates(v)),
            _ => {}
        }
    }

    fn map(&mut self, v: &Node, what: &str) -> Map<String, Json> {
        match v.to_json() {
            Json::Object(m) => {
                self.check_templates(v);
                m
            }
            Json::Null => Map::new(),
            _ => {
                self.diags.push(v.type_error(what, "a mapping"));
                Map::new()
            }
        }
    }

    fn bool(&mut self, v: &Node, what: &str) -> Option<bool> {
        let b = v.as_bool_loose();
        if b.is_none() {
            self.diags.push(v.type_error(what, "a boolean"));
        }
        b
    }

    fn string(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.value {
            Value::Seq(_) | Value::Map(_) => {
                self.diags.push(v.type_error(what, "a string"));
                None
            }
            _ => v.scalar_string(),
        }
    }

    fn str_list(&mut self, v: &Node, what: &str) -> Vec<String> {
        match &v.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items.iter().filter_map(|i| self.string(i, what)).collect(),
            Value::Map(_) => {
                self.diags.push(v.type_error(what, "a string or a list"));
                Vec::new()
            }
            _ => v
                .scalar_string()
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// A minimal reader for include_role's mapping.
struct MapReaderLite<'a> {
    node: &'a Node,
    asked: Vec<&'static str>,
}

impl<'a> MapReaderLite<'a> {
    fn new(node: &'a Node) -> Self {
        MapReaderLite {
            node,
            asked: Vec::new(),
        }
    }
    fn node(&mut self, k: &'static str) -> Option<&'a Node> {
        self.asked.push(k);
        self.node.get(k)
    }
    fn str(&mut self, k: &'static str) -> Option<String> {
        self.node(k).and_then(Node::scalar_string)
    }
    fn bool(&mut self, k: &'static str) -> Option<bool> {
        self.node(k).and_then(Node::as_bool_loose)
    }
    fn allow(&mut self, k: &'static str) {
        self.asked.push(k);
    }
    fn unknown(&self, what: &str) -> Vec<Diagnostic> {
        self.node
            .as_map()
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| !self.asked.iter().any(|a| Some(*a) == k.as_key().as_deref()))
            .map(|(k, _)| {
                k.error(format!(
                    "unknown key `{}` in {what}",
                    k.as_key().unwrap_or_default()
                ))
            })
            .collect()
    }
}

fn strip_fqcn(key: &str) -> &str {
    key.strip_prefix("ansible.builtin.")
        .or_else(|| key.strip_prefix("ansible.posix."))
        .or_else(|| key.strip_prefix("community.general."))
        .or_else(|| key.strip_prefix("ansible.legacy."))
        .unwrap_or(key)
}

/// `"{{ x }}"` -> `x` (ansible warns about braces in `when`; we accept them).
pub fn strip_braces(s: &str) -> String {
    let t = s.trim();
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        if !inner.contains("{{") {
            return inner.trim().to_string();
        }
    }
    t.to_string()
}

/// Splits a free-form argument string into `key=value` pairs; for
/// [`FreeForm::Command`] modules the words that are not known parameters
/// form `_raw_params`, which keeps the original text (newlines and spacing
/// of a multi-line `shell: |` script) minus the parameters taken out.
pub fn free_form(s: &str, kind: FreeForm, params: &[&str]) -> Map<String, Json> {
    let mut out = Map::new();
    let mut raw = String::new();
    let mut last = 0;
    let mut any_raw = false;
    for (a, b) in split_words(s) {
        let word = &s[a..b];
        let kv = word.split_once('=').filter(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        let take = kv.is_some_and(|(k, _)| kind == FreeForm::KeyValue || params.contains(&k));
        match kv {
            Some((k, _)) if take => {
                let v = unquote(&word[k.len() + 1..]);
                out.insert(k.to_string(), Json::String(v));
                raw.push_str(&s[last..a]);
                // The blanks after a parameter go with it.
                last = b + s[b..].len() - s[b..].trim_start_matches([' ', '\t']).len();
            }
            _ => any_raw = true,
        }
    }
    if any_raw {
        raw.push_str(&s[last..]);
        let raw = if last == 0 {
            raw
        } else {
            raw.trim().to_string()
        };
        out.insert("_raw_params".into(), Json::String(raw));
    }
    out
}

/// Byte spans of the words of a command line, split on unquoted blanks
/// (outside `{...}` so that templates stay one word).
fn split_words(s: &str) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') => quote = Some(c),
            None if c == '{' => depth += 1,
            None if c == '}' => depth -= 1,
            None if c.is_whitespace() && depth <= 0 => {
                if let Some(a) = start.take() {
                    words.push((a, i));
                }
                continue;
            }
            None => {}
        }
        start.get_or_insert(i);
    }
    if let Some(a) = start {
        words.push((a, s.len()));
    }
    words
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_form_key_values() {
        let m = free_form(
            "path=/x state=directory mode='0755'",
            FreeForm::KeyValue,
            &[],
        );
        assert_eq!(m["path"], "/x");
        assert_eq!(m["mode"], "0755");
        let c = free_form(
            "echo a=b chdir=/tmp",
            FreeForm::Command,
            &["chdir", "creates"],
        );
        assert_eq!(c["chdir"], "/tmp");
        assert_eq!(c["_raw_params"], "echo a=b");
        // A multi-line script keeps its lines.
        let script = "set -eu\nfound=\"$(echo x)\"\necho \"got $found\"\n";
        let c = free_form(script, FreeForm::Command, &["chdir", "creates"]);
        assert_eq!(c["_raw_params"], script);
        let c = free_form(
            "creates=/x\nset -eu\necho hi",
            FreeForm::Command,
            &["chdir", "creates"],
        );
        assert_eq!(c["creates"], "/x");
        assert_eq!(c["_raw_params"], "set -eu\necho hi");
    }

    #[test]
    fn unknown_module_has_location() {
        let src = "- name: x\n  copyy:\n    dest: /x\n";
        let e = parse_str("s.yaml", src, Path::new("."), &[]).err().unwrap();
        let s = e.to_string();
        assert!(
            s.contains("s.yaml:2:3: error: unknown module or task keyword `copyy`"),
            "{s}"
        );
        assert!(s.contains("did you mean `copy`?"), "{s}");
    }

    #[test]
    fn unknown_param_has_location() {
        let src = "- file:\n    path: /x\n    stat: directory\n";
        let e = parse_str("s.yaml", src, Path::new("."), &[]).err().unwrap();
        let s = e.to_string();
        assert!(
            s.contains("s.yaml:3:5: error: unknown parameter `stat` for module `file`"),
            "{s}"
        );
    }

    #[test]
    fn bad_condition_is_reported() {
        let src = "- debug: msg=x\n  when: a ==\n";
        let e = parse_str("s.yaml", src, Path::new("."), &[]).err().unwrap();
        assert!(
            e.to_string().contains("s.yaml:2:9: error: bad condition"),
            "{e}"
        );
    }
}
