//! The variables of one task as a lazy minijinja object: a variable whose
//! value holds a template is rendered on first use (with the same
//! variables, so variables may refer to each other) and cached; a cycle is
//! reported instead of recursing; a dict or list holding templates stays
//! lazy item by item (`lazy`). It also answers ansible's magic names:
//! `vars`, `hostvars` (this host), and keeps `ansible_facts.x` and
//! `ansible_x` consistent (either one answers for the other).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, Value};
use serde_json::{Map, Value as Json};

use super::layers::Layers;
use super::lazy::Lazy;
use super::{describe, has_template, name_undefined, render_json};

/// The variable that holds the host's own name for `hostvars` (set by the
/// engine with the magic names; `inventory_hostname` when it is absent).
pub const HOST_KEY: &str = "__inventory_host";

/// Variables of one task, templated on first use.
pub struct Vars {
    env: Arc<Environment<'static>>,
    raw: Layers,
    cache: Mutex<HashMap<String, Value>>,
    busy: Mutex<HashSet<String>>,
    errors: Mutex<Vec<String>>,
    /// Names looked up and not found since [`Vars::begin`] (for messages).
    missed: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<vars>")
    }
}

impl Vars {
    pub(super) fn new(env: Arc<Environment<'static>>, raw: Layers) -> Self {
        Vars {
            env,
            raw,
            cache: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            errors: Mutex::new(Vec::new()),
            missed: Mutex::new(Vec::new()),
        }
    }

    /// Starts a render: forgets the errors and misses of earlier ones.
    pub(super) fn begin(&self) {
        if let Ok(mut e) = self.errors.lock() {
            e.clear();
        }
        if let Ok(mut m) = self.missed.lock() {
            m.clear();
        }
    }

    /// The variables looked up and not found in this render.
    pub(super) fn missed(&self) -> Vec<String> {
        self.missed.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn miss(&self, k: &str) {
        if k.starts_with("__") || self.env.globals().any(|(g, _)| g == k) {
            return;
        }
        if let Ok(mut m) = self.missed.lock() {
            if m.len() < 16 && !m.iter().any(|x| x == k) {
                m.push(k.to_string());
            }
        }
    }

    /// The errors met while templating variables, for messages: the last
    /// one (the variable used) and the first (the root cause).
    pub(super) fn last_error(&self) -> Option<String> {
        let e = self.errors.lock().ok()?;
        match (e.first(), e.last()) {
            (Some(f), Some(l)) if f != l => Some(format!("{l}; first: {f}")),
            (_, l) => l.cloned(),
        }
    }

    /// A variable by name, templated (None when undefined or failing).
    pub(super) fn lookup(self: &Arc<Self>, k: &str) -> Option<Value> {
        self.get_value(&Value::from(k))
    }

    fn note(&self, msg: String) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(msg);
        }
    }

    fn cached(&self, k: &str, v: Value) -> Value {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(k.to_string(), v.clone());
        }
        v
    }

    /// A raw variable rendered (or taken as is when it has no template).
    fn resolve(self: &Arc<Self>, k: &str, raw: &Json) -> Option<Value> {
        let v = self.render_value(k, raw)?;
        Some(self.cached(k, v))
    }

    /// A raw value at `path` (`a`, `a.b`, `a.l.0`) as a template value: as
    /// is without templates; a dict or list holding templates stays lazy
    /// (each item is rendered when used, as ansible-core 2.19's lazy
    /// containers: a broken item fails only where it is used); a string
    /// is rendered, with a cycle reported instead of recursing.
    pub(super) fn render_value(self: &Arc<Self>, path: &str, raw: &Json) -> Option<Value> {
        if !has_template(raw) {
            return Some(Value::from_serialize(raw));
        }
        if raw.is_object() || raw.is_array() {
            return Some(Value::from_object(Lazy::new(
                self.clone(),
                path.to_string(),
                raw.clone(),
            )));
        }
        {
            let mut busy = self.busy.lock().ok()?;
            if !busy.insert(path.to_string()) {
                drop(busy);
                self.note(format!("variable `{path}` refers to itself"));
                return None;
            }
        }
        let ctx = Value::from_dyn_object(self.clone());
        let out = render_json(&self.env, raw, &ctx);
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(path);
        }
        match out {
            Ok(j) => Some(Value::from_serialize(&j)),
            Err(e) => {
                let mut msg = describe(&e);
                if e.kind() == minijinja::ErrorKind::UndefinedError {
                    msg = name_undefined(msg, &self.missed());
                }
                self.note(format!("in variable `{path}`: {msg}"));
                None
            }
        }
    }

    /// `ansible_facts` built from the `ansible_*` variables when the
    /// context has none.
    fn facts_from_prefixed(&self) -> Option<Value> {
        let m: Map<String, Json> = self
            .raw
            .iter()
            .filter_map(|(k, v)| {
                let f = k.strip_prefix("ansible_")?;
                Some((f.to_string(), v.clone()))
            })
            .collect();
        if m.is_empty() {
            return None;
        }
        Some(Value::from_serialize(&m))
    }
}

impl Object for Vars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let k = key.as_str()?;
        match k {
            "hostvars" => {
                // The host's own name, whatever a variable named
                // `inventory_hostname` says.
                let host = self
                    .get_value(&Value::from(HOST_KEY))
                    .or_else(|| self.get_value(&Value::from("inventory_hostname")))?;
                let mut m = BTreeMap::new();
                m.insert(host.to_string(), Value::from_dyn_object(self.clone()));
                return Some(Value::from(m));
            }
            "vars" | "__vars" => return Some(Value::from_dyn_object(self.clone())),
            _ => {}
        }
        if let Some(v) = self.cache.lock().ok()?.get(k) {
            return Some(v.clone());
        }
        if let Some(raw) = self.raw.get(k) {
            return self.resolve(k, raw);
        }
        if k == "ansible_facts" {
            return self.facts_from_prefixed().map(|v| self.cached(k, v));
        }
        // `ansible_x` for a fact that only `ansible_facts` holds (facts
        // modules add there).
        let fact = k
            .strip_prefix("ansible_")
            .and_then(|f| self.raw.get("ansible_facts")?.as_object()?.get(f));
        match fact {
            Some(raw) => Some(self.cached(k, Value::from_serialize(raw))),
            None => {
                self.miss(k);
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.raw.keys().map(|k| Value::from(k.as_str())).collect();
        Enumerator::Values(keys)
    }
}
