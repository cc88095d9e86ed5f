//! The variables a task sees, layered as ansible-core's documented
//! precedence (lowest first):
//!
//! role defaults (the play's public roles, then the task's role with its
//! dependencies and parents) < the host's inventory names
//! (`inventory_hostname`, `inventory_hostname_short`, `group_names`) <
//! facts < play `vars` < `vars_files` < role
//! vars (the play's public roles, then the task's role chain and the
//! `vars:` of its call) < block and include `vars` < task `vars` <
//! `include_vars` < `set_fact` / registered < role params < include params
//! < extra vars < the magic variables (`playbook_dir`, `groups`,
//! `ansible_play_hosts`, `role_name` ...) < the loop variables, as
//! ansible-core 2.19 resolves them (checked against it in the differential
//! corpus, `prec_layers_shadowing`).

use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use super::scope::Scope;
use super::var_cache::ScopeLayers;
use super::Runner;
use crate::task::Task;
use crate::template::Layers;

impl Runner<'_> {
    /// Every variable of `t` in `scope`, with `loop_vars` on top: the
    /// scope's shared layers (built once, `var_cache`) and the task's own.
    pub(super) fn vars_for(
        &self,
        scope: &Scope,
        t: &Task,
        loop_vars: Option<&Map<String, Json>>,
    ) -> Layers {
        let shared = self.st.layers(scope, || self.scope_layers(scope));
        let mut top = Map::new();
        // Task vars sit below the include vars, registered results,
        // params, extra vars and magic names.
        for (k, v) in &t.vars {
            if !shared.above_task.iter().any(|l| l.contains_key(k)) {
                top.insert(k.clone(), v.clone());
            }
        }
        let dirs: Vec<Json> = self
            .search_dirs(scope, t)
            .iter()
            .map(|d| json!(d.display().to_string()))
            .collect();
        top.insert("ansible_search_path".into(), Json::Array(dirs.clone()));
        top.insert("__search_dirs".into(), Json::Array(dirs));
        // Loop variables win over everything, magic names too (ansible-core
        // sets them on the task's variables last).
        for (k, v) in loop_vars.into_iter().flatten() {
            top.insert(k.clone(), v.clone());
        }
        Layers::new(shared.all.clone(), top)
    }

    /// The layers every task of `scope` shares (lowest first): role
    /// defaults, the host's inventory names (`inventory_hostname`,
    /// `group_names`: any variable may override them, as in ansible-core),
    /// facts, the play's and the scope's vars, then the layers above task
    /// vars, then the magic names (no variable overrides them).
    fn scope_layers(&self, scope: &Scope) -> ScopeLayers {
        let facts = self.st.facts.layer();
        let mut defaults = self.st.role_defaults.clone();
        if let Some((cur, parents)) = scope.roles.split_last() {
            for (d, _) in cur.role.all_deps() {
                defaults.extend(d.defaults.clone());
            }
            for p in parents {
                defaults.extend(p.role.defaults.clone());
            }
            defaults.extend(cur.role.defaults.clone());
        }
        // Play vars, vars_files, role vars, block and include vars.
        let mut mid = self.st.play_vars.clone();
        mid.extend(self.st.vars_files.clone());
        mid.extend(self.st.role_vars.clone());
        if let Some((cur, parents)) = scope.roles.split_last() {
            for p in parents {
                mid.extend((*p.vars_kw).clone());
                mid.extend(p.role.vars.clone());
            }
            for (d, _) in cur.role.all_deps() {
                mid.extend(d.vars.clone());
            }
            mid.extend(cur.role.vars.clone());
            mid.extend((*cur.vars_kw).clone());
        }
        for v in &scope.vars {
            mid.extend((**v).clone());
        }
        // include_vars, set_fact / registered, role params (the chain's),
        // include params, extra vars.
        let mut high = self.st.include_vars.clone();
        high.extend(self.st.host_vars.clone());
        for r in &scope.roles {
            high.extend((*r.params).clone());
        }
        for p in &scope.include_params {
            high.extend((**p).clone());
        }
        high.extend(self.opts.extra_vars.clone());
        let magic = Arc::new(self.magic(scope));
        let high = Arc::new(high);
        let all = [
            Arc::new(defaults),
            Arc::new(self.host_names()),
            facts,
            Arc::new(mid),
            high.clone(),
            magic.clone(),
        ]
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
        ScopeLayers {
            all,
            above_task: vec![high, magic],
        }
    }

    /// The names ansible-core gives a host in its inventory.
    fn host_names(&self) -> Map<String, Json> {
        let host = &self.host;
        let mut m = Map::new();
        m.insert("inventory_hostname".into(), json!(host));
        m.insert(
            "inventory_hostname_short".into(),
            json!(host.split('.').next().unwrap_or("")),
        );
        m.insert("group_names".into(), json!(self.st.groups));
        m
    }

    /// The magic names of `scope` (those of a task are set in `vars_for`).
    fn magic(&self, scope: &Scope) -> Map<String, Json> {
        let mut m = Map::new();
        let host = &self.host;
        m.insert(crate::template::vars::HOST_KEY.into(), json!(host));
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
        m
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
