//! Loading a step list: YAML with positions -> typed [`Steps`].
//!
//! As ansible: everything reached statically (plays, `roles:`, blocks,
//! `import_tasks`, `import_role`, `meta` dependencies) is read and checked
//! before anything runs; a file reached through `include_tasks` or
//! `include_role` is read when a run reaches it ([`load_tasks`],
//! [`load_role`]), so a problem on a branch this host never takes is not an
//! error. Those files are still read here once, and their problems listed
//! as warnings (`image-cli validate` shows them with `file:line:col`).
//!
//! A module we do not have, or a parameter a module does not take, is a
//! warning here and a failure of the task that reaches it (ansible checks
//! module arguments when the module runs); a misspelt module or keyword is
//! an error.
//!
//! - `play`: play keywords and `roles:`.
//! - `task`: task keywords.
//! - `action`: what a task does (module, include, role, meta).
//! - `role`: finding and loading roles.
//! - `values`: typed reads of keyword values.
//! - [`free_form`](mod@free_form): `key=value` argument strings.

mod action;
pub mod free_form;
mod handlers;
mod import_playbook;
mod play;
mod role;
mod task;
mod values;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image_core::diag::{Diagnostic, Diagnostics, Location, Severity};
use image_core::yaml::{self, Node, Value};
use serde_json::{Map, Value as Json};

use crate::task::{Handler, Play, Role, RoleFrom, Steps, Task};
use crate::template::Templater;

pub use crate::when::strip_braces;
pub use action::strip_fqcn;
pub use free_form::free_form;

/// Reads `path` and everything it pulls in statically. `roles_path` is
/// searched for roles after `roles/` next to the file.
pub fn load(path: &Path, roles_path: &[PathBuf]) -> Result<Steps, Diagnostics> {
    let src = yaml::read_file(path).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error(
                Location::new(path.display().to_string(), 1, 1),
                format!("cannot read step list: {e}"),
            )
            .with_help("check the path and that the file is readable"),
        )
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
    let text = yaml::read_file(path).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error(at(), format!("cannot read variables: {e}"))
                .with_help("check the path and that the file is readable"),
        )
    })?;
    let doc = yaml::parse(&path.display().to_string(), &text).map_err(Diagnostics::from)?;
    match doc.to_json() {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(Map::new()),
        _ => Err(Diagnostics::from(
            Diagnostic::error(at(), "a variables file must hold a mapping")
                .with_help("write `name: value` lines"),
        )),
    }
}

/// Parses a step list given as text; `dir` is where relative files are.
pub fn parse_str(
    name: &str,
    src: &str,
    dir: &Path,
    roles_path: &[PathBuf],
) -> Result<Steps, Diagnostics> {
    let mut l = Loader::new(dir, roles_path);
    let doc = yaml::parse(name, src).map_err(Diagnostics::from)?;
    let d = Arc::new(dir.to_path_buf());
    let plays = l.document(&doc, &d);
    l.probe_includes();
    if !l.include_role_seen {
        for e in handlers::check(&plays, &l.notify_at) {
            l.diags.push(e);
        }
    }
    let mut diags = l.diags.sorted();
    diags.0.dedup();
    let warnings: Vec<Diagnostic> = diags.warnings().cloned().collect();
    diags.into_result(Steps {
        file: PathBuf::from(name),
        plays,
        roles_path: roles_path.to_vec(),
        warnings,
    })
}

/// Where a run loads files from: the step list's directory and the roles
/// path (what [`load_tasks`] and [`load_role`] need).
#[derive(Clone, Debug, Default)]
pub struct LoadCtx {
    /// The step list's directory.
    pub base_dir: PathBuf,
    /// Extra role directories.
    pub roles_path: Vec<PathBuf>,
}

/// A role loaded at run time and its handlers (with its dependencies').
pub type LoadedRole = (Arc<Role>, Vec<Handler>);

/// What a run-time load found: the tasks (or role) and the warnings.
pub struct Loaded<T> {
    /// The tasks or the role.
    pub value: T,
    /// Problems that do not stop it (modules we lack, ...).
    pub warnings: Vec<Diagnostic>,
}

/// Loads a task file when a run reaches an `include_tasks`.
pub fn load_tasks(path: &Path, ctx: &LoadCtx) -> Result<Loaded<Vec<Task>>, Diagnostics> {
    let mut l = Loader::new(&ctx.base_dir, &ctx.roles_path);
    let at = Node {
        value: Value::Null,
        loc: Location::new(path.display().to_string(), 1, 1),
    };
    let tasks = l.task_file(path, &at).unwrap_or_default();
    l.finish(tasks)
}

/// Loads a role when a run reaches an `include_role`; `dir` is the
/// directory of the including file. Returns the role and its handlers
/// (with those of its dependencies).
pub fn load_role(
    name: &str,
    from: &RoleFrom,
    at: &Location,
    dir: &Path,
    ctx: &LoadCtx,
) -> Result<Loaded<LoadedRole>, Diagnostics> {
    let mut l = Loader::new(&ctx.base_dir, &ctx.roles_path);
    let node = Node {
        value: Value::Null,
        loc: at.clone(),
    };
    let role = l.role(name, from, &node, dir);
    let handlers = std::mem::take(&mut l.handlers);
    match role {
        Some(r) => l.finish((r, handlers)),
        None => Err(l.diags),
    }
}

/// The state of one load.
pub(crate) struct Loader {
    roles_path: Vec<PathBuf>,
    base_dir: PathBuf,
    diags: Diagnostics,
    roles: HashMap<(String, RoleFrom), Arc<Role>>,
    loading: Vec<String>,
    handlers: Vec<Handler>,
    handler_roles: HashSet<String>,
    tmpl: Templater,
    /// Files and roles reached only through `include_*` with static names:
    /// (file or role, directory of the includer, where).
    includes: Vec<Include>,
    /// Roles of the play made public at parse time (`import_role`).
    public_roles: Vec<Arc<Role>>,
    /// Where each task's `notify` names were written.
    notify_at: handlers::NotifyAt,
    /// An `include_role` was read (here or in a probed include): handlers
    /// may be added at run time.
    include_role_seen: bool,
}

enum Include {
    Tasks(PathBuf, Location),
    Role(String, RoleFrom, PathBuf, Location),
}

impl Loader {
    fn new(base_dir: &Path, roles_path: &[PathBuf]) -> Self {
        Loader {
            roles_path: roles_path.to_vec(),
            base_dir: base_dir.to_path_buf(),
            diags: Diagnostics::default(),
            roles: HashMap::new(),
            loading: Vec::new(),
            handlers: Vec::new(),
            handler_roles: HashSet::new(),
            tmpl: Templater::new(),
            includes: Vec::new(),
            public_roles: Vec::new(),
            notify_at: Default::default(),
            include_role_seen: false,
        }
    }

    fn finish<T>(self, value: T) -> Result<Loaded<T>, Diagnostics> {
        let mut d = self.diags.sorted();
        d.0.dedup();
        let warnings = d.warnings().cloned().collect();
        d.into_result(Loaded { value, warnings })
    }

    /// Reads every statically named include once, turning its problems into
    /// warnings (it is read again, and checked for real, when reached).
    fn probe_includes(&mut self) {
        let mut seen: HashSet<String> = HashSet::new();
        let mut queue = std::mem::take(&mut self.includes);
        let mut budget = 2000usize;
        while let Some(inc) = queue.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            let mut sub = Loader::new(&self.base_dir, &self.roles_path);
            match &inc {
                Include::Tasks(p, at) => {
                    let key = p.display().to_string();
                    if seen.insert(key.clone()) {
                        let node = Node {
                            value: Value::Null,
                            loc: at.clone(),
                        };
                        sub.task_file(p, &node);
                    }
                }
                Include::Role(name, from, dir, at) => {
                    let key = format!("role {name} {from:?}");
                    if seen.insert(key.clone()) {
                        let node = Node {
                            value: Value::Null,
                            loc: at.clone(),
                        };
                        sub.role(name, from, &node, dir);
                    }
                }
            }
            self.include_role_seen |= sub.include_role_seen;
            for d in sub.diags.0 {
                let mut d = d;
                d.severity = Severity::Warning;
                self.diags.push(d);
            }
            queue.extend(sub.includes);
        }
    }

    fn document(&mut self, doc: &Node, dir: &Arc<PathBuf>) -> Vec<Play> {
        let Some(items) = doc.as_seq() else {
            if doc.is_null() {
                self.diags.push(empty_step_list(doc));
            } else {
                self.diags.push(
                    doc.type_error("a step list", "a list of tasks or plays")
                        .with_help("write the tasks as a YAML list: `- name: …` items, each with one module such as `command:`"),
                );
            }
            return Vec::new();
        };
        if items.is_empty() {
            self.diags.push(empty_step_list(doc));
            return Vec::new();
        }
        if items.first().is_some_and(play::is_play) {
            items
                .iter()
                .flat_map(|n| {
                    if let Some(file) = import_playbook::target(n) {
                        self.import_playbook(n, file, dir)
                    } else if play::is_play(n) {
                        vec![self.play(n, dir)]
                    } else {
                        self.diags.push(
                            n.error("this list holds plays: every item needs `hosts:` and `tasks:`")
                                .with_help("put the tasks under a play's `tasks:`, or make the file a plain list of tasks"),
                        );
                        Vec::new()
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

    fn tasks(&mut self, n: &Node, dir: &Arc<PathBuf>, what: &str) -> Vec<Task> {
        match &n.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items.iter().filter_map(|i| self.task(i, dir)).collect(),
            _ => {
                self.diags.push(
                    n.type_error(what, "a list of tasks").with_help(
                        "write it as a YAML list: `- name: …` items, each with one module",
                    ),
                );
                Vec::new()
            }
        }
    }

    fn task_file(&mut self, path: &Path, at: &Node) -> Option<Vec<Task>> {
        let name = path.display().to_string();
        if self.loading.contains(&name) {
            self.diags.push(
                at.error(format!(
                    "{name} includes itself (through {})",
                    self.loading.join(" -> ")
                ))
                .with_help("remove the include that closes the loop"),
            );
            return None;
        }
        let src = match yaml::read_file(path) {
            Ok(s) => s,
            Err(e) => {
                self.diags
                    .push(at.error(format!("cannot read {name}: {e}")).with_help(
                    "check the file name (relative to the including file) and that it is readable",
                ));
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
        let src = match yaml::read_file(path) {
            Ok(s) => s,
            Err(e) => {
                self.diags
                    .push(at.error(format!("cannot read {name}: {e}")).with_help(
                    "check the file name (relative to the including file) and that it is readable",
                ));
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
}

/// ansible-playbook refuses an empty playbook ("Empty playbook, nothing to
/// do"); a step list with nothing in it is most likely a mistake.
fn empty_step_list(doc: &Node) -> Diagnostic {
    doc.error("the step list is empty")
        .with_help("add tasks (e.g. `- command: /bin/true`), or remove the file from the build's `provision` list")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A misspelling is an error...
        let src = "- file:\n    path: /x\n    stat: directory\n";
        let e = parse_str("s.yaml", src, Path::new("."), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("s.yaml:3:5: error: unknown parameter `stat` for module `file`"),
            "{e}"
        );
        // ... a parameter we lack a warning, and the task fails if reached.
        let src = "- file:\n    path: /x\n    zzzqq_option: 1\n  when: false\n";
        let s = parse_str("s.yaml", src, Path::new("."), &[]).unwrap();
        let w: Vec<String> = s.warnings.iter().map(|d| d.to_string()).collect();
        assert!(
            w.iter()
                .any(|d| d.contains("s.yaml:3:5: warning: unknown parameter `zzzqq_option`")),
            "{w:?}"
        );
        assert!(matches!(
            s.plays[0].sections[0][0].action,
            crate::task::Action::Missing { .. }
        ));
    }

    #[test]
    fn module_we_lack_is_a_warning() {
        let src = "- amazon.aws.s3_object:\n    bucket: b\n  when: false\n";
        let s = parse_str("s.yaml", src, Path::new("."), &[]).unwrap();
        assert!(
            s.warnings[0].to_string().contains("s.yaml:1:3"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn a_loop_that_cannot_be_a_list_and_an_empty_list_are_errors() {
        for (src, at) in [
            (
                "- debug: msg=x\n  loop: 42\n",
                "s.yaml:2:9: error: `loop` needs a list, found an integer",
            ),
            (
                "- debug: msg=x\n  loop: abc\n",
                "s.yaml:2:9: error: `loop` needs a list, found a string",
            ),
            ("", "s.yaml:1:1: error: the step list is empty"),
            ("[]\n", "s.yaml:1:1: error: the step list is empty"),
        ] {
            let e = parse_str("s.yaml", src, Path::new("."), &[])
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(at), "{src:?}: {e}");
            assert!(e.contains("\n  help: "), "{src:?}: {e}");
        }
        for ok in [
            "- debug: msg=x\n  loop: [1, 2]\n",
            "- debug: msg=x\n  loop: \"{{ xs }}\"\n",
            "- debug: msg=x\n  with_items: 42\n",
        ] {
            assert!(parse_str("s.yaml", ok, Path::new("."), &[]).is_ok(), "{ok}");
        }
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
