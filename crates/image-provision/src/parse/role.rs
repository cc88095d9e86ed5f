//! Roles: finding `roles/<name>/`, reading its defaults, vars, meta
//! dependencies, tasks and handlers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image_core::yaml::{self, Node};

use super::Loader;
use crate::task::{Handler, Role, RoleFrom, Task};

impl Loader {
    fn find_role_dir(&self, name: &str, dir: &Path) -> Option<PathBuf> {
        if name.contains('/') {
            let p = PathBuf::from(name);
            let p = if p.is_absolute() { p } else { dir.join(p) };
            return p.is_dir().then_some(p);
        }
        let mut cands = vec![dir.join("roles").join(name)];
        if let Some(parent) = dir.parent() {
            // Inside a role's tasks/: roles beside it.
            if let Some(gp) = parent.parent() {
                cands.push(gp.join(name));
            }
            cands.push(parent.join(name));
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

    /// Loads role `name` (once per load for the same files).
    pub(super) fn role(
        &mut self,
        name: &str,
        from: &RoleFrom,
        at: &Node,
        dir: &Path,
    ) -> Option<Arc<Role>> {
        let key = (name.to_string(), from.clone());
        if let Some(r) = self.roles.get(&key) {
            return Some(r.clone());
        }
        let Some(rdir) = self.find_role_dir(name, dir) else {
            let mut searched = vec![dir.join("roles").display().to_string()];
            searched.push(self.base_dir.join("roles").display().to_string());
            searched.extend(self.roles_path.iter().map(|p| p.display().to_string()));
            searched.dedup();
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
            self.diags.push(
                at.error(format!("role `{name}` depends on itself"))
                    .with_help(
                    "remove the dependency that closes the loop (meta/main.yml `dependencies:`)",
                ),
            );
            return None;
        }
        self.loading.push(tag);
        let yml = |sub: &str, file: &str| -> Option<PathBuf> {
            let direct = rdir.join(sub).join(file);
            if (file.ends_with(".yml") || file.ends_with(".yaml") || file.ends_with(".json"))
                && direct.is_file()
            {
                return Some(direct);
            }
            ["yml", "yaml", "json"]
                .iter()
                .map(|e| rdir.join(sub).join(format!("{file}.{e}")))
                .find(|p| p.is_file())
                .or_else(|| {
                    let bare = rdir.join(sub).join(file);
                    (file == "main" && bare.is_file()).then_some(bare)
                })
        };
        let named = |sub: &str, which: &Option<String>, this: &mut Loader| -> Option<PathBuf> {
            match which {
                None => yml(sub, "main"),
                Some(f) => {
                    let p = yml(sub, f);
                    if p.is_none() {
                        this.diags
                            .push(at.error(format!("role `{name}` has no {sub}/{f}.yml")).with_help(format!("check `{sub}_from`; the file must be in the role's {sub}/ directory")));
                    }
                    p
                }
            }
        };
        let defaults = named("defaults", &from.defaults, self)
            .and_then(|p| self.vars_file(&p, at))
            .unwrap_or_default();
        let vars = named("vars", &from.vars, self)
            .and_then(|p| self.vars_file(&p, at))
            .unwrap_or_default();
        let mut deps = Vec::new();
        let mut allow_duplicates = false;
        if let Some(meta) = yml("meta", "main") {
            (deps, allow_duplicates) = self.role_meta(&meta, at, &rdir);
        }
        let tasks = match named("tasks", &from.tasks, self) {
            Some(p) => self.task_file(&p, at).unwrap_or_default(),
            None => Vec::new(),
        };
        let handlers = match named("handlers", &from.handlers, self) {
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
            allow_duplicates,
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

    /// `meta/main.yml`: the dependencies and `allow_duplicates`.
    fn role_meta(&mut self, meta: &Path, at: &Node, rdir: &Path) -> (Vec<Task>, bool) {
        let name = meta.display().to_string();
        let src = match yaml::read_file(meta) {
            Ok(s) => s,
            Err(e) => {
                self.diags.push(
                    at.error(format!("cannot read {name}: {e}"))
                        .with_help("check that the file is readable"),
                );
                return (Vec::new(), false);
            }
        };
        let doc = match yaml::parse(&name, &src) {
            Ok(d) => d,
            Err(d) => {
                self.diags.push(d);
                return (Vec::new(), false);
            }
        };
        let dups = doc
            .get("allow_duplicates")
            .and_then(Node::as_bool_loose)
            .unwrap_or(false);
        let Some(deps) = doc.get("dependencies") else {
            return (Vec::new(), dups);
        };
        if deps.is_null() {
            return (Vec::new(), dups);
        }
        let Some(items) = deps.as_seq() else {
            self.diags.push(
                deps.type_error("dependencies", "a list")
                    .with_help("list the roles: `dependencies: [common, {role: web}]`"),
            );
            return (Vec::new(), dups);
        };
        let dir = Arc::new(rdir.join("meta"));
        let roles_dir = rdir.parent().map(Path::to_path_buf).unwrap_or_default();
        // Roles beside this one first, as `roles/<dep>` from the play's dir.
        let lookup = roles_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut out = Vec::new();
        for item in items {
            if let Some(t) = self.role_entry(item, &dir, &lookup) {
                out.push(t);
            }
        }
        (out, dups)
    }
}
