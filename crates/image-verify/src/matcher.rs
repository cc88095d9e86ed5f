//! goss matchers: how an expected value from a gossfile is compared with
//! what was found on the target.
//!
//! - A plain value matches by equality, with goss's type conversions: a
//!   number matches a string that parses to it (`mode: "0644"` or `0644`,
//!   `uid: "0"`), booleans and strings compare as text.
//! - A list means "contains these elements" (each element a value or a
//!   matcher).
//! - On text properties (`contents`, `stdout`, `stderr`, `body`), a single
//!   string is compared with the whole text (goss: `stderr: ""` asserts an
//!   empty stderr), and the strings of a list are line patterns: `text`
//!   (some line contains it), `!text` (no line does), `/re/`, `/re/i`
//!   (flags `i`, `m`, `s`), `!/re/`, and `\!text` (see [`Pattern::parse`]).
//! - A single-key mapping is an advanced matcher: `equal`, `have-prefix`,
//!   `have-suffix`, `match-regexp`, `contain-substring`, `contain-element`,
//!   `contain-elements`, `consist-of`, `have-len`, `have-key`, `gt`, `ge`,
//!   `lt`, `le`, `not`, `and`, `or`, `semver-constraint`, `have-patterns`,
//!   `gjson` (a mapping of [gjson](https://gjson.dev/) paths to matchers,
//!   each applied to what the path selects in JSON text), `xml` (`xpath`
//!   and `result`: an XPath 1.0 query on XML text, see [`xml`]).
//! - goss's transforms: string matchers see a list as its items joined by
//!   newlines, `contain-element(s)` see a string as its lines, numeric
//!   matchers parse strings.
//!
//! ```
//! use image_verify::matcher::Matcher;
//! use serde_json::json;
//! let node = image_core::yaml::parse("g.yaml", "{and: [{gt: 1}, {lt: 10}]}").unwrap();
//! let m = Matcher::from_node(&node, false).unwrap();
//! assert!(m.check(&json!("5")).ok);
//! assert!(!m.check(&json!(12)).ok);
//! ```

use std::fmt;

use image_core::diag::{did_you_mean, Diagnostic};
use image_core::yaml::{Node, Value as Y};
use serde_json::Value;

/// The advanced matcher names.
pub const NAMES: &[&str] = &[
    "equal",
    "have-prefix",
    "have-suffix",
    "match-regexp",
    "contain-substring",
    "contain-element",
    "contain-elements",
    "consist-of",
    "have-len",
    "have-key",
    "gt",
    "ge",
    "lt",
    "le",
    "not",
    "and",
    "or",
    "semver-constraint",
    "have-patterns",
    "gjson",
    "xml",
];

/// A line pattern of a text property.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written.
    pub text: String,
    /// `!` given: no line may match.
    pub negate: bool,
    /// What a line must contain or match.
    pub kind: PatternKind,
}

/// A pattern's test.
#[derive(Debug, Clone)]
pub enum PatternKind {
    /// A substring.
    Literal(String),
    /// A regular expression.
    Regex(regex::Regex),
}

impl Pattern {
    /// Parses a pattern as goss does: `/re/` (optionally `/re/ims`, Go's
    /// inline flags) is a regular expression, `!` in front negates, and
    /// any other string is a substring with its leading `\`, `/` and `!`
    /// removed (so `\!text`, documented as a literal `!text`, finds `text`
    /// in goss's code, and here).
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let negate = s.starts_with('!');
        let kind = if is_regex_pattern(s) {
            let mut clean = s.strip_prefix('!').unwrap_or(s);
            if clean.starts_with(['\\', '/']) {
                clean = &clean[1..];
            }
            let (re, flags) = match clean.rfind('/') {
                Some(i) => (&clean[..i], &clean[i + 1..]),
                None => (clean, ""),
            };
            let re = if flags.is_empty() {
                re.to_string()
            } else {
                format!("(?{flags}){re}")
            };
            PatternKind::Regex(crate::re2::compile(&re)?)
        } else {
            PatternKind::Literal(s.trim_start_matches(['\\', '/', '!']).to_string())
        };
        Ok(Pattern {
            text: s.to_string(),
            negate,
            kind,
        })
    }

    /// True when the pattern holds for `text` (some line matches, or with
    /// `!` none does). As goss reads lines, empty text has no line: only an
    /// empty pattern (or a negated one) holds for it.
    pub fn holds(&self, text: &str) -> bool {
        if text.is_empty() {
            return self.negate || self.text.is_empty();
        }
        let hit = text.lines().any(|l| match &self.kind {
            PatternKind::Literal(s) => l.contains(s.as_str()),
            PatternKind::Regex(r) => r.is_match(l),
        });
        hit != self.negate
    }
}

/// goss's test for a regex pattern: `/…/` (after an optional `!`), with
/// only the flags `i`, `m`, `s` after the closing `/`.
fn is_regex_pattern(s: &str) -> bool {
    let core = s.strip_prefix('!').unwrap_or(s);
    let Some(body) = core.strip_prefix('/') else {
        return false;
    };
    match body.rfind('/') {
        Some(i) => body[i + 1..].chars().all(|c| matches!(c, 'i' | 'm' | 's')),
        None => false,
    }
}

/// Numeric comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// A parsed matcher.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equality with type conversion.
    Equal(Value),
    /// `equal` written out: the same test, printed as written.
    EqualNamed(Value),
    /// Line patterns on text.
    Patterns(Vec<Pattern>),
    /// `have-prefix`
    HavePrefix(String),
    /// `have-suffix`
    HaveSuffix(String),
    /// `match-regexp` (as written, compiled with RE2's syntax)
    MatchRegexp(String, regex::Regex),
    /// `contain-substring`
    ContainSubstring(String),
    /// `contain-element`
    ContainElement(Box<Matcher>),
    /// A plain list: contains these elements.
    ContainElements(Vec<Matcher>),
    /// `contain-elements` written out: as a plain list, but a string is
    /// first split into lines (goss's to-array transform).
    ContainElementsOf(Vec<Matcher>),
    /// `consist-of`
    ConsistOf(Vec<Matcher>),
    /// `have-len`
    HaveLen(usize),
    /// `have-key`
    HaveKey(Box<Matcher>),
    /// `gt` / `ge` / `lt` / `le`
    Compare(Cmp, f64),
    /// `not`
    Not(Box<Matcher>),
    /// `and`
    And(Vec<Matcher>),
    /// `or`
    Or(Vec<Matcher>),
    /// `semver-constraint`
    Semver(String),
    /// `gjson`: (path, matcher) pairs, all of which must hold.
    Gjson(Vec<(String, Matcher)>),
    /// `xml`: (xpath, expected result).
    Xml(String, String),
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Matched.
    pub ok: bool,
    /// Why not (patterns not found, a type error), when there is more to
    /// say than expected vs found.
    pub detail: Option<String>,
    /// The matcher could not compare at all (a list expected, no JSON, ...):
    /// as gomega's errors, `not` does not turn it into a match.
    pub error: bool,
}

impl Outcome {
    fn yes(ok: bool) -> Self {
        Outcome {
            ok,
            detail: None,
            error: false,
        }
    }
    /// A mismatch with more to say.
    fn fail(detail: String) -> Self {
        Outcome {
            ok: false,
            detail: Some(detail),
            error: false,
        }
    }
    /// The comparison could not be made.
    fn err(detail: String) -> Self {
        Outcome {
            ok: false,
            detail: Some(detail),
            error: true,
        }
    }
}

impl Matcher {
    /// Parses the expected value of a property. `text` marks text
    /// properties (line patterns).
    pub fn from_node(node: &Node, text: bool) -> Result<Matcher, Diagnostic> {
        match &node.value {
            Y::Seq(items) if text => {
                let mut pats = Vec::new();
                for it in items {
                    let s = it
                        .scalar_string()
                        .filter(|_| !it.is_null())
                        .ok_or_else(|| {
                            it.type_error("a line pattern", "a string")
                                .with_help("quote the pattern: `- \"text\"` or `- \"/regex/\"`")
                        })?;
                    pats.push(Pattern::parse(&s).map_err(|e| {
                        it.error(e)
                            .with_help("a pattern is text, `/regex/` or `!` and one of those")
                    })?);
                }
                Ok(Matcher::Patterns(pats))
            }
            Y::Seq(items) => Ok(Matcher::ContainElements(
                items
                    .iter()
                    .map(|i| Matcher::from_node(i, false))
                    .collect::<Result<_, _>>()?,
            )),
            Y::Map(pairs) => {
                if pairs.len() != 1 {
                    return Err(node
                        .error("a matcher must be a mapping with exactly one key")
                        .with_help(format!("matchers: {}", NAMES.join(", "))));
                }
                let (k, v) = &pairs[0];
                let name = k.as_key().unwrap_or_default();
                Matcher::named(&name, k, v)
            }
            _ => Ok(Matcher::Equal(node.to_json())),
        }
    }

    fn named(name: &str, key: &Node, v: &Node) -> Result<Matcher, Diagnostic> {
        let string = |v: &Node| {
            v.scalar_string().filter(|_| !v.is_null()).ok_or_else(|| {
                v.type_error(name, "a string")
                    .with_help(format!("e.g. `{name}: \"text\"`"))
            })
        };
        let list = |v: &Node| -> Result<Vec<Matcher>, Diagnostic> {
            v.as_seq()
                .ok_or_else(|| {
                    v.type_error(name, "a list")
                        .with_help(format!("e.g. `{name}: [a, b]`"))
                })?
                .iter()
                .map(|i| Matcher::from_node(i, false))
                .collect()
        };
        let number = |v: &Node| -> Result<f64, Diagnostic> {
            match &v.value {
                Y::Int(i) => Ok(*i as f64),
                Y::Float(f) => Ok(*f),
                Y::Str(s) => s.trim().parse().map_err(|_| {
                    v.type_error(name, "a number")
                        .with_help(format!("e.g. `{name}: 10`"))
                }),
                _ => Err(v
                    .type_error(name, "a number")
                    .with_help(format!("e.g. `{name}: 10`"))),
            }
        };
        Ok(match name {
            "equal" => Matcher::EqualNamed(v.to_json()),
            "have-prefix" => Matcher::HavePrefix(string(v)?),
            "have-suffix" => Matcher::HaveSuffix(string(v)?),
            "contain-substring" => Matcher::ContainSubstring(string(v)?),
            "match-regexp" => {
                let s = string(v)?;
                let re = crate::re2::compile(&s).map_err(|e| {
                    v.error(e).with_help(
                        "write an RE2 regular expression (no lookaround or backreferences)",
                    )
                })?;
                Matcher::MatchRegexp(s, re)
            }
            "contain-element" => Matcher::ContainElement(Box::new(Matcher::from_node(v, false)?)),
            "contain-elements" => Matcher::ContainElementsOf(list(v)?),
            "consist-of" => Matcher::ConsistOf(list(v)?),
            "have-len" => Matcher::HaveLen(
                v.as_i64()
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or_else(|| {
                        v.type_error(name, "a non-negative integer")
                            .with_help(format!("e.g. `{name}: 2`"))
                    })?,
            ),
            "have-key" => Matcher::HaveKey(Box::new(Matcher::from_node(v, false)?)),
            "gt" => Matcher::Compare(Cmp::Gt, number(v)?),
            "ge" => Matcher::Compare(Cmp::Ge, number(v)?),
            "lt" => Matcher::Compare(Cmp::Lt, number(v)?),
            "le" => Matcher::Compare(Cmp::Le, number(v)?),
            // goss: only a top-level list of a text attribute is line
            // patterns; under `not`, `and`, `or` a list is contain-elements.
            "not" => Matcher::Not(Box::new(Matcher::from_node(v, false)?)),
            "and" | "or" => {
                let items: Vec<Matcher> = v
                    .as_seq()
                    .ok_or_else(|| {
                        v.type_error(name, "a list")
                            .with_help(format!("e.g. `{name}: [{{gt: 1}}, {{lt: 5}}]`"))
                    })?
                    .iter()
                    .map(|i| Matcher::from_node(i, false))
                    .collect::<Result<_, _>>()?;
                if name == "and" {
                    Matcher::And(items)
                } else {
                    Matcher::Or(items)
                }
            }
            "semver-constraint" => {
                let s = string(v)?;
                semver_satisfies(&s, "0.0.0").map_err(|e| {
                    v.error(e)
                        .with_help("write a constraint such as \">=1.2.0, <2.0\"")
                })?;
                Matcher::Semver(s)
            }
            "have-patterns" => return Matcher::from_node(v, true),
            "gjson" => {
                let pairs = v
                    .as_map()
                    .ok_or_else(|| v.type_error(name, "a mapping of gjson paths to matchers"))?;
                let mut out = Vec::new();
                for (pk, pv) in pairs {
                    let path = pk.as_key().unwrap_or_default();
                    out.push((path, Matcher::from_node(pv, false)?));
                }
                Matcher::Gjson(out)
            }
            "xml" => {
                let m = v
                    .as_map()
                    .ok_or_else(|| v.type_error(name, "a mapping with xpath and result"))?;
                let get = |k: &str| {
                    m.iter()
                        .find(|(mk, _)| mk.as_key().as_deref() == Some(k))
                        .map(|(_, mv)| go_fmt_v(&mv.to_json()))
                };
                let (Some(xpath), Some(result)) = (get("xpath"), get("result")) else {
                    return Err(v.error("xml needs both `xpath` and `result`"));
                };
                xml::validate(&xpath).map_err(|e| v.error(e))?;
                Matcher::Xml(xpath, result)
            }
            other => {
                let mut d = key.error(format!("unknown matcher `{other}`"));
                d = match did_you_mean(other, NAMES.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("matchers: {}", NAMES.join(", "))),
                };
                return Err(d);
            }
        })
    }

    /// The matcher of a value read as text (goss's `as-reader`): a
    /// top-level list of strings becomes line patterns; anything else is
    /// unchanged.
    pub fn into_patterns(self) -> Result<Matcher, String> {
        match self {
            Matcher::ContainElements(items) => {
                let mut pats = Vec::new();
                for m in items {
                    match m {
                        Matcher::Equal(Value::String(s)) => pats.push(Pattern::parse(&s)?),
                        other => {
                            return Err(format!("a line pattern must be a string, found {other}"))
                        }
                    }
                }
                Ok(Matcher::Patterns(pats))
            }
            other => Ok(other),
        }
    }

    /// Checks `found` against this matcher.
    pub fn check(&self, found: &Value) -> Outcome {
        match self {
            Matcher::Equal(e) | Matcher::EqualNamed(e) => Outcome::yes(loose_eq(e, found)),
            Matcher::Patterns(pats) => {
                let text = as_text(found);
                let missing: Vec<&str> = pats
                    .iter()
                    .filter(|p| !p.holds(&text))
                    .map(|p| p.text.as_str())
                    .collect();
                if missing.is_empty() {
                    Outcome::yes(true)
                } else {
                    Outcome::fail(format!("patterns not found: [{}]", missing.join(", ")))
                }
            }
            Matcher::HavePrefix(p) => Outcome::yes(to_string(found).starts_with(p.as_str())),
            Matcher::HaveSuffix(p) => Outcome::yes(to_string(found).ends_with(p.as_str())),
            Matcher::ContainSubstring(p) => Outcome::yes(to_string(found).contains(p.as_str())),
            Matcher::MatchRegexp(_, r) => Outcome::yes(r.is_match(&to_string(found))),
            Matcher::ContainElement(m) => match to_array(found).as_ref() {
                Value::Array(items) => Outcome::yes(items.iter().any(|i| m.check(i).ok)),
                other => Outcome::err(format!("contain-element needs a list, found {other}")),
            },
            Matcher::ContainElementsOf(ms) => match to_array(found).as_ref() {
                Value::Array(items) => Outcome::yes(assign(ms, items, false)),
                other => Outcome::err(format!("contain-elements needs a list, found {other}")),
            },
            Matcher::ContainElements(ms) => match found {
                Value::Array(items) => Outcome::yes(assign(ms, items, false)),
                other => Outcome::err(format!("expected a list, found {other}")),
            },
            Matcher::ConsistOf(ms) => match found {
                Value::Array(items) => Outcome::yes(assign(ms, items, true)),
                other => Outcome::err(format!("consist-of needs a list, found {other}")),
            },
            Matcher::HaveLen(n) => match found {
                Value::Array(a) => Outcome::yes(a.len() == *n),
                Value::Object(o) => Outcome::yes(o.len() == *n),
                Value::String(s) => Outcome::yes(s.len() == *n),
                other => Outcome::err(format!(
                    "have-len needs a list, map or string, found {other}"
                )),
            },
            Matcher::HaveKey(m) => match found {
                Value::Object(o) => {
                    Outcome::yes(o.keys().any(|k| m.check(&Value::String(k.clone())).ok))
                }
                other => Outcome::err(format!("have-key needs a map, found {other}")),
            },
            Matcher::Compare(op, x) => match as_number(found) {
                Some(f) => Outcome::yes(match op {
                    Cmp::Gt => f > *x,
                    Cmp::Ge => f >= *x,
                    Cmp::Lt => f < *x,
                    Cmp::Le => f <= *x,
                }),
                None => Outcome::err(format!("expected a number, found {found}")),
            },
            Matcher::Not(m) => {
                let o = m.check(found);
                if o.error {
                    return o;
                }
                Outcome::yes(!o.ok)
            }
            Matcher::And(ms) => {
                for m in ms {
                    let o = m.check(found);
                    if !o.ok {
                        return o;
                    }
                }
                Outcome::yes(true)
            }
            Matcher::Or(ms) => {
                let mut details = Vec::new();
                for m in ms {
                    let o = m.check(found);
                    if o.ok || o.error {
                        return o;
                    }
                    details.extend(o.detail);
                }
                Outcome {
                    ok: false,
                    detail: (!details.is_empty()).then(|| details.join("; ")),
                    error: false,
                }
            }
            Matcher::Semver(c) => {
                let versions: Vec<String> = match found {
                    Value::Array(a) => a.iter().map(as_text).collect(),
                    other => vec![as_text(other)],
                };
                if versions.is_empty() {
                    return Outcome::err("no version to compare".into());
                }
                for v in &versions {
                    match semver_satisfies(c, v) {
                        Ok(true) => {}
                        Ok(false) => return Outcome::yes(false),
                        Err(e) => return Outcome::err(e),
                    }
                }
                Outcome::yes(true)
            }
            Matcher::Gjson(pairs) => {
                let Value::String(json) = found else {
                    return Outcome::err(format!("gjson needs JSON text, found {found}"));
                };
                if !gjson::valid(json) {
                    return Outcome::err("gjson: invalid JSON".into());
                }
                for (path, m) in pairs {
                    let Some(v) = gjson_get(json, path) else {
                        return Outcome::err(format!("gjson: path not found: {path}"));
                    };
                    let o = m.check(&v);
                    if !o.ok {
                        let why = o.detail.unwrap_or_else(|| {
                            format!("found {v}, expected {} {}", m.verb(), m.to_json())
                        });
                        let why = format!("gjson `{path}`: {why}");
                        return if o.error {
                            Outcome::err(why)
                        } else {
                            Outcome::fail(why)
                        };
                    }
                }
                Outcome::yes(true)
            }
            Matcher::Xml(xpath, result) => match found {
                Value::String(text) => match xml::check(text, xpath, result) {
                    Ok(None) => Outcome::yes(true),
                    Ok(Some(why)) => Outcome::fail(why),
                    Err(e) => Outcome::err(e),
                },
                other => Outcome::err(format!("xml needs XML text, found {other}")),
            },
        }
    }

    /// The expectation as JSON, as goss prints it in reports.
    pub fn to_json(&self) -> Value {
        let list = |ms: &[Matcher]| Value::Array(ms.iter().map(Matcher::to_json).collect());
        let named = |n: &str, v: Value| serde_json::json!({ n: v });
        match self {
            Matcher::Equal(v) => v.clone(),
            Matcher::EqualNamed(v) => named("equal", v.clone()),
            Matcher::Patterns(p) => {
                Value::Array(p.iter().map(|p| Value::String(p.text.clone())).collect())
            }
            Matcher::HavePrefix(s) => named("have-prefix", s.clone().into()),
            Matcher::HaveSuffix(s) => named("have-suffix", s.clone().into()),
            Matcher::ContainSubstring(s) => named("contain-substring", s.clone().into()),
            Matcher::MatchRegexp(s, _) => named("match-regexp", s.clone().into()),
            Matcher::ContainElement(m) => named("contain-element", m.to_json()),
            Matcher::ContainElements(ms) => list(ms),
            Matcher::ContainElementsOf(ms) => named("contain-elements", list(ms)),
            Matcher::ConsistOf(ms) => named("consist-of", list(ms)),
            Matcher::HaveLen(n) => named("have-len", (*n).into()),
            Matcher::HaveKey(m) => named("have-key", m.to_json()),
            Matcher::Compare(op, x) => {
                let n = match op {
                    Cmp::Gt => "gt",
                    Cmp::Ge => "ge",
                    Cmp::Lt => "lt",
                    Cmp::Le => "le",
                };
                let v = if x.fract() == 0.0 && x.abs() < 9e15 {
                    Value::from(*x as i64)
                } else {
                    serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number)
                };
                named(n, v)
            }
            Matcher::Not(m) => named("not", m.to_json()),
            Matcher::And(ms) => named("and", list(ms)),
            Matcher::Or(ms) => named("or", list(ms)),
            Matcher::Semver(s) => named("semver-constraint", s.clone().into()),
            Matcher::Xml(x, r) => named("xml", serde_json::json!({"xpath": x, "result": r})),
            Matcher::Gjson(pairs) => named(
                "gjson",
                Value::Object(
                    pairs
                        .iter()
                        .map(|(p, m)| (p.clone(), m.to_json()))
                        .collect(),
                ),
            ),
        }
    }

    /// A verb phrase for failure messages ("to equal", "to contain elements").
    pub fn verb(&self) -> &'static str {
        match self {
            Matcher::Equal(_) | Matcher::EqualNamed(_) => "to equal",
            Matcher::Patterns(_) => "to have patterns",
            Matcher::HavePrefix(_) => "to have prefix",
            Matcher::HaveSuffix(_) => "to have suffix",
            Matcher::ContainSubstring(_) => "to contain substring",
            Matcher::MatchRegexp(..) => "to match regular expression",
            Matcher::ContainElement(_) => "to contain element matching",
            Matcher::ContainElements(_) | Matcher::ContainElementsOf(_) => "to contain elements",
            Matcher::ConsistOf(_) => "to consist of",
            Matcher::HaveLen(_) => "to have length",
            Matcher::HaveKey(_) => "to have key matching",
            Matcher::Compare(..) => "to be",
            Matcher::Not(_) => "not",
            Matcher::And(_) => "to satisfy all of",
            Matcher::Or(_) => "to satisfy one of",
            Matcher::Semver(_) => "to satisfy semver constraint",
            Matcher::Gjson(_) => "to have gjson paths matching",
            Matcher::Xml(..) => "to satisfy XPath match with result",
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// A value as text: strings as they are, everything else as JSON.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// goss's `to-string` transform: a list is its items joined by newlines
/// (as the lines of a command's output), anything else as text.
pub fn to_string(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join("\n"),
        other => as_text(other),
    }
}

/// A value as Go's `fmt` `%v` prints it (`[a b]`, `map[k:v]`).
pub fn go_fmt_v(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_fmt_v).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt_v(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Null => "<nil>".into(),
        other => as_text(other),
    }
}

/// goss's `to-array` transform: a string is its lines.
fn to_array(v: &Value) -> std::borrow::Cow<'_, Value> {
    match v {
        Value::String(s) => std::borrow::Cow::Owned(Value::Array(
            s.split('\n')
                .map(|l| Value::String(l.to_string()))
                .collect(),
        )),
        other => std::borrow::Cow::Borrowed(other),
    }
}

/// What a gjson `path` selects in `json`, as a JSON value (goss:
/// `gjson.Get(json, path).Value()`); `None` when the path does not exist.
pub fn gjson_get(json: &str, path: &str) -> Option<Value> {
    let r = gjson::get(json, path);
    if !r.exists() {
        return None;
    }
    Some(serde_json::from_str(r.json()).unwrap_or_else(|_| Value::String(r.str().to_string())))
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Equality with goss's conversions between numbers, booleans and strings.
pub fn loose_eq(expected: &Value, found: &Value) -> bool {
    if expected == found {
        return true;
    }
    match (expected, found) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| loose_eq(x, y))
        }
        (Value::Object(_), _)
        | (_, Value::Object(_))
        | (Value::Array(_), _)
        | (_, Value::Array(_)) => false,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => {
            if as_text(expected) == as_text(found) {
                return true;
            }
            matches!((as_number(expected), as_number(found)), (Some(a), Some(b)) if a == b)
        }
    }
}

/// True when every matcher matches a different item (and, for
/// `exact`, every item is matched). Backtracking over small lists.
fn assign(ms: &[Matcher], items: &[Value], exact: bool) -> bool {
    if exact && ms.len() != items.len() {
        return false;
    }
    fn go(ms: &[Matcher], items: &[Value], used: &mut Vec<bool>) -> bool {
        let Some((m, rest)) = ms.split_first() else {
            return true;
        };
        for (i, it) in items.iter().enumerate() {
            if !used[i] && m.check(it).ok {
                used[i] = true;
                if go(rest, items, used) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let mut used = vec![false; items.len()];
    go(ms, items, &mut used)
}

/// A package version made comparable: epoch and distribution revision
/// dropped (`1:1.29.3-1.1` -> `1.29.3`), missing parts as 0.
fn lenient_version(v: &str) -> Result<semver::Version, String> {
    let v = v.trim().trim_start_matches('v');
    let v = match v.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => v,
    };
    let core: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts: Vec<u64> = core
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    if parts.is_empty() {
        return Err(format!("`{v}` is not a version"));
    }
    parts.resize(3, 0);
    let mut out = semver::Version::new(parts[0], parts[1], parts[2]);
    let rest = &v[core.len()..];
    if let Some(pre) = rest.strip_prefix('-') {
        // A semver pre-release (`1.2.3-rc.1`), but not a Debian revision
        // (`1.2.3-1ubuntu1`, which starts with a digit).
        if !pre.starts_with(|c: char| c.is_ascii_digit()) {
            if let Ok(p) = semver::Prerelease::new(pre) {
                out.pre = p;
            }
        }
    }
    Ok(out)
}

/// True when `version` satisfies `constraint` (Masterminds/semver syntax as
/// goss and sprig use it: `>= 1.2, < 2`, `~1.2`, `^1`, `1.2.x`, `!=1.3`,
/// `||`).
pub fn semver_satisfies(constraint: &str, version: &str) -> Result<bool, String> {
    let v = lenient_version(version)?;
    let comp_re = regex_comparator();
    let mut any = false;
    for alt in constraint.split("||") {
        let mut all = true;
        let mut n = 0;
        for cap in comp_re.captures_iter(alt) {
            n += 1;
            let op = cap.get(1).map_or("", |m| m.as_str());
            let ver = cap.get(2).map_or("", |m| m.as_str());
            let (neg, op) = if op == "!=" { (true, "=") } else { (false, op) };
            let op = match op {
                "" | "==" => "=",
                "~>" => "~",
                o => o,
            };
            let text = format!("{op}{ver}");
            let c = semver::Comparator::parse(&text)
                .map_err(|e| format!("bad semver constraint `{constraint}`: {e}"))?;
            let mut ok = c.matches(&v);
            if !ok && !v.pre.is_empty() {
                let mut plain = v.clone();
                plain.pre = semver::Prerelease::EMPTY;
                ok = c.matches(&plain) && op != "=";
            }
            if ok == neg {
                all = false;
            }
        }
        let rest_ok = comp_re
            .replace_all(alt, "")
            .trim_matches(|c: char| c == ',' || c.is_whitespace())
            .is_empty();
        if n == 0 || !rest_ok {
            return Err(format!("bad semver constraint `{constraint}`"));
        }
        any |= all;
    }
    Ok(any)
}

fn regex_comparator() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"(>=|<=|!=|==|=|>|<|~>|~|\^)?\s*v?((?:[0-9]+|[xX*])(?:\.(?:[0-9]+|[xX*])){0,2}(?:-[0-9A-Za-z.-]+)?)",
        )
        .unwrap_or_else(|_| unreachable!("static regex"))
    })
}

pub mod xml;

#[cfg(test)]
mod tests;
