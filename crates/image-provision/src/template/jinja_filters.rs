//! Jinja2's built-in filters where minijinja's differ from them as
//! ansible-core runs them: an undefined input fails (minijinja lets it
//! chain through as empty), text is Python's `str()` (`string`, `join`),
//! and Jinja2's own signatures and defaults (`int`, `float`, `round`,
//! `truncate`, `center`, `wordcount`). The list filters keep minijinja's
//! implementation behind the undefined check.

use std::borrow::Cow;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{filters as mj, Environment, Error, State, Value};

use super::filters::{as_float, type_name, F64};
use super::pycompat::py_str;
use super::{defined, err, list_of};

/// Jinja2's `int(default=0, base=10)`: `'12.7'` is 12, junk is the default.
fn int(v: &Value, default: Option<Value>, kw: &Kwargs) -> Result<Value, Error> {
    defined(v, "int")?;
    let default = match default {
        Some(d) => Some(d),
        None => kw.get("default")?,
    }
    .unwrap_or(Value::from(0));
    let base: Option<u32> = kw.get("base")?;
    kw.assert_all_used()?;
    let base = base.unwrap_or(10);
    Ok(match v.kind() {
        ValueKind::Number => match v.as_i64() {
            Some(i) => Value::from(i),
            None => v
                .as_f64_lossy()
                .map(|f| Value::from(f.trunc() as i64))
                .unwrap_or(default),
        },
        ValueKind::Bool => Value::from(i64::from(v.is_true())),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default().trim().replace('_', "");
            let lower = s.to_ascii_lowercase();
            let digits = match base {
                16 => lower.trim_start_matches("0x"),
                8 => lower.trim_start_matches("0o"),
                2 => lower.trim_start_matches("0b"),
                _ => lower.as_str(),
            };
            match i64::from_str_radix(digits, base) {
                Ok(i) => Value::from(i),
                Err(_) if base == 10 => s
                    .parse::<f64>()
                    .map(|f| Value::from(f.trunc() as i64))
                    .unwrap_or(default),
                Err(_) => default,
            }
        }
        _ => default,
    })
}

/// Jinja's `round(precision=0, method='common')`: Python's `round()`
/// (ties to even, an int stays an int) or `ceil`/`floor` (a float).
fn round(v: Value, precision: Option<i32>, method: Option<String>) -> Result<Value, Error> {
    defined(&v, "round")?;
    let p = precision.unwrap_or(0);
    let x = as_float(&v).ok_or_else(|| err(format!("round: {v} is not a number")))?;
    let scale = 10f64.powi(p);
    Ok(match method.as_deref().unwrap_or("common") {
        "common" if v.kind() == ValueKind::Number && v.as_i64().is_some() && p >= 0 => v,
        // Python rounds the exact binary value: 2.675 is 2.67499... so
        // round(2.675, 2) is 2.67, as a correctly rounded decimal text.
        "common" if p >= 0 => Value::from(
            format!("{x:.*}", p as usize)
                .parse::<f64>()
                .unwrap_or((x * scale).round_ties_even() / scale),
        ),
        "common" => Value::from((x * scale).round_ties_even() / scale),
        "ceil" => Value::from((x * scale).ceil() / scale),
        "floor" => Value::from((x * scale).floor() / scale),
        o => {
            return Err(err(format!(
                "round: method must be common, ceil or floor, not {o}"
            )))
        }
    })
}

/// Jinja's `truncate(length=255, killwords=False, end='...', leeway=5)`.
fn truncate(s: String, args: Rest<Value>, kw: Kwargs) -> Result<String, Error> {
    // Jinja's `truncate(length=255, killwords=False, end='...', leeway=None)`,
    // by position or by name.
    if args.len() > 4 {
        return Err(err("truncate: too many arguments"));
    }
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        match args.get(i).filter(|v| !v.is_none()) {
            Some(v) => Ok(Some(v.clone())),
            None => kw.get::<Option<Value>>(name),
        }
    };
    let count = |v: Value, name: &str| -> Result<usize, Error> {
        usize::try_from(v.clone()).map_err(|_| {
            err(format!(
                "truncate: `{name}` must be a non-negative integer, got {v}"
            ))
        })
    };
    let length = match arg(0, "length")? {
        Some(v) => count(v, "length")?,
        None => 255,
    };
    let killwords = arg(1, "killwords")?.is_some_and(|v| v.is_true());
    let end = match arg(2, "end")? {
        Some(v) => py_str(&v),
        None => "...".into(),
    };
    let leeway = match arg(3, "leeway")? {
        Some(v) => Some(count(v, "leeway")?),
        None => None,
    };
    kw.assert_all_used()?;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= length + leeway.unwrap_or(5) {
        return Ok(s);
    }
    let keep: String = chars[..length.saturating_sub(end.chars().count())]
        .iter()
        .collect();
    if killwords {
        return Ok(keep + &end);
    }
    let head = match keep.rsplit_once(' ') {
        Some((h, _)) => h.to_string(),
        None => keep,
    };
    Ok(head + &end)
}

/// Python can only order values of one family: numbers (and booleans),
/// strings, or lists; `sorted([3, 'a'])` is a TypeError.
fn orderable(v: &Value) -> Result<(), Error> {
    let family = |x: &Value| match x.kind() {
        ValueKind::Number | ValueKind::Bool => Some(0),
        ValueKind::String => Some(1),
        ValueKind::Seq => Some(2),
        _ => None,
    };
    let items = list_of(v)?;
    if items.len() < 2 {
        return Ok(());
    }
    let first = family(&items[0]);
    for x in &items {
        if first.is_none() || family(x) != first {
            return Err(err(format!(
                "'<' not supported between instances of '{}' and '{}'",
                type_name(x),
                type_name(&items[0])
            )));
        }
    }
    Ok(())
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("int", |v: Value, d: Option<Value>, kw: Kwargs| {
        int(&v, d, &kw)
    });
    env.add_filter(
        "float",
        |v: Value, d: Option<Value>| -> Result<Value, Error> {
            defined(&v, "float")?;
            Ok(as_float(&v)
                .map(Value::from)
                .unwrap_or_else(|| d.unwrap_or(Value::from(0.0))))
        },
    );
    env.add_filter("string", |v: Value| -> Result<String, Error> {
        defined(&v, "string")?;
        Ok(py_str(&v))
    });
    env.add_filter(
        "join",
        |v: Value, sep: Option<String>, kw: Kwargs| -> Result<String, Error> {
            defined(&v, "join")?;
            let attr: Option<String> = kw.get("attribute")?;
            kw.assert_all_used()?;
            let items = if v.kind() == ValueKind::String {
                v.as_str()
                    .unwrap_or_default()
                    .chars()
                    .map(Value::from)
                    .collect()
            } else {
                list_of(&v)?
            };
            Ok(items
                .iter()
                .map(|x| match &attr {
                    Some(a) => py_str(&x.get_attr(a).unwrap_or_default()),
                    None => py_str(x),
                })
                .collect::<Vec<_>>()
                .join(sep.as_deref().unwrap_or("")))
        },
    );
    env.add_filter("round", round);
    env.add_filter("truncate", truncate);
    env.add_filter(
        "center",
        |s: String, width: Option<usize>| -> Result<String, Error> {
            let width = width.unwrap_or(80);
            image_core::spec::bounded::check_width("center: width", width)?;
            let n = s.chars().count();
            if n >= width {
                return Ok(s);
            }
            let pad = width - n;
            let left = pad / 2 + (pad & width & 1);
            Ok(format!("{}{s}{}", " ".repeat(left), " ".repeat(pad - left)))
        },
    );
    env.add_filter("wordcount", |s: String| {
        let re = regex::Regex::new(r"\w+").expect("static pattern");
        re.find_iter(&s).count()
    });
    // minijinja's string filters take an undefined input as "" when
    // undefined values chain; ansible fails.
    env.add_filter("upper", |v: Value| -> Result<String, Error> {
        defined(&v, "upper")?;
        Ok(v.to_string().to_uppercase())
    });
    env.add_filter("lower", |v: Value| -> Result<String, Error> {
        defined(&v, "lower")?;
        Ok(v.to_string().to_lowercase())
    });
    env.add_filter(
        "trim",
        |v: Value, chars: Option<String>| -> Result<String, Error> {
            defined(&v, "trim")?;
            let s = v.to_string();
            Ok(match chars {
                Some(c) => s.trim_matches(|x| c.contains(x)).to_string(),
                None => s.trim().to_string(),
            })
        },
    );
    env.add_filter("length", |v: Value| -> Result<usize, Error> {
        defined(&v, "length")?;
        v.len()
            .ok_or_else(|| err(format!("object of type '{}' has no len()", type_name(&v))))
    });
    env.add_filter("count", |v: Value| -> Result<usize, Error> {
        defined(&v, "count")?;
        v.len()
            .ok_or_else(|| err(format!("object of type '{}' has no len()", type_name(&v))))
    });
    env.add_filter("list", |state: &State, v: Value| {
        defined(&v, "list")?;
        mj::list(state, v)
    });
    env.add_filter("first", |v: Value| {
        defined(&v, "first")?;
        mj::first(&v)
    });
    env.add_filter("last", |v: Value| {
        defined(&v, "last")?;
        mj::last(v)
    });
    env.add_filter("reverse", |v: Value| {
        defined(&v, "reverse")?;
        mj::reverse(&v)
    });
    env.add_filter("sort", |state: &State, v: Value, kw: Kwargs| {
        defined(&v, "sort")?;
        let attr: Option<String> = kw.get("attribute")?;
        if attr.is_none() {
            orderable(&v)?;
        }
        mj::sort(state, v, kw)
    });
    env.add_filter("unique", |state: &State, v: Value, kw: Kwargs| {
        defined(&v, "unique")?;
        mj::unique(state, v, kw)
    });
    env.add_filter("dictsort", |v: Value, kw: Kwargs| {
        defined(&v, "dictsort")?;
        mj::dictsort(&v, kw)
    });
    env.add_filter("items", |v: Value| {
        defined(&v, "items")?;
        mj::items(&v)
    });
    env.add_filter("map", |state: &State, v: Value, args: Rest<Value>| {
        defined(&v, "map")?;
        mj::map(state, v, args)
    });
    env.add_filter(
        "select",
        |state: &State, v: Value, test: Option<String>, args: Rest<Value>| {
            defined(&v, "select")?;
            mj::select(state, v, test.map(Cow::Owned), args)
        },
    );
    env.add_filter(
        "reject",
        |state: &State, v: Value, test: Option<String>, args: Rest<Value>| {
            defined(&v, "reject")?;
            mj::reject(state, v, test.map(Cow::Owned), args)
        },
    );
    env.add_filter(
        "selectattr",
        |state: &State, v: Value, attr: String, test: Option<String>, args: Rest<Value>| {
            defined(&v, "selectattr")?;
            mj::selectattr(state, v, Cow::Owned(attr), test.map(Cow::Owned), args)
        },
    );
    env.add_filter(
        "rejectattr",
        |state: &State, v: Value, attr: String, test: Option<String>, args: Rest<Value>| {
            defined(&v, "rejectattr")?;
            mj::rejectattr(state, v, Cow::Owned(attr), test.map(Cow::Owned), args)
        },
    );
    env.add_filter(
        "batch",
        |state: &State, v: Value, n: usize, fill: Option<Value>| {
            defined(&v, "batch")?;
            mj::batch(state, v, n, fill)
        },
    );
    env.add_filter(
        "slice",
        |state: &State, v: Value, n: usize, fill: Option<Value>| {
            defined(&v, "slice")?;
            mj::slice(state, v, n, fill)
        },
    );
}
