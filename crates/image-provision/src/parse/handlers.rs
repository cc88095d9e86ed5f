//! `notify` must name a handler: ansible fails the run with "The requested
//! handler … was not found" when a task notifies a name that no handler of
//! the play (its own, or one of its roles') has or listens to. Checked at
//! parse time when that is certain: the notified name and every handler's
//! name and `listen` are static, and no `include_role` in the play can add
//! handlers while it runs.

use std::collections::{HashMap, HashSet};

use image_core::diag::{did_you_mean, Diagnostic, Location};

use crate::task::{Action, Play, Role, Task};

/// Where each notified name was written: by the notifying task's location.
pub(super) type NotifyAt = HashMap<Location, Vec<(String, Location)>>;

/// Tasks reached through roles and blocks, at most (against a role graph
/// shared many times over).
const MAX_TASKS: usize = 100_000;

/// The errors for notified names no handler of the play answers.
pub(super) fn check(plays: &[Play], notify_at: &NotifyAt) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for play in plays {
        let mut names: Vec<String> = Vec::new();
        let mut templated = false;
        for h in &play.handlers {
            let role = h.role.as_ref().map(|r| r.name.as_str());
            handler_names(&h.task, role, &mut names, &mut templated);
        }
        let mut walk = Walk::default();
        for t in play.sections.iter().flatten() {
            walk.task(t);
        }
        for h in &play.handlers {
            walk.task(&h.task);
        }
        if templated || walk.dynamic || walk.tasks.len() >= MAX_TASKS {
            continue;
        }
        for t in walk.tasks {
            for n in &t.notify {
                if n.contains("{{") || n.contains("{%") || names.iter().any(|x| x == n) {
                    continue;
                }
                let at = notify_at
                    .get(&t.loc)
                    .and_then(|v| v.iter().find(|(s, _)| s == n))
                    .map_or_else(|| t.loc.clone(), |(_, l)| l.clone());
                let help = match did_you_mean(n, names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => {
                        "the play has no handlers: define one under `handlers:` (or in a role's handlers/main.yml)".to_string()
                    }
                    None => format!(
                        "notify one of the play's handlers ({}), or define this one under `handlers:`",
                        names.join(", ")
                    ),
                };
                out.push(
                    Diagnostic::error(
                        at,
                        format!("the requested handler `{n}` was not found (no handler has this name or listens to it)"),
                    )
                    .with_help(help),
                );
            }
        }
    }
    out
}

/// The names a handler answers to: its name, `role : name`, its `listen`
/// topics (and those of the tasks an `import_tasks` put in a block).
fn handler_names(t: &Task, role: Option<&str>, names: &mut Vec<String>, templated: &mut bool) {
    let mut add = |s: &str, names: &mut Vec<String>| {
        if s.contains("{{") || s.contains("{%") {
            *templated = true;
        }
        names.push(s.to_string());
    };
    if let Some(n) = &t.name {
        add(n, names);
        if let Some(r) = role {
            add(&format!("{r} : {n}"), names);
        }
    }
    for l in &t.listen {
        add(l, names);
    }
    if let Action::Block {
        block,
        rescue,
        always,
    } = &t.action
    {
        for c in block.iter().chain(rescue).chain(always) {
            handler_names(c, role, names, templated);
        }
    }
}

/// Every task of a play, through blocks and static roles (each role once).
#[derive(Default)]
struct Walk<'a> {
    tasks: Vec<&'a Task>,
    roles: HashSet<*const Role>,
    /// An `include_role` may add handlers at run time.
    dynamic: bool,
}

impl<'a> Walk<'a> {
    fn task(&mut self, t: &'a Task) {
        if self.tasks.len() >= MAX_TASKS {
            return;
        }
        self.tasks.push(t);
        match &t.action {
            Action::Block {
                block,
                rescue,
                always,
            } => {
                for c in block.iter().chain(rescue).chain(always) {
                    self.task(c);
                }
            }
            Action::Role { role, .. } if self.roles.insert(std::sync::Arc::as_ptr(role)) => {
                for c in role.deps.iter().chain(&role.tasks).chain(&role.handlers) {
                    self.task(c);
                }
            }
            Action::IncludeRole { .. } => self.dynamic = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::parse::parse_str;

    fn errors(src: &str, dir: &Path) -> Vec<String> {
        match parse_str("s.yaml", src, dir, &[]) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn handlers_are_found_by_name_listen_and_role_name() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("roles/web/handlers");
        std::fs::create_dir_all(&h).unwrap();
        std::fs::write(
            h.join("main.yml"),
            "- name: restart web\n  command: /bin/true\n",
        )
        .unwrap();
        let src = "- hosts: all
  roles: [web]
  tasks:
    - command: /bin/true
      notify: [restart web, 'web : restart web', reload all, plain]
  handlers:
    - name: plain
      command: /bin/true
    - name: h
      command: /bin/true
      listen: reload all
";
        assert_eq!(errors(src, dir.path()), Vec::<String>::new());
    }

    #[test]
    fn templated_names_and_include_role_are_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let templated = "- command: /bin/true\n  notify: \"restart {{ svc }}\"\n";
        assert_eq!(errors(templated, dir.path()), Vec::<String>::new());
        let dynamic = "- include_role:\n    name: \"{{ r }}\"\n- command: /bin/true\n  notify: from the role\n";
        assert_eq!(errors(dynamic, dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_handler_is_an_error_at_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = "- hosts: all
  tasks:
    - command: /bin/true
      notify:
        - restart nginx
        - restart ngnix
  handlers:
    - name: restart nginx
      command: /bin/true
";
        let e = errors(src, dir.path());
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "s.yaml:6:11: error: the requested handler `restart ngnix` was not found"
            ),
            "{e:?}"
        );
        assert!(
            e[0].contains("help: did you mean `restart nginx`?"),
            "{e:?}"
        );
    }
}
