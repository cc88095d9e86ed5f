//! ansible's data format filters: JSON as Python's `json.dumps` writes it
//! (`to_json`, `to_nice_json`), YAML as PyYAML's dump (`to_yaml`,
//! `to_nice_yaml`, in `pyyaml`),
//! `from_json`/`from_yaml`, base64, `hash`/`checksum`, `urlsplit`,
//! `human_readable`/`human_to_bytes`.

use base64::Engine as _;
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, Value};
use serde_json::Value as Json;

use super::{defined, err, to_json};

/// Python's `json.dumps` (ensure_ascii, `", "`/`": "` separators, or
/// `indent` with `","`).
pub(crate) fn py_json(v: &Json, indent: Option<usize>, sort: bool) -> String {
    let mut out = String::new();
    write_json(v, indent, sort, 0, &mut out);
    out
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(v: &Json, indent: Option<usize>, sort: bool, level: usize, out: &mut String) {
    let nl = |out: &mut String, level: usize| {
        if let Some(i) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(i * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::String(s) => json_str(s, out),
        Json::Array(a) if a.is_empty() => out.push_str("[]"),
        Json::Object(m) if m.is_empty() => out.push_str("{}"),
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nl(out, level + 1);
                write_json(x, indent, sort, level + 1, out);
            }
            nl(out, level);
            out.push(']');
        }
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            if sort {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nl(out, level + 1);
                json_str(k, out);
                out.push_str(": ");
                write_json(&m[k], indent, sort, level + 1, out);
            }
            nl(out, level);
            out.push('}');
        }
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
    }
}

fn digest(s: &str, alg: &str) -> Result<String, Error> {
    use sha2::Digest;
    fn hex(b: impl AsRef<[u8]>) -> String {
        b.as_ref().iter().map(|x| format!("{x:02x}")).collect()
    }
    let b = s.as_bytes();
    Ok(match alg {
        "md5" => hex(md5::Md5::digest(b)),
        "sha1" => hex(sha1::Sha1::digest(b)),
        "sha224" => hex(sha2::Sha224::digest(b)),
        "sha256" => hex(sha2::Sha256::digest(b)),
        "sha384" => hex(sha2::Sha384::digest(b)),
        "sha512" => hex(sha2::Sha512::digest(b)),
        o => {
            return Err(err(format!(
                "hash: unsupported algorithm `{o}` (md5, sha1, sha224, sha256, sha384, sha512)"
            )))
        }
    })
}

/// Python's `urllib.parse.urlsplit`, as ansible's `urlsplit` returns it.
fn urlsplit(url: &str) -> Json {
    let (scheme, rest) = match url.find(':') {
        Some(i)
            if i > 0
                && url[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && url[..1].chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            (url[..i].to_ascii_lowercase(), &url[i + 1..])
        }
        _ => (String::new(), url),
    };
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (netloc, path) = match rest.strip_prefix("//") {
        Some(r) => match r.find('/') {
            Some(i) => (&r[..i], &r[i..]),
            None => (r, ""),
        },
        None => ("", rest),
    };
    let (userinfo, hostport) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Json::from(a), Json::from(b)),
            None => (Json::from(u), Json::Null),
        },
        None => (Json::Null, Json::Null),
    };
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => (&hostport[1..i], hostport[i + 1..].strip_prefix(':')),
            None => (hostport, None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = port
        .and_then(|p| p.parse::<u16>().ok())
        .map(Json::from)
        .unwrap_or(Json::Null);
    let hostname = if host.is_empty() {
        Json::Null
    } else {
        Json::from(host.to_lowercase())
    };
    serde_json::json!({
        "fragment": fragment, "hostname": hostname, "netloc": netloc, "password": password,
        "path": path, "port": port, "query": query, "scheme": scheme, "username": username,
    })
}

const UNITS: [(char, u32); 9] = [
    ('Y', 80),
    ('Z', 70),
    ('E', 60),
    ('P', 50),
    ('T', 40),
    ('G', 30),
    ('M', 20),
    ('K', 10),
    ('B', 0),
];

fn human_to_bytes(v: &Value, default_unit: Option<String>, isbits: bool) -> Result<i64, Error> {
    let s = v.to_string();
    let re =
        regex::Regex::new(r"^([0-9]*\.?[0-9]+)(?:\s*([A-Za-z]+))?\s*$").expect("static pattern");
    let c = re.captures(&s).ok_or_else(|| {
        err(format!(
            "human_to_bytes() can't interpret following string: {s}"
        ))
    })?;
    let num: f64 = c[1]
        .parse()
        .map_err(|_| err(format!("human_to_bytes: bad number {s}")))?;
    let Some(unit) = c.get(2).map(|m| m.as_str().to_string()).or(default_unit) else {
        return Ok(num.round() as i64);
    };
    let key = unit.chars().next().unwrap_or('B').to_ascii_uppercase();
    let (_, shift) = UNITS.iter().find(|(k, _)| *k == key).ok_or_else(|| {
        err(format!(
            "human_to_bytes() failed to convert {s} (unit = {unit})"
        ))
    })?;
    if unit.len() > 1 {
        let class = if isbits { 'b' } else { 'B' };
        let word = if isbits { "bit" } else { "byte" };
        let ok = if key == 'B' {
            unit.to_lowercase() == word || unit == class.to_string()
        } else {
            unit == format!("{key}{class}")
        };
        if !ok {
            return Err(err(format!(
                "human_to_bytes() failed to convert {s}. Value is not a valid string"
            )));
        }
    }
    Ok((num * (1u128 << shift) as f64).round() as i64)
}

fn human_readable(v: &Value, isbits: bool, unit: Option<String>) -> Result<String, Error> {
    let size = super::filters::as_float(v)
        .ok_or_else(|| err(format!("human_readable() can't interpret {v}")))?;
    let base = if isbits { "bits" } else { "Bytes" };
    let mut pick = UNITS[UNITS.len() - 1];
    for u in UNITS {
        let limit = (1u128 << u.1) as f64;
        let hit = match &unit {
            None => size >= limit,
            Some(x) => x.to_ascii_uppercase().starts_with(u.0),
        };
        if hit {
            pick = u;
            break;
        }
    }
    let limit = (1u128 << pick.1) as f64;
    let suffix = if pick.1 == 0 {
        base.to_string()
    } else {
        format!("{}{}", pick.0, &base[..1])
    };
    Ok(format!("{:.2} {suffix}", size / limit))
}

pub(super) fn register(env: &mut Environment<'static>) {
    use image_core::spec::bounded::check_width;
    env.add_filter("to_json", |v: Value, kw: Kwargs| -> Result<String, Error> {
        defined(&v, "to_json")?;
        let indent: Option<usize> = kw.get("indent")?;
        check_width("to_json: indent", indent.unwrap_or(0))?;
        let sort: Option<bool> = kw.get("sort_keys")?;
        let _: Option<bool> = kw.get("ensure_ascii")?;
        Ok(py_json(&to_json(&v)?, indent, sort.unwrap_or(false)))
    });
    env.add_filter(
        "to_nice_json",
        |v: Value, indent: Option<usize>, kw: Kwargs| -> Result<String, Error> {
            defined(&v, "to_nice_json")?;
            let indent = match indent {
                Some(i) => i,
                None => kw.get::<Option<usize>>("indent")?.unwrap_or(4),
            };
            check_width("indent", indent)?;
            let sort: Option<bool> = kw.get("sort_keys")?;
            Ok(py_json(&to_json(&v)?, Some(indent), sort.unwrap_or(true)))
        },
    );
    env.add_filter("from_json", |s: String| -> Result<Value, Error> {
        let j: Json = serde_json::from_str(&s).map_err(|e| err(format!("from_json: {e}")))?;
        Ok(Value::from_serialize(&j))
    });
    env.add_filter("to_yaml", |v: Value, kw: Kwargs| -> Result<String, Error> {
        defined(&v, "to_yaml")?;
        let indent: Option<usize> = kw.get("indent")?;
        check_width("to_yaml: indent", indent.unwrap_or(0))?;
        let flow: Option<bool> = kw.get("default_flow_style")?;
        Ok(super::pyyaml::dump(
            &to_json(&v)?,
            indent.unwrap_or(2),
            flow.is_none(),
        ))
    });
    env.add_filter(
        "to_nice_yaml",
        |v: Value, indent: Option<usize>, kw: Kwargs| -> Result<String, Error> {
            defined(&v, "to_nice_yaml")?;
            let indent = match indent {
                Some(i) => i,
                None => kw.get::<Option<usize>>("indent")?.unwrap_or(4),
            };
            check_width("indent", indent)?;
            Ok(super::pyyaml::dump(&to_json(&v)?, indent, false))
        },
    );
    env.add_filter("from_yaml", |s: String| -> Result<Value, Error> {
        let j: Json = serde_yaml::from_str(&s).map_err(|e| err(format!("from_yaml: {e}")))?;
        Ok(Value::from_serialize(&j))
    });
    env.add_filter("from_yaml_all", |s: String| -> Result<Value, Error> {
        let mut out = Vec::new();
        for d in serde_yaml::Deserializer::from_str(&s) {
            let j: Json = serde::Deserialize::deserialize(d)
                .map_err(|e| err(format!("from_yaml_all: {e}")))?;
            out.push(j);
        }
        Ok(Value::from_serialize(&out))
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
    env.add_filter("hash", |s: String, alg: Option<String>| {
        digest(&s, alg.as_deref().unwrap_or("sha1"))
    });
    env.add_filter("checksum", |s: String| digest(&s, "sha1"));
    env.add_filter("md5", |s: String| digest(&s, "md5"));
    env.add_filter("sha1", |s: String| digest(&s, "sha1"));
    env.add_filter(
        "urlsplit",
        |s: String, part: Option<String>| -> Result<Value, Error> {
            let all = urlsplit(&s);
            Ok(Value::from_serialize(match part {
                Some(p) => all
                    .get(&p)
                    .cloned()
                    .ok_or_else(|| err(format!("urlsplit: unknown URL component `{p}`")))?,
                None => all,
            }))
        },
    );
    env.add_filter(
        "human_to_bytes",
        |v: Value, unit: Option<String>, kw: Kwargs| -> Result<i64, Error> {
            let isbits: Option<bool> = kw.get("isbits")?;
            let unit = match unit {
                Some(u) => Some(u),
                None => kw.get("default_unit")?,
            };
            human_to_bytes(&v, unit, isbits.unwrap_or(false))
        },
    );
    env.add_filter(
        "human_readable",
        |v: Value,
         isbits: Option<bool>,
         unit: Option<String>,
         kw: Kwargs|
         -> Result<String, Error> {
            let isbits = match isbits {
                Some(b) => b,
                None => kw.get::<Option<bool>>("isbits")?.unwrap_or(false),
            };
            let unit = match unit {
                Some(u) => Some(u),
                None => kw.get("unit")?,
            };
            human_readable(&v, isbits, unit)
        },
    );
}
