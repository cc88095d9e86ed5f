//! The typed step list: plays, tasks, blocks, roles. Every task keyword is
//! parsed once (in [`crate::parse`]) into these types; the engine never
//! looks keywords up in a map.
//!
//! Values that may hold templates (`{{ }}`) are kept as JSON and rendered
//! when the task runs.

use std::path::PathBuf;
use std::sync::Arc;

use image_core::diag::Location;
use serde_json::{Map, Value as Json};

use crate::modules::Module;

/// A parsed step list: one or more plays (a bare task list is one play).
#[derive(Clone)]
pub struct Steps {
    /// The file it came from.
    pub file: PathBuf,
    /// The plays, in order.
    pub plays: Vec<Play>,
}

/// One play.
#[derive(Clone, Default)]
pub struct Play {
    /// `name:`.
    pub name: Option<String>,
    /// Where it starts.
    pub loc: Option<Location>,
    /// `become:`.
    pub become_: Option<bool>,
    /// `become_user:`.
    pub become_user: Option<String>,
    /// `vars:` then `vars_files:` (loaded at parse time when static).
    pub vars: Map<String, Json>,
    /// `environment:`.
    pub environment: Option<Json>,
    /// `gather_facts:` (default true).
    pub gather_facts: bool,
    /// `pre_tasks:`, the `roles:` (as role tasks), `tasks:`, `post_tasks:`,
    /// in that order. Handlers are flushed after each section as ansible does.
    pub sections: Vec<Vec<Task>>,
    /// Handlers, the play's and its roles', in definition order.
    pub handlers: Vec<Handler>,
    /// Defaults of the play's `roles:`, visible to the whole play.
    pub role_defaults: Map<String, Json>,
    /// Vars of the play's `roles:`, visible to the whole play.
    pub role_vars: Map<String, Json>,
    /// `tags:` applied to every task.
    pub tags: Vec<String>,
}

/// A handler and the role it belongs to.
#[derive(Clone)]
pub struct Handler {
    /// The task.
    pub task: Task,
    /// Its role, for role vars and file lookups.
    pub role: Option<Arc<Role>>,
}

/// A loop: `loop`, `with_items` (flattened one level), `with_dict`.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopKind {
    /// `loop:` / `with_list:`.
    List,
    /// `with_items:`.
    Items,
    /// `with_dict:`.
    Dict,
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
    /// `loop_control.pause` in seconds.
    pub pause: f64,
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
    /// `changed_when:` (any true = changed).
    pub changed_when: Option<Vec<String>>,
    /// `failed_when:` (any true = failed).
    pub failed_when: Option<Vec<String>>,
    /// `ignore_errors:`.
    pub ignore_errors: Option<bool>,
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
    /// `become:`.
    pub become_: Option<bool>,
    /// `become_user:`.
    pub become_user: Option<String>,
    /// `environment:` (mapping or template).
    pub environment: Option<Json>,
    /// `vars:`.
    pub vars: Map<String, Json>,
    /// `tags:`.
    pub tags: Vec<String>,
    /// `check_mode:`.
    pub check_mode: Option<bool>,
    /// `diff:`.
    pub diff: Option<bool>,
    /// `no_log:`.
    pub no_log: Option<bool>,
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
            Action::Block { .. } => "block".into(),
            Action::Include { file, .. } => format!("include_tasks {file}"),
            Action::Role { name, .. } => format!("role {name}"),
            Action::Meta(m) => format!("meta: {m}"),
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
    /// `block` / `rescue` / `always` (also what `import_tasks` becomes).
    Block {
        /// The tasks.
        block: Vec<Task>,
        /// Run when a block task fails.
        rescue: Vec<Task>,
        /// Run in any case.
        always: Vec<Task>,
    },
    /// `include_tasks` with a file known only at run time (a template).
    Include {
        /// The file, unrendered.
        file: String,
    },
    /// A role: `roles:` entries, `include_role`, `import_role`.
    Role {
        /// The role's name.
        name: String,
        /// The loaded role.
        role: Arc<Role>,
        /// `vars:` / role params (highest precedence below extra vars).
        params: Map<String, Json>,
        /// Whether its defaults/vars stay visible after it (import = yes).
        public: bool,
    },
    /// `meta:`.
    Meta(String),
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
}
