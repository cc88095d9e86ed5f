//! The variable layers tasks share, built once and kept until the state
//! they come from changes: the runner's [`State`] sits behind [`Tracked`],
//! whose mutable access drops what was built from it, and the facts
//! behind [`Facts`], whose layer (`ansible_*`, `ansible_facts`,
//! `ansible_local`) is dropped only when the facts change. So a run of
//! tasks that change nothing builds each scope's layers once, and a
//! registered result does not copy the facts again.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value as Json};

use super::scope::{RoleInst, Scope};
use super::State;

/// How many scopes' layers are kept (more are rebuilt as needed).
const MAX_SCOPES: usize = 32;

/// A scope's shared layers, lowest first.
pub(super) type SharedLayers = Arc<ScopeLayers>;

/// The layers of one scope (see `vars`).
pub(super) struct ScopeLayers {
    /// All of them, lowest first, as the template's shared layers.
    pub all: Vec<Arc<Map<String, Json>>>,
    /// The layers above task `vars:` (a task's own var of one of these
    /// names is hidden).
    pub above_task: Vec<Arc<Map<String, Json>>>,
}

/// The identity of a scope's variable sources: the same allocations mean
/// the same variables. Holding them keeps the addresses from being reused.
struct ScopeId {
    vars: Vec<Arc<Map<String, Json>>>,
    include_params: Vec<Arc<Map<String, Json>>>,
    roles: Vec<RoleInst>,
}

impl ScopeId {
    fn of(scope: &Scope) -> ScopeId {
        ScopeId {
            vars: scope.vars.clone(),
            include_params: scope.include_params.clone(),
            roles: scope.roles.clone(),
        }
    }

    fn is(&self, scope: &Scope) -> bool {
        same(&self.vars, &scope.vars)
            && same(&self.include_params, &scope.include_params)
            && self.roles.len() == scope.roles.len()
            && self.roles.iter().zip(&scope.roles).all(|(a, b)| {
                Arc::ptr_eq(&a.role, &b.role)
                    && Arc::ptr_eq(&a.params, &b.params)
                    && Arc::ptr_eq(&a.vars_kw, &b.vars_kw)
            })
    }
}

fn same(a: &[Arc<Map<String, Json>>], b: &[Arc<Map<String, Json>>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// The runner's state, with the layers built from it.
#[derive(Default)]
pub(super) struct Tracked {
    state: State,
    scopes: Mutex<Vec<(ScopeId, SharedLayers)>>,
}

impl Tracked {
    /// The layers of `scope`, built by `build` unless kept from before.
    pub fn layers(&self, scope: &Scope, build: impl FnOnce() -> ScopeLayers) -> SharedLayers {
        if let Ok(kept) = self.scopes.lock() {
            if let Some((_, l)) = kept.iter().find(|(id, _)| id.is(scope)) {
                return l.clone();
            }
        }
        let l = Arc::new(build());
        if let Ok(mut kept) = self.scopes.lock() {
            if kept.len() >= MAX_SCOPES {
                kept.clear();
            }
            kept.push((ScopeId::of(scope), l.clone()));
        }
        l
    }
}

impl Deref for Tracked {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut State {
        if let Ok(kept) = self.scopes.get_mut() {
            kept.clear();
        }
        &mut self.state
    }
}

/// The facts, with their variables built once.
#[derive(Default)]
pub(super) struct Facts {
    map: Map<String, Json>,
    layer: OnceLock<Arc<Map<String, Json>>>,
}

impl Facts {
    /// `ansible_<fact>` for each fact, `ansible_facts` and `ansible_local`.
    pub fn layer(&self) -> Arc<Map<String, Json>> {
        self.layer
            .get_or_init(|| {
                let mut m = Map::new();
                for (k, v) in &self.map {
                    m.insert(format!("ansible_{k}"), v.clone());
                }
                m.insert("ansible_facts".into(), Json::Object(self.map.clone()));
                m.insert(
                    "ansible_local".into(),
                    self.map.get("local").cloned().unwrap_or(json!({})),
                );
                Arc::new(m)
            })
            .clone()
    }
}

impl Deref for Facts {
    type Target = Map<String, Json>;
    fn deref(&self) -> &Map<String, Json> {
        &self.map
    }
}

impl DerefMut for Facts {
    fn deref_mut(&mut self) -> &mut Map<String, Json> {
        self.layer = OnceLock::new();
        &mut self.map
    }
}
