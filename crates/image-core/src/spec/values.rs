//! Variable values: declared defaults < `--var-file`s (in order) <
//! `--var NAME=VALUE` (in order).
//!
//! Values from var files and `--var` are taken literally (never rendered, so
//! a secret containing `{{` stays as it is) and converted to the variable's
//! type (`--var` text: numbers and booleans parsed, lists comma-separated).
//! Defaults are templates over the other variables' final values
//! (`kubernetes_series: "{{ (kubernetes_version | split('.'))[:2] | join('.') }}"`
//! follows `--var kubernetes_version=...`); cycles are errors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use super::dups::duplicate_key_warnings;
use super::template::{is_template, Renderer};
use super::vars::{convert_node, type_mismatch, VarType, Variable};
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::yaml::{self, Node};

/// Variable values from outside the definition: var files as
/// `(name, source text)` (JSON or YAML; a name ending in `.json` is checked
/// as strict JSON first) and `--var` arguments as `NAME=VALUE`.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// Var files, lowest precedence first.
    pub files: Vec<(String, String)>,
    /// `--var` arguments, lowest precedence first.
    pub cli: Vec<String>,
}

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "file")]
pub enum VarSource {
    /// The declared default.
    Default,
    /// No default and not required: the type's empty value.
    Unset,
    /// This var file.
    File(String),
    /// `--var`.
    Cli,
}

impl fmt::Display for VarSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarSource::Default => f.write_str("default"),
            VarSource::Unset => f.write_str("unset"),
            VarSource::File(n) => write!(f, "var file {n}"),
            VarSource::Cli => f.write_str("--var"),
        }
    }
}

/// A variable with its final value.
#[derive(Debug, Clone, Serialize)]
pub struct VarValue {
    /// Its name.
    pub name: String,
    /// The value.
    pub value: serde_json::Value,
    /// Where the value came from.
    pub source: VarSource,
    /// Declared required.
    pub required: bool,
    /// Declared sensitive.
    pub sensitive: bool,
    /// Its description.
    pub description: Option<String>,
    /// Its type, `None` = any.
    #[serde(serialize_with = "ser_type")]
    pub ty: Option<VarType>,
}

impl VarValue {
    /// The value as compact JSON, or `<sensitive>`.
    pub fn display_value(&self) -> String {
        if self.sensitive {
            return "<sensitive>".to_string();
        }
        serde_json::to_string(&self.value).unwrap_or_default()
    }

    /// JSON for output; sensitive values replaced by `"<sensitive>"` when
    /// `mask`.
    pub fn to_json(&self, mask: bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if mask && self.sensitive {
            v["value"] = serde_json::Value::String("<sensitive>".into());
        }
        v
    }
}

fn ser_type<S: serde::Serializer>(t: &Option<VarType>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(t),
        None => s.serialize_str("any"),
    }
}

/// Parses a var file: syntax (strict JSON for `*.json`), a mapping at the
/// top, duplicate keys (warnings). Used alone to report syntax errors when
/// the definition itself does not load.
pub fn parse_var_file(name: &str, src: &str, diags: &mut Diagnostics) -> Option<Node> {
    if name.ends_with(".json") {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(src) {
            let full = e.to_string();
            let msg = full
                .rfind(" at line ")
                .map_or(full.as_str(), |i| &full[..i]);
            diags.push(
                Diagnostic::error(
                    Location::new(name, e.line().max(1), e.column().max(1)),
                    format!("JSON syntax error: {msg}"),
                )
                .with_help("a JSON var file is one object: {\"name\": value, ...}"),
            );
            return None;
        }
    }
    let doc = match yaml::parse(name, src) {
        Ok(d) => d,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    duplicate_key_warnings(&doc, diags);
    if doc.as_map().is_none() && !doc.is_null() {
        diags.push(
            doc.type_error("a var file", "a mapping of variable names to values")
                .with_help("write `name: value` lines"),
        );
        return None;
    }
    Some(doc)
}

/// Final values of `vars`, in declaration order. `broken` gets the names of
/// variables without a usable value (their errors are in `diags`), so that
/// templates using them do not report the same problem again.
pub fn resolve_values(
    vars: &[Variable],
    inputs: &VarInputs,
    now: i64,
    diags: &mut Diagnostics,
    broken: &mut HashSet<String>,
) -> Vec<VarValue> {
    let mut overrides: HashMap<&str, (serde_json::Value, VarSource)> = HashMap::new();
    let by_name = |n: &str| vars.iter().find(|v| v.name == n);
    let names = || vars.iter().map(|v| v.name.as_str());
    let unknown_help = |name: &str| match did_you_mean(name, names()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if vars.is_empty() => "the definition declares no variables".to_string(),
        None => format!(
            "declared variables: {}",
            names().collect::<Vec<_>>().join(", ")
        ),
    };

    for (file, src) in &inputs.files {
        let Some(doc) = parse_var_file(file, src, diags) else {
            continue;
        };
        for (k, v) in doc.as_map().unwrap_or_default() {
            let key = k.as_key().unwrap_or_default();
            let Some(var) = by_name(&key) else {
                diags.push(
                    k.error(format!("unknown variable `{key}` in var file"))
                        .with_help(unknown_help(&key)),
                );
                continue;
            };
            match var.accept_node(v) {
                Ok(j) => {
                    overrides.insert(&var.name, (j, VarSource::File(file.clone())));
                }
                Err(r) => {
                    diags.push(with_help(
                        type_mismatch(Some(v.loc.clone()), &var.name, &r.msg),
                        r.help,
                    ));
                    broken.insert(var.name.clone());
                }
            }
        }
    }

    for arg in &inputs.cli {
        let Some((name, value)) = arg.split_once('=') else {
            diags.push(
                Diagnostic::error(None, format!("invalid --var `{arg}`: expected NAME=VALUE"))
                    .with_help(format!("e.g. --var {}=VALUE", arg.trim())),
            );
            continue;
        };
        let name = name.trim();
        let Some(var) = by_name(name) else {
            diags.push(
                Diagnostic::error(None, format!("unknown variable `{name}` in --var"))
                    .with_help(unknown_help(name)),
            );
            continue;
        };
        match var.accept_str(value) {
            Ok(j) => {
                broken.remove(&var.name);
                overrides.insert(&var.name, (j, VarSource::Cli));
            }
            Err(r) => {
                diags.push(with_help(
                    Diagnostic::error(
                        None,
                        format!("invalid --var `{arg}`: variable `{name}` {}", r.msg),
                    ),
                    r.help,
                ));
                broken.insert(var.name.clone());
            }
        }
    }

    let mut r = Resolver {
        vars,
        overrides,
        now,
        done: BTreeMap::new(),
        sources: HashMap::new(),
        stack: Vec::new(),
        diags,
        broken,
    };
    for v in vars {
        r.resolve(v);
    }
    vars.iter()
        .filter_map(|v| {
            let value = r.done.get(&v.name)?.clone();
            Some(VarValue {
                name: v.name.clone(),
                value,
                source: r.sources.get(v.name.as_str())?.clone(),
                required: v.required,
                sensitive: v.sensitive,
                description: v.description.clone(),
                ty: v.ty,
            })
        })
        .collect()
}

struct Resolver<'a, 'd> {
    vars: &'a [Variable],
    overrides: HashMap<&'a str, (serde_json::Value, VarSource)>,
    now: i64,
    done: BTreeMap<String, serde_json::Value>,
    sources: HashMap<&'a str, VarSource>,
    stack: Vec<&'a str>,
    diags: &'d mut Diagnostics,
    broken: &'d mut HashSet<String>,
}

impl<'a> Resolver<'a, '_> {
    fn resolve(&mut self, var: &'a Variable) {
        let name = var.name.as_str();
        if self.done.contains_key(name) || self.broken.contains(name) {
            return;
        }
        if self.stack.contains(&name) {
            let start = self.stack.iter().position(|n| *n == name).unwrap_or(0);
            let mut chain: Vec<&str> = self.stack[start..].to_vec();
            chain.push(name);
            self.diags.push(
                Diagnostic::error(
                    var.loc.clone(),
                    format!("variable `{name}` refers to itself: {}", chain.join(" -> ")),
                )
                .with_help("break the cycle: give one of these a plain default"),
            );
            self.broken.insert(name.to_string());
            return;
        }
        if let Some((value, source)) = self.overrides.remove(name) {
            self.finish(var, value, source);
            return;
        }
        let Some(default) = &var.default else {
            if var.required {
                self.diags.push(
                    Diagnostic::error(
                        var.loc.clone(),
                        format!("required variable `{name}` has no value"),
                    )
                    .with_help(format!(
                        "set it with `--var {name}=VALUE` or in a `--var-file`"
                    )),
                );
                self.broken.insert(name.to_string());
            } else {
                let empty = convert_node(
                    &Node {
                        value: crate::yaml::Value::Null,
                        loc: var.loc.clone(),
                    },
                    var.ty,
                )
                .unwrap_or(serde_json::Value::Null);
                self.finish(var, empty, VarSource::Unset);
            }
            return;
        };
        self.stack.push(name);
        let probe = Renderer::new(self.now, BTreeMap::new());
        let mut refs = HashSet::new();
        collect_refs(default, &probe, &mut refs);
        // A name in the text may be the variable's own (in a string): only
        // minijinja's own report makes a self-reference.
        if !probe_refers_to_self(default, &probe, name) {
            refs.remove(name);
        }
        for r in &refs {
            if let Some(dep) = self.vars.iter().find(|v| &v.name == r) {
                self.resolve(dep);
            }
        }
        self.stack.pop();
        if self.broken.contains(name) {
            return;
        }
        if refs.iter().any(|r| self.broken.contains(r)) {
            self.broken.insert(name.to_string());
            return;
        }
        let renderer = Renderer::new(self.now, self.done.clone());
        let mut failed = HashSet::new();
        let before = self.diags.0.len();
        let rendered = renderer.render_node(default, self.diags, &mut failed);
        if self.diags.0.len() > before {
            self.broken.insert(name.to_string());
            return;
        }
        match var.accept_node(&rendered) {
            Ok(v) => self.finish(var, v, VarSource::Default),
            Err(r) => {
                self.diags.push(with_help(
                    type_mismatch(
                        Some(default.loc.clone()),
                        name,
                        &format!("default {}", r.msg),
                    ),
                    r.help,
                ));
                self.broken.insert(name.to_string());
            }
        }
    }

    fn finish(&mut self, var: &'a Variable, value: serde_json::Value, source: VarSource) {
        self.done.insert(var.name.clone(), value);
        self.sources.insert(&var.name, source);
    }
}

/// The names a template value refers to: what minijinja reports, plus every
/// identifier in its text (minijinja misses names inside some expressions,
/// e.g. `(k8s | split('.'))[:2]`); extra names only order the resolution.
fn collect_refs(node: &Node, r: &Renderer, out: &mut HashSet<String>) {
    match &node.value {
        crate::yaml::Value::Str(s) if is_template(s) => {
            out.extend(r.referenced(s));
            out.extend(
                s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
                    .map(str::to_string),
            );
        }
        crate::yaml::Value::Seq(items) => items.iter().for_each(|i| collect_refs(i, r, out)),
        crate::yaml::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            collect_refs(k, r, out);
            collect_refs(v, r, out);
        }),
        _ => {}
    }
}

/// Whether minijinja itself reports `name` in a template value.
fn probe_refers_to_self(node: &Node, r: &Renderer, name: &str) -> bool {
    match &node.value {
        crate::yaml::Value::Str(s) if is_template(s) => r.referenced(s).contains(name),
        crate::yaml::Value::Seq(items) => items.iter().any(|i| probe_refers_to_self(i, r, name)),
        crate::yaml::Value::Map(pairs) => pairs
            .iter()
            .any(|(k, v)| probe_refers_to_self(k, r, name) || probe_refers_to_self(v, r, name)),
        _ => false,
    }
}

/// The texts of every value given to a sensitive variable, as written —
/// its default (when not a template), each var file's value, each `--var`
/// value and its comma-separated items — and as resolved: what a
/// [`crate::redact::Redactor`] must mask, even when a value was refused.
pub fn sensitive_texts(vars: &[Variable], inputs: &VarInputs, values: &[VarValue]) -> Vec<String> {
    fn scalars(node: &Node, out: &mut Vec<String>) {
        match &node.value {
            crate::yaml::Value::Seq(items) => items.iter().for_each(|i| scalars(i, out)),
            crate::yaml::Value::Map(pairs) => pairs.iter().for_each(|(_, v)| scalars(v, out)),
            crate::yaml::Value::Null | crate::yaml::Value::Bool(_) => {}
            crate::yaml::Value::Str(s) if is_template(s) => {}
            _ => out.extend(node.scalar_string()),
        }
    }
    fn json_texts(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Number(n) => out.push(n.to_string()),
            serde_json::Value::Array(items) => items.iter().for_each(|i| json_texts(i, out)),
            serde_json::Value::Object(m) => m.values().for_each(|i| json_texts(i, out)),
            serde_json::Value::Null | serde_json::Value::Bool(_) => {}
        }
    }
    let sensitive = |name: &str| vars.iter().any(|v| v.sensitive && v.name == name);
    let mut out = Vec::new();
    for v in vars.iter().filter(|v| v.sensitive) {
        if let Some(d) = &v.default {
            scalars(d, &mut out);
        }
    }
    for (_, src) in &inputs.files {
        let Ok(doc) = yaml::parse("", src) else {
            continue;
        };
        for (k, v) in doc.as_map().unwrap_or_default() {
            if k.as_key().is_some_and(|k| sensitive(&k)) {
                scalars(v, &mut out);
            }
        }
    }
    for arg in &inputs.cli {
        if let Some((name, value)) = arg.split_once('=') {
            if sensitive(name.trim()) {
                out.push(value.to_string());
                out.push(value.trim().to_string());
                out.extend(value.split(',').map(|i| i.trim().to_string()));
            }
        }
    }
    for v in values.iter().filter(|v| v.sensitive) {
        json_texts(&v.value, &mut out);
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

/// `d` with `help` when there is one, else a word on what fits.
fn with_help(d: Diagnostic, help: Option<String>) -> Diagnostic {
    match help {
        Some(h) => d.with_help(h),
        None => d.with_help(
            "give a value of the variable's type (the type of its default in `variables:`)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::vars::parse_declarations;
    use serde_json::json;

    fn decls(src: &str) -> Vec<Variable> {
        let doc = yaml::parse("spec.yaml", src).unwrap();
        let mut d = Diagnostics::default();
        let v = parse_declarations(&doc, &mut d);
        assert!(d.is_empty(), "{d}");
        v
    }

    fn run(vars: &[Variable], inputs: &VarInputs) -> (Vec<VarValue>, Diagnostics) {
        let mut d = Diagnostics::default();
        let mut broken = HashSet::new();
        let v = resolve_values(vars, inputs, 0, &mut d, &mut broken);
        (v, d)
    }

    const DECLS: &str = "k8s: 1.31.4\nseries: \"{{ (k8s | split('.'))[:2] | join('.') }}\"\nregions: []\nsize: 20\nsecret:\n  required: true\n  sensitive: true\n";

    #[test]
    fn a_value_off_its_pattern_is_one_error_and_breaks_what_derives_from_it() {
        let src = "k8s:\n  default: 1.31.4\n  pattern: '[0-9]+\\.[0-9]+\\.[0-9]+'\n  description: x.y.z\nseries: \"v{{ (k8s | split('.'))[:2] | join('.') }}\"\n";
        let vars = decls(src);
        let inputs = VarInputs {
            files: Vec::new(),
            cli: vec!["k8s=v1.31".into()],
        };
        let (v, d) = run(&vars, &inputs);
        assert_eq!(d.0.len(), 1, "{d}");
        let text = d.to_string();
        assert!(text.contains("must match"), "{text}");
        assert!(text.contains("`k8s`: x.y.z"), "{text}");
        assert!(v.iter().all(|x| x.name != "series"), "{v:?}");
    }

    #[test]
    fn precedence_and_derived_defaults() {
        let vars = decls(DECLS);
        let inputs = VarInputs {
            files: vec![(
                "v.yaml".into(),
                "k8s: 1.30.2\nsize: '30'\nsecret: s\n".into(),
            )],
            cli: vec!["regions=us-east-1,eu-west-1".into(), "k8s=1.29.0".into()],
        };
        let (v, d) = run(&vars, &inputs);
        assert!(d.is_empty(), "{d}");
        let get = |n: &str| v.iter().find(|x| x.name == n).unwrap();
        assert_eq!(get("k8s").value, json!("1.29.0"));
        assert_eq!(get("k8s").source, VarSource::Cli);
        assert_eq!(get("series").value, json!("1.29"));
        assert_eq!(get("regions").value, json!(["us-east-1", "eu-west-1"]));
        assert_eq!(get("size").value, json!(30));
        assert_eq!(get("secret").display_value(), "<sensitive>");
    }

    #[test]
    fn input_errors_are_all_reported() {
        let vars = decls(DECLS);
        let inputs = VarInputs {
            files: vec![("v.yaml".into(), "k8z: 1\nsize: [1]\n".into())],
            cli: vec!["novalue".into(), "nope=1".into(), "size=big".into()],
        };
        let (_, d) = run(&vars, &inputs);
        let s = d.sorted().to_string();
        assert!(s.contains("v.yaml:1:1: error: unknown variable `k8z` in var file\n  help: did you mean `k8s`?"), "{s}");
        assert!(
            s.contains("v.yaml:2:7: error: variable `size` must be a number, found a list"),
            "{s}"
        );
        assert!(
            s.contains("error: invalid --var `novalue`: expected NAME=VALUE"),
            "{s}"
        );
        assert!(s.contains("error: unknown variable `nope` in --var"), "{s}");
        assert!(
            s.contains("invalid --var `size=big`: variable `size` must be a number, found `big`"),
            "{s}"
        );
        assert!(
            s.contains("spec.yaml:5:1: error: required variable `secret` has no value"),
            "{s}"
        );
    }

    #[test]
    fn cycles_and_json_errors() {
        let vars = decls("a: \"{{ b }}\"\nb: \"{{ a }}\"\n");
        let (_, d) = run(&vars, &VarInputs::default());
        assert!(
            d.to_string().contains("refers to itself: a -> b -> a"),
            "{d}"
        );
        let inputs = VarInputs {
            files: vec![("v.json".into(), "{\"a\": 1,\n}".into())],
            cli: vec![],
        };
        let (_, d) = run(&vars, &inputs);
        assert!(
            d.to_string()
                .starts_with("v.json:2:1: error: JSON syntax error: trailing comma"),
            "{d}"
        );
    }
}
