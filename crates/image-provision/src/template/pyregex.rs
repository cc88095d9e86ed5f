//! Regular expressions as Python's `re` reads them, for ansible's
//! `regex_search`, `regex_findall`, `regex_replace`, `regex_escape` filters
//! and `match`/`search`/`regex` tests: fancy-regex (lookaround and
//! backreferences on top of the regex crate) with Python's differences
//! translated — `$` also matches before a final newline, `\Z` is the end of
//! the text, `(?P=name)` is a backreference, and `\1`/`\g<name>` in
//! replacements.

use fancy_regex::Regex;
use minijinja::value::{Kwargs, Rest};
use minijinja::{Environment, Error, Value};

use super::err;

/// A Python pattern in the syntax fancy-regex reads.
pub(crate) fn translate(pattern: &str, multiline: bool) -> String {
    let multiline = multiline || inline_flags(pattern).contains('m');
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') if !in_class => out.push_str(r"\z"),
                Some(d) => {
                    out.push('\\');
                    out.push(d);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // `[]` and `[^]` open with a literal `]` in Python.
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str(r"\]");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && !multiline => out.push_str(r"(?:\z|(?=\n\z))"),
            c => out.push(c),
        }
    }
    out
}

/// The flags of a leading `(?imsx)` group.
fn inline_flags(pattern: &str) -> &str {
    pattern
        .strip_prefix("(?")
        .and_then(|r| {
            let end = r.find(')')?;
            let f = &r[..end];
            f.chars().all(|c| c.is_ascii_alphabetic()).then_some(f)
        })
        .unwrap_or("")
}

/// Compiles a Python pattern with `re.I` / `re.M` as asked.
pub(crate) fn compile(pattern: &str, ignorecase: bool, multiline: bool) -> Result<Regex, String> {
    let mut p = String::new();
    if ignorecase || multiline {
        p.push_str("(?");
        if ignorecase {
            p.push('i');
        }
        if multiline {
            p.push('m');
        }
        p.push(')');
    }
    p.push_str(&translate(pattern, multiline));
    Regex::new(&p).map_err(|e| format!("bad regular expression `{pattern}`: {e}"))
}

fn compile_kw(pattern: &str, kw: &Kwargs) -> Result<Regex, Error> {
    let ic: Option<bool> = kw.get("ignorecase")?;
    let ml: Option<bool> = kw.get("multiline")?;
    compile(pattern, ic.unwrap_or(false), ml.unwrap_or(false)).map_err(err)
}

fn re_err(e: fancy_regex::Error) -> Error {
    err(format!("regular expression: {e}"))
}

/// Python's `re.sub` replacement syntax (`\1`, `\g<name>`, `\n`, `\\`) to
/// the regex crate's, as ansible's `regex_replace`, `replace` and
/// `lineinfile` backrefs use it.
pub fn py_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    let mut n = d.to_string();
                    if let Some(e) = chars.peek().copied().filter(char::is_ascii_digit) {
                        chars.next();
                        n.push(e);
                    }
                    out.push_str(&format!("${{{n}}}"));
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
                Some('t') => {
                    chars.next();
                    out.push('\t');
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

/// The group a `regex_search` argument names: `\1`, `\g<name>`, `\g<1>`.
fn group_ref(g: &str) -> Result<&str, Error> {
    if let Some(n) = g.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>')) {
        return Ok(n);
    }
    if let Some(n) = g
        .strip_prefix('\\')
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        return Ok(n);
    }
    Err(err(format!(
        "unknown argument `{g}` (a group: \\1 or \\g<name>)"
    )))
}

fn regex_search(s: &str, pat: &str, groups: Rest<String>, kw: Kwargs) -> Result<Value, Error> {
    let re = compile_kw(pat, &kw)?;
    kw.assert_all_used()?;
    let Some(c) = re.captures(s).map_err(re_err)? else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(c.get(0).map(|m| m.as_str()).unwrap_or("")));
    }
    let mut out = Vec::new();
    for g in groups.iter() {
        let g = group_ref(g)?;
        let m = match g.parse::<usize>() {
            Ok(i) => c.get(i),
            Err(_) => c.name(g),
        };
        out.push(
            m.map(|m| Value::from(m.as_str()))
                .unwrap_or(Value::from(())),
        );
    }
    Ok(Value::from(out))
}

fn regex_findall(s: &str, pat: &str, kw: Kwargs) -> Result<Value, Error> {
    let re = compile_kw(pat, &kw)?;
    kw.assert_all_used()?;
    let groups = re.captures_len() - 1;
    let mut out = Vec::new();
    for c in re.captures_iter(s) {
        let c = c.map_err(re_err)?;
        let g = |i: usize| Value::from(c.get(i).map(|m| m.as_str()).unwrap_or(""));
        out.push(match groups {
            0 => g(0),
            1 => g(1),
            n => Value::from((1..=n).map(g).collect::<Vec<_>>()),
        });
    }
    Ok(Value::from(out))
}

fn regex_replace(s: &str, pat: &str, rep: Option<String>, kw: Kwargs) -> Result<String, Error> {
    let re = compile_kw(pat, &kw)?;
    let count: Option<usize> = kw.get("count")?;
    let mandatory: Option<usize> = kw.get("mandatory_count")?;
    kw.assert_all_used()?;
    if let Some(m) = mandatory.filter(|m| *m > 0) {
        let n = re.find_iter(s).count();
        if n != m {
            return Err(err(format!(
                "regex_replace: {n} matches of `{pat}`, {m} expected (mandatory_count)"
            )));
        }
    }
    let rep = py_replacement(rep.as_deref().unwrap_or(""));
    re.try_replacen(s, count.unwrap_or(0), rep.as_str())
        .map(|c| c.into_owned())
        .map_err(re_err)
}

/// `re.search` (or `re.match`, anchored at the start, or `re.fullmatch`).
fn test(s: &str, pat: &str, kw: &Kwargs, how: &str) -> Result<bool, Error> {
    let p = match how {
        "match" => format!(r"\A(?:{pat})"),
        "fullmatch" => format!(r"\A(?:{pat})\z"),
        _ => pat.to_string(),
    };
    let re = compile_kw(&p, kw)?;
    re.is_match(s).map_err(re_err)
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter(
        "regex_search",
        |s: String, pat: String, g: Rest<String>, kw: Kwargs| regex_search(&s, &pat, g, kw),
    );
    env.add_filter("regex_findall", |s: String, pat: String, kw: Kwargs| {
        regex_findall(&s, &pat, kw)
    });
    env.add_filter(
        "regex_replace",
        |s: String, pat: String, rep: Option<String>, kw: Kwargs| regex_replace(&s, &pat, rep, kw),
    );
    env.add_filter(
        "regex_escape",
        |s: String, kw: Kwargs| -> Result<String, Error> {
            let t: Option<String> = kw.get("re_type")?;
            kw.assert_all_used()?;
            if t.as_deref().is_some_and(|t| t != "python") {
                return Err(err("regex_escape: only re_type=python is supported"));
            }
            // Python's re.escape: every character but [A-Za-z0-9_] and
            // non-ASCII is escaped.
            let mut out = String::new();
            for c in s.chars() {
                if !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        },
    );
    env.add_test("search", |s: String, pat: String, kw: Kwargs| {
        let r = test(&s, &pat, &kw, "search");
        kw.assert_all_used()?;
        r
    });
    env.add_test("match", |s: String, pat: String, kw: Kwargs| {
        let r = test(&s, &pat, &kw, "match");
        kw.assert_all_used()?;
        r
    });
    env.add_test("regex", |s: String, pat: String, kw: Kwargs| {
        let how: Option<String> = kw.get("match_type")?;
        let r = test(&s, &pat, &kw, how.as_deref().unwrap_or("search"));
        kw.assert_all_used()?;
        r
    });
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn python_replacements_become_regex_crate_ones() {
        assert_eq!(py_replacement(r"\1-\g<name>"), "${1}-${name}");
        assert_eq!(py_replacement(r"a\nb"), "a\nb");
        assert_eq!(py_replacement(r"c:\\x $5"), r"c:\x $$5");
    }

    #[test]
    fn python_dollar_and_inline_flags() {
        let re = compile("c$", false, false).unwrap();
        assert!(re.is_match("abc\n").unwrap());
        assert!(!re.is_match("abc\nd").unwrap());
        let re = compile("(?i)^B$", false, true).unwrap();
        assert!(re.is_match("a\nb\nc").unwrap());
        let re = compile(r"(?P<x>a)(?P=x)\Z", false, false).unwrap();
        assert!(re.is_match("baa").unwrap());
        assert!(!re.is_match("baa\n").unwrap());
        assert!(compile("[]a]", false, false)
            .unwrap()
            .is_match("]")
            .unwrap());
    }
}
