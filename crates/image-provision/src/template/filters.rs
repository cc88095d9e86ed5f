//! ansible's general filters: truth and choice (`bool`, `ternary`,
//! `mandatory`), Python casts with Jinja2's defaults (`int`, `float`),
//! `type_debug`, paths on the controller (`basename`, `dirname`,
//! `splitext`, `expanduser`, `realpath`, `relpath`, `path_join`), `quote`,
//! `extract` and math (`log`, `pow`, `root`).

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

use super::{defined, err, list_of};

/// ansible's `bool`: `yes/on/true/1` (any case, or the number 1) are true.
pub(crate) fn to_bool(v: &Value) -> bool {
    match v.kind() {
        ValueKind::Bool => v.is_true(),
        ValueKind::String => matches!(
            v.as_str().unwrap_or_default().to_lowercase().as_str(),
            "yes" | "on" | "true" | "1"
        ),
        ValueKind::Number => v.as_i64() == Some(1) || v.as_f64_lossy() == Some(1.0),
        _ => false,
    }
}

pub(crate) trait F64 {
    fn as_f64_lossy(&self) -> Option<f64>;
}

impl F64 for Value {
    fn as_f64_lossy(&self) -> Option<f64> {
        if self.kind() != ValueKind::Number {
            return None;
        }
        self.to_string().parse().ok()
    }
}

/// The number in a value, as Python's `float()` reads it.
pub(crate) fn as_float(v: &Value) -> Option<f64> {
    match v.kind() {
        ValueKind::Number => v.as_f64_lossy(),
        ValueKind::Bool => Some(if v.is_true() { 1.0 } else { 0.0 }),
        ValueKind::String => v.as_str()?.trim().replace('_', "").parse().ok(),
        _ => None,
    }
}

/// Python's type name of a value, as `type_debug` prints it.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.as_i64().is_some() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// Python's `shlex.quote`.
pub(crate) fn shlex_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "@%+=:,./-".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

fn home() -> Option<String> {
    std::env::var("HOME").ok().filter(|h| !h.is_empty())
}

/// The home directory of `user` in the controller's `/etc/passwd`.
fn home_of(user: &str) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[0] == user).then(|| f[5].to_string())
    })
}

/// Python's `os.path.expanduser` on the controller: `~` is `$HOME`,
/// `~user` that user's home; an unknown user leaves the path as it is.
fn expanduser(p: &str) -> String {
    let Some(rest) = p.strip_prefix('~') else {
        return p.to_string();
    };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let h = if user.is_empty() {
        home()
    } else {
        home_of(user)
    };
    match h {
        Some(h) => {
            let joined = format!("{}{tail}", h.trim_end_matches('/'));
            if joined.is_empty() {
                "/".into()
            } else {
                joined
            }
        }
        None => p.to_string(),
    }
}

/// Python's `os.path.normpath` for absolute and relative POSIX paths.
fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if abs => {}
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    match (abs, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Python's `os.path.splitext`.
fn splitext(p: &str) -> (String, String) {
    let base_start = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    let base = &p[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    match base.rfind('.') {
        Some(i) if i >= lead && i > 0 => {
            let cut = base_start + i;
            (p[..cut].to_string(), p[cut..].to_string())
        }
        _ => (p.to_string(), String::new()),
    }
}

fn relpath(p: &str, start: &str) -> String {
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let abs = |x: &str| {
        if x.starts_with('/') {
            normpath(x)
        } else {
            normpath(&format!("{cwd}/{x}"))
        }
    };
    let (p, s) = (abs(p), abs(start));
    let pc: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    let sc: Vec<&str> = s.split('/').filter(|c| !c.is_empty()).collect();
    let common = pc.iter().zip(&sc).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; sc.len() - common];
    out.extend(&pc[common..]);
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

fn extract(item: Value, container: Value, morekeys: Option<Value>) -> Result<Value, Error> {
    let mut v = container.get_item(&item)?;
    if let Some(keys) = morekeys {
        let keys = if keys.kind() == ValueKind::Seq {
            list_of(&keys)?
        } else {
            vec![keys]
        };
        for k in keys {
            v = v.get_item(&k)?;
        }
    }
    Ok(v)
}

fn math(name: &'static str, v: &Value, arg: Option<f64>) -> Result<Value, Error> {
    let x = as_float(v).ok_or_else(|| err(format!("{name}() can only be used on numbers")))?;
    Ok(Value::from(match name {
        "log" => match arg {
            Some(b) => x.ln() / b.ln(),
            None => x.ln(),
        },
        "pow" => x.powf(arg.unwrap_or(1.0)),
        _ => {
            let n = arg.unwrap_or(2.0);
            if n == 2.0 {
                x.sqrt()
            } else {
                x.powf(1.0 / n)
            }
        }
    }))
}

/// ansible's `comment`: text as a comment block of a style (`plain`,
/// `erlang`, `c`, `cblock`, `xml`), each part overridable by keyword.
fn comment(text: String, style: Option<String>, kw: Kwargs) -> Result<String, Error> {
    let style = style.unwrap_or_else(|| "plain".into());
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        o => {
            return Err(err(format!(
                "comment: invalid style `{o}` (plain, erlang, c, cblock, xml)"
            )))
        }
    };
    let get = |k: &str, d: &str| -> Result<String, Error> {
        Ok(kw
            .get::<Option<String>>(k)?
            .unwrap_or_else(|| d.to_string()))
    };
    let prepost = get("decoration", decoration)?;
    let newline = get("newline", "\n")?;
    let beginning = get("beginning", beginning)?;
    let prefix = get("prefix", prepost.trim_end())?;
    let prefix_count: usize = kw.get::<Option<usize>>("prefix_count")?.unwrap_or(1);
    let decoration = prepost.clone();
    let postfix = get("postfix", prepost.trim_end())?;
    let postfix_count: usize = kw.get::<Option<usize>>("postfix_count")?.unwrap_or(1);
    let end = get("end", end)?;
    kw.assert_all_used()?;
    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&beginning);
        out.push_str(&newline);
    }
    if !prefix.is_empty() {
        let one = if prefix != newline {
            format!("{prefix}{newline}")
        } else {
            newline.clone()
        };
        out.push_str(&one.repeat(prefix_count));
    }
    let body = format!(
        "{decoration}{}",
        text.replace(&newline, &format!("{newline}{decoration}"))
    );
    out.push_str(&body.replace(
        &format!("{decoration}{newline}"),
        &format!("{}{newline}", decoration.trim_end()),
    ));
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&newline);
        out.push_str(&end);
    }
    Ok(out)
}

/// Python's `uuid.uuid5(namespace, name)`.
fn to_uuid(name: &str, namespace: &str) -> Result<String, Error> {
    use sha1::Digest;
    let hex: String = namespace
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    if hex.len() != 32 {
        return Err(err(format!("Invalid value '{namespace}' for 'namespace'")));
    }
    let ns: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    let mut h = sha1::Sha1::new();
    h.update(&ns);
    h.update(name.as_bytes());
    let mut b: Vec<u8> = h.finalize()[..16].to_vec();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    ))
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("bool", |v: Value| -> Result<bool, Error> {
        defined(&v, "bool")?;
        Ok(to_bool(&v))
    });
    env.add_filter(
        "ternary",
        |v: Value, yes: Value, no: Value, none: Option<Value>| -> Value {
            match none {
                Some(n) if v.is_none() && !n.is_none() => n,
                _ if v.is_true() => yes,
                _ => no,
            }
        },
    );
    env.add_filter(
        "mandatory",
        |v: Value, msg: Option<String>| -> Result<Value, Error> {
            if v.is_undefined() {
                return Err(Error::new(
                    ErrorKind::UndefinedError,
                    msg.unwrap_or_else(|| "Mandatory variable has not been overridden".into()),
                ));
            }
            Ok(v)
        },
    );
    env.add_filter("type_debug", |v: Value| type_name(&v));
    env.add_filter("basename", |s: String| -> String {
        s.rsplit('/').next().unwrap_or("").to_string()
    });
    env.add_filter("dirname", |s: String| -> String {
        match s.rfind('/') {
            Some(i) => {
                let head = &s[..=i];
                let trimmed = head.trim_end_matches('/');
                if trimmed.is_empty() {
                    head.to_string()
                } else {
                    trimmed.to_string()
                }
            }
            None => String::new(),
        }
    });
    env.add_filter("splitext", |s: String| -> Vec<String> {
        let (a, b) = splitext(&s);
        vec![a, b]
    });
    env.add_filter("expanduser", |s: String| expanduser(&s));
    env.add_filter("expandvars", |s: String| -> String {
        let re = regex::Regex::new(r"\$(\w+)|\$\{([^}]*)\}").expect("static pattern");
        re.replace_all(&s, |c: &regex::Captures| {
            let name = c.get(1).or(c.get(2)).map(|m| m.as_str()).unwrap_or("");
            std::env::var(name).unwrap_or_else(|_| c[0].to_string())
        })
        .into_owned()
    });
    env.add_filter("realpath", |s: String| -> String {
        match std::fs::canonicalize(&s) {
            Ok(p) => p.display().to_string(),
            Err(_) => normpath(&s),
        }
    });
    env.add_filter("normpath", |s: String| normpath(&s));
    env.add_filter("relpath", |s: String, start: Option<String>| {
        relpath(&s, start.as_deref().unwrap_or("."))
    });
    env.add_filter("path_join", |v: Value| -> Result<String, Error> {
        let parts: Vec<String> = if v.kind() == ValueKind::String {
            vec![v.as_str().unwrap_or_default().to_string()]
        } else {
            list_of(&v)?.iter().map(|p| p.to_string()).collect()
        };
        let mut out = String::new();
        for p in parts {
            if p.starts_with('/') || out.is_empty() {
                out = p;
            } else {
                if !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(&p);
            }
        }
        Ok(out)
    });
    env.add_filter("quote", |v: Value| -> Result<String, Error> {
        defined(&v, "quote")?;
        Ok(shlex_quote(&if v.is_none() {
            String::new()
        } else {
            v.to_string()
        }))
    });
    env.add_filter("extract", extract);
    env.add_filter("log", |v: Value, b: Option<f64>| math("log", &v, b));
    env.add_filter("pow", |v: Value, b: f64| math("pow", &v, Some(b)));
    env.add_filter("root", |v: Value, b: Option<f64>| math("root", &v, b));
    env.add_filter("comment", comment);
    env.add_filter("password_hash", super::crypt::password_hash);
    env.add_filter(
        "to_uuid",
        |s: String, ns: Option<String>, kw: Kwargs| -> Result<String, Error> {
            let ns = match ns {
                Some(n) => Some(n),
                None => kw.get("namespace")?,
            };
            kw.assert_all_used()?;
            to_uuid(
                &s,
                ns.as_deref()
                    .unwrap_or("361E6D51-FAEC-444A-9079-341386DA8E2E"),
            )
        },
    );
    env.add_filter("splitlines", |s: String| -> Vec<String> {
        s.lines().map(str::to_string).collect()
    });
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn python_paths() {
        assert_eq!(splitext("x.y.z"), ("x.y".into(), ".z".into()));
        assert_eq!(splitext("/a/.bashrc"), ("/a/.bashrc".into(), "".into()));
        assert_eq!(normpath("/a/./b/../c/"), "/a/c");
        assert_eq!(relpath("/a/b/c", "/a/d"), "../b/c");
        assert_eq!(shlex_quote("it's"), r#"'it'"'"'s'"#);
        assert_eq!(shlex_quote("a-b/c"), "a-b/c");
    }
}
