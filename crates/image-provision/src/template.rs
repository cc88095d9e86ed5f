//! Jinja2 templates with minijinja, made to behave like ansible-core 2.19's:
//! Python methods on strings, dicts and lists, ansible's filters, tests and
//! lookups, lazily templated variables (a variable may refer to others),
//! chainable undefined values (`a.b.c | default(x)` and `a.b.c is defined`
//! work when `a.b` is missing; printing an undefined value fails), Python's
//! `str()` of values in text, and native values for a string that is one
//! expression (`"{{ packages }}"` is a list, not its text).
//!
//! The pieces, one concern per file under `template/`:
//! - [`vars`]: the lazy variable object (`hostvars`, `vars`,
//!   `ansible_facts` kept consistent with `ansible_*`).
//! - `layers`: a task's variables as shared layers and its own.
//! - `syntax`: ansible's backslash handling of templates from YAML, and
//!   where an expression ends.
//! - `pycompat`: Python methods (minijinja-contrib's, plus the ones it
//!   lacks), Python's `str()`/`repr()` of printed values, native results.
//! - `jinja_filters`: Jinja2's own filters where minijinja's differ.
//! - `filters`, `collections`, `formats`, `pyyaml`, `pyregex`, `pyrandom`,
//!   `crypt`, `version`: ansible's filters.
//! - `jinja_tests`: ansible's tests (`is failed`, `is version` ...).
//! - `lookups`, `lookup_tables`: `lookup()`/`query()` on the controller;
//!   `loader`: `{% include %}` in template files.
//! - `globals`: `now()`, `undef()`, `dict()`, `strftime`; `datetime`: the
//!   datetime values of `now()` and `to_datetime`.
//! - `aliases`: `ansible.builtin.*` names.
//! - `ansible_cases` (tests): templates checked against ansible-core's
//!   own results.
//!
//! Conditions (`when:`) must give a boolean, as in ansible-core 2.19.

mod aliases;
mod collections;
mod crypt;
mod datetime;
mod filters;
mod formats;
mod globals;
mod jinja_filters;
mod jinja_tests;
mod layers;
mod lazy;
mod loader;
mod lookup_tables;
mod lookups;
mod pycompat;
mod pyrandom;
mod pyregex;
mod pyyaml;
mod syntax;
pub mod vars;
mod version;

#[cfg(test)]
mod ansible_cases;

use std::sync::Arc;

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use serde_json::{Map, Value as Json};

pub use layers::Layers;
pub use pyregex::py_replacement;
pub use vars::Vars;
pub use version::version_test;

/// The placeholder `omit` renders to; arguments equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__image_cli__";

/// The template engine.
#[derive(Clone)]
pub struct Templater {
    env: Arc<Environment<'static>>,
}

impl Default for Templater {
    fn default() -> Self {
        Self::new()
    }
}

/// The variables of a task, ready to render with.
#[derive(Clone)]
pub struct Ctx {
    vars: Arc<Vars>,
    value: Value,
}

impl Ctx {
    /// As a minijinja value (the template context).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// A variable, templated.
    pub fn get(&self, k: &str) -> Option<Json> {
        self.vars.lookup(k).and_then(|v| to_json(&v).ok())
    }

    fn explain(&self, e: Error) -> String {
        let mut msg = describe(&e);
        if e.kind() == ErrorKind::UndefinedError {
            msg = name_undefined(msg, &self.vars.missed());
        }
        if let Some(last) = self.vars.last_error() {
            msg.push_str(&format!(" ({last})"));
        }
        msg
    }
}

/// Names the variables that were looked up and not found in an
/// undefined-value error (`'system' is undefined in ...`).
pub(crate) fn name_undefined(msg: String, missed: &[String]) -> String {
    if missed.is_empty() {
        return msg;
    }
    let names: Vec<String> = missed.iter().map(|m| format!("'{m}'")).collect();
    let what = format!(
        "{} {} undefined",
        names.join(", "),
        if names.len() == 1 { "is" } else { "are" }
    );
    match msg.strip_prefix("undefined variable: an undefined value was printed") {
        Some(rest) => format!("{what}{rest}"),
        None => format!("{msg} ({what})"),
    }
}

/// A template or expression error, explained.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

pub(crate) fn describe(e: &Error) -> String {
    let mut s = match e.kind() {
        ErrorKind::UndefinedError => match e.detail() {
            Some(d) => format!("undefined variable: {d}"),
            None => "a variable is undefined".to_string(),
        },
        _ => e.to_string(),
    };
    if let Some(src) = e.template_source() {
        if let Some(line) = e.line() {
            let text = src.lines().nth(line.saturating_sub(1)).unwrap_or("").trim();
            if !text.is_empty() && text.len() < 200 {
                s.push_str(&format!(" in `{text}`"));
            }
        }
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// True when the value holds `{{` or `{%` anywhere.
pub fn has_template(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains("{{") || s.contains("{%"),
        Json::Array(a) => a.iter().any(has_template),
        Json::Object(m) => m.values().any(has_template),
        _ => false,
    }
}

/// The inner expression when `s` is exactly one `{{ expression }}`.
fn single_expression(s: &str) -> Option<&str> {
    // Surrounding whitespace is text (`" {{ 1 }}"` is the string " 1").
    let body = s.strip_prefix("{{")?;
    let end = syntax::expr_end(body)?;
    if end + 2 != body.len() {
        return None;
    }
    // `{{-` and `-}}` are whitespace control (only right at the braces:
    // `{{ -7 }}` is minus seven).
    let inner = &body[..end];
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

/// The template without its last newline (`\n`, `\r\n` or `\r`), as
/// Jinja's lexer reads it in ansible (`keep_trailing_newline` off).
fn strip_last_newline(s: &str) -> &str {
    if let Some(t) = s.strip_suffix("\r\n") {
        return t;
    }
    s.strip_suffix('\n')
        .or_else(|| s.strip_suffix('\r'))
        .unwrap_or(s)
}

/// `out` with `\n`s appended until it ends with as many as `src` does
/// (ansible's `_post_render_mutation`).
fn pad_trailing_newlines(src: &str, mut out: String) -> String {
    let (want, have) = (trailing_newlines(src), trailing_newlines(&out));
    if want > have {
        out.push_str(&"\n".repeat(want - have));
    }
    out
}

/// How many `\n` end `s`.
fn trailing_newlines(s: &str) -> usize {
    s.len() - s.trim_end_matches('\n').len()
}

/// An expression from YAML as minijinja reads it (ansible's backslash
/// handling, Python's `%` formatting).
fn yaml_expr(expr: &str) -> String {
    syntax::percent_format(&syntax::escape_expr(expr)).into_owned()
}

/// A template from YAML as minijinja reads it.
fn yaml_template(s: &str) -> std::borrow::Cow<'_, str> {
    match syntax::escape_template(s) {
        std::borrow::Cow::Borrowed(b) => syntax::percent_format_template(b),
        std::borrow::Cow::Owned(o) => {
            std::borrow::Cow::Owned(syntax::percent_format_template(&o).into_owned())
        }
    }
}

/// A template value as JSON, every lazy item rendered: an undefined value
/// inside a result (a broken item of a lazy dict, `[missing_var]`) is an
/// error, as in ansible-core.
pub(crate) fn to_json(v: &Value) -> Result<Json, Error> {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined => Err(Error::new(
            ErrorKind::UndefinedError,
            "a value in the result is undefined",
        )),
        ValueKind::Seq | ValueKind::Iterable => Ok(Json::Array(
            v.try_iter()?
                .map(|x| to_json(&x))
                .collect::<Result<_, _>>()?,
        )),
        ValueKind::Map => {
            let mut out = Map::new();
            for k in v.try_iter()? {
                let x = v.get_item(&k)?;
                let key = match k.as_str() {
                    Some(s) => s.to_string(),
                    None => pycompat::py_str(&k),
                };
                out.insert(key, to_json(&x)?);
            }
            Ok(Json::Object(out))
        }
        ValueKind::Plain => match datetime::native(v) {
            Some(iso) => Ok(Json::String(iso)),
            None => serde_json::to_value(v).map_err(|e| err(format!("cannot represent {v}: {e}"))),
        },
        _ => serde_json::to_value(v).map_err(|e| err(format!("cannot represent {v}: {e}"))),
    }
}

pub(crate) fn render_json(
    env: &Environment<'static>,
    v: &Json,
    ctx: &Value,
) -> Result<Json, Error> {
    Ok(match v {
        Json::String(s) if s.contains("{{") || s.contains("{%") => {
            if let Some(expr) = single_expression(s) {
                let src = yaml_expr(expr);
                let e = image_core::spec::bounded::compile_expression(env, &src)?;
                let val = e.eval(ctx)?;
                if val.is_undefined() {
                    return Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("`{expr}` is undefined"),
                    ));
                }
                to_json(&val)?
            } else {
                // As ansible-core 2.19: Jinja drops the template's last
                // newline; the output nodes (printed values other than
                // none, and text) make the result: none without any, the
                // value itself when there is one, else their text; a text
                // result gets back the newlines the template ended with.
                let src = yaml_template(strip_last_newline(s));
                let (text, first, printed) = pycompat::capture(|| env.render_str(&src, ctx));
                let text = text?;
                let out = match (first, printed) {
                    (_, 0) if text.is_empty() => Json::Null,
                    (Some(v), 1) if v.as_str() == Some(OMIT) && text.is_empty() => {
                        return Ok(Json::from(OMIT))
                    }
                    (Some(v), 1) if pycompat::py_str(&v) == text => to_json(&v)?,
                    _ => Json::String(text),
                };
                match out {
                    Json::String(mut t) => {
                        let want = trailing_newlines(s);
                        let have = trailing_newlines(&t);
                        if want > have {
                            t.push_str(&"\n".repeat(want - have));
                        }
                        Json::String(t)
                    }
                    other => other,
                }
            }
        }
        Json::Array(a) => Json::Array(
            a.iter()
                .map(|x| render_json(env, x, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let k2 = if k.contains("{{") {
                    env.render_str(&yaml_template(k), ctx)?
                } else {
                    k.clone()
                };
                out.insert(k2, render_json(env, x, ctx)?);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

/// Instructions one render may execute: a few seconds at most.
pub const RENDER_FUEL: u64 = 20_000_000;

impl Templater {
    /// The engine with ansible's filters, tests and lookups.
    pub fn new() -> Self {
        let mut env = Environment::new();
        // Chainable: `a.missing.deeper` is undefined, not an error, so that
        // `default` and `is defined` see it, as ansible's undefined does;
        // printing an undefined value still fails (the formatter).
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_formatter(pycompat::format_value);
        env.set_unknown_method_callback(pycompat::call_method);
        filters::register(&mut env);
        jinja_filters::register(&mut env);
        collections::register(&mut env);
        formats::register(&mut env);
        pyregex::register(&mut env);
        version::register(&mut env);
        jinja_tests::register(&mut env);
        lookups::register(&mut env);
        globals::register(&mut env);
        aliases::register(&mut env);
        // Fuel against endless loops and bounded `format`/`indent` (a
        // template may come from anyone's role); more fuel than the
        // definition's templates get, as a role's file templates are larger.
        image_core::spec::bounded::harden(&mut env);
        env.set_fuel(Some(RENDER_FUEL));
        env.add_global("omit", Value::from(OMIT));
        Templater { env: Arc::new(env) }
    }

    /// Variables for one task: a merged map, or [`Layers`] (the shared
    /// layers of its scope and its own, see `layers`).
    pub fn context(&self, raw: impl Into<Layers>) -> Ctx {
        let vars = Arc::new(Vars::new(self.env.clone(), raw.into()));
        Ctx {
            value: Value::from_dyn_object(vars.clone()),
            vars,
        }
    }

    /// Syntax check of an expression.
    pub fn check_expr(&self, e: &str) -> Result<(), String> {
        image_core::spec::bounded::compile_expression(&self.env, e)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Syntax check of a template taken from YAML (backslashes in its
    /// expressions' strings are literal, as when it is rendered).
    pub fn check_template(&self, s: &str) -> Result<(), String> {
        self.env
            .template_from_str(&yaml_template(s))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Renders every string in `v`; a string that is one expression keeps
    /// the expression's type.
    pub fn render(&self, v: &Json, ctx: &Ctx) -> Result<Json, TemplateError> {
        if !has_template(v) {
            return Ok(v.clone());
        }
        ctx.vars.begin();
        let mut out =
            render_json(&self.env, v, &ctx.value).map_err(|e| TemplateError(ctx.explain(e)))?;
        drop_omitted(&mut out);
        Ok(out)
    }

    /// Renders a template to text.
    pub fn render_str(&self, s: &str, ctx: &Ctx) -> Result<String, TemplateError> {
        if !s.contains("{{") && !s.contains("{%") && !s.contains("{#") {
            return Ok(s.to_string());
        }
        ctx.vars.begin();
        self.env
            .render_str(&yaml_template(s), &ctx.value)
            .map_err(|e| TemplateError(ctx.explain(e)))
    }

    /// Renders a template file's text with a plain minijinja value as
    /// context (the `template` module, the `template` lookup). A first
    /// line `#jinja2: trim_blocks: False, lstrip_blocks: True` sets those
    /// options for this file, as ansible's template module reads it.
    /// Included files are found next to `template_path` and in the
    /// task's search path (`__search_dirs`), when the context has them.
    pub fn render_with(&self, s: &str, ctx: &Value) -> Result<String, TemplateError> {
        // (Looked up before `begin`: a missing one is not an error.)
        let path = ctx
            .get_attr("template_path")
            .ok()
            .and_then(|p| p.as_str().map(std::path::PathBuf::from));
        let dirs = loader::dirs_of(ctx.get_attr("__search_dirs").ok());
        let mut env = loader::file_env(&self.env, loader::search_path(path.as_deref(), &dirs));
        // The task's variables, when the context holds them, to name the
        // undefined ones in errors.
        let vars = ctx
            .get_attr("__vars")
            .ok()
            .and_then(|v| v.downcast_object::<Vars>());
        if let Some(v) = &vars {
            v.begin();
        }
        let explain = |e: Error| {
            let msg = describe(&e);
            TemplateError(match (&vars, e.kind()) {
                (Some(v), ErrorKind::UndefinedError) => name_undefined(msg, &v.missed()),
                _ => msg,
            })
        };
        if let Some(rest) = s.strip_prefix("#jinja2:") {
            let (header, body) = rest.split_once('\n').unwrap_or((rest, ""));
            let mut keep = false;
            for opt in header.split(',') {
                let Some((k, v)) = opt.split_once(':') else {
                    continue;
                };
                let on = matches!(v.trim(), "True" | "true" | "yes");
                match k.trim() {
                    "trim_blocks" => env.set_trim_blocks(on),
                    "lstrip_blocks" => env.set_lstrip_blocks(on),
                    "keep_trailing_newline" => keep = on,
                    other => {
                        return Err(TemplateError(format!(
                            "#jinja2: option `{other}` is not supported (trim_blocks, lstrip_blocks, keep_trailing_newline)"
                        )))
                    }
                }
            }
            let text = if keep { body } else { strip_last_newline(body) };
            return env
                .render_str(&syntax::percent_format_template(text), ctx)
                .map(|out| pad_trailing_newlines(body, out))
                .map_err(explain);
        }
        // As ansible: Jinja drops the file's last newline, then the result
        // gets back as many as the file ended with, when it ends with fewer
        // (`{{ empty }}\n` after a blank line renders one blank line).
        env.render_str(&syntax::percent_format_template(strip_last_newline(s)), ctx)
            .map(|out| pad_trailing_newlines(s, out))
            .map_err(explain)
    }

    /// Evaluates an expression.
    pub fn eval(&self, expr: &str, ctx: &Ctx) -> Result<Value, TemplateError> {
        let src = syntax::percent_format(expr);
        let e = image_core::spec::bounded::compile_expression(&self.env, &src)
            .map_err(|e| TemplateError(describe(&e)))?;
        ctx.vars.begin();
        e.eval(&ctx.value)
            .map_err(|e| TemplateError(ctx.explain(e)))
    }

    /// Evaluates a condition (`when:`, `failed_when:`, `that:`...) as
    /// ansible-core 2.19 does: a bare expression (backslashes in its strings
    /// are escapes), or a template (`"{{ x == 1 }}"`, native result); the
    /// result must be a boolean — any other type is an error, as
    /// ansible-core's "Conditionals must have a boolean result".
    pub fn cond(&self, expr: &str, ctx: &Ctx) -> Result<bool, TemplateError> {
        let v = if expr.contains("{{") || expr.contains("{%") {
            let j = self.render(&Json::String(expr.to_string()), ctx)?;
            Value::from_serialize(&j)
        } else {
            self.eval(expr, ctx)?
        };
        if v.is_undefined() {
            return Err(TemplateError(format!("`{expr}` is undefined")));
        }
        if v.kind() != minijinja::value::ValueKind::Bool {
            return Err(TemplateError(format!(
                "Conditional result ({}) was derived from value of type '{}' (`{expr}`). Conditionals must have a boolean result.",
                if v.is_true() { "True" } else { "False" },
                filters::type_name(&v),
            )));
        }
        Ok(v.is_true())
    }
}

/// Removes `omit` from the lists and dicts inside a value, as ansible-core
/// 2.19 does (`[1, omit]` is `[1]`); `omit` itself is left to the caller
/// (a task argument that is `omit` is dropped).
fn drop_omitted(v: &mut Json) {
    match v {
        Json::Array(a) => {
            a.retain(|x| x.as_str() != Some(OMIT));
            a.iter_mut().for_each(drop_omitted);
        }
        Json::Object(m) => {
            m.retain(|_, x| x.as_str() != Some(OMIT));
            m.values_mut().for_each(drop_omitted);
        }
        _ => {}
    }
}

/// Ansible truth of a condition's value (strings `"false"`, `"no"` are false).
pub fn truthy(v: &Value) -> bool {
    if let Some(s) = v.as_str() {
        return !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "no" | "off" | "0" | "n" | "f"
        );
    }
    v.is_true()
}

/// An `InvalidOperation` error with a message.
pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// The items of a list-like value (undefined and none are empty).
pub(crate) fn list_of(v: &Value) -> Result<Vec<Value>, Error> {
    if v.is_undefined() || v.is_none() {
        return Ok(Vec::new());
    }
    Ok(v.try_iter()?.collect())
}

/// Fails with ansible's message when a filter's input is undefined.
pub(crate) fn defined(v: &Value, what: &str) -> Result<(), Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("{what}: the input is undefined"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn ctx(t: &Templater, v: Json) -> Ctx {
        t.context(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn lazy_vars_native_values_and_text() {
        let t = Templater::new();
        let c = ctx(
            &t,
            json!({"a": "{{ b }}-x", "b": "{{ c | upper }}", "c": "hi", "l": [1, 2], "m": "{{ l }}",
                   "one": "{% if c %}{{ l }}{% endif %}", "two": "{{ l }}\n"}),
        );
        assert_eq!(t.render_str("{{ a }}", &c).unwrap(), "HI-x");
        assert_eq!(t.render(&json!("{{ m }}"), &c).unwrap(), json!([1, 2]));
        assert_eq!(t.render(&json!("{{- m -}}"), &c).unwrap(), json!([1, 2]));
        assert_eq!(t.render(&json!("{{ -7 + 1 }}"), &c).unwrap(), json!(-6));
        // One printed value keeps its type (Jinja's native types), text
        // around it makes a string; the last newline is not text.
        assert_eq!(c.get("one"), Some(json!([1, 2])));
        assert_eq!(c.get("two"), Some(json!([1, 2])));
        assert_eq!(t.render(&json!("{{ c }}\n"), &c).unwrap(), json!("hi\n"));
        assert_eq!(
            t.render(&json!("{{ none }}{{ l }}{# x #}\n"), &c).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            t.render(&json!("{{ l }}\n\n"), &c).unwrap(),
            json!("[1, 2]\n\n")
        );
        assert_eq!(
            t.render_str("{{ [c, none, true] }}", &c).unwrap(),
            "['hi', None, True]"
        );
    }

    #[test]
    fn template_files_honour_a_jinja2_header() {
        let t = Templater::new();
        let ctx = Value::from_serialize(json!({"x": 1}));
        let body = "{% if x %}\n  a\n{% endif %}\n";
        assert_eq!(t.render_with(body, &ctx).unwrap(), "  a\n");
        let hdr = format!("#jinja2: trim_blocks: False, lstrip_blocks: True\n{body}");
        // ansible-core 2.19 writes "\n  a\n": Jinja drops the file's last
        // newline and the result already ends with one (checked with
        // ansible-playbook's template module).
        assert_eq!(t.render_with(&hdr, &ctx).unwrap(), "\n  a\n");
        // A blank line before an empty expression at the end stays one.
        let tail = "first\n{% if false %}\nnever\n{% endif %}\n\n{{ '' }}\n";
        assert_eq!(t.render_with(tail, &ctx).unwrap(), "first\n\n");
        // With a task's variables as context, an error names the missing one.
        let c = t.context(json!({"x": 1}).as_object().cloned().unwrap_or_default());
        let merged = minijinja::context! { extra => 2, ..c.value().clone() };
        let e = t
            .render_with("{{ x }} {{ extra }} {{ y }}", &merged)
            .unwrap_err()
            .0;
        assert!(e.starts_with("'y' is undefined"), "{e}");
    }

    #[test]
    fn template_files_include_their_siblings_and_search_path() {
        let t = Templater::new();
        let dir = tempfile::tempdir().unwrap();
        let role = dir.path().join("role");
        std::fs::create_dir_all(role.join("templates")).unwrap();
        std::fs::write(dir.path().join("child.j2"), "child {{ x }}\n").unwrap();
        std::fs::write(role.join("templates/shared.j2"), "shared\n").unwrap();
        let parent = dir.path().join("parent.j2");
        let ctx = Value::from_serialize(json!({
            "x": 1,
            "template_path": parent.display().to_string(),
            "__search_dirs": [role.display().to_string()],
        }));
        // An included file's last newline is dropped, as in ansible.
        let body = "a\n{% include 'child.j2' %}\n{% include 'shared.j2' %}|\n";
        assert_eq!(t.render_with(body, &ctx).unwrap(), "a\nchild 1shared|\n");
        let e = t
            .render_with("{% include 'none.j2' %}", &ctx)
            .unwrap_err()
            .0;
        assert!(e.contains("none.j2"), "{e}");
    }

    #[test]
    fn datetimes_print_as_python_and_are_native_isoformat() {
        let t = Templater::new();
        let c = ctx(&t, json!({"s": "2024-01-02 03:04:05"}));
        assert_eq!(
            t.render(&json!("{{ s | to_datetime }}"), &c).unwrap(),
            json!("2024-01-02T03:04:05")
        );
        assert_eq!(
            t.render(&json!("at {{ s | to_datetime }}"), &c).unwrap(),
            json!("at 2024-01-02 03:04:05")
        );
        assert!(t
            .cond("now().year > 2000 and now() > s | to_datetime", &c)
            .unwrap());
        assert!(t.render(&json!("{{ 'x' | to_datetime }}"), &c).is_err());
    }

    #[test]
    fn containers_are_rendered_item_by_item() {
        let t = Templater::new();
        let c = ctx(
            &t,
            json!({"cfg": {"port": "{{ base + 1 }}", "url": "{{ missing_host }}/x"}, "base": 8000}),
        );
        assert!(t.cond("cfg.port == 8001", &c).unwrap());
        assert_eq!(
            t.render(&json!("{{ cfg.url | default('none') }}"), &c)
                .unwrap(),
            json!("none")
        );
        let e = t.render(&json!("{{ cfg }}"), &c).unwrap_err().0;
        assert!(e.contains("'missing_host' is undefined"), "{e}");
        assert_eq!(c.get("cfg"), None);
    }

    #[test]
    fn a_variable_that_refers_to_itself_is_an_error_naming_it() {
        let t = Templater::new();
        let c = ctx(&t, json!({"x": "{{ y }}", "y": "{{ x }}"}));
        let e = t.render_str("{{ x }}", &c).unwrap_err().0;
        assert!(e.contains("refers to itself"), "{e}");
    }

    #[test]
    fn facts_answer_under_both_names() {
        let t = Templater::new();
        let c = ctx(
            &t,
            json!({"ansible_facts": {"os_family": "Debian", "memory_mb": {"swap": {"total": 0}},
                   "packages": {"curl": []}}, "ansible_os_family": "Debian",
                   "inventory_hostname": "target"}),
        );
        assert!(t
            .cond("ansible_facts['memory_mb'].swap.total == 0", &c)
            .unwrap());
        assert_eq!(
            t.render_str("{{ ansible_packages.keys() | join(' ') }}", &c)
                .unwrap(),
            "curl"
        );
        assert_eq!(
            t.render_str("{{ hostvars[inventory_hostname].ansible_os_family }}", &c)
                .unwrap(),
            "Debian"
        );
        let only_prefixed = ctx(&t, json!({"ansible_distribution": "Ubuntu"}));
        assert!(t
            .cond("ansible_facts.distribution == 'Ubuntu'", &only_prefixed)
            .unwrap());
    }

    #[test]
    fn conditions_and_undefined_values() {
        let t = Templater::new();
        let c = ctx(
            &t,
            json!({"r": {"changed": false, "skipped": true}, "s": "a b"}),
        );
        assert!(t
            .cond("r.stat.exists | default(false) == false", &c)
            .unwrap());
        assert!(t.cond("r.stat.exists is not defined", &c).unwrap());
        assert!(t.cond("r is skipped and 'b' in s.split()", &c).unwrap());
        assert!(t.cond("nope", &c).is_err());
        // ansible-core 2.19: a condition must be a boolean.
        assert!(t.cond("s", &c).is_err());
        assert!(t.cond("r.changed", &c).is_ok_and(|b| !b));
        assert!(t.cond("{{ s == 'a b' }}", &c).unwrap());
        assert!(t.cond("s | length", &c).is_err());
        assert!(t.render(&json!("{{ r.stat.exists }}"), &c).is_err());
        assert!(t.render_str("x {{ nope.a }}", &c).is_err());
        let e = t
            .render(&json!("a {{ s }} {{ nope_var }}"), &c)
            .unwrap_err()
            .0;
        assert!(e.starts_with("'nope_var' is undefined"), "{e}");
        // `omit` is the placeholder the engine drops arguments for; inside
        // lists and dicts it is removed, and it prints as nothing.
        assert_eq!(
            t.render(&json!("{{ nope | default(omit) }}"), &c).unwrap(),
            json!(OMIT)
        );
        assert_eq!(
            t.render(
                &json!({"a": ["x", "{{ omit }}"], "b": {"c": "{{ omit }}", "d": 1}}),
                &c
            )
            .unwrap(),
            json!({"a": ["x"], "b": {"d": 1}})
        );
        assert_eq!(t.render(&json!("{{ [1, omit] }}"), &c).unwrap(), json!([1]));
        assert_eq!(t.render(&json!("x{{ omit }}"), &c).unwrap(), json!("x"));
        // Conditions read backslashes as escapes, task arguments from YAML
        // take them literally (ansible's escape_backslashes).
        assert!(t.cond("'a\\tb' | length == 3", &c).unwrap());
        assert_eq!(
            t.render(&json!("{{ 'a\\tb' | length }}"), &c).unwrap(),
            json!(4)
        );
    }
}
