//! The typed step list: plays, tasks, blocks, roles. Every task keyword is
//! parsed once (in [`crate::parse`]) into these types; the engine never
//! looks keywords up in a map.
//!
//! Values that may hold templates (`{{ }}`) are kept as JSON and rendered
//! when the task runs.

use std::path::PathBuf;
use std::sync::Arc;

use image_core::diag::{Diagnostic, Location};
use serde_json::{Map, Value as Json};

use crate::modules::Module;

/// A parsed step list: one or more plays (a bare task list is one play).
#[derive(Clone)]
pub struct Steps {
    /// The file it came from.
    pub file: PathBuf,
    /// The plays, in order.
    pub plays: Vec<Play>,
    /// Where roles are searched after `roles/` beside the file (files
    /// reached through `include_*` are loaded when the run reaches them).
    pub roles_path: Vec<PathBuf>,
    /// Problems that do not stop the run: modules or parameters we lack
    /// (reported as failures by the task that reaches them), and problems
    /// in files reached only through `include_*` (loaded again, and
    /// reported, when a run reaches them).
    pub warnings: Vec<Diagnostic>,
}

/// One play.
#[derive(Clone, Default)]
pub struct Play {
    /// `name:`.
    pub name: Option<String>,
    /// `hosts:` as written (a list joined with commas): the play's name in
    /// `ansible_play_name` when it has no `name:`, as in ansible-core.
    pub hosts: Option<String>,
    /// Where it starts.
    pub loc: Option<Location>,
    /// Keywords every task inherits (`become`, `ignore_errors`, ...).
    pub keywords: Inherit,
    /// `vars:`.
    pub vars: Map<String, Json>,
    /// `vars_files:`: each entry a file, or a list of which the first
    /// existing one is read; loaded when the play starts (entries may be
    /// templates).
    pub vars_files: Vec<VarsFile>,
    /// `gather_facts:` (default true).
    pub gather_facts: bool,
    /// `gather_subset:` as given (empty: `all`).
    pub gather_subset: Vec<String>,
    /// `any_errors_fatal:`.
    pub any_errors_fatal: bool,
    /// `max_fail_percentage:` (one host: any failure is over 0 %).
    pub max_fail_percentage: Option<f64>,
    /// `force_handlers:`: notified handlers run even when the play fails.
    pub force_handlers: bool,
    /// `pre_tasks:`, the `roles:` (as role tasks), `tasks:`, `post_tasks:`,
    /// in that order. Handlers are flushed after each section as ansible does.
    pub sections: Vec<Vec<Task>>,
    /// Handlers, the play's and its roles', in definition order.
    pub handlers: Vec<Handler>,
    /// Defaults of the play's public roles (`roles:`, `import_role`),
    /// visible to the whole play.
    pub role_defaults: Map<String, Json>,
    /// Vars of the play's public roles, visible to the whole play.
    pub role_vars: Map<String, Json>,
}

/// A `vars_files` entry.
#[derive(Clone, Debug)]
pub struct VarsFile {
    /// The candidates (one, or the list of a first-found entry).
    pub candidates: Vec<String>,
    /// Where it is written.
    pub loc: Location,
    /// The directory relative names are read from.
    pub dir: Arc<PathBuf>,
}

/// A handler and the role it belongs to.
#[derive(Clone)]
pub struct Handler {
    /// The task.
    pub task: Task,
    /// Its role, for role vars and file lookups.
    pub role: Option<Arc<Role>>,
}

/// Which loop keyword a task uses.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopKind {
    /// `loop:`: a list, as it is.
    Loop,
    /// `with_<lookup>:` (`items`, `dict`, `nested`, `first_found`, ...).
    With(String),
}

/// The loop of a task.
#[derive(Debug, Clone)]
pub struct LoopSpec {
    /// Which keyword.
    pub kind: LoopKind,
    /// The list (or a template that renders to one).
    pub items: Json,
    /// `loop_control.loop_var` (default `item`).
    pub loop_var: String,
    /// `loop_control.label`.
    pub label: Option<String>,
    /// `loop_control.index_var`.
    pub index_var: Option<String>,
    /// `loop_control.pause` in seconds (a number or a template).
    pub pause: Option<Json>,
    /// `loop_control.extended`: `ansible_loop` is set.
    pub extended: bool,
    /// `loop_control.extended_allitems`: `ansible_loop.allitems` too.
    pub extended_allitems: bool,
    /// `loop_control.break_when`: stop after the item for which all hold.
    pub break_when: Vec<String>,
}

/// Keywords a play, block, role or include passes down to its tasks.
#[derive(Clone, Default, Debug)]
pub struct Inherit {
    /// `become:`.
    pub become_: Option<bool>,
    /// `become_user:`.
    pub become_user: Option<String>,
    /// `become_method:` (only `sudo` is supported; checked when parsed).
    pub become_method: Option<String>,
    /// `environment:` (mapping or template).
    pub environment: Option<Json>,
    /// `check_mode:`.
    pub check_mode: Option<bool>,
    /// `diff:`.
    pub diff: Option<bool>,
    /// `no_log:`.
    pub no_log: Option<bool>,
    /// `ignore_errors:`.
    pub ignore_errors: Option<bool>,
    /// `ignore_unreachable:`.
    pub ignore_unreachable: Option<bool>,
    /// `any_errors_fatal:`.
    pub any_errors_fatal: Option<bool>,
    /// `module_defaults:`: module name (or `group/...`) -> default args.
    pub module_defaults: Option<Json>,
    /// `delegate_to:` (only this host's controller, `localhost`).
    pub delegate_to: Option<String>,
    /// `delegate_facts:`.
    pub delegate_facts: Option<bool>,
    /// `run_once:` (one host: no effect beyond ansible's).
    pub run_once: Option<bool>,
    /// `tags:`.
    pub tags: Vec<String>,
}

/// One task, block, include or role call.
#[derive(Clone)]
pub struct Task {
    /// `name:`.
    pub name: Option<String>,
    /// Where the task starts.
    pub loc: Location,
    /// What it does.
    pub action: Action,
    /// `when:` expressions, all must hold.
    pub when: Vec<String>,
    /// The loop.
    pub loop_: Option<LoopSpec>,
    /// `register:`.
    pub register: Option<String>,
    /// `changed_when:` (all true = changed).
    pub changed_when: Option<Vec<String>>,
    /// `failed_when:` (all true = failed).
    pub failed_when: Option<Vec<String>>,
    /// `retries:` (with `until`; default 3): a number or a template
    /// (`"{{ package_retries }}"`), rendered when the task runs.
    pub retries: Option<Json>,
    /// `delay:` in seconds (default 5): a number or a template.
    pub delay: Option<Json>,
    /// `until:`.
    pub until: Option<Vec<String>>,
    /// `notify:` handler names or topics.
    pub notify: Vec<String>,
    /// `listen:` topics (handlers).
    pub listen: Vec<String>,
    /// Keywords inherited by what this task contains (blocks, includes,
    /// roles), and applied to itself.
    pub kw: Inherit,
    /// `vars:`.
    pub vars: Map<String, Json>,
    /// Directory of the file the task was written in (relative paths of
    /// includes, `files/`, `templates/`).
    pub dir: Arc<PathBuf>,
}

impl Task {
    /// The name shown in output: `name:`, else the module name.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.action {
            Action::Module { module, .. } => module.name().to_string(),
            Action::Missing { module, .. } => module.clone(),
            Action::Block { .. } => "block".into(),
            Action::IncludeTasks { .. } => "include_tasks".into(),
            Action::IncludeRole { name, .. } => format!("include_role : {name}"),
            Action::Role { name, .. } => format!("role {name}"),
            Action::Meta(m) => format!("meta: {m}"),
            Action::Facts { module, .. } => module.clone(),
            Action::GroupBy { .. } => "group_by".into(),
        }
    }
}

/// What a task does.
#[derive(Clone)]
pub enum Action {
    /// Runs a module.
    Module {
        /// The module.
        module: &'static dyn Module,
        /// Arguments, unrendered.
        args: Map<String, Json>,
    },
    /// A module we do not have, or parameters it does not take: the task
    /// fails with `msg` when a run reaches it (and is not skipped).
    Missing {
        /// The name as written.
        module: String,
        /// Why it cannot run.
        msg: String,
    },
    /// `block` / `rescue` / `always` (also what `import_tasks` becomes).
    Block {
        /// The tasks.
        block: Vec<Task>,
        /// Run when a block task fails.
        rescue: Vec<Task>,
        /// Run in any case.
        always: Vec<Task>,
    },
    /// `include_tasks`: the file is read when a run reaches it.
    IncludeTasks {
        /// The file, unrendered.
        file: String,
        /// `apply:` keywords for the included tasks.
        apply: Option<Box<Task>>,
    },
    /// `include_role`: the role is loaded when a run reaches it.
    IncludeRole {
        /// The role's name (may be a template).
        name: String,
        /// `tasks_from`, `vars_from`, `defaults_from`, `handlers_from`.
        from: RoleFrom,
        /// Its defaults and vars stay visible after it (`public`).
        public: bool,
        /// `allow_duplicates:`.
        allow_duplicates: bool,
        /// `apply:` keywords for the role's tasks.
        apply: Option<Box<Task>>,
    },
    /// A static role: `roles:` entries, `import_role`, `meta` dependencies.
    Role {
        /// The role's name.
        name: String,
        /// The loaded role.
        role: Arc<Role>,
        /// Role params (`- role: x` keys that are not keywords).
        params: Map<String, Json>,
        /// A `meta` dependency, or a `roles:` entry: runs once per play
        /// for the same params unless the role allows duplicates.
        dedup: bool,
    },
    /// `meta:`.
    Meta(String),
    /// `setup` / `gather_facts` as a task.
    Facts {
        /// The name as written.
        module: String,
        /// Arguments, unrendered.
        args: Map<String, Json>,
    },
    /// `group_by`.
    GroupBy {
        /// Arguments (`key`, `parents`), unrendered.
        args: Map<String, Json>,
    },
}

/// Which files of a role to read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleFrom {
    /// `tasks_from` (default `main`).
    pub tasks: Option<String>,
    /// `vars_from`.
    pub vars: Option<String>,
    /// `defaults_from`.
    pub defaults: Option<String>,
    /// `handlers_from`.
    pub handlers: Option<String>,
}

/// A role loaded from `roles/<name>/`.
#[derive(Clone)]
pub struct Role {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// `defaults/main.yml`.
    pub defaults: Map<String, Json>,
    /// `vars/main.yml`.
    pub vars: Map<String, Json>,
    /// `tasks/main.yml` (or `tasks_from`).
    pub tasks: Vec<Task>,
    /// `handlers/main.yml`.
    pub handlers: Vec<Task>,
    /// `meta/main.yml` dependencies, run first.
    pub deps: Vec<Task>,
    /// `meta/main.yml` `allow_duplicates`.
    pub allow_duplicates: bool,
}

impl Role {
    /// Every dependency, recursively, in run order (deepest first).
    pub fn all_deps(&self) -> Vec<(Arc<Role>, Map<String, Json>)> {
        let mut out = Vec::new();
        for d in &self.deps {
            if let Action::Role { role, params, .. } = &d.action {
                out.extend(role.all_deps());
                out.push((role.clone(), params.clone()));
            }
        }
        out
    }
}
