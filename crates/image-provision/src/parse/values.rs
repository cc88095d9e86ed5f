//! Typed reads of keyword values (booleans, strings, lists, mappings,
//! conditions), each problem reported at its place.

use image_core::yaml::{Node, Value};
use serde_json::{Map, Value as Json};

use super::Loader;
use crate::when::strip_braces;

impl Loader {
    /// A condition list (`when`, `changed_when`, ...): each checked for
    /// syntax.
    pub(super) fn conditions(&mut self, v: &Node) -> Vec<String> {
        let items: Vec<&Node> = match &v.value {
            Value::Seq(s) => s.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for i in items {
            let expr = match &i.value {
                Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
                Value::Str(s) => strip_braces(s),
                Value::Int(_) | Value::Float(_) => i.scalar_string().unwrap_or_default(),
                Value::Null => continue,
                _ => {
                    self.diags.push(
                        i.type_error("a condition", "an expression")
                            .with_help("write the condition as a string, e.g. `when: x == 1`"),
                    );
                    continue;
                }
            };
            if let Err(e) = self.tmpl.check_expr(&expr) {
                self.diags
                    .push(i.error(format!("bad condition `{expr}`: {e}")).with_help("write a Jinja expression without `{{ }}`, e.g. `when: x is defined and x | int > 1`"));
            }
            out.push(expr);
        }
        out
    }

    /// Syntax check of every template in a value.
    pub(super) fn check_templates(&mut self, n: &Node) {
        match &n.value {
            Value::Str(s) if s.contains("{{") || s.contains("{%") => {
                if let Err(e) = self.tmpl.check_template(s) {
                    self.diags
                        .push(n.error(format!("bad template: {e}")).with_help(
                            "fix the Jinja syntax; quote a value that starts with `{{`",
                        ));
                }
            }
            Value::Seq(items) => items.iter().for_each(|i| self.check_templates(i)),
            Value::Map(pairs) => pairs.iter().for_each(|(_, v)| self.check_templates(v)),
            _ => {}
        }
    }

    pub(super) fn map(&mut self, v: &Node, what: &str) -> Map<String, Json> {
        match v.to_json() {
            Json::Object(m) => {
                self.check_templates(v);
                m
            }
            Json::Null => Map::new(),
            _ => {
                self.diags.push(
                    v.type_error(what, "a mapping")
                        .with_help("write `name: value` lines"),
                );
                Map::new()
            }
        }
    }

    /// A boolean (ansible's spellings: yes/no, true/false, on/off).
    pub(super) fn bool(&mut self, v: &Node, what: &str) -> Option<bool> {
        let b = v.as_bool_loose();
        if b.is_none() {
            self.diags.push(
                v.type_error(what, "a boolean")
                    .with_help("use true or false (yes/no also work)"),
            );
        }
        b
    }

    pub(super) fn string(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.value {
            Value::Seq(_) | Value::Map(_) => {
                self.diags.push(
                    v.type_error(what, "a string").with_help(
                        "give one value; quote it if it contains `: ` or starts with `{`",
                    ),
                );
                None
            }
            _ => v.scalar_string(),
        }
    }

    pub(super) fn str_list(&mut self, v: &Node, what: &str) -> Vec<String> {
        match &v.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items.iter().filter_map(|i| self.string(i, what)).collect(),
            Value::Map(_) => {
                self.diags.push(
                    v.type_error(what, "a string or a list")
                        .with_help("give a name or a list of names"),
                );
                Vec::new()
            }
            _ => v
                .scalar_string()
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    /// A number of seconds or a template (`retries`, `delay`, `pause`).
    pub(super) fn number_or_template(&mut self, v: &Node, what: &str) -> Option<Json> {
        match &v.value {
            Value::Int(i) => Some(Json::from(*i)),
            Value::Float(f) => Some(Json::from(*f)),
            Value::Str(s) if s.contains("{{") => {
                self.check_templates(v);
                Some(Json::String(s.clone()))
            }
            Value::Str(s) if s.trim().parse::<f64>().is_ok() => Some(Json::String(s.clone())),
            _ => {
                self.diags.push(
                    v.type_error(what, "a number")
                        .with_help("give a number, or a template such as \"{{ n }}\""),
                );
                None
            }
        }
    }
}

/// Whether ansible-core accepts `name` as a variable name (its
/// `validate_variable_name`: an ASCII identifier that is none of Jinja's
/// `true`, `false`, `none`, `True`, `False`, `None`, `not`).
pub(crate) fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            name,
            "true" | "false" | "none" | "True" | "False" | "None" | "not"
        )
}

#[cfg(test)]
mod var_name_tests {
    use super::valid_var_name;

    #[test]
    fn ansibles_variable_names() {
        for ok in ["r", "_x", "out_2", "class", "True_"] {
            assert!(valid_var_name(ok), "{ok}");
        }
        for bad in [
            "", "2x", "a-b", "a b", "none", "None", "true", "False", "not", "é", "{{ x }}",
        ] {
            assert!(!valid_var_name(bad), "{bad}");
        }
    }
}
