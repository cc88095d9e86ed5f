//! The template functions: Go's builtins (`eq`, `ne`, `lt`, `le`, `gt`, `ge`,
//! `not`, `len`, `index`, `slice`, `print`, `printf`, `println`) and the
//! goss / sprig functions gossfiles use (`contains`, `regexMatch`,
//! `semverCompare`, `toLower`, `toUpper`, `split`, `splitList`, `join`,
//! `default`, `hasKey`, `getEnv`, `mkSlice`, `readFile`, ...). Argument
//! order is sprig's: the piped value comes last.

use serde_json::{Map, Value};

use super::eval::{display, kind, number_text, truthy, MAX_OUTPUT};

/// Every function name, for parse-time checks.
pub const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "regexMatch",
    "regexFind",
    "regexReplaceAll",
    "semverCompare",
    "toLower",
    "toUpper",
    "lower",
    "upper",
    "trim",
    "trimSpace",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "split",
    "splitList",
    "join",
    "default",
    "empty",
    "hasKey",
    "keys",
    "list",
    "mkSlice",
    "dict",
    "getEnv",
    "env",
    "readFile",
    "toJson",
    "quote",
    "squote",
    "toString",
    "int",
    "atoi",
    "float64",
    "ternary",
    "coalesce",
    "repeat",
    "findStringSubmatch",
    "get",
];

/// True when `name` is a function.
pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn string_arg(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(number_text(n)),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        other => Err(format!(
            "{name}: expected a string, got {} {}",
            kind(other),
            display(other)
        )),
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Go's `eq` of two basic values; `Err` for incomparable types.
fn basic_eq(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Ok(a.is_null() && b.is_null()),
        (Value::Number(_), Value::Number(_)) => Ok(num(a) == num(b)),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Array(_), _)
        | (Value::Object(_), _)
        | (_, Value::Array(_))
        | (_, Value::Object(_)) => Err(format!("non-comparable type {}: {}", kind(a), display(a))),
        _ => Err(format!(
            "incompatible types for comparison: {} ({}) and {} ({})",
            kind(a),
            display(a),
            kind(b),
            display(b)
        )),
    }
}

fn less(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => num(a)
            .zip(num(b))
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "cannot compare NaN".to_string()),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!(
            "incompatible types for comparison: {} ({}) and {} ({})",
            kind(a),
            display(a),
            kind(b),
            display(b)
        )),
    }
}

/// sprig's `empty`.
fn is_empty(v: &Value) -> bool {
    !truthy(v)
}

/// Calls function `name`.
pub fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    use std::cmp::Ordering::*;
    let a = &args;
    let s = |i: usize| string_arg(name, &a[i]);
    Ok(match name {
        "not" => {
            arity(name, a, 1)?;
            Value::Bool(!truthy(&a[0]))
        }
        "and" | "or" => a.last().cloned().unwrap_or(Value::Null),
        "eq" => {
            if a.len() < 2 {
                return Err("wrong number of args for eq: want at least 2".into());
            }
            let mut any = false;
            for b in &a[1..] {
                if basic_eq(&a[0], b)? {
                    any = true;
                    break;
                }
            }
            Value::Bool(any)
        }
        "ne" => {
            arity(name, a, 2)?;
            Value::Bool(!basic_eq(&a[0], &a[1])?)
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, a, 2)?;
            let o = less(&a[0], &a[1])?;
            Value::Bool(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "len" => {
            arity(name, a, 1)?;
            Value::from(match &a[0] {
                Value::String(x) => x.len(),
                Value::Array(x) => x.len(),
                Value::Object(x) => x.len(),
                Value::Null => 0,
                other => return Err(format!("len of type {}", kind(other))),
            })
        }
        "index" => {
            if a.is_empty() {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            }
            let mut cur = a[0].clone();
            for k in &a[1..] {
                cur = match (&cur, k) {
                    (Value::Object(o), _) => {
                        let key = string_arg(name, k)?;
                        o.get(&key).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(v), Value::Number(n)) => {
                        let i = n.as_i64().unwrap_or(-1);
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| v.get(i).cloned())
                            .ok_or_else(|| {
                                format!("error calling index: index out of range: {i}")
                            })?
                    }
                    (Value::Null, _) => {
                        return Err(format!(
                            "error calling index: index of untyped nil (key {})",
                            display(k)
                        ))
                    }
                    (other, _) => {
                        return Err(format!(
                            "error calling index: can't index item of type {} with {}",
                            kind(other),
                            display(k)
                        ))
                    }
                };
            }
            cur
        }
        "slice" => {
            if a.is_empty() || a.len() > 3 {
                return Err("wrong number of args for slice".into());
            }
            let idx = |i: usize, dflt: usize| -> Result<usize, String> {
                match a.get(i) {
                    None => Ok(dflt),
                    Some(v) => v
                        .as_u64()
                        .and_then(|u| usize::try_from(u).ok())
                        .ok_or_else(|| format!("slice: bad index {}", display(v))),
                }
            };
            match &a[0] {
                Value::String(x) => {
                    let (i, j) = (idx(1, 0)?, idx(2, x.len())?);
                    Value::String(
                        x.get(i..j)
                            .ok_or_else(|| format!("slice: index out of range [{i}:{j}]"))?
                            .to_string(),
                    )
                }
                Value::Array(x) => {
                    let (i, j) = (idx(1, 0)?, idx(2, x.len())?);
                    Value::Array(
                        x.get(i..j)
                            .ok_or_else(|| format!("slice: index out of range [{i}:{j}]"))?
                            .to_vec(),
                    )
                }
                other => return Err(format!("can't slice item of type {}", kind(other))),
            }
        }
        "print" => {
            // Go's Sprint: spaces between operands when neither is a string.
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0 && !v.is_string() && !a[i - 1].is_string() {
                    out.push(' ');
                }
                out.push_str(&display(v));
            }
            Value::String(out)
        }
        "println" => Value::String(format!(
            "{}\n",
            a.iter().map(display).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            if a.is_empty() {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            }
            let text = sprintf(&s(0)?, &a[1..]);
            if text.len() > MAX_OUTPUT {
                return Err(format!(
                    "printf: output exceeds the {} MiB limit",
                    MAX_OUTPUT >> 20
                ));
            }
            Value::String(text)
        }
        "contains" => {
            arity(name, a, 2)?;
            Value::Bool(s(1)?.contains(&s(0)?))
        }
        "hasPrefix" => {
            arity(name, a, 2)?;
            Value::Bool(s(1)?.starts_with(&s(0)?))
        }
        "hasSuffix" => {
            arity(name, a, 2)?;
            Value::Bool(s(1)?.ends_with(&s(0)?))
        }
        "regexMatch" => {
            arity(name, a, 2)?;
            Value::Bool(regex(&s(0)?)?.is_match(&s(1)?))
        }
        "regexFind" => {
            arity(name, a, 2)?;
            Value::String(
                regex(&s(0)?)?
                    .find(&s(1)?)
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
            )
        }
        "regexReplaceAll" => {
            arity(name, a, 3)?;
            let repl = s(2)?;
            Value::String(
                regex(&s(0)?)?
                    .replace_all(&s(1)?, repl.as_str())
                    .into_owned(),
            )
        }
        "semverCompare" => {
            arity(name, a, 2)?;
            Value::Bool(crate::matcher::semver_satisfies(&s(0)?, &s(1)?)?)
        }
        "toLower" | "lower" => {
            arity(name, a, 1)?;
            Value::String(s(0)?.to_lowercase())
        }
        "toUpper" | "upper" => {
            arity(name, a, 1)?;
            Value::String(s(0)?.to_uppercase())
        }
        "trim" | "trimSpace" => {
            arity(name, a, 1)?;
            Value::String(s(0)?.trim().to_string())
        }
        "trimPrefix" => {
            arity(name, a, 2)?;
            let x = s(1)?;
            let p = s(0)?;
            Value::String(x.strip_prefix(p.as_str()).unwrap_or(&x).to_string())
        }
        "trimSuffix" => {
            arity(name, a, 2)?;
            let x = s(1)?;
            let p = s(0)?;
            Value::String(x.strip_suffix(p.as_str()).unwrap_or(&x).to_string())
        }
        "replace" => {
            arity(name, a, 3)?;
            Value::String(s(2)?.replace(&s(0)?, &s(1)?))
        }
        "repeat" => {
            arity(name, a, 2)?;
            let n = a[0]
                .as_u64()
                .ok_or("repeat: count must be a non-negative integer")?;
            let text = s(1)?;
            let size = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(text.len()))
                .filter(|size| *size <= MAX_OUTPUT)
                .ok_or_else(|| {
                    format!(
                        "repeat: {n} copies of a {}-byte string exceed the {} MiB limit",
                        text.len(),
                        MAX_OUTPUT >> 20
                    )
                })?;
            let mut out = String::with_capacity(size);
            for _ in 0..n {
                out.push_str(&text);
            }
            Value::String(out)
        }
        "findStringSubmatch" => {
            arity(name, a, 2)?;
            let re = regex(&s(0)?)?;
            let input = s(1)?;
            let mut all = Map::new();
            let mut named = Map::new();
            if let Some(caps) = re.captures(&input) {
                for (i, group) in re.capture_names().enumerate() {
                    let text = caps.get(i).map_or("", |m| m.as_str()).to_string();
                    all.insert(i.to_string(), Value::String(text.clone()));
                    if let Some(g) = group {
                        named.insert(g.to_string(), Value::String(text));
                    }
                }
            }
            Value::Object(if named.is_empty() { all } else { named })
        }
        "get" => {
            arity(name, a, 2)?;
            match &a[0] {
                Value::Object(o) => o
                    .get(&s(1)?)
                    .cloned()
                    .unwrap_or(Value::String(String::new())),
                other => return Err(format!("get: expected a map, got {}", kind(other))),
            }
        }
        "split" => {
            arity(name, a, 2)?;
            let mut m = Map::new();
            for (i, part) in s(1)?.split(s(0)?.as_str()).enumerate() {
                m.insert(format!("_{i}"), Value::String(part.to_string()));
            }
            Value::Object(m)
        }
        "splitList" => {
            arity(name, a, 2)?;
            Value::Array(
                s(1)?
                    .split(s(0)?.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        "join" => {
            arity(name, a, 2)?;
            let items: Vec<String> = match &a[1] {
                Value::Array(v) => v.iter().map(display_join).collect(),
                Value::Null => Vec::new(),
                other => vec![display(other)],
            };
            Value::String(items.join(&s(0)?))
        }
        "default" => match a.len() {
            1 => a[0].clone(),
            2 => {
                if is_empty(&a[1]) {
                    a[0].clone()
                } else {
                    a[1].clone()
                }
            }
            n => {
                return Err(format!(
                    "wrong number of args for default: want 1 or 2 got {n}"
                ))
            }
        },
        "coalesce" => a.iter().find(|v| truthy(v)).cloned().unwrap_or(Value::Null),
        "ternary" => {
            arity(name, a, 3)?;
            if truthy(&a[2]) {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "empty" => {
            arity(name, a, 1)?;
            Value::Bool(is_empty(&a[0]))
        }
        "hasKey" => {
            arity(name, a, 2)?;
            match &a[0] {
                Value::Object(o) => Value::Bool(o.contains_key(&s(1)?)),
                Value::Null => Value::Bool(false),
                other => return Err(format!("hasKey: expected a map, got {}", kind(other))),
            }
        }
        "keys" => {
            let mut out = Vec::new();
            for m in a {
                if let Value::Object(o) = m {
                    out.extend(o.keys().cloned());
                }
            }
            out.sort();
            Value::Array(out.into_iter().map(Value::String).collect())
        }
        "list" | "mkSlice" => Value::Array(args.clone()),
        "dict" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                let k = string_arg(name, &pair[0])?;
                m.insert(k, pair.get(1).cloned().unwrap_or(Value::Null));
            }
            Value::Object(m)
        }
        "getEnv" | "env" => {
            if a.is_empty() || a.len() > 2 {
                return Err(format!("wrong number of args for {name}: want 1 or 2"));
            }
            let v = std::env::var(s(0)?).unwrap_or_default();
            if v.is_empty() && a.len() == 2 {
                a[1].clone()
            } else {
                Value::String(v)
            }
        }
        "readFile" => {
            arity(name, a, 1)?;
            let path = s(0)?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("readFile {path}: {e}"))?;
            Value::String(text.trim().to_string())
        }
        "toJson" => {
            arity(name, a, 1)?;
            Value::String(a[0].to_string())
        }
        "quote" | "squote" => {
            let q = if name == "quote" { '"' } else { '\'' };
            Value::String(
                a.iter()
                    .filter(|v| !v.is_null())
                    .map(|v| {
                        if q == '"' {
                            format!("{:?}", display(v))
                        } else {
                            format!("'{}'", display(v))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        "toString" => {
            arity(name, a, 1)?;
            Value::String(display_join(&a[0]))
        }
        "int" | "atoi" => {
            arity(name, a, 1)?;
            Value::from(match &a[0] {
                Value::Number(n) => n.as_f64().map_or(0, |f| f as i64),
                Value::String(x) => x.trim().parse::<f64>().map_or(0, |f| f as i64),
                Value::Bool(b) => i64::from(*b),
                _ => 0,
            })
        }
        "float64" => {
            arity(name, a, 1)?;
            let f = match &a[0] {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::String(x) => x.trim().parse::<f64>().unwrap_or(0.0),
                _ => 0.0,
            };
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        other => return Err(format!("function \"{other}\" not defined")),
    })
}

fn display_join(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => display(other),
    }
}

fn regex(re: &str) -> Result<regex::Regex, String> {
    crate::re2::compile(re)
}

/// Go's fmt limit on width and precision.
const MAX_WIDTH: usize = 1_000_000;

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %f %e %g %x
/// %X %o %t %%`, with flags `-`, `0`, `+`, width and precision.
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut next_arg = 0usize;
    while let Some(c) = it.next() {
        if out.len() > MAX_OUTPUT {
            break;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut minus = false;
        let mut zero = false;
        let mut plus = false;
        while let Some(&f) = it.peek() {
            match f {
                '-' => minus = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let mut width = String::new();
        while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            it.next();
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                it.next();
            }
            let v: usize = if p.is_empty() {
                0
            } else {
                p.parse().unwrap_or(usize::MAX)
            };
            if v > MAX_WIDTH {
                out.push_str("%!(BADPREC)");
            } else {
                prec = Some(v);
            }
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        let f = num(arg);
        let mut body = match verb {
            'v' | 's' => match (verb, arg) {
                ('v', Value::Null) => "<nil>".to_string(),
                ('s', Value::Null) => "%!s(<nil>)".to_string(),
                _ => display(arg),
            },
            'd' => match arg {
                Value::Number(n) if n.as_i64().is_some() => {
                    let i = n.as_i64().unwrap_or(0);
                    if plus && i >= 0 {
                        format!("+{i}")
                    } else {
                        i.to_string()
                    }
                }
                other => format!("%!d({} {})", kind(other), display(other)),
            },
            'f' | 'F' => match f {
                Some(x) => format!("{:.*}", prec.unwrap_or(6), x),
                None => format!("%!f({} {})", kind(arg), display(arg)),
            },
            'e' => match f {
                Some(x) => format!("{:.*e}", prec.unwrap_or(6), x),
                None => format!("%!e({} {})", kind(arg), display(arg)),
            },
            'g' => match arg {
                Value::Number(n) => number_text(n),
                other => format!("%!g({} {})", kind(other), display(other)),
            },
            'q' => format!("{:?}", display(arg)),
            't' => match arg {
                Value::Bool(b) => b.to_string(),
                other => format!("%!t({} {})", kind(other), display(other)),
            },
            'x' | 'X' | 'o' | 'b' => match arg {
                Value::Number(n) if n.as_i64().is_some() => {
                    let i = n.as_i64().unwrap_or(0);
                    match verb {
                        'x' => format!("{i:x}"),
                        'X' => format!("{i:X}"),
                        'o' => format!("{i:o}"),
                        _ => format!("{i:b}"),
                    }
                }
                Value::String(st) => {
                    let h: String = st.bytes().map(|b| format!("{b:02x}")).collect();
                    if verb == 'X' {
                        h.to_uppercase()
                    } else {
                        h
                    }
                }
                other => format!("%!{verb}({} {})", kind(other), display(other)),
            },
            other => format!("%!{other}({} {})", kind(arg), display(arg)),
        };
        if matches!(verb, 's' | 'v' | 'q') {
            if let Some(p) = prec {
                body = body.chars().take(p).collect();
            }
        }
        let mut w: usize = width.parse().unwrap_or(usize::MAX);
        if width.is_empty() {
            w = 0;
        } else if w > MAX_WIDTH {
            // Go's fmt refuses widths and precisions above 1e6.
            out.push_str("%!(BADWIDTH)");
            w = 0;
        }
        let len = body.chars().count();
        if len < w {
            let pad = w - len;
            if minus {
                body.push_str(&" ".repeat(pad));
            } else if zero && matches!(verb, 'd' | 'f' | 'F' | 'x' | 'X' | 'o') {
                let (sign, digits) = match body.strip_prefix('-') {
                    Some(d) => ("-", d.to_string()),
                    None => ("", body.clone()),
                };
                body = format!("{sign}{}{digits}", "0".repeat(pad));
            } else {
                body = format!("{}{body}", " ".repeat(pad));
            }
        }
        out.push_str(&body);
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        out.push_str(
            &args[next_arg..]
                .iter()
                .map(|v| format!("{} {}", kind(v), display(v)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push(')');
    }
    out
}
