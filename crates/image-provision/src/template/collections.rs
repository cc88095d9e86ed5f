//! ansible's filters on lists and dicts: `combine` (recursive, list_merge),
//! `dict2items`/`items2dict`, the set filters (`union`, `intersect`,
//! `difference`, `symmetric_difference`), `flatten`, `zip_longest`,
//! `product`, `permutations`, `combinations`, `subelements`, `min`/`max`/
//! `sum` with `attribute`, and `random`/`shuffle` (with a `seed`, the same
//! numbers as ansible: Python's generator).

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, Value};
use serde_json::{Map, Value as Json};

use super::pyrandom::PyRandom;
use super::{defined, err, list_of, to_json};

/// How `combine` merges two lists (`list_merge`).
#[derive(Clone, Copy, PartialEq)]
enum ListMerge {
    Replace,
    Keep,
    Append,
    Prepend,
    AppendRp,
    PrependRp,
}

impl ListMerge {
    fn parse(s: Option<&str>) -> Result<Self, Error> {
        Ok(match s.unwrap_or("replace") {
            "replace" => Self::Replace,
            "keep" => Self::Keep,
            "append" => Self::Append,
            "prepend" => Self::Prepend,
            "append_rp" => Self::AppendRp,
            "prepend_rp" => Self::PrependRp,
            o => return Err(err(format!("combine: list_merge `{o}` is not one of replace, keep, append, prepend, append_rp, prepend_rp"))),
        })
    }
}

fn merge_lists(a: &[Json], b: Vec<Json>, how: ListMerge) -> Vec<Json> {
    match how {
        ListMerge::Replace => b,
        ListMerge::Keep => a.to_vec(),
        ListMerge::Append => a.iter().cloned().chain(b).collect(),
        ListMerge::Prepend => b.into_iter().chain(a.iter().cloned()).collect(),
        ListMerge::AppendRp => {
            let mut out: Vec<Json> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
            out.extend(b);
            out
        }
        ListMerge::PrependRp => {
            let mut out = b.clone();
            out.extend(a.iter().filter(|x| !b.contains(x)).cloned());
            out
        }
    }
}

/// ansible's `merge_hash`: `b` over `a`.
fn merge(a: &mut Map<String, Json>, b: Map<String, Json>, recursive: bool, how: ListMerge) {
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (Some(Json::Object(x)), Json::Object(y)) if recursive => merge(x, y, true, how),
            (Some(Json::Array(x)), Json::Array(y)) => {
                let merged = merge_lists(x, y, how);
                *x = merged;
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
}

fn combine(a: Value, rest: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let recursive: Option<bool> = kw.get("recursive")?;
    let how: Option<String> = kw.get("list_merge")?;
    kw.assert_all_used()?;
    let how = ListMerge::parse(how.as_deref())?;
    let mut dicts: Vec<Json> = Vec::new();
    for v in std::iter::once(&a).chain(rest.iter()) {
        defined(v, "combine")?;
        match to_json(v)? {
            Json::Array(items) => dicts.extend(items),
            j => dicts.push(j),
        }
    }
    let mut out = Map::new();
    for d in dicts {
        let Json::Object(d) = d else {
            return Err(err(format!("combine: expects dictionaries, got {d}")));
        };
        merge(&mut out, d, recursive.unwrap_or(false), how);
    }
    Ok(Value::from_serialize(&out))
}

fn names(kw: &Kwargs) -> Result<(String, String), Error> {
    let kn: Option<String> = kw.get("key_name")?;
    let vn: Option<String> = kw.get("value_name")?;
    kw.assert_all_used()?;
    Ok((kn.unwrap_or("key".into()), vn.unwrap_or("value".into())))
}

fn dict2items(a: Value, kw: Kwargs) -> Result<Value, Error> {
    let (kn, vn) = names(&kw)?;
    if a.kind() != ValueKind::Map {
        return Err(err(format!(
            "dict2items requires a dictionary, got {}",
            a.kind()
        )));
    }
    let mut out = Vec::new();
    for k in a.try_iter()? {
        let v = a.get_item(&k)?;
        if v.is_undefined() {
            // A broken item of a lazy dict: ansible renders every value.
            return Err(Error::new(
                minijinja::ErrorKind::UndefinedError,
                format!("dict2items: the value of `{k}` is undefined"),
            ));
        }
        out.push(Value::from_iter([(kn.clone(), k), (vn.clone(), v)]));
    }
    Ok(Value::from(out))
}

fn items2dict(a: Value, kw: Kwargs) -> Result<Value, Error> {
    let (kn, vn) = names(&kw)?;
    let mut out: Vec<(Value, Value)> = Vec::new();
    for it in list_of(&a)? {
        let k = it.get_attr(&kn)?;
        let v = it.get_attr(&vn)?;
        if k.is_undefined() || v.is_undefined() {
            return Err(err(format!(
                "items2dict: an item has no `{kn}` or `{vn}`: {it}"
            )));
        }
        out.push((k, v));
    }
    Ok(Value::from_iter(out))
}

fn uniq(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn set_op(op: &'static str, a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (list_of(a)?, list_of(b)?);
    Ok(Value::from(match op {
        "union" => uniq(a.into_iter().chain(b)),
        "intersect" => uniq(a.into_iter().filter(|x| b.contains(x))),
        "difference" => uniq(a.into_iter().filter(|x| !b.contains(x))),
        _ => {
            let both = uniq(a.iter().filter(|&x| b.contains(x)).cloned());
            uniq(a.into_iter().chain(b).filter(|x| !both.contains(x)))
        }
    }))
}

fn flatten(a: Value, levels: Option<Value>, kw: Kwargs) -> Result<Value, Error> {
    let levels: Option<i64> = match levels {
        Some(l) if !l.is_none() => Some(i64::try_from(l)?),
        _ => kw.get("levels")?,
    };
    let skip_nulls: Option<bool> = kw.get("skip_nulls")?;
    kw.assert_all_used()?;
    let skip_nulls = skip_nulls.unwrap_or(true);
    fn go(
        v: Vec<Value>,
        depth: Option<i64>,
        skip: bool,
        out: &mut Vec<Value>,
    ) -> Result<(), Error> {
        for x in v {
            if skip && x.is_none() {
                continue;
            }
            if x.kind() == ValueKind::Seq && depth != Some(0) {
                go(list_of(&x)?, depth.map(|d| d - 1), skip, out)?;
            } else {
                out.push(x);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(list_of(&a)?, levels, skip_nulls, &mut out)?;
    Ok(Value::from(out))
}

fn product(a: Value, rest: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let repeat: Option<usize> = kw.get("repeat")?;
    kw.assert_all_used()?;
    let mut pools = vec![list_of(&a)?];
    for r in rest.iter() {
        pools.push(list_of(r)?);
    }
    let pools: Vec<Vec<Value>> = (0..repeat.unwrap_or(1))
        .flat_map(|_| pools.clone())
        .collect();
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    for pool in pools {
        if out.len().saturating_mul(pool.len()) > 1_000_000 {
            return Err(err("product: more than a million combinations"));
        }
        out = out
            .into_iter()
            .flat_map(|prefix| {
                pool.iter().map(move |x| {
                    let mut p = prefix.clone();
                    p.push(x.clone());
                    p
                })
            })
            .collect();
    }
    Ok(Value::from(
        out.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

fn choose(items: &[Value], r: usize, perm: bool, out: &mut Vec<Value>, cur: &mut Vec<usize>) {
    if out.len() > 1_000_000 {
        return;
    }
    if cur.len() == r {
        out.push(Value::from(
            cur.iter().map(|i| items[*i].clone()).collect::<Vec<_>>(),
        ));
        return;
    }
    let start = if perm {
        0
    } else {
        cur.last().map(|l| l + 1).unwrap_or(0)
    };
    for i in start..items.len() {
        if perm && cur.contains(&i) {
            continue;
        }
        cur.push(i);
        choose(items, r, perm, out, cur);
        cur.pop();
    }
}

fn subelements(a: Value, path: String, kw: Kwargs) -> Result<Value, Error> {
    let skip: Option<bool> = kw.get("skip_missing")?;
    kw.assert_all_used()?;
    let mut out = Vec::new();
    for item in list_of(&a)? {
        let mut v = item.clone();
        for part in path.split('.') {
            v = v.get_attr(part).unwrap_or_default();
        }
        if v.is_undefined() {
            if skip.unwrap_or(false) {
                continue;
            }
            return Err(err(format!(
                "subelements: could not find `{path}` in {item}"
            )));
        }
        if v.kind() != ValueKind::Seq {
            return Err(err(format!(
                "subelements: `{path}` should point to a list, got {v}"
            )));
        }
        for sub in list_of(&v)? {
            out.push(Value::from(vec![item.clone(), sub]));
        }
    }
    Ok(Value::from(out))
}

fn attr_of(v: &Value, attr: &Option<String>) -> Value {
    match attr {
        Some(a) => a
            .split('.')
            .fold(v.clone(), |v, p| v.get_attr(p).unwrap_or_default()),
        None => v.clone(),
    }
}

fn extreme(a: Value, kw: Kwargs, max: bool) -> Result<Value, Error> {
    let attr: Option<String> = kw.get("attribute")?;
    let _: Option<bool> = kw.get("case_sensitive")?;
    kw.assert_all_used()?;
    let mut best: Option<(Value, Value)> = None;
    for x in list_of(&a)? {
        let key = attr_of(&x, &attr);
        let better = match &best {
            None => true,
            Some((bk, _)) => (key > *bk && max) || (key < *bk && !max),
        };
        if better {
            best = Some((key, x));
        }
    }
    Ok(best.map(|b| b.1).unwrap_or_default())
}

fn sum(a: Value, kw: Kwargs) -> Result<Value, Error> {
    let attr: Option<String> = kw.get("attribute")?;
    let start: Option<Value> = kw.get("start")?;
    kw.assert_all_used()?;
    let mut total = start.unwrap_or(Value::from(0));
    for x in list_of(&a)? {
        let v = attr_of(&x, &attr);
        total = add(&total, &v)?;
    }
    Ok(total)
}

/// Python's `+` for `sum`: numbers (int while both are), lists.
fn add(a: &Value, b: &Value) -> Result<Value, Error> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        if a.kind() == ValueKind::Number && b.kind() == ValueKind::Number {
            return Ok(Value::from(x.saturating_add(y)));
        }
    }
    let f = super::filters::as_float;
    if a.kind() == ValueKind::Number && b.kind() == ValueKind::Number {
        if let (Some(x), Some(y)) = (f(a), f(b)) {
            return Ok(Value::from(x + y));
        }
    }
    if a.kind() == ValueKind::Seq && b.kind() == ValueKind::Seq {
        return Ok(Value::from(
            list_of(a)?
                .into_iter()
                .chain(list_of(b)?)
                .collect::<Vec<_>>(),
        ));
    }
    Err(err(format!(
        "sum: unsupported operand types: {} and {}",
        a.kind(),
        b.kind()
    )))
}

/// Python's `Random(seed)` for a seed, or a random one without.
fn rng(seed: Option<Value>) -> PyRandom {
    match seed.filter(|s| !s.is_none() && !s.is_undefined()) {
        Some(s) => match (s.kind(), s.as_i64()) {
            (ValueKind::Number, Some(n)) => PyRandom::from_int_seed(n),
            _ => PyRandom::from_str_seed(&super::pycompat::py_str(&s)),
        },
        None => {
            use rand::Rng;
            PyRandom::from_int_seed(rand::thread_rng().gen::<i64>())
        }
    }
}

/// ansible's `random`: a number in `range(start, end, step)`, or an item.
fn random(v: Value, start: Option<i64>, step: Option<i64>, kw: Kwargs) -> Result<Value, Error> {
    let seed: Option<Value> = kw.get("seed")?;
    let start: Option<i64> = match start {
        Some(s) => Some(s),
        None => kw.get("start")?,
    };
    let step: Option<i64> = match step {
        Some(s) => Some(s),
        None => kw.get("step")?,
    };
    kw.assert_all_used()?;
    defined(&v, "random")?;
    let mut r = rng(seed);
    if let (ValueKind::Number, Some(end)) = (v.kind(), v.as_i64()) {
        let (start, step) = (start.unwrap_or(0), step.filter(|s| *s != 0).unwrap_or(1));
        return r
            .randrange(start, end, step)
            .map(Value::from)
            .ok_or_else(|| {
                err(format!(
                    "random: empty range for randrange({start}, {end}, {step})"
                ))
            });
    }
    if start.is_some() || step.is_some() {
        return Err(err(
            "random: start and step can only be used with integer values",
        ));
    }
    let items = list_of(&v)?;
    if items.is_empty() {
        return Err(err("random: cannot choose from an empty sequence"));
    }
    let i = r.below(items.len() as u64) as usize;
    Ok(items[i].clone())
}

/// ansible's `shuffle` (`randomize_list`).
fn shuffle(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let seed: Option<Value> = kw.get("seed")?;
    kw.assert_all_used()?;
    let mut items = list_of(&v)?;
    rng(seed).shuffle(&mut items);
    Ok(Value::from(items))
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    for op in ["union", "intersect", "difference", "symmetric_difference"] {
        env.add_filter(op, move |a: Value, b: Value| set_op(op, &a, &b));
    }
    env.add_filter("flatten", flatten);
    env.add_filter("product", product);
    env.add_filter(
        "permutations",
        |a: Value, r: Option<usize>| -> Result<Value, Error> {
            let items = list_of(&a)?;
            let mut out = Vec::new();
            choose(
                &items,
                r.unwrap_or(items.len()),
                true,
                &mut out,
                &mut Vec::new(),
            );
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "combinations",
        |a: Value, r: usize| -> Result<Value, Error> {
            let items = list_of(&a)?;
            let mut out = Vec::new();
            choose(&items, r, false, &mut out, &mut Vec::new());
            Ok(Value::from(out))
        },
    );
    env.add_filter(
        "zip_longest",
        |a: Value, rest: Rest<Value>, kw: Kwargs| -> Result<Value, Error> {
            let fill: Option<Value> = kw.get("fillvalue")?;
            kw.assert_all_used()?;
            let mut lists = vec![list_of(&a)?];
            for r in rest.iter() {
                lists.push(list_of(r)?);
            }
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            let fill = fill.unwrap_or(Value::from(()));
            Ok(Value::from(
                (0..n)
                    .map(|i| {
                        Value::from(
                            lists
                                .iter()
                                .map(|l| l.get(i).cloned().unwrap_or(fill.clone()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect::<Vec<_>>(),
            ))
        },
    );
    env.add_filter("subelements", subelements);
    env.add_filter("max", |a: Value, kw: Kwargs| extreme(a, kw, true));
    env.add_filter("min", |a: Value, kw: Kwargs| extreme(a, kw, false));
    env.add_filter("sum", sum);
    env.add_filter("random", random);
    env.add_filter("shuffle", shuffle);
}
