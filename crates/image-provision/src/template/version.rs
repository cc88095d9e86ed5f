//! Version comparison as ansible's `version` test (and its old name
//! `version_compare`) does it: `loose` (Python's LooseVersion: numbers and
//! letter runs compared piecewise, a shorter prefix is older, a number
//! against text is an error), `strict` (StrictVersion: `N.N[.N][(a|b)N]`)
//! and `semver`/`semantic` (semver 2.0 with pre-releases).

use std::cmp::Ordering;
use std::sync::OnceLock;

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, Value};

use super::err;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Num(u64),
    Text(String),
}

/// LooseVersion's components.
fn loose(s: &str) -> Vec<Part> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\d+|[a-z]+|\.").expect("static pattern"));
    let mut out = Vec::new();
    let mut last = 0;
    let mut push = |x: &str| {
        if x.is_empty() || x == "." {
            return;
        }
        out.push(match x.parse::<u64>() {
            Ok(n) if x.bytes().all(|b| b.is_ascii_digit()) => Part::Num(n),
            _ => Part::Text(x.to_string()),
        });
    };
    for m in re.find_iter(s) {
        push(&s[last..m.start()]);
        push(m.as_str());
        last = m.end();
    }
    push(&s[last..]);
    out
}

fn cmp_loose(a: &str, b: &str) -> Result<Ordering, Error> {
    let (pa, pb) = (loose(a), loose(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x, y) {
            (Part::Num(x), Part::Num(y)) => x.cmp(y),
            (Part::Text(x), Part::Text(y)) => x.cmp(y),
            _ => {
                return Err(err(format!(
                    "Version comparison failed: '<' not supported between a number and text ({a} vs {b})"
                )))
            }
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(pa.len().cmp(&pb.len()))
}

/// StrictVersion's (major, minor, patch, pre-release).
/// A StrictVersion: (major, minor, patch, pre-release).
type Strict = (u64, u64, u64, Option<(char, u64)>);

fn strict(s: &str) -> Result<Strict, Error> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:([ab])(\d+))?$").expect("static pattern")
    });
    let c = re.captures(s).ok_or_else(|| {
        err(format!(
            "Version comparison failed: invalid version number '{s}'"
        ))
    })?;
    let n = |i: usize| c.get(i).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
    let pre = c
        .get(4)
        .map(|m| (m.as_str().chars().next().unwrap_or('a'), n(5)));
    Ok((n(1), n(2), n(3), pre))
}

fn cmp_strict(a: &str, b: &str) -> Result<Ordering, Error> {
    let (x, y) = (strict(a)?, strict(b)?);
    let o = (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2));
    if o != Ordering::Equal {
        return Ok(o);
    }
    Ok(match (x.3, y.3) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(p), Some(q)) => p.cmp(&q),
    })
}

fn cmp_semver(a: &str, b: &str) -> Result<Ordering, Error> {
    let p = |s: &str| {
        semver::Version::parse(s).map_err(|e| {
            err(format!(
                "Version comparison failed: invalid semantic version '{s}': {e}"
            ))
        })
    };
    Ok(p(a)?.cmp_precedence(&p(b)?))
}

/// Compares two versions with an operator (`>=`, `lt`, ...) of the given
/// kind (`loose`, `strict`, `semver`).
pub fn compare(a: &str, b: &str, op: &str, kind: &str) -> Result<bool, Error> {
    let ord = match kind {
        "loose" => cmp_loose(a, b)?,
        "strict" => cmp_strict(a, b)?,
        "semver" | "semantic" => cmp_semver(a, b)?,
        o => {
            return Err(err(format!(
                "version: version_type `{o}` is not supported (loose, strict, semver, semantic)"
            )))
        }
    };
    use Ordering::*;
    Ok(match op {
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        "==" | "=" | "eq" => ord == Equal,
        "!=" | "<>" | "ne" => ord != Equal,
        other => return Err(err(format!("version: invalid operator `{other}`"))),
    })
}

/// Compares versions the way ansible's `version` test does by default
/// (loose).
pub fn version_test(a: &str, b: &str, op: &str) -> Result<bool, Error> {
    compare(a, b, op, "loose")
}

fn test(a: Value, b: Value, op: Option<String>, kw: Kwargs) -> Result<bool, Error> {
    let strict: Option<bool> = kw.get("strict")?;
    let kind: Option<String> = kw.get("version_type")?;
    let op = match op {
        Some(o) => Some(o),
        None => kw.get("operator")?,
    };
    kw.assert_all_used()?;
    if strict.unwrap_or(false) && kind.is_some() {
        return Err(err("version: strict and version_type are exclusive"));
    }
    let kind = match (strict, kind) {
        (Some(true), _) => "strict".to_string(),
        (_, Some(k)) => k,
        _ => "loose".to_string(),
    };
    if a.is_undefined() || b.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "version: a version is undefined",
        ));
    }
    compare(
        &a.to_string(),
        &b.to_string(),
        op.as_deref().unwrap_or("eq"),
        &kind,
    )
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_test("version", test);
    env.add_test("version_compare", test);
    env.add_filter("version_compare", test);
    env.add_filter("version", test);
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn loose_strict_and_semver() {
        assert!(version_test("1.2.10", "1.2.9", ">").unwrap());
        assert!(!version_test("1.2", "1.2.0", "==").unwrap());
        assert!(version_test("v1.30.1", "v1.29.0", ">=").unwrap());
        assert!(version_test("1.2.3-1", "1.2.3", ">").unwrap());
        assert!(version_test("1.2a", "1.2.0", "<").is_err());
        assert!(compare("1.2", "1.2.0", "==", "strict").unwrap());
        assert!(compare("1.2b1", "1.2", "<", "strict").unwrap());
        assert!(compare("1.2.3a", "1.2.3", ">", "strict").is_err());
        assert!(compare("1.2.3-rc1", "1.2.3", "lt", "semver").unwrap());
    }
}
