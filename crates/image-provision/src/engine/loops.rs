//! Loop items: `loop:` and every `with_<lookup>` form (items, list, dict,
//! together, sequence, nested, subelements, indexed_items, flattened,
//! random_choice, and the file lookups first_found, fileglob, file, lines,
//! env done by the templater's `query()`), and the loop variables of one
//! item (`loop_var`, `index_var`, `ansible_loop` when extended).

use serde_json::{json, Map, Value as Json};

use super::Runner;
use crate::modules::json_to_string;
use crate::task::{LoopKind, LoopSpec};
use crate::template::{Ctx, Layers};

/// Hard cap on the number of items one loop may produce.
const MAX_ITEMS: usize = 1_000_000;

impl Runner<'_> {
    /// The items of a loop, or why they cannot be had.
    pub(super) fn loop_items(
        &self,
        l: &LoopSpec,
        vars: &Layers,
        ctx: &Ctx,
    ) -> Result<Vec<Json>, String> {
        let v = self
            .tmpl
            .render(&l.items, ctx)
            .map_err(|e| format!("error in loop: {e}"))?;
        let items = match &l.kind {
            LoopKind::Loop => match v {
                Json::Array(a) => a,
                other => {
                    return Err(format!(
                        "The `loop` value must resolve to a 'list', not {}: {}",
                        type_name(&other),
                        serde_json::to_string(&other).unwrap_or_default()
                    ))
                }
            },
            LoopKind::With(name) => {
                let terms = match v {
                    Json::Array(a) => a,
                    Json::Null if name == "items" => Vec::new(),
                    other => vec![other],
                };
                self.with_lookup(name, terms, vars)?
            }
        };
        if items.len() > MAX_ITEMS {
            return Err(format!(
                "the loop has {} items (at most {MAX_ITEMS})",
                items.len()
            ));
        }
        Ok(items)
    }

    fn with_lookup(
        &self,
        name: &str,
        terms: Vec<Json>,
        vars: &Layers,
    ) -> Result<Vec<Json>, String> {
        Ok(match name {
            "list" => terms,
            "items" => terms
                .into_iter()
                .flat_map(|x| match x {
                    Json::Array(inner) => inner,
                    other => vec![other],
                })
                .collect(),
            "flattened" => {
                let mut out = Vec::new();
                flatten(terms, &mut out);
                out
            }
            "indexed_items" => {
                let flat: Vec<Json> = terms
                    .into_iter()
                    .flat_map(|x| match x {
                        Json::Array(inner) => inner,
                        other => vec![other],
                    })
                    .collect();
                flat.into_iter()
                    .enumerate()
                    .map(|(i, x)| json!([i, x]))
                    .collect()
            }
            "dict" => {
                let mut out = Vec::new();
                for t in terms {
                    match t {
                        Json::Object(m) => {
                            out.extend(m.into_iter().map(|(k, v)| json!({"key": k, "value": v})))
                        }
                        other => {
                            return Err(format!(
                                "with_dict expects a dict, got {}",
                                type_name(&other)
                            ))
                        }
                    }
                }
                out
            }
            "together" => {
                let lists: Vec<Vec<Json>> = terms.into_iter().map(as_list).collect();
                if lists.is_empty() {
                    return Err("with_together requires at least one element in each list".into());
                }
                let n = lists.iter().map(Vec::len).max().unwrap_or(0);
                (0..n)
                    .map(|i| {
                        Json::Array(
                            lists
                                .iter()
                                .map(|l| l.get(i).cloned().unwrap_or(Json::Null))
                                .collect(),
                        )
                    })
                    .collect()
            }
            "nested" => {
                let lists: Vec<Vec<Json>> = terms.into_iter().map(as_list).collect();
                if lists.is_empty() {
                    return Err(
                        "with_nested requires at least one element in the nested list".into(),
                    );
                }
                let mut out: Vec<Vec<Json>> = vec![Vec::new()];
                for l in lists {
                    let mut next = Vec::new();
                    for prefix in &out {
                        for x in &l {
                            let mut p = prefix.clone();
                            p.push(x.clone());
                            next.push(p);
                            if next.len() > MAX_ITEMS {
                                return Err("with_nested: too many combinations".into());
                            }
                        }
                    }
                    out = next;
                }
                out.into_iter().map(Json::Array).collect()
            }
            "sequence" => {
                let mut out = Vec::new();
                for t in terms {
                    out.extend(sequence(&json_to_string(&t))?);
                }
                out
            }
            "subelements" => subelements(terms)?,
            "random_choice" => {
                if terms.is_empty() {
                    Vec::new()
                } else {
                    let n = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos() as usize)
                        .unwrap_or(0);
                    vec![terms[n % terms.len()].clone()]
                }
            }
            "inventory_hostnames" => vec![json!(self.host)],
            "first_found" => {
                let arg = if terms.len() == 1 {
                    terms.into_iter().next().unwrap_or(Json::Null)
                } else {
                    Json::Array(terms)
                };
                self.query(name, vec![arg], vars)?
            }
            // fileglob, file, lines, env: one query per term.
            other => {
                let mut out = Vec::new();
                for t in terms {
                    out.extend(self.query(other, vec![t], vars)?);
                }
                out
            }
        })
    }

    /// `query(name, args...)` with the task's variables (search path).
    fn query(&self, name: &str, args: Vec<Json>, vars: &Layers) -> Result<Vec<Json>, String> {
        let mut v = vars.clone();
        let mut call = format!("query('{name}'");
        for (i, a) in args.into_iter().enumerate() {
            let k = format!("__loop_term{i}");
            call.push_str(&format!(", {k}"));
            v.insert(k, a);
        }
        call.push(')');
        let ctx = self.tmpl.context(v);
        let out = self
            .tmpl
            .eval(&call, &ctx)
            .map_err(|e| format!("with_{name}: {e}"))?;
        match serde_json::to_value(&out).map_err(|e| e.to_string())? {
            Json::Array(a) => Ok(a),
            Json::Null => Ok(Vec::new()),
            other => Ok(vec![other]),
        }
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "NoneType",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float",
        Json::Number(_) => "int",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

fn as_list(v: Json) -> Vec<Json> {
    match v {
        Json::Array(a) => a,
        other => vec![other],
    }
}

fn flatten(v: Vec<Json>, out: &mut Vec<Json>) {
    for x in v {
        match x {
            Json::Array(a) => flatten(a, out),
            Json::Null => {}
            other => out.push(other),
        }
    }
}

/// `with_sequence`: `start=1 end=5 stride=1 format=%02d`, `count=N`, or
/// the shortcut `[start-]end[/stride][:format]`.
fn sequence(term: &str) -> Result<Vec<Json>, String> {
    let (mut start, mut end, mut stride, mut count, mut format) =
        (1i64, None::<i64>, 1i64, None::<i64>, "%d".to_string());
    let num = |s: &str| -> Result<i64, String> {
        let s = s.trim();
        if let Some(h) = s.strip_prefix("0x") {
            return i64::from_str_radix(h, 16)
                .map_err(|_| format!("can't parse `{s}` as an integer"));
        }
        if let Some(o) = s
            .strip_prefix("0o")
            .or_else(|| s.strip_prefix('0').filter(|r| !r.is_empty()))
        {
            return i64::from_str_radix(o, 8)
                .map_err(|_| format!("can't parse `{s}` as an integer"));
        }
        s.parse()
            .map_err(|_| format!("can't parse `{s}` as an integer"))
    };
    let t = term.trim();
    if t.contains('=') {
        for w in t.split_whitespace() {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("bad sequence term `{w}`"))?;
            match k {
                "start" => start = num(v)?,
                "end" => end = Some(num(v)?),
                "stride" => stride = num(v)?,
                "count" => count = Some(num(v)?),
                "format" => format = v.to_string(),
                _ => return Err(format!("unrecognized sequence parameter `{k}`")),
            }
        }
    } else {
        let (rest, fmt) = match t.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (t, None),
        };
        let (rest, st) = match rest.split_once('/') {
            Some((r, s)) => (r, Some(num(s)?)),
            None => (rest, None),
        };
        match rest.split_once('-') {
            Some((a, b)) if !a.is_empty() => {
                start = num(a)?;
                end = Some(num(b)?);
            }
            _ => end = Some(num(rest)?),
        }
        if let Some(s) = st {
            stride = s;
        }
        if let Some(f) = fmt {
            format = f.to_string();
        }
    }
    if let Some(c) = count {
        if end.is_some() {
            return Err("can't specify both count and end in with_sequence".into());
        }
        if c == 0 {
            return Ok(Vec::new());
        }
        end = Some(start + (c - 1) * stride);
    }
    let end = end.ok_or("must specify count or end in with_sequence")?;
    if stride == 0 {
        return Ok(Vec::new());
    }
    if (stride > 0 && end < start) || (stride < 0 && end > start) {
        return Err("to count backwards make stride negative".into());
    }
    let n = ((end - start) / stride + 1) as usize;
    if n > MAX_ITEMS {
        return Err(format!("with_sequence: {n} items is too many"));
    }
    let mut out = Vec::with_capacity(n);
    let mut i = start;
    while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
        out.push(Json::String(printf_int(&format, i)));
        i += stride;
    }
    Ok(out)
}

/// `%d`, `%02d`, `%x`, `%o` and literal text around them.
fn printf_int(fmt: &str, v: i64) -> String {
    let Some(p) = fmt.find('%') else {
        return fmt.to_string();
    };
    let rest = &fmt[p + 1..];
    let spec_len = rest
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| i + 1)
        .unwrap_or(rest.len());
    let spec = &rest[..spec_len];
    let (flags, conv) = spec.split_at(spec.len().saturating_sub(1));
    let zero = flags.starts_with('0');
    let width: usize = flags.trim_start_matches('0').parse().unwrap_or(0);
    let body = match conv {
        "x" => format!("{v:x}"),
        "X" => format!("{v:X}"),
        "o" => format!("{v:o}"),
        _ => v.to_string(),
    };
    let padded = if zero {
        format!("{body:0>width$}")
    } else {
        format!("{body:>width$}")
    };
    format!("{}{}{}", &fmt[..p], padded, &rest[spec_len..])
}

/// `with_subelements: [list, "key"]` (or `[dict, "key", {skip_missing: true}]`).
fn subelements(terms: Vec<Json>) -> Result<Vec<Json>, String> {
    let mut it = terms.into_iter();
    let list = it.next().unwrap_or(Json::Null);
    let key = it
        .next()
        .and_then(|k| k.as_str().map(str::to_string))
        .ok_or("subelements lookup expects a list of two or three items")?;
    let skip_missing = it
        .next()
        .and_then(|f| f.get("skip_missing").and_then(crate::modules::json_bool))
        .unwrap_or(false);
    let elems: Vec<Json> = match list {
        Json::Array(a) => a,
        Json::Object(m) => m.into_values().collect(),
        other => {
            return Err(format!(
                "subelements: the first term must be a list or dict, got {other}"
            ))
        }
    };
    let mut out = Vec::new();
    for e in elems {
        if e.get("skipped").and_then(Json::as_bool) == Some(true) {
            continue;
        }
        let mut cur = Some(&e);
        for part in key.split('.') {
            cur = cur.and_then(|c| c.get(part));
        }
        match cur {
            Some(Json::Array(subs)) => {
                for s in subs {
                    out.push(json!([e.clone(), s.clone()]));
                }
            }
            Some(other) => {
                return Err(format!(
                    "the key `{key}` should point to a list, got {}",
                    serde_json::to_string(other).unwrap_or_default()
                ))
            }
            None if skip_missing => {}
            None => return Err(format!("could not find '{key}' key in iterated item")),
        }
    }
    Ok(out)
}

/// The variables of item `i` of `items`.
pub(super) fn loop_vars(l: &LoopSpec, i: usize, items: &[Json]) -> Map<String, Json> {
    let mut m = Map::new();
    let n = items.len();
    m.insert(l.loop_var.clone(), items[i].clone());
    m.insert("ansible_loop_var".into(), json!(l.loop_var));
    if let Some(iv) = &l.index_var {
        m.insert(iv.clone(), json!(i));
        m.insert("ansible_index_var".into(), json!(iv));
    }
    if l.extended {
        let mut al = json!({
            "index": i + 1, "index0": i, "first": i == 0, "last": i + 1 == n,
            "length": n, "revindex": n - i, "revindex0": n - i - 1,
        });
        if l.extended_allitems {
            al["allitems"] = Json::Array(items.to_vec());
        }
        if i + 1 < n {
            al["nextitem"] = items[i + 1].clone();
        }
        if i > 0 {
            al["previtem"] = items[i - 1].clone();
        }
        m.insert("ansible_loop".into(), al);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences() {
        let s = |t: &str| sequence(t).unwrap();
        assert_eq!(s("start=1 end=3"), vec![json!("1"), json!("2"), json!("3")]);
        assert_eq!(
            s("count=3 format=host%02d"),
            vec![json!("host01"), json!("host02"), json!("host03")]
        );
        assert_eq!(s("4-8/2"), vec![json!("4"), json!("6"), json!("8")]);
        assert_eq!(
            s("start=0 end=0x10 stride=8 format=%x"),
            vec![json!("0"), json!("8"), json!("10")]
        );
        assert!(sequence("start=5 end=1").is_err());
    }

    #[test]
    fn subelements_pairs() {
        let users = json!([{"name": "a", "keys": [1, 2]}, {"name": "b"}]);
        assert!(subelements(vec![users.clone(), json!("keys")]).is_err());
        let out = subelements(vec![users, json!("keys"), json!({"skip_missing": true})]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1][1], 2);
    }
}
