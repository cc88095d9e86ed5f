//! Python semantics that minijinja leaves to the embedder: methods on
//! strings, dicts and lists (`'a b'.split()`, `d.get('k', x)`,
//! `l.index(x)`), taken from minijinja-contrib's `pycompat` with the ones it
//! lacks added here, and Python's `str()` of a value when it is printed into
//! text (`True`, `None`, `['a', 1]`, `{'k': 'v'}`), as Jinja2 prints them.

use std::cell::RefCell;

use minijinja::value::{from_args, ValueKind};
use minijinja::{Error, ErrorKind, Output, State, Value};

use super::err;

thread_local! {
    /// Per render in progress (innermost last): the first value printed
    /// and how many were printed.
    static PRINTED: RefCell<Vec<(Option<Value>, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Runs a render and returns, with its result, the first value it printed
/// and how many it printed (for Jinja's native types: a template whose
/// output is one value keeps the value's type).
pub(super) fn capture<T>(f: impl FnOnce() -> T) -> (T, Option<Value>, usize) {
    PRINTED.with(|p| p.borrow_mut().push((None, 0)));
    let out = f();
    let (first, n) = PRINTED.with(|p| p.borrow_mut().pop()).unwrap_or((None, 0));
    (out, first, n)
}

/// The formatter: Python's `str()`, none prints nothing (as ansible's
/// templar), printing an undefined value fails.
pub(super) fn format_value(out: &mut Output, _state: &State, v: &Value) -> Result<(), Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "an undefined value was printed",
        ));
    }
    // The output nodes of a template (none is no node, as in ansible).
    PRINTED.with(|p| {
        if let Some(top) = p.borrow_mut().last_mut() {
            if v.is_none() {
                return;
            }
            if top.1 == 0 {
                top.0 = Some(v.clone());
            }
            top.1 += 1;
        }
    });
    if v.is_none() || v.as_str() == Some(super::OMIT) {
        return Ok(());
    }
    if matches!(
        v.kind(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
    ) {
        // Every item must render (a lazy dict's broken item fails here).
        super::to_json(v)?;
    }
    write!(out, "{}", py_str(v)).map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Python's `str()` of a value.
pub(crate) fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => py_repr(v),
    }
}

/// Python's `repr()` of a value.
pub(crate) fn py_repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::String => repr_str(v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| it.map(|x| py_repr(&x)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| {
                    it.map(|k| {
                        let val = v.get_item(&k).unwrap_or_default();
                        format!("{}: {}", py_repr(&k), py_repr(&val))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

fn repr_str(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// The unknown-method callback: our methods, then minijinja-contrib's.
pub(super) fn call_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let ours = match value.kind() {
        ValueKind::String => str_method(value.as_str().unwrap_or_default(), method, args),
        ValueKind::Map => map_method(value, method, args),
        ValueKind::Seq | ValueKind::Iterable => seq_method(value, method, args),
        _ => None,
    };
    match ours {
        Some(r) => r,
        None => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
            .map_err(|e| {
                if e.kind() == ErrorKind::UnknownMethod {
                    Error::new(
                        ErrorKind::UnknownMethod,
                        format!("{} has no method named {method}", value.kind()),
                    )
                } else {
                    e
                }
            }),
    }
}

fn not_found(what: &str) -> Error {
    err(format!("ValueError: {what} not found"))
}

/// Python's `str.split`/`rsplit` with an optional separator and maxsplit.
fn py_split(s: &str, sep: Option<&str>, max: i64, from_right: bool) -> Result<Vec<String>, Error> {
    let max = if max < 0 { usize::MAX } else { max as usize };
    match sep {
        Some("") => Err(err("ValueError: empty separator")),
        Some(sep) => Ok(if from_right {
            let mut v: Vec<String> = s
                .rsplitn(max.saturating_add(1), sep)
                .map(String::from)
                .collect();
            v.reverse();
            v
        } else {
            s.splitn(max.saturating_add(1), sep)
                .map(String::from)
                .collect()
        }),
        None => {
            let words: Vec<&str> = s.split_whitespace().collect();
            if words.len() <= max.saturating_add(1) || max == usize::MAX {
                return Ok(words.into_iter().map(String::from).collect());
            }
            // Split `max` times, the rest keeps its inner whitespace.
            let mut out = Vec::new();
            if from_right {
                let mut rest = s.trim_end();
                for _ in 0..max {
                    let i = rest.rfind(char::is_whitespace).unwrap_or(0);
                    out.push(rest[i..].trim_start().to_string());
                    rest = rest[..i].trim_end();
                }
                out.push(rest.trim_start().to_string());
                out.reverse();
            } else {
                let mut rest = s.trim_start();
                for _ in 0..max {
                    let i = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    out.push(rest[..i].to_string());
                    rest = rest[i..].trim_start();
                }
                out.push(rest.to_string());
            }
            Ok(out)
        }
    }
}

fn str_method(s: &str, method: &str, args: &[Value]) -> Option<Result<Value, Error>> {
    let r = match method {
        "split" | "rsplit" => (|| {
            let (sep, max): (Option<Value>, Option<i64>) = from_args(args)?;
            let sep = sep.filter(|v| !v.is_none());
            let sep = sep.as_ref().and_then(|v| v.as_str());
            Ok(Value::from(py_split(
                s,
                sep,
                max.unwrap_or(-1),
                method == "rsplit",
            )?))
        })(),
        "index" | "rindex" => (|| {
            let (what,): (&str,) = from_args(args)?;
            let i = if method == "index" {
                s.find(what)
            } else {
                s.rfind(what)
            };
            let i = i.ok_or_else(|| not_found("substring"))?;
            Ok(Value::from(s[..i].chars().count()))
        })(),
        "zfill" => (|| {
            let (width,): (usize,) = from_args(args)?;
            image_core::spec::bounded::check_width("zfill: width", width)?;
            let n = s.chars().count();
            if n >= width {
                return Ok(Value::from(s));
            }
            let (sign, digits) = match s.chars().next() {
                Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                _ => (String::new(), s),
            };
            Ok(Value::from(format!(
                "{sign}{}{digits}",
                "0".repeat(width - n)
            )))
        })(),
        "ljust" | "rjust" | "center" => (|| {
            let (width, fill): (usize, Option<&str>) = from_args(args)?;
            image_core::spec::bounded::check_width(&format!("{method}: width"), width)?;
            let fill = fill.and_then(|f| f.chars().next()).unwrap_or(' ');
            let n = s.chars().count();
            if n >= width {
                return Ok(Value::from(s));
            }
            let pad = width - n;
            let (left, right) = match method {
                "ljust" => (0, pad),
                "rjust" => (pad, 0),
                // Python centers with the extra space on the right when
                // the pad is odd and the width even... as `str.center`.
                _ => {
                    let left = pad / 2 + (pad & width & 1);
                    (left, pad - left)
                }
            };
            let f = |k: usize| fill.to_string().repeat(k);
            Ok(Value::from(format!("{}{s}{}", f(left), f(right))))
        })(),
        "partition" | "rpartition" => (|| {
            let (sep,): (&str,) = from_args(args)?;
            let found = if method == "partition" {
                s.find(sep)
            } else {
                s.rfind(sep)
            };
            Ok(Value::from(match found {
                Some(i) => vec![
                    s[..i].to_string(),
                    sep.to_string(),
                    s[i + sep.len()..].to_string(),
                ],
                None if method == "partition" => vec![s.to_string(), String::new(), String::new()],
                None => vec![String::new(), String::new(), s.to_string()],
            }))
        })(),
        "removeprefix" => (|| {
            let (p,): (&str,) = from_args(args)?;
            Ok(Value::from(s.strip_prefix(p).unwrap_or(s)))
        })(),
        "removesuffix" => (|| {
            let (p,): (&str,) = from_args(args)?;
            Ok(Value::from(s.strip_suffix(p).unwrap_or(s)))
        })(),
        "casefold" => from_args::<()>(args).map(|_| Value::from(s.to_lowercase())),
        "swapcase" => from_args::<()>(args).map(|_| {
            Value::from(
                s.chars()
                    .flat_map(|c| {
                        if c.is_uppercase() {
                            c.to_lowercase().collect::<Vec<_>>()
                        } else {
                            c.to_uppercase().collect::<Vec<_>>()
                        }
                    })
                    .collect::<String>(),
            )
        }),
        "encode" | "decode" => Ok(Value::from(s)),
        "istitle" => Ok(Value::from(
            !s.is_empty() && minijinja::filters::title(s.into()) == s,
        )),
        _ => return None,
    };
    Some(r)
}

fn map_method(value: &Value, method: &str, args: &[Value]) -> Option<Result<Value, Error>> {
    let keys = || -> Result<Vec<Value>, Error> { Ok(value.try_iter()?.collect()) };
    let r = match method {
        "keys" => from_args::<()>(args).and_then(|_| Ok(Value::from(keys()?))),
        "values" => from_args::<()>(args).and_then(|_| {
            Ok(Value::from(
                keys()?
                    .iter()
                    .map(|k| value.get_item(k).unwrap_or_default())
                    .collect::<Vec<_>>(),
            ))
        }),
        "items" => from_args::<()>(args).and_then(|_| {
            Ok(Value::from(
                keys()?
                    .into_iter()
                    .map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        Value::from(vec![k, v])
                    })
                    .collect::<Vec<_>>(),
            ))
        }),
        "get" => (|| {
            let (key, default): (Value, Option<Value>) = from_args(args)?;
            let v = value.get_item(&key).unwrap_or_default();
            Ok(if v.is_undefined() {
                default.unwrap_or(Value::from(()))
            } else {
                v
            })
        })(),
        "copy" => from_args::<()>(args).and_then(|_| {
            let m: Vec<(Value, Value)> = keys()?
                .into_iter()
                .map(|k| {
                    let v = value.get_item(&k).unwrap_or_default();
                    (k, v)
                })
                .collect();
            Ok(Value::from_iter(m))
        }),
        _ => return None,
    };
    Some(r)
}

fn seq_method(value: &Value, method: &str, args: &[Value]) -> Option<Result<Value, Error>> {
    let r = match method {
        "index" => (|| {
            let (what,): (Value,) = from_args(args)?;
            let i = value
                .try_iter()?
                .position(|x| x == what)
                .ok_or_else(|| not_found("item"))?;
            Ok(Value::from(i))
        })(),
        "count" => (|| {
            let (what,): (Value,) = from_args(args)?;
            Ok(Value::from(
                value.try_iter()?.filter(|x| *x == what).count(),
            ))
        })(),
        "copy" => from_args::<()>(args)
            .and_then(|_| Ok(Value::from(value.try_iter()?.collect::<Vec<_>>()))),
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn python_split_forms() {
        assert_eq!(
            py_split(" a  b c ", None, -1, false).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(py_split("a b  c", None, 1, false).unwrap(), ["a", "b  c"]);
        assert_eq!(py_split("a b c", Some(" "), 1, true).unwrap(), ["a b", "c"]);
        assert_eq!(
            py_split(" a b ", Some(" "), -1, false).unwrap(),
            ["", "a", "b", ""]
        );
        assert!(py_split("a", Some(""), -1, false).is_err());
    }

    #[test]
    fn python_repr_of_values() {
        let v = Value::from_serialize(serde_json::json!({"a": [1, "x", null, true], "b": "it's"}));
        assert_eq!(py_str(&v), r#"{'a': [1, 'x', None, True], 'b': "it's"}"#);
    }
}
