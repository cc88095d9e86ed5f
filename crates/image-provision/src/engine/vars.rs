//! The variables a task sees, layered as ansible-core's documented
//! precedence (lowest first):
//!
//! role defaults (the play's public roles, then the task's role with its
//! dependencies and parents) < facts < play `vars` < `vars_files` < role
//! vars (the play's public roles, then the task's role chain and the
//! `vars:` of its call) < block and include `vars` < task `vars` <
//! `include_vars` < `set_fact` / registered < role params < include params
//! < extra vars; then the loop variables and the magic variables.

use serde_json::{json, Map, Value as Json};

use super::scope::Scope;
use super::Runner;
use crate::task::Task;

impl Runner<'_> {
    /// Every variable of `t` in `scope`, with `loop_vars` on top.
    pub(super) fn vars_for(
        &self,
        scope: &Scope,
        t: &Task,
        loop_vars: Option<&Map<String, Json>>,
    ) -> Map<String, Json> {
        let mut m = Map::new();
        // Role defaults.
        m.extend(self.st.role_defaults.clone());
        if let Some((cur, parents)) = scope.roles.split_last() {
            for (d, _) in cur.role.all_deps() {
                m.extend(d.defaults.clone());
            }
            for p in parents {
                m.extend(p.role.defaults.clone());
            }
            m.extend(cur.role.defaults.clone());
        }
        // Facts.
        for (k, v) in &self.st.facts {
            m.insert(format!("ansible_{k}"), v.clone());
        }
        m.insert("ansible_facts".into(), Json::Object(self.st.facts.clone()));
        m.insert(
            "ansible_local".into(),
            self.st.facts.get("local").cloned().unwrap_or(json!({})),
        );
        // Play vars, vars_files.
        m.extend(self.st.play_vars.clone());
        m.extend(self.st.vars_files.clone());
        // Role vars.
        m.extend(self.st.role_vars.clone());
        if let Some((cur, parents)) = scope.roles.split_last() {
            for p in parents {
                m.extend((*p.vars_kw).clone());
                m.extend(p.role.vars.clone());
            }
            for (d, _) in cur.role.all_deps() {
                m.extend(d.vars.clone());
            }
            m.extend(cur.role.vars.clone());
            m.extend((*cur.vars_kw).clone());
        }
        // Block, include and task vars.
        for v in &scope.vars {
            m.extend((**v).clone());
        }
        m.extend(t.vars.clone());
        m.extend(self.st.include_vars.clone());
        m.extend(self.st.host_vars.clone());
        // Role params (the chain's), include params.
        for r in &scope.roles {
            m.extend((*r.params).clone());
        }
        for p in &scope.include_params {
            m.extend((**p).clone());
        }
        m.extend(self.opts.extra_vars.clone());
        if let Some(l) = loop_vars {
            m.extend(l.clone());
        }
        self.magic(&mut m, scope, t);
        m
    }

    fn magic(&self, m: &mut Map<String, Json>, scope: &Scope, t: &Task) {
        let host = &self.host;
        m.insert("inventory_hostname".into(), json!(host));
        m.insert(
            "inventory_hostname_short".into(),
            json!(host.split('.').next().unwrap_or("")),
        );
        m.insert("ansible_check_mode".into(), json!(self.opts.check));
        m.insert("ansible_diff_mode".into(), json!(self.opts.diff));
        m.insert(
            "playbook_dir".into(),
            json!(self.base_dir.display().to_string()),
        );
        let mut groups = Map::new();
        groups.insert("all".into(), json!([host]));
        groups.insert(
            "ungrouped".into(),
            json!(if self.st.groups.is_empty() {
                json!([host])
            } else {
                json!([])
            }),
        );
        for g in &self.st.groups {
            groups.insert(g.clone(), json!([host]));
        }
        m.insert("groups".into(), Json::Object(groups));
        m.insert("group_names".into(), json!(self.st.groups));
        m.insert("ansible_play_hosts".into(), json!([host]));
        m.insert("ansible_play_hosts_all".into(), json!([host]));
        m.insert("ansible_play_batch".into(), json!([host]));
        m.insert("play_hosts".into(), json!([host]));
        if let Some(name) = &self.st.play_name {
            m.insert("ansible_play_name".into(), json!(name));
        }
        let roles: Vec<&str> = self.st.play_roles.iter().map(String::as_str).collect();
        m.insert("ansible_play_role_names".into(), json!(roles));
        m.insert("ansible_role_names".into(), json!(roles));
        m.insert("role_names".into(), json!(roles));
        if let Some(r) = scope.role() {
            m.insert("role_name".into(), json!(r.name));
            m.insert("ansible_role_name".into(), json!(r.name));
            m.insert("role_path".into(), json!(r.dir.display().to_string()));
            let chain: Vec<&str> = scope.roles.iter().map(|r| r.role.name.as_str()).collect();
            m.insert(
                "ansible_parent_role_names".into(),
                json!(chain.iter().rev().skip(1).collect::<Vec<_>>()),
            );
        }
        if let Some(n) = &t.name {
            m.entry("ansible_task_name").or_insert(json!(n));
        }
        let dirs: Vec<Json> = self
            .search_dirs(scope, t)
            .iter()
            .map(|d| json!(d.display().to_string()))
            .collect();
        m.insert("ansible_search_path".into(), Json::Array(dirs.clone()));
        m.insert("__search_dirs".into(), Json::Array(dirs));
    }

    /// Where `src:` files and lookups are searched: the roles of the chain
    /// (innermost first), the task's directory, the step list's.
    pub(super) fn search_dirs(&self, scope: &Scope, t: &Task) -> Vec<std::path::PathBuf> {
        let mut v: Vec<std::path::PathBuf> = scope
            .roles
            .iter()
            .rev()
            .map(|r| r.role.dir.clone())
            .collect();
        v.push((*t.dir).clone());
        if t.dir.as_path() != self.base_dir {
            v.push(self.base_dir.clone());
        }
        v
    }
}
