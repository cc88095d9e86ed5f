//! Templates: every string of a definition is a minijinja template over the
//! variables, rendered with [`UndefinedBehavior::Strict`] so that a
//! misspelled variable is an error naming it, at the string's `file:line:col`.
//!
//! Besides the variables, templates see:
//! - `timestamp`: unix seconds, fixed for the whole run (the caller passes it);
//! - `build_name`: the build's name (in build settings, not in variable
//!   defaults);
//! - `isotime(fmt)`: the run's time in UTC formatted with a strftime subset
//!   (`%Y %m %d %H %M %S %y %j %s %F %T %z %Z %%`); without `fmt`,
//!   RFC 3339 (`2024-05-01T12:00:00Z`). As a filter it formats unix seconds:
//!   `{{ timestamp | isotime('%Y%m%d') }}`;
//! - the filter `clean_ami_name`: replaces characters an AMI name may not
//!   contain with `-`.
//!
//! Templates run with fuel and bounded `format`/`indent` sizes (see
//! [`super::bounded`]): a template that loops too long or asks for a huge
//! width is an error at its `file:line:col`.
//!
//! A string that is a single expression (`"{{ regions }}"`) keeps the
//! expression's type, so a list variable stays a list; any other template
//! renders to a string.

use std::collections::{BTreeMap, HashSet};

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::diag::{did_you_mean, Diagnostics, Location};
use crate::yaml::{Node, Value};

/// True when `s` contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What went wrong.
    pub message: String,
    /// What to do.
    pub help: Option<String>,
    /// Caused only by variables whose own problem is already reported.
    pub silent: bool,
}

/// Renders templates against a fixed set of values.
#[derive(Debug, Clone)]
pub struct Renderer {
    now: i64,
    ctx: BTreeMap<String, serde_json::Value>,
    broken: HashSet<String>,
}

impl Renderer {
    /// A renderer over `values`, with `timestamp` = `now`.
    pub fn new(now: i64, mut values: BTreeMap<String, serde_json::Value>) -> Self {
        values.insert("timestamp".into(), serde_json::Value::from(now));
        Renderer {
            now,
            ctx: values,
            broken: HashSet::new(),
        }
    }

    /// Variables without a value because of an error already reported:
    /// templates failing only because of them fail silently.
    pub fn set_broken(&mut self, broken: HashSet<String>) {
        self.broken = broken;
    }

    /// Adds or replaces a value.
    pub fn set(&mut self, name: &str, value: serde_json::Value) {
        self.ctx.insert(name.to_string(), value);
    }

    /// The variables a template refers to (none when it does not parse;
    /// rendering reports that).
    pub fn referenced(&self, src: &str) -> HashSet<String> {
        let env = self.env();
        let found = match single_expression(src) {
            Some(expr) => super::bounded::compile_expression(&env, expr)
                .map(|e| e.undeclared_variables(false)),
            None => env
                .template_from_str(src)
                .map(|t| t.undeclared_variables(false)),
        };
        found.unwrap_or_default()
    }

    /// Renders one string: a single expression keeps its type, anything else
    /// becomes a string.
    pub fn render_str(&self, src: &str) -> Result<serde_json::Value, TemplateError> {
        if !is_template(src) {
            return Ok(serde_json::Value::String(src.to_string()));
        }
        let env = self.env();
        let lines = src.lines().count();
        let result = match single_expression(src) {
            Some(expr) => match super::bounded::compile_expression(&env, expr) {
                Ok(e) => match e.eval(&self.ctx) {
                    Ok(v) if v.is_undefined() => Err(self.undefined(e.undeclared_variables(false))),
                    Ok(v) => serde_json::to_value(&v).map_err(|err| TemplateError {
                        message: format!("template result cannot be used: {err}"),
                        help: None,
                        silent: false,
                    }),
                    Err(err) => Err(self.error(&err, || e.undeclared_variables(false), lines)),
                },
                Err(err) => Err(self.error(&err, HashSet::new, lines)),
            },
            None => match env.template_from_str(src) {
                Ok(t) => t
                    .render(&self.ctx)
                    .map(serde_json::Value::String)
                    .map_err(|err| self.error(&err, || t.undeclared_variables(false), lines)),
                Err(err) => Err(self.error(&err, HashSet::new, lines)),
            },
        };
        result
    }

    /// Renders every string (and mapping key) of `node`. A string that fails
    /// is kept as written, its error pushed to `diags` and its location to
    /// `failed` (so later checks do not complain about it again).
    pub fn render_node(
        &self,
        node: &Node,
        diags: &mut Diagnostics,
        failed: &mut HashSet<Location>,
    ) -> Node {
        let value = match &node.value {
            Value::Str(s) => match self.render_str(s) {
                Ok(v) => return json_to_node(&v, &node.loc),
                Err(e) if e.silent => {
                    failed.insert(node.loc.clone());
                    return node.clone();
                }
                Err(e) => {
                    let mut d = node.error(e.message);
                    if let Some(h) = e.help {
                        d = d.with_help(h);
                    }
                    diags.push(d);
                    failed.insert(node.loc.clone());
                    return node.clone();
                }
            },
            Value::Seq(items) => Value::Seq(
                items
                    .iter()
                    .map(|i| self.render_node(i, diags, failed))
                    .collect(),
            ),
            Value::Map(pairs) => Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let k = match &k.value {
                            Value::Str(_) => self.render_node(k, diags, failed),
                            _ => k.clone(),
                        };
                        (k, self.render_node(v, diags, failed))
                    })
                    .collect(),
            ),
            other => other.clone(),
        };
        Node {
            loc: start(node),
            value,
        }
    }

    fn env(&self) -> Environment<'static> {
        let mut env = Environment::new();
        super::bounded::harden(&mut env);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let now = self.now;
        env.add_function("isotime", move |fmt: Option<String>| {
            isotime(now, fmt.as_deref())
        });
        env.add_filter("isotime", |secs: i64, fmt: Option<String>| {
            isotime(secs, fmt.as_deref())
        });
        env.add_filter("clean_ami_name", |s: String| clean_ami_name(&s));
        env
    }

    fn error(
        &self,
        err: &Error,
        undeclared: impl FnOnce() -> HashSet<String>,
        lines: usize,
    ) -> TemplateError {
        if err.kind() == ErrorKind::UndefinedError {
            let names = undeclared();
            if names.iter().any(|n| !self.ctx.contains_key(n)) {
                return self.undefined(names);
            }
        }
        let what = match err.kind() {
            ErrorKind::SyntaxError => "template syntax error".to_string(),
            kind => format!("template error: {kind}"),
        };
        let mut message = match err.detail() {
            Some(d) => format!("{what}: {d}"),
            None => what,
        };
        if lines > 1 {
            if let Some(line) = err.line() {
                message.push_str(&format!(" (line {line} of the template)"));
            }
        }
        let help = match err.kind() {
            ErrorKind::SyntaxError => {
                Some("check the `{{ ... }}` / `{% ... %}` delimiters and quotes".to_string())
            }
            ErrorKind::OutOfFuel => Some(
                "the template does too much work: loop over fewer items or compute the value outside"
                    .to_string(),
            ),
            ErrorKind::UnknownFilter | ErrorKind::UnknownFunction => Some(
                "see the minijinja built-in filters, plus `isotime` and `clean_ami_name`"
                    .to_string(),
            ),
            ErrorKind::InvalidOperation => Some(
                "check the filter's or function's arguments (sizes are limited to 4096)"
                    .to_string(),
            ),
            _ => Some("see the minijinja template syntax and built-in filters".to_string()),
        };
        TemplateError {
            message,
            help,
            silent: false,
        }
    }

    fn undefined(&self, names: HashSet<String>) -> TemplateError {
        let mut missing: Vec<String> = names
            .into_iter()
            .filter(|n| !self.ctx.contains_key(n))
            .collect();
        missing.sort();
        if missing.is_empty() {
            return TemplateError {
                message: "template refers to an undefined value".into(),
                help: Some("check attribute and index lookups".into()),
                silent: false,
            };
        }
        let list = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let noun = if missing.len() == 1 {
            "variable"
        } else {
            "variables"
        };
        let first = &missing[0];
        let help = match did_you_mean(first, self.ctx.keys().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declare `{first}` under `variables:`"),
        };
        TemplateError {
            message: format!("undefined {noun} {list} in template"),
            help: Some(help),
            silent: missing.iter().all(|n| self.broken.contains(n)),
        }
    }
}

/// Where `node` starts. yaml-rust2 marks a block mapping at its first key's
/// `:`; the first key is where a reader's eye goes.
pub fn start(node: &Node) -> Location {
    match node.as_map().and_then(|p| p.first()) {
        Some((k, _)) if (k.loc.line, k.loc.col) < (node.loc.line, node.loc.col) => k.loc.clone(),
        _ => node.loc.clone(),
    }
}

/// The expression of a template that is exactly one `{{ ... }}`.
fn single_expression(src: &str) -> Option<&str> {
    let t = src.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

/// A JSON value as a YAML node, every part at `loc`.
pub fn json_to_node(v: &serde_json::Value, loc: &Location) -> Node {
    use serde_json::Value as J;
    let value = match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::Seq(items.iter().map(|i| json_to_node(i, loc)).collect()),
        J::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| {
                    let key = Node {
                        value: Value::Str(k.clone()),
                        loc: loc.clone(),
                    };
                    (key, json_to_node(v, loc))
                })
                .collect(),
        ),
    };
    Node {
        value,
        loc: loc.clone(),
    }
}

/// Formats unix seconds in UTC with a strftime subset (see the module doc).
pub fn isotime(secs: i64, fmt: Option<&str>) -> Result<String, Error> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("isotime: bad time {secs}: {e}"),
        )
    })?;
    let fmt = fmt.unwrap_or("%Y-%m-%dT%H:%M:%SZ");
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let part = match chars.next() {
            Some('Y') => format!("{:04}", t.year()),
            Some('y') => format!("{:02}", t.year().rem_euclid(100)),
            Some('m') => format!("{:02}", u8::from(t.month())),
            Some('d') => format!("{:02}", t.day()),
            Some('H') => format!("{:02}", t.hour()),
            Some('M') => format!("{:02}", t.minute()),
            Some('S') => format!("{:02}", t.second()),
            Some('j') => format!("{:03}", t.ordinal()),
            Some('s') => secs.to_string(),
            Some('F') => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
            Some('T') => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
            Some('z') => "+0000".to_string(),
            Some('Z') => "UTC".to_string(),
            Some('%') => "%".to_string(),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "isotime: unsupported directive `%{}`",
                        other.map(String::from).unwrap_or_default()
                    ),
                ))
            }
        };
        out.push_str(&part);
    }
    Ok(out)
}

/// Replaces characters not allowed in AMI names with `-`.
pub fn clean_ami_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if super::check::ami_name_char(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r() -> Renderer {
        let mut v = BTreeMap::new();
        v.insert("kubernetes_version".into(), json!("1.31.4"));
        v.insert("regions".into(), json!(["a", "b"]));
        Renderer::new(1_700_000_000, v)
    }

    #[test]
    fn renders_strings_and_keeps_single_expression_types() {
        let r = r();
        assert_eq!(
            r.render_str("v{{ kubernetes_version }}").unwrap(),
            json!("v1.31.4")
        );
        assert_eq!(r.render_str("{{ regions }}").unwrap(), json!(["a", "b"]));
        assert_eq!(
            r.render_str(" {{ timestamp }} ").unwrap(),
            json!(1_700_000_000)
        );
        assert_eq!(
            r.render_str("{{ (kubernetes_version | split('.'))[:2] | join('.') }}")
                .unwrap(),
            json!("1.31")
        );
        assert_eq!(r.render_str("plain").unwrap(), json!("plain"));
    }

    #[test]
    fn undefined_variables_are_named() {
        let r = r();
        let e = r
            .render_str("x-{{ kubernets_version | replace('.', '-') }}")
            .unwrap_err();
        assert_eq!(
            e.message,
            "undefined variable `kubernets_version` in template"
        );
        assert_eq!(
            e.help.as_deref(),
            Some("did you mean `kubernetes_version`?")
        );
        let e = r.render_str("{{ nope }}").unwrap_err();
        assert_eq!(e.message, "undefined variable `nope` in template");
        assert!(r.render_str("{{ nope | default('x') }}").is_ok());
    }

    #[test]
    fn syntax_errors_say_so() {
        let e = r().render_str("{{ kubernetes_version }").unwrap_err();
        assert!(
            e.message.starts_with("template syntax error"),
            "{}",
            e.message
        );
    }

    #[test]
    fn isotime_formats_utc() {
        let r = r();
        assert_eq!(
            r.render_str("{{ isotime('%Y%m%d-%H%M') }}").unwrap(),
            json!("20231114-2213")
        );
        assert_eq!(
            r.render_str("{{ isotime() }}").unwrap(),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            r.render_str("{{ 0 | isotime('%F %T') }}").unwrap(),
            json!("1970-01-01 00:00:00")
        );
        assert!(r.render_str("{{ isotime('%Q') }}").is_err());
    }

    #[test]
    fn clean_ami_name_replaces_bad_chars() {
        assert_eq!(clean_ami_name("a:b+c d"), "a-b-c d");
    }
}
