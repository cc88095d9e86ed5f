//! Task keywords: one task (module call, block, include or role) from its
//! YAML mapping, with every keyword typed once.

use std::path::PathBuf;
use std::sync::Arc;

use image_core::diag::{did_you_mean, Diagnostic};
use image_core::yaml::{Node, Value};
use serde_json::Map;

use super::Loader;
use crate::task::{Action, Inherit, LoopKind, LoopSpec, Task};

/// Task keywords of ansible-core 2.19 (everything that is not a module).
pub(super) const KEYWORDS: &[&str] = &[
    "name",
    "args",
    "action",
    "local_action",
    "when",
    "loop",
    "loop_control",
    "register",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "retries",
    "delay",
    "until",
    "notify",
    "listen",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
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
    "timeout",
    "debugger",
    "throttle",
    "collections",
    "delegate_to",
    "delegate_facts",
    "connection",
    "async",
    "poll",
    "module_defaults",
    "remote_user",
    "port",
];

/// Keywords ansible-core accepts on `include_tasks` / `include_role`.
const INCLUDE_KEYWORDS: &[&str] = &[
    "action",
    "args",
    "collections",
    "debugger",
    "ignore_errors",
    "loop",
    "loop_control",
    "name",
    "no_log",
    "register",
    "run_once",
    "tags",
    "timeout",
    "vars",
    "when",
];

/// `with_<lookup>` loops we run.
pub(super) const WITH: &[&str] = &[
    "items",
    "list",
    "dict",
    "together",
    "sequence",
    "nested",
    "cartesian",
    "subelements",
    "first_found",
    "fileglob",
    "indexed_items",
    "flattened",
    "random_choice",
    "lines",
    "file",
    "env",
    "inventory_hostnames",
];

/// Whether a `loop:` value can give a list: a list, or a template (which
/// must render to one when the task runs).
fn loopable(v: &Node) -> bool {
    match &v.value {
        Value::Seq(_) | Value::Null => true,
        Value::Str(s) => s.contains("{{") || s.contains("{%"),
        _ => false,
    }
}

/// A warning at a node.
pub(super) fn warning(n: &Node, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::warning(n.loc.clone(), msg)
}

impl Loader {
    pub(super) fn blank_task(&self, n: &Node, dir: &Arc<PathBuf>) -> Task {
        Task {
            name: None,
            loc: n.loc.clone(),
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
            kw: Inherit::default(),
            vars: Map::new(),
            dir: dir.clone(),
        }
    }

    /// Keywords shared by plays, blocks, roles and tasks; true when `key`
    /// was one.
    pub(super) fn inherit_keyword(&mut self, key: &str, v: &Node, kw: &mut Inherit) -> bool {
        match key {
            "become" => kw.become_ = self.bool(v, "become"),
            "become_user" => kw.become_user = self.string(v, "become_user"),
            "become_method" => {
                let m = self.string(v, "become_method");
                if m.as_deref()
                    .is_some_and(|m| m != "sudo" && !m.contains("{{"))
                {
                    self.diags.push(
                        v.error(format!(
                            "become_method `{}` is not supported",
                            m.clone().unwrap_or_default()
                        ))
                        .with_help("image-cli becomes another user with sudo"),
                    );
                }
                kw.become_method = m;
            }
            "become_flags" | "become_exe" => {}
            "environment" => {
                self.check_templates(v);
                kw.environment = Some(v.to_json());
            }
            "check_mode" => kw.check_mode = self.bool(v, "check_mode"),
            "diff" => kw.diff = self.bool(v, "diff"),
            "no_log" => kw.no_log = self.bool(v, "no_log"),
            "ignore_errors" => kw.ignore_errors = self.bool(v, "ignore_errors"),
            "ignore_unreachable" => kw.ignore_unreachable = self.bool(v, "ignore_unreachable"),
            "any_errors_fatal" => kw.any_errors_fatal = self.bool(v, "any_errors_fatal"),
            "run_once" => kw.run_once = self.bool(v, "run_once"),
            "delegate_facts" => kw.delegate_facts = self.bool(v, "delegate_facts"),
            "delegate_to" => {
                self.check_templates(v);
                kw.delegate_to = self.string(v, "delegate_to");
            }
            "module_defaults" => {
                self.check_templates(v);
                match &v.value {
                    Value::Map(_) | Value::Seq(_) => kw.module_defaults = Some(v.to_json()),
                    _ => self.diags.push(
                        v.type_error("module_defaults", "a mapping of module -> arguments")
                            .with_help("e.g. `module_defaults: {apt: {update_cache: true}}`"),
                    ),
                }
            }
            "tags" => kw.tags = self.str_list(v, "tags"),
            // One host, run in sequence: nothing to throttle; no debugger.
            "throttle" | "timeout" | "debugger" | "collections" => {}
            _ => return false,
        }
        true
    }

    pub(super) fn task(&mut self, n: &Node, dir: &Arc<PathBuf>) -> Option<Task> {
        let Some(pairs) = n.as_map() else {
            self.diags
                .push(n.type_error("a task", "a mapping").with_help(
                    "a task is a mapping such as `- name: x` with `command: /bin/true`",
                ));
            return None;
        };
        let mut t = self.blank_task(n, dir);
        let mut action: Option<(Node, Node)> = None;
        let mut args_kw: Option<&Node> = None;
        let (mut block, mut rescue, mut always) = (None, None, None);
        let mut loop_control: Option<&Node> = None;
        let mut poll: Option<&Node> = None;
        let mut async_: Option<&Node> = None;
        // A misspelt module was reported: "no module" would say it twice.
        let mut typo_reported = false;
        for (k, v) in pairs {
            let key = k.as_key().unwrap_or_default();
            if self.inherit_keyword(&key, v, &mut t.kw) {
                continue;
            }
            match key.as_str() {
                "name" => t.name = v.scalar_string(),
                "when" => t.when = self.conditions(v),
                "loop" => self.set_loop(&mut t, k, v, LoopKind::Loop),
                w if w.starts_with("with_") => {
                    let what = &w[5..];
                    if !WITH.contains(&what) {
                        let mut d = k.error(format!("unknown loop `{w}`"));
                        d = match did_you_mean(what, WITH.iter().copied()) {
                            Some(s) => d.with_help(format!("did you mean `with_{s}`?")),
                            None => d.with_help("use `loop:` with a list or a template"),
                        };
                        self.diags.push(d);
                        continue;
                    }
                    let kind = match what {
                        "cartesian" => "nested",
                        other => other,
                    };
                    self.set_loop(&mut t, k, v, LoopKind::With(kind.to_string()));
                }
                "loop_control" => loop_control = Some(v),
                "register" => {
                    t.register = self.string(v, "register");
                    if let Some(r) = t.register.take() {
                        if super::values::valid_var_name(&r) {
                            t.register = Some(r);
                        } else {
                            self.diags.push(v.error(format!("invalid variable name `{r}` in `register`")).with_help(
                                "a variable name starts with an ASCII letter or `_` and has only letters, digits and `_`; true, false, none (in any of Jinja's spellings) and not are taken",
                            ));
                        }
                    }
                }
                "changed_when" => t.changed_when = Some(self.conditions(v)),
                "failed_when" => t.failed_when = Some(self.conditions(v)),
                "until" => t.until = Some(self.conditions(v)),
                "retries" => t.retries = self.number_or_template(v, "retries"),
                "delay" => t.delay = self.number_or_template(v, "delay"),
                "notify" => {
                    t.notify = self.str_list(v, "notify");
                    let at: Vec<(String, _)> = match &v.value {
                        Value::Seq(items) => items
                            .iter()
                            .filter_map(|i| Some((i.scalar_string()?, i.loc.clone())))
                            .collect(),
                        _ => t
                            .notify
                            .iter()
                            .map(|n| (n.clone(), v.loc.clone()))
                            .collect(),
                    };
                    self.notify_at.insert(t.loc.clone(), at);
                }
                "listen" => t.listen = self.str_list(v, "listen"),
                "vars" => t.vars = self.map(v, "vars"),
                "args" => args_kw = Some(v),
                "block" => block = Some(v),
                "rescue" => rescue = Some(v),
                "always" => always = Some(v),
                "async" => async_ = Some(v),
                "poll" => poll = Some(v),
                "connection" => match v.scalar_string().as_deref() {
                    Some("local") => t.kw.delegate_to = Some("localhost".into()),
                    _ => self.diags.push(
                        warning(k, "task keyword `connection` has no effect")
                            .with_help("the connection is chosen on the command line"),
                    ),
                },
                "remote_user" | "port" => self.diags.push(
                    warning(k, format!("task keyword `{key}` has no effect"))
                        .with_help("the host and user are chosen on the command line"),
                ),
                "local_action" | "action" => {
                    if key == "local_action" {
                        t.kw.delegate_to = Some("localhost".into());
                    }
                    match self.action_keyword(v) {
                        Some((mk, mv)) => {
                            if action.is_some() {
                                self.diags.push(
                                    k.error("a task runs one module")
                                        .with_help("split it into two tasks"),
                                );
                                return None;
                            }
                            action = Some((mk, mv));
                        }
                        None => return None,
                    }
                }
                _ => {
                    if let Some(s) = super::action::typo(&key) {
                        self.diags.push(
                            k.error(format!("unknown module or task keyword `{key}`"))
                                .with_help(format!("did you mean `{s}`?")),
                        );
                        typo_reported = true;
                        continue;
                    }
                    if let Some((prev, _)) = &action {
                        self.diags.push(
                            k.error(format!(
                                "a task runs one module, this one has `{}` and `{key}`",
                                prev.as_key().unwrap_or_default()
                            ))
                            .with_help("split it into two tasks (is the indentation of the module's arguments right?)"),
                        );
                        return None;
                    }
                    action = Some((k.clone(), v.clone()));
                }
            }
        }
        if let Some(p) = poll {
            if p.scalar_string().as_deref() == Some("0") {
                self.diags.push(
                    p.error("`poll: 0` (fire and forget) is not supported")
                        .with_help("tasks run in sequence; drop `async`/`poll` to wait for it"),
                );
            }
        }
        // `async: N` with polling waits for the task: it runs in sequence.
        let _ = async_;
        if let Some(lc) = loop_control {
            self.loop_control(lc, &mut t);
        }
        if block.is_some() || rescue.is_some() || always.is_some() {
            if let Some((k, _)) = &action {
                self.diags.push(
                    k.error("a block cannot also run a module")
                        .with_help("move the module into a task under `block:`"),
                );
                return None;
            }
            if block.is_none() {
                self.diags.push(
                    n.error("`rescue`/`always` without `block`")
                        .with_help("add the tasks to protect under `block:`"),
                );
            }
            if t.loop_.is_some() {
                self.diags.push(
                    n.error("a block cannot loop")
                        .with_help("move the block to a file and loop over `include_tasks`"),
                );
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
            if typo_reported {
                return None;
            }
            self.diags.push(
                n.error("task has no module")
                    .with_help("add a module such as `command:`, `copy:` or `apt:`"),
            );
            return None;
        };
        t.action = self.action(&k, &v, args_kw, &t, dir)?;
        if matches!(
            t.action,
            Action::IncludeTasks { .. } | Action::IncludeRole { .. }
        ) {
            // ansible-core refuses other keywords on a dynamic include
            // (they would not reach the included tasks: use `apply:`).
            let what = if matches!(t.action, Action::IncludeRole { .. }) {
                "IncludeRole"
            } else {
                "TaskInclude"
            };
            for (kk, _) in pairs {
                let kn = kk.as_key().unwrap_or_default();
                if kn != k.as_key().unwrap_or_default()
                    && !INCLUDE_KEYWORDS.contains(&kn.as_str())
                    && !kn.starts_with("with_")
                {
                    self.diags.push(
                        kk.error(format!("'{kn}' is not a valid attribute for a {what}"))
                            .with_help("put it under `apply:` to set it on the included tasks"),
                    );
                }
            }
        }
        Some(t)
    }

    /// `action: copy src=a dest=b` / `action: {module: copy, src: a}`:
    /// the module key and its arguments.
    fn action_keyword(&mut self, v: &Node) -> Option<(Node, Node)> {
        match &v.value {
            Value::Str(s) => {
                let s = s.trim();
                let (m, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
                Some((
                    Node {
                        value: Value::Str(m.to_string()),
                        loc: v.loc.clone(),
                    },
                    Node {
                        value: Value::Str(rest.trim().to_string()),
                        loc: v.loc.clone(),
                    },
                ))
            }
            Value::Map(pairs) => {
                let m = v.get("module").and_then(Node::scalar_string);
                let Some(m) = m else {
                    self.diags.push(
                        v.error("`action` needs `module:`")
                            .with_help("e.g. `action: {module: copy, src: a, dest: b}`"),
                    );
                    return None;
                };
                let rest: Vec<(Node, Node)> = pairs
                    .iter()
                    .filter(|(k, _)| k.as_key().as_deref() != Some("module"))
                    .cloned()
                    .collect();
                Some((
                    Node {
                        value: Value::Str(m),
                        loc: v.loc.clone(),
                    },
                    Node {
                        value: Value::Map(rest),
                        loc: v.loc.clone(),
                    },
                ))
            }
            _ => {
                self.diags.push(
                    v.type_error("action", "a module and its arguments")
                        .with_help("e.g. `action: copy src=a dest=b`"),
                );
                None
            }
        }
    }

    fn set_loop(&mut self, t: &mut Task, k: &Node, v: &Node, kind: LoopKind) {
        if t.loop_.is_some() {
            self.diags
                .push(k.error("a task can have only one loop").with_help(
                "keep one of `loop:` / `with_*:`; loop over a combination with `product` or `zip`",
            ));
        }
        if kind == LoopKind::Loop && !loopable(v) {
            // ansible: "Invalid data passed to 'loop', it requires a list".
            self.diags.push(
                v.error(format!("`loop` needs a list, found {}", v.kind()))
                    .with_help("give a list (`loop: [a, b]`) or a template that makes one (`loop: \"{{ names }}\"`)"),
            );
        }
        self.check_templates(v);
        t.loop_ = Some(LoopSpec {
            kind,
            items: v.to_json(),
            loop_var: "item".into(),
            label: None,
            index_var: None,
            pause: None,
            extended: false,
            extended_allitems: true,
            break_when: Vec::new(),
        });
    }

    fn loop_control(&mut self, n: &Node, t: &mut Task) {
        let Some(pairs) = n.as_map() else {
            self.diags.push(
                n.type_error("loop_control", "a mapping")
                    .with_help("e.g. `loop_control: {loop_var: pkg}`"),
            );
            return;
        };
        let Some(mut l) = t.loop_.take() else {
            self.diags.push(
                n.error("loop_control without a loop")
                    .with_help("add `loop:`, or remove `loop_control:`"),
            );
            return;
        };
        for (k, v) in pairs {
            match k.as_key().unwrap_or_default().as_str() {
                "loop_var" => l.loop_var = v.scalar_string().unwrap_or_else(|| "item".into()),
                "label" => {
                    self.check_templates(v);
                    l.label = v.scalar_string();
                }
                "index_var" => l.index_var = v.scalar_string(),
                "pause" => l.pause = self.number_or_template(v, "pause"),
                "extended" => l.extended = self.bool(v, "extended").unwrap_or(false),
                "extended_allitems" => {
                    l.extended_allitems = self.bool(v, "extended_allitems").unwrap_or(true)
                }
                "break_when" => l.break_when = self.conditions(v),
                other => self.diags.push(
                    k.error(format!("unknown key `{other}` in loop_control"))
                        .with_help("known keys: loop_var, index_var, label, pause, extended, extended_allitems, break_when"),
                ),
            }
        }
        t.loop_ = Some(l);
    }
}
