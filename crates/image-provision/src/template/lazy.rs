//! A dict or list variable holding templates, rendered item by item when
//! an item is used (ansible-core 2.19's lazy containers): `cfg.port` works
//! while `cfg.url` refers to a variable this host lacks, and
//! `cfg.url | default(x)` sees an undefined value. Using the whole
//! container (printing it, a native result) renders every item and fails
//! on a broken one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value;
use serde_json::Value as Json;

use super::vars::Vars;

/// A lazily rendered dict or list.
pub(crate) struct Lazy {
    vars: Arc<Vars>,
    path: String,
    raw: Json,
    cache: Mutex<HashMap<String, Value>>,
}

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<lazy {}>", self.path)
    }
}

impl Lazy {
    pub(super) fn new(vars: Arc<Vars>, path: String, raw: Json) -> Self {
        Lazy {
            vars,
            path,
            raw,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The raw item for a key (a dict key, or a list index, negative from
    /// the end).
    fn raw_item(&self, key: &Value) -> Option<(String, &Json)> {
        match &self.raw {
            Json::Object(m) => {
                let k = key.as_str()?;
                Some((k.to_string(), m.get(k)?))
            }
            Json::Array(a) => {
                let i = key.as_i64()?;
                let i = if i < 0 { a.len() as i64 + i } else { i };
                let i = usize::try_from(i).ok()?;
                Some((i.to_string(), a.get(i)?))
            }
            _ => None,
        }
    }
}

impl Object for Lazy {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        if self.raw.is_array() {
            ObjectRepr::Seq
        } else {
            ObjectRepr::Map
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (k, raw) = self.raw_item(key)?;
        if let Some(v) = self.cache.lock().ok()?.get(&k) {
            return Some(v.clone());
        }
        let v = self.vars.render_value(&format!("{}.{k}", self.path), raw)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(k, v.clone());
        }
        Some(v)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match &self.raw {
            Json::Object(m) => {
                Enumerator::Values(m.keys().map(|k| Value::from(k.as_str())).collect())
            }
            Json::Array(a) => Enumerator::Seq(a.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match &self.raw {
            Json::Object(m) => Some(m.len()),
            Json::Array(a) => Some(a.len()),
            _ => None,
        }
    }
}
