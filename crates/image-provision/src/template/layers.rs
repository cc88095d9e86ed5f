//! A task's variables as shared layers and a small layer of its own: the
//! shared ones (facts, the play's and the scope's variables) are built
//! once and shared by every task that sees them, so a task costs only its
//! own variables, its loop's and the names that depend on it. A name is
//! looked up in the task's own layer, then in the shared ones from the
//! last to the first; the layers are built so that this gives the value
//! the merged map of ansible's precedence would.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

/// Layers of variables, the later ones winning.
#[derive(Clone, Debug, Default)]
pub struct Layers {
    shared: Vec<Arc<Map<String, Json>>>,
    top: Map<String, Json>,
}

impl Layers {
    /// Shared layers (lowest first) with `top` over them.
    pub fn new(shared: Vec<Arc<Map<String, Json>>>, top: Map<String, Json>) -> Self {
        Layers { shared, top }
    }

    /// The value of `k`, from the highest layer that has it.
    pub fn get(&self, k: &str) -> Option<&Json> {
        self.top
            .get(k)
            .or_else(|| self.shared.iter().rev().find_map(|l| l.get(k)))
    }

    /// Whether some layer has `k`.
    pub fn contains_key(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// Sets `k` over every layer.
    pub fn insert(&mut self, k: String, v: Json) {
        self.top.insert(k, v);
    }

    /// Sets `k` only where no layer has it.
    pub fn insert_missing(&mut self, k: &str, v: impl FnOnce() -> Json) {
        if !self.contains_key(k) {
            self.top.insert(k.to_string(), v());
        }
    }

    /// Every name with its value, each once (the winning value).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Json)> {
        let n = self.shared.len();
        let shadowed = move |k: &String, from: usize| -> bool {
            self.top.contains_key(k) || self.shared[from + 1..n].iter().any(|l| l.contains_key(k))
        };
        self.shared
            .iter()
            .enumerate()
            .flat_map(move |(i, l)| l.iter().filter(move |(k, _)| !shadowed(k, i)))
            .chain(self.top.iter())
    }

    /// Every name, each once.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(k, _)| k)
    }

    /// One merged map (a copy).
    pub fn to_map(&self) -> Map<String, Json> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl From<Map<String, Json>> for Layers {
    fn from(top: Map<String, Json>) -> Self {
        Layers {
            shared: Vec::new(),
            top,
        }
    }
}

/// Equal when every name has the same value; shared layers that are the
/// same allocation are not compared item by item.
impl PartialEq for Layers {
    fn eq(&self, other: &Self) -> bool {
        let same_shared = self.shared.len() == other.shared.len()
            && self
                .shared
                .iter()
                .zip(&other.shared)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b);
        if same_shared && self.top == other.top {
            return true;
        }
        let (a, b) = (self.to_map(), other.to_map());
        a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn map(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn later_layers_win_and_each_name_is_listed_once() {
        let low = Arc::new(map(json!({"a": 1, "b": 1, "c": 1})));
        let mid = Arc::new(map(json!({"b": 2, "d": 2})));
        let mut l = Layers::new(vec![low.clone(), mid.clone()], map(json!({"c": 3})));
        assert_eq!(l.get("a"), Some(&json!(1)));
        assert_eq!(l.get("b"), Some(&json!(2)));
        assert_eq!(l.get("c"), Some(&json!(3)));
        assert_eq!(l.get("e"), None);
        l.insert_missing("a", || json!(9));
        l.insert_missing("e", || json!(5));
        assert_eq!(l.get("a"), Some(&json!(1)));
        assert_eq!(
            l.to_map(),
            map(json!({"a": 1, "b": 2, "d": 2, "c": 3, "e": 5}))
        );
        let mut keys: Vec<&String> = l.keys().collect();
        keys.sort();
        assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn equal_by_value_whatever_the_layering() {
        let low = Arc::new(map(json!({"a": 1, "b": 1})));
        let x = Layers::new(vec![low.clone()], map(json!({"b": 2})));
        let y = Layers::new(vec![low.clone()], map(json!({"b": 2})));
        let z = Layers::from(map(json!({"a": 1, "b": 2})));
        let w = Layers::new(vec![low], map(json!({"b": 3})));
        assert_eq!(x, y);
        assert_eq!(x, z);
        assert_ne!(x, w);
        assert_ne!(z, Layers::from(map(json!({"a": 1}))));
    }
}
