//! The lookups that read a value out of a table on the controller:
//! `ini` (an INI or Java properties file, as Python's configparser reads
//! it: keys case-insensitive, `=` or `:`), `csvfile` (a row by its key
//! column, Python's csv quoting) and `varnames` (variable names matching
//! regular expressions). Options come in the term (`key section=s
//! file=f`) or as keywords, as ansible-core accepts both.

use std::collections::BTreeMap;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, State, Value};

use super::err;
use super::lookups::{read, term_str};

/// Splits `key opt=value ...` into the key and the options; an option
/// name that the lookup does not know is an error (as ansible's).
fn parse_term(
    kind: &str,
    term: &str,
    known: &[&str],
    kw: &Kwargs,
) -> Result<(String, BTreeMap<String, String>), Error> {
    let mut key: Vec<&str> = Vec::new();
    let mut opts = BTreeMap::new();
    for tok in term.split_whitespace() {
        match tok.split_once('=') {
            Some((k, v)) if known.contains(&k) => {
                opts.insert(k.to_string(), v.to_string());
            }
            Some((k, _)) if !key.is_empty() || kind == "ini" => {
                return Err(err(format!(
                    "The lookup plugin '{kind}' failed: '{k}' is not a valid option."
                )))
            }
            _ => key.push(tok),
        }
    }
    for k in known {
        if let Some(v) = kw.get::<Option<Value>>(k)? {
            if !v.is_none() {
                opts.entry(k.to_string()).or_insert_with(|| term_str(&v));
            }
        }
    }
    Ok((key.join(" "), opts))
}

/// Python's configparser, enough for ansible's `ini` lookup: sections of
/// `key = value` / `key: value`, comments, indented continuation lines.
fn parse_ini(text: &str, case_sensitive: bool) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.get_mut(&section).and_then(|s| s.last_mut()) {
                last.1.push('\n');
                last.1.push_str(trimmed);
                continue;
            }
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let cut = trimmed.find(['=', ':']);
        let (k, v) = match cut {
            Some(i) => (trimmed[..i].trim(), trimmed[i + 1..].trim()),
            None => (trimmed, ""),
        };
        let k = if case_sensitive {
            k.to_string()
        } else {
            k.to_lowercase()
        };
        out.entry(section.clone())
            .or_default()
            .push((k, v.to_string()));
    }
    out
}

pub(super) fn ini(state: &State, term: &str, kw: &Kwargs) -> Result<Vec<Value>, Error> {
    const KNOWN: &[&str] = &[
        "file",
        "section",
        "default",
        "re",
        "encoding",
        "type",
        "case_sensitive",
        "allow_no_value",
        "allow_none",
    ];
    let (key, o) = parse_term("ini", term, KNOWN, kw)?;
    let is_props = o.get("type").is_some_and(|t| t == "properties");
    let file = o.get("file").cloned().unwrap_or_else(|| {
        if is_props {
            "ansible.properties"
        } else {
            "ansible.ini"
        }
        .into()
    });
    let case_sensitive = o
        .get("case_sensitive")
        .is_some_and(|v| super::filters::to_bool(&Value::from(v.as_str())));
    let mut text = read(state, &file, "files", "ini")?;
    let section = if is_props {
        text = format!("[java_properties]\n{text}");
        "java_properties".to_string()
    } else {
        o.get("section").cloned().unwrap_or_else(|| "global".into())
    };
    let default = o.get("default").cloned().unwrap_or_default();
    let table = parse_ini(&text, case_sensitive);
    let entries = table.get(&section);
    let use_re = o
        .get("re")
        .is_some_and(|v| super::filters::to_bool(&Value::from(v.as_str())));
    if use_re {
        let re = super::pyregex::compile(&key, false, false).map_err(err)?;
        let mut out = Vec::new();
        for (k, v) in entries.into_iter().flatten() {
            if re.is_match(k).unwrap_or(false) {
                out.push(Value::from(v.as_str()));
            }
        }
        return Ok(out);
    }
    let key = if case_sensitive {
        key
    } else {
        key.to_lowercase()
    };
    let found = entries.and_then(|e| e.iter().rev().find(|(k, _)| *k == key));
    Ok(vec![Value::from(
        found.map(|f| f.1.clone()).unwrap_or(default),
    )])
}

/// One CSV record per line, as Python's csv reader splits it (quotes,
/// doubled quotes inside them).
fn csv_rows(text: &str, delim: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut row = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' if quoted => quoted = false,
                '"' if cur.is_empty() => quoted = true,
                c if c == delim && !quoted => row.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        row.push(cur);
        rows.push(row);
    }
    rows
}

pub(super) fn csvfile(state: &State, term: &str, kw: &Kwargs) -> Result<Vec<Value>, Error> {
    const KNOWN: &[&str] = &["file", "col", "default", "delimiter", "encoding", "keycol"];
    let (key, o) = parse_term("csvfile", term, KNOWN, kw)?;
    let file = o
        .get("file")
        .cloned()
        .unwrap_or_else(|| "ansible.csv".into());
    let delim = match o.get("delimiter").map(String::as_str) {
        None | Some("TAB") | Some("\\t") => '\t',
        Some(d) => d.chars().next().unwrap_or('\t'),
    };
    let num = |k: &str, d: usize| -> Result<usize, Error> {
        match o.get(k) {
            Some(v) => v
                .parse()
                .map_err(|_| err(format!("csvfile: `{k}` must be a number, not {v}"))),
            None => Ok(d),
        }
    };
    let (col, keycol) = (num("col", 1)?, num("keycol", 0)?);
    let text = read(state, &file, "files", "csvfile")?;
    for row in csv_rows(&text, delim) {
        if row.get(keycol) == Some(&key) {
            return match row.get(col) {
                Some(v) => Ok(vec![Value::from(v.as_str())]),
                None => Err(err(format!(
                    "csvfile: no column {col} in the row of `{key}`"
                ))),
            };
        }
    }
    Ok(o.get("default")
        .map(|d| vec![Value::from(d.as_str())])
        .unwrap_or_default())
}

pub(super) fn varnames(state: &State, term: &str) -> Result<Vec<Value>, Error> {
    let re = super::pyregex::compile(term, false, false).map_err(err)?;
    let vars = state.lookup("vars").unwrap_or_default();
    let mut out = Vec::new();
    if vars.kind() == ValueKind::Map {
        for k in vars.try_iter()? {
            if let Some(name) = k.as_str() {
                if !name.starts_with("__") && re.is_match(name).unwrap_or(false) {
                    out.push(k.clone());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ini_and_csv_parsing() {
        let t = parse_ini("[main]\nUser = alice\n  more\nport: 22\n; c\n", false);
        assert_eq!(
            t["main"][0],
            ("user".to_string(), "alice\nmore".to_string())
        );
        assert_eq!(t["main"][1].1, "22");
        let rows = csv_rows("a,\"b,c\",\"say \"\"hi\"\"\"\n", ',');
        assert_eq!(rows[0], ["a", "b,c", "say \"hi\""]);
    }
}
