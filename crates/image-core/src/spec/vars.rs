//! Variable declarations (`variables:`) and converting a value to a
//! variable's type.
//!
//! A declaration is either a plain default (`kubernetes_version: "1.31.4"`)
//! or a mapping `{default, description, required, sensitive, type,
//! pattern}`. A mapping always declares: to give a map as the default,
//! write `default: {...}`. Without `type`, the type is the default's (a
//! string default that is a template has no fixed type). `pattern` is a
//! regular expression the whole value (each item of a list) must match,
//! whichever source it comes from (`--var`, a var file, the default).

use std::fmt;

use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::yaml::{Node, Value};

/// Names the templates provide themselves; no variable may take them.
pub const RESERVED: &[&str] = &["timestamp", "build_name", "isotime"];

/// The type of a variable's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarType {
    /// Text.
    String,
    /// An integer or a float.
    Number,
    /// `true` / `false`.
    Bool,
    /// A list; from text, comma-separated.
    List,
    /// A mapping; from text, a JSON object.
    Map,
}

impl VarType {
    const ALL: [(&'static str, VarType); 5] = [
        ("string", VarType::String),
        ("number", VarType::Number),
        ("bool", VarType::Bool),
        ("list", VarType::List),
        ("map", VarType::Map),
    ];

    /// Parses `string|number|bool|list|map`.
    pub fn parse(s: &str) -> Option<VarType> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    /// The type of a YAML value, when it has one.
    pub fn of(node: &Node) -> Option<VarType> {
        match &node.value {
            Value::Str(s) if super::template::is_template(s) => None,
            Value::Str(_) => Some(VarType::String),
            Value::Int(_) | Value::Float(_) => Some(VarType::Number),
            Value::Bool(_) => Some(VarType::Bool),
            Value::Seq(_) => Some(VarType::List),
            Value::Map(_) => Some(VarType::Map),
            Value::Null => None,
        }
    }

    fn article(self) -> &'static str {
        match self {
            VarType::String => "a string",
            VarType::Number => "a number",
            VarType::Bool => "a boolean",
            VarType::List => "a list",
            VarType::Map => "a mapping",
        }
    }
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, t)| t == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// One declared variable.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// The default as written (may be a template over other variables).
    pub default: Option<Node>,
    /// What it is for.
    pub description: Option<String>,
    /// Must have a value (a default, a var file or `--var`).
    pub required: bool,
    /// Masked in `inspect` output.
    pub sensitive: bool,
    /// Declared or inferred type; `None` = any.
    pub ty: Option<VarType>,
    /// `pattern`: what the whole value (each item of a list) must match.
    pub pattern: Option<Pattern>,
    /// Where it is declared.
    pub loc: Location,
}

const DECL_KEYS: [&str; 6] = [
    "default",
    "description",
    "required",
    "sensitive",
    "type",
    "pattern",
];

/// A variable's `pattern`: a regular expression matched against the whole
/// text of a value.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written.
    pub source: String,
    re: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, anchored at both ends. The error is regex's own
    /// reason in one line (`unclosed group`).
    pub fn new(source: &str) -> Result<Pattern, String> {
        let reason = |e: regex::Error| {
            let text = e.to_string();
            let last = text.lines().rev().find(|l| !l.trim().is_empty());
            last.unwrap_or(&text)
                .trim()
                .trim_start_matches("error: ")
                .to_string()
        };
        regex::Regex::new(source).map_err(reason)?;
        regex::Regex::new(&format!("^(?:{source})$"))
            .map(|re| Pattern {
                source: source.to_string(),
                re,
            })
            .map_err(reason)
    }

    /// `Err(message)` unless `value` (a string or number, or each item of
    /// a list) matches.
    pub fn check(&self, value: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value as J;
        let items: Vec<&J> = match value {
            J::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for item in items {
            let text = match item {
                J::String(s) => s.clone(),
                J::Number(n) => n.to_string(),
                J::Bool(b) => b.to_string(),
                _ => continue,
            };
            if !self.re.is_match(&text) {
                return Err(format!("must match `{}`, found `{text}`", self.source));
            }
        }
        Ok(())
    }
}

/// Reads the `variables:` mapping.
pub fn parse_declarations(node: &Node, diags: &mut Diagnostics) -> Vec<Variable> {
    let mut out: Vec<Variable> = Vec::new();
    let Some(pairs) = node.as_map() else {
        if !node.is_null() {
            diags.push(
                node.type_error("variables", "a mapping of names to defaults")
                    .with_help(
                        "write `name: default` lines, or `name: {default: …, description: …}`",
                    ),
            );
        }
        return out;
    };
    for (k, v) in pairs {
        let Some(name) = k.as_key() else {
            diags.push(
                k.error("a variable name must be a string")
                    .with_help("name variables with letters, digits and `_`"),
            );
            continue;
        };
        if !is_identifier(&name) {
            diags.push(
                k.error(format!("invalid variable name `{name}`"))
                    .with_help("use letters, digits and `_`, not starting with a digit"),
            );
            continue;
        }
        if RESERVED.contains(&name.as_str()) {
            diags.push(
                k.error(format!("`{name}` is a built-in template value"))
                    .with_help("choose another name for this variable"),
            );
            continue;
        }
        out.retain(|o: &Variable| o.name != name);
        out.push(parse_one(name, k, v, diags));
    }
    out
}

fn parse_one(name: String, key: &Node, v: &Node, diags: &mut Diagnostics) -> Variable {
    let mut var = Variable {
        name,
        default: None,
        description: None,
        required: false,
        sensitive: false,
        ty: None,
        pattern: None,
        loc: key.loc.clone(),
    };
    let Some(pairs) = v.as_map() else {
        if !v.is_null() {
            var.ty = VarType::of(v);
            var.default = Some(v.clone());
        }
        return var;
    };
    for (k, val) in pairs {
        let key = k.as_key().unwrap_or_default();
        match key.as_str() {
            "default" => var.default = (!val.is_null()).then(|| val.clone()),
            "description" => match val.scalar_string() {
                Some(s) => var.description = Some(s),
                None => diags.push(
                    val.type_error("description", "a string")
                        .with_help("write the description as one line of text"),
                ),
            },
            "required" | "sensitive" => match val.as_bool_loose() {
                Some(b) if key == "required" => var.required = b,
                Some(b) => var.sensitive = b,
                None => diags.push(
                    val.type_error(&key, "a boolean")
                        .with_help(format!("write `{key}: true` or `{key}: false`")),
                ),
            },
            "pattern" => match val.as_str().map(Pattern::new) {
                Some(Ok(p)) => var.pattern = Some(p),
                Some(Err(e)) => diags.push(
                    val.error(format!(
                        "invalid pattern `{}`: {e}",
                        val.scalar_string().unwrap_or_default()
                    ))
                    .with_help(
                        "a regular expression (Rust regex syntax) the whole value must match",
                    ),
                ),
                None => diags.push(
                    val.type_error("pattern", "a string")
                        .with_help("write the regular expression as a quoted string"),
                ),
            },
            "type" => match val.as_str().and_then(VarType::parse) {
                Some(t) => var.ty = Some(t),
                None => diags.push(
                    val.error(format!(
                        "unknown variable type `{}`",
                        val.scalar_string().unwrap_or_default()
                    ))
                    .with_help("use one of: string, number, bool, list, map"),
                ),
            },
            _ => {
                let d = k.error(format!("unknown key `{key}` in variable `{}`", var.name));
                diags.push(match did_you_mean(&key, DECL_KEYS) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(
                        "a mapping declares the variable (default, description, required, \
                         sensitive, type, pattern); to give a map as the default, write \
                         `default: {...}`",
                    ),
                });
            }
        }
    }
    if var.ty.is_none() {
        var.ty = var.default.as_ref().and_then(VarType::of);
    }
    var
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Converts a YAML value to `ty` (any type when `None`). Text is accepted
/// for every type, read as `--var` reads it.
pub fn convert_node(node: &Node, ty: Option<VarType>) -> Result<serde_json::Value, String> {
    let Some(ty) = ty else {
        return Ok(node.to_json());
    };
    match (&node.value, ty) {
        (Value::Str(s), _) => convert_str(s, Some(ty)),
        (Value::Null, VarType::List) => Ok(serde_json::Value::Array(Vec::new())),
        (Value::Null, VarType::Map) => Ok(serde_json::Value::Object(Default::default())),
        (Value::Null, VarType::String) => Ok(serde_json::Value::String(String::new())),
        (Value::Int(_) | Value::Float(_) | Value::Bool(_), VarType::String) => Ok(
            serde_json::Value::String(node.scalar_string().unwrap_or_default()),
        ),
        (Value::Int(_) | Value::Float(_), VarType::Number)
        | (Value::Bool(_), VarType::Bool)
        | (Value::Seq(_), VarType::List)
        | (Value::Map(_), VarType::Map) => Ok(node.to_json()),
        _ => Err(format!("must be {}, found {}", ty.article(), node.kind())),
    }
}

/// Converts text (a `--var` value) to `ty` (a string when `None`): numbers
/// and booleans parsed, lists comma-separated, maps as JSON objects.
pub fn convert_str(s: &str, ty: Option<VarType>) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    match ty {
        None | Some(VarType::String) => Ok(J::String(s.to_string())),
        Some(VarType::Number) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return Ok(J::from(i));
            }
            t.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(J::Number)
                .ok_or_else(|| format!("must be a number, found `{s}`"))
        }
        Some(VarType::Bool) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(J::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(J::Bool(false)),
            _ => Err(format!("must be a boolean (true or false), found `{s}`")),
        },
        Some(VarType::List) => Ok(J::Array(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| J::String(p.to_string()))
                .collect(),
        )),
        Some(VarType::Map) if s.trim().is_empty() => Ok(J::Object(Default::default())),
        Some(VarType::Map) => match serde_json::from_str::<J>(s) {
            Ok(J::Object(m)) => Ok(J::Object(m)),
            _ => Err(format!("must be a mapping (a JSON object), found `{s}`")),
        },
    }
}

/// The error for a value that does not fit its variable.
pub fn type_mismatch(loc: Option<Location>, name: &str, msg: &str) -> Diagnostic {
    Diagnostic::error(loc, format!("variable `{name}` {msg}"))
}

/// Why a value was refused: the message, and for a pattern mismatch the
/// variable's description as help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// `must be a number, found …`, `must match …, found …`.
    pub msg: String,
    /// What the value should be, in words.
    pub help: Option<String>,
}

impl Variable {
    /// Converts a YAML value to this variable's type and checks its
    /// pattern.
    pub fn accept_node(&self, node: &Node) -> Result<serde_json::Value, Rejected> {
        let v = convert_node(node, self.ty).map_err(|msg| Rejected { msg, help: None })?;
        self.check_pattern(&v)?;
        Ok(v)
    }

    /// Converts text (a `--var` value) to this variable's type and checks
    /// its pattern.
    pub fn accept_str(&self, s: &str) -> Result<serde_json::Value, Rejected> {
        let v = convert_str(s, self.ty).map_err(|msg| Rejected { msg, help: None })?;
        self.check_pattern(&v)?;
        Ok(v)
    }

    fn check_pattern(&self, v: &serde_json::Value) -> Result<(), Rejected> {
        match &self.pattern {
            Some(p) => p.check(v).map_err(|msg| Rejected {
                msg,
                help: Some(match &self.description {
                    Some(d) => format!("`{}`: {d}", self.name),
                    None => format!("give a value that matches `{}` as a whole", p.source),
                }),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    #[test]
    fn patterns_match_whole_values_and_list_items() {
        use serde_json::json;
        let p = Pattern::new(r"[0-9]+\.[0-9]+").unwrap();
        assert!(p.check(&json!("1.31")).is_ok());
        assert!(p.check(&json!("v1.31")).is_err(), "anchored at the start");
        assert!(p.check(&json!("1.31.4")).is_err(), "anchored at the end");
        assert!(p.check(&json!(["1.2", "3.4"])).is_ok());
        let e = p.check(&json!(["1.2", "x"])).unwrap_err();
        assert!(e.contains("found `x`"), "{e}");
        assert_eq!(Pattern::new("(a").unwrap_err(), "unclosed group");
    }

    #[test]
    fn declarations_plain_and_full() {
        let src =
            "a: 1.31.4\nb:\n  default: [x]\n  required: true\n  sensitive: yes\nc:\n  type: list\n";
        let doc = yaml::parse("f", src).unwrap();
        let mut d = Diagnostics::default();
        let vars = parse_declarations(&doc, &mut d);
        assert!(d.is_empty(), "{d}");
        assert_eq!(vars[0].ty, Some(VarType::String));
        assert!(vars[1].required && vars[1].sensitive);
        assert_eq!(vars[1].ty, Some(VarType::List));
        assert_eq!(vars[2].ty, Some(VarType::List));
        assert!(vars[2].default.is_none());
    }

    #[test]
    fn unknown_declaration_key_suggests() {
        let doc = yaml::parse("f", "a:\n  defualt: 1\n").unwrap();
        let mut d = Diagnostics::default();
        parse_declarations(&doc, &mut d);
        assert!(d.to_string().contains("did you mean `default`?"), "{d}");
    }

    #[test]
    fn reserved_and_invalid_names() {
        let doc = yaml::parse("f", "timestamp: 1\n1a: 2\n").unwrap();
        let mut d = Diagnostics::default();
        assert!(parse_declarations(&doc, &mut d).is_empty());
        assert_eq!(d.0.len(), 2);
    }

    #[test]
    fn strings_convert_by_type() {
        use serde_json::json;
        assert_eq!(
            convert_str("a, b,", Some(VarType::List)).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(convert_str("", Some(VarType::List)).unwrap(), json!([]));
        assert_eq!(
            convert_str("no", Some(VarType::Bool)).unwrap(),
            json!(false)
        );
        assert_eq!(convert_str("20", Some(VarType::Number)).unwrap(), json!(20));
        assert!(convert_str("x", Some(VarType::Number)).is_err());
        assert_eq!(
            convert_str(r#"{"a":1}"#, Some(VarType::Map)).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(convert_str("1.2", None).unwrap(), json!("1.2"));
    }

    #[test]
    fn nodes_convert_by_type() {
        let doc = yaml::parse("f", "l: [a]\nn: 3\ns: x\n").unwrap();
        let l = doc.get("l").unwrap();
        assert!(convert_node(l, Some(VarType::String)).is_err());
        let n = doc.get("n").unwrap();
        assert_eq!(convert_node(n, Some(VarType::String)).unwrap(), "3");
        let s = doc.get("s").unwrap();
        assert_eq!(
            convert_node(s, Some(VarType::List)).unwrap(),
            serde_json::json!(["x"])
        );
    }
}
