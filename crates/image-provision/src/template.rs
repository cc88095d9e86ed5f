//! Jinja2 templates with minijinja, made to behave like ansible's: the
//! filters, tests and lookups step lists use, lazily templated variables
//! (a variable may refer to others), and native values for a string that
//! is one expression (`"{{ packages }}"` is a list, not its text).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use serde_json::{Map, Value as Json};

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

/// Variables of one task, templated on first use.
pub struct Vars {
    env: Arc<Environment<'static>>,
    raw: Map<String, Json>,
    cache: Mutex<HashMap<String, Value>>,
    busy: Mutex<HashSet<String>>,
    errors: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<vars>")
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
                let host = self.get_value(&Value::from("inventory_hostname"))?;
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
        let raw = self.raw.get(k)?;
        if !has_template(raw) {
            let v = Value::from_serialize(raw);
            if let Ok(mut c) = self.cache.lock() {
                c.insert(k.to_string(), v.clone());
            }
            return Some(v);
        }
        {
            let mut busy = self.busy.lock().ok()?;
            if !busy.insert(k.to_string()) {
                if let Ok(mut e) = self.errors.lock() {
                    e.push(format!("variable `{k}` refers to itself"));
                }
                return None;
            }
        }
        let ctx = Value::from_dyn_object(self.clone());
        let out = render_json(&self.env, raw, &ctx);
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(k);
        }
        match out {
            Ok(j) => {
                let v = Value::from_serialize(&j);
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(k.to_string(), v.clone());
                }
                Some(v)
            }
            Err(e) => {
                if let Ok(mut errs) = self.errors.lock() {
                    errs.push(format!("in variable `{k}`: {}", describe(&e)));
                }
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.raw.keys().map(|k| Value::from(k.as_str())).collect();
        Enumerator::Values(keys)
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
        self.vars
            .get_value(&Value::from(k))
            .and_then(|v| serde_json::to_value(&v).ok())
    }

    fn explain(&self, e: Error) -> String {
        let mut msg = describe(&e);
        if let Ok(errs) = self.vars.errors.lock() {
            if let Some(last) = errs.last() {
                msg.push_str(&format!(" ({last})"));
            }
        }
        msg
    }
}

/// A template or expression error, explained.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn describe(e: &Error) -> String {
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
    // Surrounding whitespace (a trailing newline) is part of the text.
    let t = s.trim_matches(' ');
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(
        inner
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim(),
    )
}

fn render_json(env: &Environment<'static>, v: &Json, ctx: &Value) -> Result<Json, Error> {
    Ok(match v {
        Json::String(s) if s.contains("{{") || s.contains("{%") => {
            if let Some(expr) = single_expression(s) {
                let e = env.compile_expression(expr)?;
                let val = e.eval(ctx)?;
                if val.is_undefined() {
                    return Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("`{expr}` is undefined"),
                    ));
                }
                serde_json::to_value(&val).unwrap_or(Json::Null)
            } else {
                Json::String(env.render_str(s, ctx)?)
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
                    env.render_str(k, ctx)?
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

impl Templater {
    /// The engine with ansible's filters, tests and lookups.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        add_filters(&mut env);
        add_tests(&mut env);
        env.add_function("lookup", lookup);
        env.add_function("query", query);
        env.add_function("q", query);
        env.add_global("omit", Value::from(OMIT));
        env.add_global("True", Value::from(true));
        env.add_global("False", Value::from(false));
        Templater { env: Arc::new(env) }
    }

    /// Variables for one task (merged layers, lowest first already applied).
    pub fn context(&self, raw: Map<String, Json>) -> Ctx {
        let vars = Arc::new(Vars {
            env: self.env.clone(),
            raw,
            cache: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            errors: Mutex::new(Vec::new()),
        });
        Ctx {
            value: Value::from_dyn_object(vars.clone()),
            vars,
        }
    }

    /// Syntax check of an expression.
    pub fn check_expr(&self, e: &str) -> Result<(), String> {
        self.env
            .compile_expression(e)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Syntax check of a template.
    pub fn check_template(&self, s: &str) -> Result<(), String> {
        self.env
            .template_from_str(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Renders every string in `v`; a string that is one expression keeps
    /// the expression's type.
    pub fn render(&self, v: &Json, ctx: &Ctx) -> Result<Json, TemplateError> {
        if !has_template(v) {
            return Ok(v.clone());
        }
        render_json(&self.env, v, &ctx.value).map_err(|e| TemplateError(ctx.explain(e)))
    }

    /// Renders a template to text.
    pub fn render_str(&self, s: &str, ctx: &Ctx) -> Result<String, TemplateError> {
        if !s.contains("{{") && !s.contains("{%") && !s.contains("{#") {
            return Ok(s.to_string());
        }
        self.env
            .render_str(s, &ctx.value)
            .map_err(|e| TemplateError(ctx.explain(e)))
    }

    /// Renders with a plain minijinja value as context.
    pub fn render_with(&self, s: &str, ctx: &Value) -> Result<String, TemplateError> {
        self.env
            .render_str(s, ctx)
            .map_err(|e| TemplateError(describe(&e)))
    }

    /// Evaluates an expression.
    pub fn eval(&self, expr: &str, ctx: &Ctx) -> Result<Value, TemplateError> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| TemplateError(describe(&e)))?;
        e.eval(&ctx.value)
            .map_err(|e| TemplateError(ctx.explain(e)))
    }

    /// Evaluates a condition (`when:`): a bare expression, ansible truth.
    pub fn cond(&self, expr: &str, ctx: &Ctx) -> Result<bool, TemplateError> {
        let v = self.eval(expr, ctx)?;
        if v.is_undefined() {
            return Err(TemplateError(format!("`{expr}` is undefined")));
        }
        Ok(truthy(&v))
    }
}

/// Ansible truth of a value (strings `"false"`, `"no"` are false).
pub fn truthy(v: &Value) -> bool {
    if let Some(s) = v.as_str() {
        return !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "no" | "off" | "0" | "n" | "f"
        );
    }
    v.is_true()
}

fn to_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn regex(pattern: &str, kw: Option<&Kwargs>) -> Result<regex::Regex, Error> {
    let mut b = regex::RegexBuilder::new(pattern);
    if let Some(kw) = kw {
        let ic: Option<bool> = kw.get("ignorecase")?;
        let ml: Option<bool> = kw.get("multiline")?;
        b.case_insensitive(ic.unwrap_or(false));
        b.multi_line(ml.unwrap_or(false));
    }
    b.build()
        .map_err(|e| err(format!("bad regex `{pattern}`: {e}")))
}

/// Python's `re.sub` replacement syntax (`\1`, `\g<name>`, `\n`, `\\`) to
/// the regex crate's, as ansible's `regex_replace`, `replace` and
/// `lineinfile` backrefs use it.
pub(crate) fn py_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    }
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

fn list_of(v: &Value) -> Result<Vec<Value>, Error> {
    if v.is_undefined() || v.is_none() {
        return Ok(Vec::new());
    }
    Ok(v.try_iter()?.collect())
}

fn add_filters(env: &mut Environment<'static>) {
    env.add_filter("bool", |v: Value| -> bool {
        if let Some(s) = v.as_str() {
            matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "yes" | "y" | "on" | "true" | "1" | "t"
            )
        } else {
            v.is_true()
        }
    });
    env.add_filter("basename", |s: String| -> String {
        s.rsplit('/').next().unwrap_or("").to_string()
    });
    env.add_filter("dirname", |s: String| -> String {
        match s.rfind('/') {
            Some(0) => "/".into(),
            Some(i) => s[..i].to_string(),
            None => String::new(),
        }
    });
    env.add_filter(
        "regex_replace",
        |s: String, pat: String, rep: Option<String>, kw: Kwargs| -> Result<String, Error> {
            let re = regex(&pat, Some(&kw))?;
            kw.assert_all_used()?;
            Ok(re
                .replace_all(&s, py_replacement(rep.as_deref().unwrap_or("")).as_str())
                .into_owned())
        },
    );
    env.add_filter(
        "regex_search",
        |s: String, pat: String, groups: Rest<String>, kw: Kwargs| -> Result<Value, Error> {
            let re = regex(&pat, Some(&kw))?;
            kw.assert_all_used()?;
            let Some(c) = re.captures(&s) else {
                return Ok(Value::from(()));
            };
            if groups.is_empty() {
                return Ok(Value::from(c.get(0).map(|m| m.as_str()).unwrap_or("")));
            }
            let mut out = Vec::new();
            for g in groups.iter() {
                let g = g.trim_start_matches('\\');
                let m = match g.parse::<usize>() {
                    Ok(i) => c.get(i),
                    Err(_) => c.name(g.trim_start_matches("g<").trim_end_matches('>')),
                };
                out.push(Value::from(m.map(|m| m.as_str()).unwrap_or("")));
            }
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "regex_findall",
        |s: String, pat: String, kw: Kwargs| -> Result<Value, Error> {
            let re = regex(&pat, Some(&kw))?;
            kw.assert_all_used()?;
            Ok(Value::from(
                re.find_iter(&s)
                    .map(|m| m.as_str().to_string())
                    .collect::<Vec<_>>(),
            ))
        },
    );
    env.add_filter("regex_escape", |s: String| regex::escape(&s));
    env.add_filter(
        "to_json",
        |v: Value, _kw: Kwargs| -> Result<String, Error> {
            serde_json::to_string(&v).map_err(|e| err(e.to_string()))
        },
    );
    env.add_filter(
        "to_nice_json",
        |v: Value, _kw: Kwargs| -> Result<String, Error> {
            serde_json::to_string_pretty(&v).map_err(|e| err(e.to_string()))
        },
    );
    env.add_filter("from_json", |s: String| -> Result<Value, Error> {
        let j: Json = serde_json::from_str(&s).map_err(|e| err(format!("from_json: {e}")))?;
        Ok(Value::from_serialize(&j))
    });
    env.add_filter(
        "to_yaml",
        |v: Value, _kw: Kwargs| -> Result<String, Error> {
            serde_yaml::to_string(&to_json(&v)).map_err(|e| err(e.to_string()))
        },
    );
    env.add_filter(
        "to_nice_yaml",
        |v: Value, _kw: Kwargs| -> Result<String, Error> {
            serde_yaml::to_string(&to_json(&v)).map_err(|e| err(e.to_string()))
        },
    );
    env.add_filter("from_yaml", |s: String| -> Result<Value, Error> {
        let j: Json = serde_yaml::from_str(&s).map_err(|e| err(format!("from_yaml: {e}")))?;
        Ok(Value::from_serialize(&j))
    });
    env.add_filter("b64encode", |s: String| {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    env.add_filter("b64decode", |s: String| -> Result<String, Error> {
        let b = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| err(format!("b64decode: {e}")))?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    });
    env.add_filter("union", |a: Value, b: Value| -> Result<Value, Error> {
        let mut out = list_of(&a)?;
        for x in list_of(&b)? {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        let mut dedup: Vec<Value> = Vec::new();
        for x in out {
            if !dedup.contains(&x) {
                dedup.push(x);
            }
        }
        Ok(Value::from(dedup))
    });
    env.add_filter("difference", |a: Value, b: Value| -> Result<Value, Error> {
        let b = list_of(&b)?;
        let mut out: Vec<Value> = Vec::new();
        for x in list_of(&a)? {
            if !b.contains(&x) && !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(Value::from(out))
    });
    env.add_filter("intersect", |a: Value, b: Value| -> Result<Value, Error> {
        let b = list_of(&b)?;
        let mut out: Vec<Value> = Vec::new();
        for x in list_of(&a)? {
            if b.contains(&x) && !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(Value::from(out))
    });
    env.add_filter(
        "flatten",
        |a: Value, levels: Option<usize>| -> Result<Value, Error> {
            fn go(v: Vec<Value>, depth: Option<usize>, out: &mut Vec<Value>) -> Result<(), Error> {
                for x in v {
                    let is_list = matches!(x.kind(), minijinja::value::ValueKind::Seq);
                    if is_list && depth != Some(0) {
                        go(list_of(&x)?, depth.map(|d| d - 1), out)?;
                    } else {
                        out.push(x);
                    }
                }
                Ok(())
            }
            let mut out = Vec::new();
            go(list_of(&a)?, levels, &mut out)?;
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "combine",
        |a: Value, rest: Rest<Value>, kw: Kwargs| -> Result<Value, Error> {
            let recursive: Option<bool> = kw.get("recursive")?;
            let _: Option<String> = kw.get("list_merge")?;
            kw.assert_all_used()?;
            let mut base = to_json(&a);
            for other in rest.iter() {
                let items: Vec<Json> = match to_json(other) {
                    Json::Array(v) => v,
                    j => vec![j],
                };
                for o in items {
                    merge(&mut base, o, recursive.unwrap_or(false));
                }
            }
            Ok(Value::from_serialize(&base))
        },
    );
    env.add_filter(
        "dict2items",
        |a: Value, kw: Kwargs| -> Result<Value, Error> {
            let kn: Option<String> = kw.get("key_name")?;
            let vn: Option<String> = kw.get("value_name")?;
            kw.assert_all_used()?;
            let (kn, vn) = (kn.unwrap_or("key".into()), vn.unwrap_or("value".into()));
            let Json::Object(m) = to_json(&a) else {
                return Err(err("dict2items expects a mapping"));
            };
            let out: Vec<Json> = m
                .into_iter()
                .map(|(k, v)| {
                    let mut o = Map::new();
                    o.insert(kn.clone(), Json::String(k));
                    o.insert(vn.clone(), v);
                    Json::Object(o)
                })
                .collect();
            Ok(Value::from_serialize(&out))
        },
    );
    env.add_filter(
        "items2dict",
        |a: Value, kw: Kwargs| -> Result<Value, Error> {
            let kn: Option<String> = kw.get("key_name")?;
            let vn: Option<String> = kw.get("value_name")?;
            kw.assert_all_used()?;
            let (kn, vn) = (kn.unwrap_or("key".into()), vn.unwrap_or("value".into()));
            let mut out = Map::new();
            if let Json::Array(items) = to_json(&a) {
                for it in items {
                    let k = it
                        .get(&kn)
                        .map(crate::modules::json_to_string)
                        .unwrap_or_default();
                    out.insert(k, it.get(&vn).cloned().unwrap_or(Json::Null));
                }
            }
            Ok(Value::from_serialize(&out))
        },
    );
    env.add_filter("quote", |s: String| image_core::target::shell_quote(&s));
    env.add_filter(
        "mandatory",
        |v: Value, msg: Option<String>| -> Result<Value, Error> {
            if v.is_undefined() {
                Err(Error::new(
                    ErrorKind::UndefinedError,
                    msg.unwrap_or_else(|| "mandatory variable not defined".into()),
                ))
            } else {
                Ok(v)
            }
        },
    );
    env.add_filter("ternary", |v: Value, a: Value, b: Value| -> Value {
        if truthy(&v) {
            a
        } else {
            b
        }
    });
    env.add_filter(
        "version_compare",
        |a: String, b: String, op: Option<String>| -> Result<bool, Error> {
            version_test(&a, &b, op.as_deref().unwrap_or("eq"))
        },
    );
    env.add_filter(
        "hash",
        |s: String, alg: Option<String>| -> Result<String, Error> {
            match alg.as_deref().unwrap_or("sha1") {
                "sha256" => Ok(crate::script::sha256_hex(s.as_bytes())),
                other => Err(err(format!("hash: only sha256 is supported, not {other}"))),
            }
        },
    );
    env.add_filter("splitlines", |s: String| -> Vec<String> {
        s.lines().map(str::to_string).collect()
    });
}

fn merge(base: &mut Json, other: Json, recursive: bool) {
    match (base, other) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) if recursive && bv.is_object() && v.is_object() => merge(bv, v, true),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Compares versions the way ansible's `version` test does (loose: numbers
/// compare as numbers, other parts as text).
pub fn version_test(a: &str, b: &str, op: &str) -> Result<bool, Error> {
    fn parts(s: &str) -> Vec<Result<u64, String>> {
        let re = regex::Regex::new(r"\d+|[a-zA-Z]+").ok();
        re.map(|re| {
            re.find_iter(s)
                .map(|m| {
                    m.as_str()
                        .parse::<u64>()
                        .map_err(|_| m.as_str().to_string())
                })
                .collect()
        })
        .unwrap_or_default()
    }
    let (pa, pb) = (parts(a), parts(b));
    let mut ord = std::cmp::Ordering::Equal;
    for i in 0..pa.len().max(pb.len()) {
        let o = match (pa.get(i), pb.get(i)) {
            (Some(Ok(x)), Some(Ok(y))) => x.cmp(y),
            (Some(Err(x)), Some(Err(y))) => x.cmp(y),
            (Some(Ok(_)), Some(Err(_))) => std::cmp::Ordering::Greater,
            (Some(Err(_)), Some(Ok(_))) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if o != std::cmp::Ordering::Equal {
            ord = o;
            break;
        }
    }
    use std::cmp::Ordering::*;
    Ok(match op {
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        "==" | "=" | "eq" => ord == Equal,
        "!=" | "<>" | "ne" => ord != Equal,
        other => return Err(err(format!("unknown version operator `{other}`"))),
    })
}

fn result_flag(v: &Value, key: &str) -> bool {
    v.get_attr(key).map(|x| x.is_true()).unwrap_or(false)
}

fn add_tests(env: &mut Environment<'static>) {
    env.add_test("undefined", |v: Value| v.is_undefined());
    env.add_test("defined", |v: Value| !v.is_undefined());
    env.add_test(
        "version",
        |a: String, b: String, op: Option<String>, kw: Kwargs| -> Result<bool, Error> {
            let _: Option<bool> = kw.get("strict")?;
            let _: Option<String> = kw.get("version_type")?;
            version_test(&a, &b, op.as_deref().unwrap_or("eq"))
        },
    );
    env.add_test(
        "version_compare",
        |a: String, b: String, op: Option<String>| -> Result<bool, Error> {
            version_test(&a, &b, op.as_deref().unwrap_or("eq"))
        },
    );
    env.add_test(
        "search",
        |s: String, pat: String, kw: Kwargs| -> Result<bool, Error> {
            let re = regex(&pat, Some(&kw))?;
            Ok(re.is_match(&s))
        },
    );
    env.add_test(
        "regex",
        |s: String, pat: String, kw: Kwargs| -> Result<bool, Error> {
            let re = regex(&pat, Some(&kw))?;
            Ok(re.is_match(&s))
        },
    );
    env.add_test(
        "match",
        |s: String, pat: String, kw: Kwargs| -> Result<bool, Error> {
            let re = regex(&format!("^(?:{pat})"), Some(&kw))?;
            Ok(re.is_match(&s))
        },
    );
    for name in ["succeeded", "success", "successful"] {
        env.add_test(name, |v: Value| !result_flag(&v, "failed"));
    }
    for name in ["failed", "failure"] {
        env.add_test(name, |v: Value| result_flag(&v, "failed"));
    }
    for name in ["changed", "change"] {
        env.add_test(name, |v: Value| result_flag(&v, "changed"));
    }
    for name in ["skipped", "skip"] {
        env.add_test(name, |v: Value| result_flag(&v, "skipped"));
    }
    env.add_test("contains", |v: Value, x: Value| -> Result<bool, Error> {
        Ok(list_of(&v)?.contains(&x))
    });
    env.add_test("subset", |a: Value, b: Value| -> Result<bool, Error> {
        let b = list_of(&b)?;
        Ok(list_of(&a)?.iter().all(|x| b.contains(x)))
    });
    env.add_test("superset", |a: Value, b: Value| -> Result<bool, Error> {
        let a = list_of(&a)?;
        Ok(list_of(&b)?.iter().all(|x| a.contains(x)))
    });
    env.add_test("truthy", |v: Value| truthy(&v));
    env.add_test("falsy", |v: Value| !truthy(&v));
}

fn search_dirs(state: &State) -> Vec<std::path::PathBuf> {
    state
        .lookup("__search_dirs")
        .and_then(|v| {
            v.try_iter()
                .ok()
                .map(|it| it.map(|x| x.to_string().into()).collect())
        })
        .unwrap_or_default()
}

fn find_file(state: &State, name: &str, sub: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(name);
    if p.is_absolute() {
        return p;
    }
    for d in search_dirs(state) {
        for c in [d.join(sub).join(name), d.join(name)] {
            if c.exists() {
                return c;
            }
        }
    }
    p
}

fn lookup_values(
    state: &State,
    kind: &str,
    args: &[Value],
    kw: &Kwargs,
) -> Result<Vec<Value>, Error> {
    let default: Option<Value> = kw.get("default")?;
    let mut out = Vec::new();
    for a in args {
        let term = a
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| a.to_string());
        let v = match kind {
            "env" => match std::env::var(&term) {
                Ok(v) => Value::from(v),
                Err(_) => default.clone().unwrap_or_else(|| Value::from("")),
            },
            "file" => {
                let p = find_file(state, &term, "files");
                let s = std::fs::read_to_string(&p)
                    .map_err(|e| err(format!("lookup('file', '{term}'): {}: {e}", p.display())))?;
                Value::from(s.trim_end_matches('\n').to_string())
            }
            "vars" => match state.lookup(&term) {
                Some(v) if !v.is_undefined() => v,
                _ => match &default {
                    Some(d) => d.clone(),
                    None => {
                        return Err(Error::new(
                            ErrorKind::UndefinedError,
                            format!("lookup('vars', '{term}'): no such variable"),
                        ))
                    }
                },
            },
            "template" => {
                let p = find_file(state, &term, "templates");
                let s = std::fs::read_to_string(&p).map_err(|e| {
                    err(format!(
                        "lookup('template', '{term}'): {}: {e}",
                        p.display()
                    ))
                })?;
                let ctx = state.lookup("__vars").unwrap_or_default();
                Value::from(state.env().render_str(&s, ctx)?)
            }
            other => {
                return Err(err(format!(
                    "lookup `{other}` is not supported (env, file, vars, template)"
                )))
            }
        };
        out.push(v);
    }
    Ok(out)
}

fn lookup(state: &State, kind: String, args: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let wantlist: Option<bool> = kw.get("wantlist")?;
    let _: Option<Value> = kw.get("errors")?;
    let vals = lookup_values(state, &kind, &args, &kw)?;
    if wantlist.unwrap_or(false) {
        return Ok(Value::from(vals));
    }
    Ok(match vals.len() {
        1 => vals.into_iter().next().unwrap_or_default(),
        _ => Value::from(
            vals.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    })
}

fn query(state: &State, kind: String, args: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    Ok(Value::from(lookup_values(state, &kind, &args, &kw)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replacements_become_regex_crate_ones() {
        assert_eq!(py_replacement(r"\1-\g<name>"), "${1}-${name}");
        assert_eq!(py_replacement(r"a\nb"), "a\nb");
        assert_eq!(py_replacement(r"c:\\x $5"), r"c:\x $$5");
    }
    use serde_json::json;

    fn ctx(t: &Templater, v: Json) -> Ctx {
        t.context(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn lazy_vars_and_native_values() {
        let t = Templater::new();
        let c = ctx(
            &t,
            json!({"a": "{{ b }}-x", "b": "{{ c | upper }}", "c": "hi", "l": [1, 2], "m": "{{ l }}"}),
        );
        assert_eq!(t.render_str("{{ a }}", &c).unwrap(), "HI-x");
        assert_eq!(t.render(&json!("{{ m }}"), &c).unwrap(), json!([1, 2]));
    }

    #[test]
    fn ansible_filters() {
        let t = Templater::new();
        let c = ctx(&t, json!({"p": "/etc/x.conf", "d": {"a": 1}, "s": "yes"}));
        let r = |s: &str| t.render_str(s, &c).unwrap();
        assert_eq!(r("{{ p | basename }}"), "x.conf");
        assert_eq!(r("{{ p | dirname }}"), "/etc");
        assert_eq!(
            r("{{ p | regex_replace('x\\\\.(\\\\w+)', 'y.\\\\1') }}"),
            "/etc/y.conf"
        );
        assert_eq!(r("{{ s | bool }}"), "True");
        assert_eq!(
            r("{{ d | combine({'b': 2}) | dict2items | map(attribute='key') | join(',') }}"),
            "a,b"
        );
        assert_eq!(r("{{ [1,2] | union([2,3]) | list }}"), "[1, 2, 3]");
        assert_eq!(r("{{ 'abc' | b64encode | b64decode }}"), "abc");
        assert_eq!(r("{{ undefined_x | default('d') }}"), "d");
        assert!(t.cond("'1.30.2' is version('1.29', '>=')", &c).unwrap());
        assert!(t.cond("p is search('x\\\\.conf')", &c).unwrap());
        assert!(t.cond("nope is undefined", &c).unwrap());
        assert!(t.render_str("{{ nope }}", &c).is_err());
        assert_eq!(r("{{ lookup('vars', 'p') }}"), "/etc/x.conf");
    }
}
