//! What a task inherits from the plays, blocks, roles and includes around
//! it, and the settings that result for one task.

use std::sync::Arc;

use image_core::target::Become;
use serde_json::{Map, Value as Json};

use crate::task::{Inherit, Role, Task};

/// A role being run: the role, its params and the `vars:` of its call.
#[derive(Clone)]
pub(super) struct RoleInst {
    pub role: Arc<Role>,
    pub params: Arc<Map<String, Json>>,
    pub vars_kw: Arc<Map<String, Json>>,
    /// What makes it the same role run for dependency dedup.
    pub key: String,
}

/// Keywords inherited from blocks, roles and static imports. A dynamic
/// include passes down only its vars (ansible: the include's own `when`,
/// tags and keywords apply to the include itself).
#[derive(Clone, Default)]
pub(super) struct Scope {
    /// `vars:` of the enclosing blocks and includes (task vars level).
    pub vars: Vec<Arc<Map<String, Json>>>,
    /// `vars:` of the enclosing includes (include params level).
    pub include_params: Vec<Arc<Map<String, Json>>>,
    /// The role dependency chain; the last one is the task's role.
    pub roles: Vec<RoleInst>,
    /// Conditions of the enclosing blocks, roles and imports.
    pub when: Vec<String>,
    /// Tags of the enclosing blocks, roles and imports.
    pub tags: Vec<String>,
    /// `environment:` layers, outermost first.
    pub env: Vec<Json>,
    /// `module_defaults:` layers, outermost first.
    pub module_defaults: Vec<Json>,
    /// The other keywords, innermost set value wins.
    pub kw: Inherit,
}

fn merge(into: &mut Inherit, k: &Inherit) {
    macro_rules! over {
        ($($f:ident),*) => {$( if k.$f.is_some() { into.$f = k.$f.clone(); } )*};
    }
    over!(
        become_,
        become_user,
        become_method,
        check_mode,
        diff,
        no_log,
        ignore_errors,
        ignore_unreachable,
        any_errors_fatal,
        delegate_to,
        delegate_facts,
        run_once
    );
}

impl Scope {
    /// The scope of a play.
    pub fn play(kw: &Inherit) -> Scope {
        let mut s = Scope::default();
        s.absorb_keywords(kw);
        s
    }

    fn absorb_keywords(&mut self, kw: &Inherit) {
        merge(&mut self.kw, kw);
        self.tags.extend(kw.tags.iter().cloned());
        if let Some(e) = &kw.environment {
            self.env.push(e.clone());
        }
        if let Some(m) = &kw.module_defaults {
            self.module_defaults.push(m.clone());
        }
    }

    /// Inside a block, static role or import: everything is inherited.
    pub fn child(&self, t: &Task) -> Scope {
        self.child_parts(Some(&t.vars), &t.when, &t.kw)
    }

    /// [`Scope::child`] from the parts.
    pub fn child_parts(
        &self,
        vars: Option<&Map<String, Json>>,
        when: &[String],
        kw: &Inherit,
    ) -> Scope {
        let mut s = self.clone();
        if let Some(v) = vars.filter(|v| !v.is_empty()) {
            s.vars.push(Arc::new(v.clone()));
        }
        s.when.extend(when.iter().cloned());
        s.absorb_keywords(kw);
        s
    }

    /// Inside a dynamic include: only its vars (and the loop's), as task
    /// vars and include params; `apply:` as an enclosing block.
    pub fn include(
        &self,
        t: &Task,
        item_vars: Option<Map<String, Json>>,
        apply: Option<&Task>,
    ) -> Scope {
        let mut s = self.clone();
        let mut v = t.vars.clone();
        if let Some(iv) = item_vars {
            v.extend(iv);
        }
        if !v.is_empty() {
            let v = Arc::new(v);
            s.vars.push(v.clone());
            s.include_params.push(v);
        }
        match apply {
            Some(a) => s.child(a),
            None => s,
        }
    }

    /// The task's role.
    pub fn role(&self) -> Option<&Arc<Role>> {
        self.roles.last().map(|r| &r.role)
    }
}

/// The privilege escalation that keywords `kw` ask for (the command
/// line's `--become` where they say nothing).
pub(super) fn become_of(kw: &Inherit, opts: &crate::Options) -> Option<Become> {
    let user = kw
        .become_user
        .clone()
        .or_else(|| opts.become_user.clone())
        .unwrap_or_else(|| "root".into());
    kw.become_
        .unwrap_or(opts.become_)
        .then_some(Become { user })
}

/// Per-task settings after inheritance.
pub(super) struct Settings {
    pub check: bool,
    pub diff: bool,
    pub no_log: bool,
    pub ignore_errors: bool,
    pub ignore_unreachable: bool,
    pub become_: Option<Become>,
    pub delegate_to: Option<String>,
    pub delegate_facts: bool,
}

impl Settings {
    pub fn of(t: &Task, scope: &Scope, opts: &crate::Options) -> Settings {
        let mut kw = scope.kw.clone();
        merge(&mut kw, &t.kw);
        Settings {
            check: kw.check_mode.unwrap_or(opts.check),
            diff: kw.diff.unwrap_or(opts.diff),
            no_log: kw.no_log.unwrap_or(false),
            ignore_errors: kw.ignore_errors.unwrap_or(false),
            ignore_unreachable: kw.ignore_unreachable.unwrap_or(false),
            become_: become_of(&kw, opts),
            delegate_to: kw.delegate_to,
            delegate_facts: kw.delegate_facts.unwrap_or(false),
        }
    }
}
