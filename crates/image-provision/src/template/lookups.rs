//! `lookup()`, `query()` and `q()`, run on the controller as ansible runs
//! them: `file`, `env`, `vars`, `template`, `pipe`, `first_found`,
//! `fileglob`, `ini`, `csvfile`, `varnames` (the last three in
//! `lookup_tables`), `items`, `list`, `indexed_items`, `dict`, `together`,
//! `nested`, `sequence`, `lines`. Relative files are searched in the role's
//! and play's directories (`files/` or `templates/` first), from the
//! `__search_dirs` variable the engine sets. `wantlist=` and
//! `errors=strict|warn|ignore` behave as in ansible-core 2.19.

use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, ErrorKind, State, Value};

use super::{err, list_of};

fn search_dirs(state: &State) -> Vec<PathBuf> {
    state
        .lookup("__search_dirs")
        .and_then(|v| {
            v.try_iter()
                .ok()
                .map(|it| it.map(|x| x.to_string().into()).collect())
        })
        .unwrap_or_default()
}

/// The directories a relative name is looked up in (`sub` first).
fn candidates(state: &State, name: &str, sub: &str) -> Vec<PathBuf> {
    let p = PathBuf::from(name);
    if p.is_absolute() {
        return vec![p];
    }
    let mut out = Vec::new();
    for d in search_dirs(state) {
        out.push(d.join(sub).join(name));
        out.push(d.join(name));
    }
    out.push(p);
    out
}

fn find_file(state: &State, name: &str, sub: &str) -> Option<PathBuf> {
    candidates(state, name, sub)
        .into_iter()
        .find(|c| c.exists())
}

pub(super) fn term_str(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

pub(super) fn read(state: &State, term: &str, sub: &str, kind: &str) -> Result<String, Error> {
    let p = find_file(state, term, sub).ok_or_else(|| {
        err(format!(
            "lookup('{kind}'): could not locate file in lookup: {term}"
        ))
    })?;
    std::fs::read_to_string(&p)
        .map_err(|e| err(format!("lookup('{kind}', '{term}'): {}: {e}", p.display())))
}

/// Runs a shell command on the controller (`pipe`, `lines`), in the
/// playbook's directory as ansible does.
fn pipe(state: &State, cmd: &str) -> Result<String, Error> {
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(std::process::Stdio::null());
    if let Some(dir) = state
        .lookup("playbook_dir")
        .and_then(|d| d.as_str().map(PathBuf::from))
    {
        if dir.is_dir() {
            c.current_dir(dir);
        }
    }
    let out = c
        .output()
        .map_err(|e| err(format!("lookup('pipe'): cannot run `{cmd}`: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "lookup_plugin.pipe({cmd}) returned {}",
            out.status.code().unwrap_or(-1)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fileglob(state: &State, pattern: &str) -> Result<Vec<Value>, Error> {
    let (dir, base) = match pattern.rsplit_once('/') {
        Some((d, b)) => (d.to_string(), b.to_string()),
        None => (String::new(), pattern.to_string()),
    };
    let glob = globset::Glob::new(&base)
        .map_err(|e| err(format!("lookup('fileglob', '{pattern}'): {e}")))?
        .compile_matcher();
    let dirs: Vec<PathBuf> = if dir.starts_with('/') {
        vec![PathBuf::from(&dir)]
    } else {
        candidates(state, if dir.is_empty() { "." } else { &dir }, "files")
    };
    for d in dirs.iter().filter(|d| d.is_dir()) {
        let mut found: Vec<String> = std::fs::read_dir(d)
            .map_err(|e| err(format!("lookup('fileglob'): {}: {e}", d.display())))?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file() && glob.is_match(e.file_name()))
            .map(|e| normalize(&e.path()))
            .collect();
        if !found.is_empty() {
            found.sort();
            return Ok(found.into_iter().map(Value::from).collect());
        }
    }
    Ok(Vec::new())
}

fn normalize(p: &Path) -> String {
    let s = p.display().to_string();
    s.replace("/./", "/")
}

fn first_found(state: &State, terms: &[Value], kw: &Kwargs) -> Result<Vec<Value>, Error> {
    let kw_files: Option<Value> = kw.get("files")?;
    let kw_paths: Option<Value> = kw.get("paths")?;
    let kw_skip: Option<bool> = kw.get("skip")?;
    let split = |v: &Value| -> Result<Vec<String>, Error> {
        Ok(if v.kind() == ValueKind::String {
            // ansible splits a string of names on `,` and `;` (and `:`
            // for paths).
            term_str(v)
                .split([',', ';'])
                .map(str::to_string)
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            list_of(v)?.iter().map(term_str).collect()
        })
    };
    let mut files: Vec<String> = Vec::new();
    let mut paths: Vec<String> = match &kw_paths {
        Some(p) => split(p)?,
        None => Vec::new(),
    };
    let mut skip = kw_skip.unwrap_or(false);
    if let Some(f) = &kw_files {
        files.extend(split(f)?);
    }
    for t in terms {
        match t.kind() {
            ValueKind::Map => {
                if let Ok(f) = t.get_attr("files") {
                    if !f.is_undefined() {
                        files.extend(split(&f)?);
                    }
                }
                if let Ok(p) = t.get_attr("paths") {
                    if !p.is_undefined() {
                        paths.extend(split(&p)?);
                    }
                }
                if let Ok(s) = t.get_attr("skip") {
                    skip |= s.is_true();
                }
            }
            ValueKind::Seq => files.extend(list_of(t)?.iter().map(term_str)),
            _ => files.push(term_str(t)),
        }
    }
    for f in &files {
        let found = if paths.is_empty() {
            find_file(state, f, "files")
        } else {
            paths
                .iter()
                .map(|p| Path::new(p).join(f))
                .flat_map(|p| {
                    let s = p.display().to_string();
                    candidates(state, &s, "files")
                })
                .find(|c| c.exists())
        };
        if let Some(p) = found {
            return Ok(vec![Value::from(normalize(&p))]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(err("No file was found when using first_found."))
}

fn sequence(terms: &[Value], kw: &Kwargs) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    let kw_get = |k: &str| -> Result<Option<Value>, Error> { kw.get(k) };
    let specs: Vec<String> = terms.iter().map(term_str).collect();
    let specs = if specs.is_empty() {
        vec![String::new()]
    } else {
        specs
    };
    let seq_re =
        regex::Regex::new(r"^(?:(-?\d+|0x[0-9a-f]+)-)?(-?\d+|0x[0-9a-f]+)(?:/(-?\d+))?(?::(.+))?$")
            .expect("static pattern");
    for spec in specs {
        let (mut start, mut end, mut stride, mut fmt) = (1i64, None::<i64>, 1i64, "%d".to_string());
        let mut count = None::<i64>;
        for (k, v) in [("start", &mut start), ("stride", &mut stride)] {
            if let Some(x) = kw_get(k)? {
                *v = x
                    .to_string()
                    .parse()
                    .map_err(|_| err(format!("sequence: bad {k}")))?;
            }
        }
        if let Some(x) = kw_get("end")? {
            end = x.to_string().parse().ok();
        }
        if let Some(x) = kw_get("count")? {
            count = x.to_string().parse().ok();
        }
        if let Some(x) = kw_get("format")? {
            fmt = x.to_string();
        }
        let re = &seq_re;
        let num = |s: &str| -> i64 {
            s.strip_prefix("0x")
                .map(|h| i64::from_str_radix(h, 16).unwrap_or(0))
                .unwrap_or_else(|| s.parse().unwrap_or(0))
        };
        if let Some(c) = re.captures(spec.trim()) {
            if let Some(s) = c.get(1) {
                start = num(s.as_str());
            }
            end = Some(num(&c[2]));
            if let Some(s) = c.get(3) {
                stride = num(s.as_str());
            }
            if let Some(f) = c.get(4) {
                fmt = f.as_str().to_string();
            }
        } else {
            for part in spec.split_whitespace() {
                let Some((k, v)) = part.split_once('=') else {
                    continue;
                };
                match k {
                    "start" => start = num(v),
                    "end" => end = Some(num(v)),
                    "stride" => stride = num(v),
                    "count" => count = Some(num(v)),
                    "format" => fmt = v.to_string(),
                    _ => return Err(err(format!("sequence: unknown parameter `{k}`"))),
                }
            }
        }
        if let Some(c) = count {
            end = Some(start + (c - 1) * stride);
        }
        let end = end.ok_or_else(|| err("sequence: must specify count or end"))?;
        if stride == 0 {
            continue;
        }
        let mut i = start;
        while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
            if out.len() > 100_000 {
                return Err(err("sequence: more than 100000 items"));
            }
            out.push(Value::from(minijinja::format_filter(
                minijinja::FormatStyle::Printf,
                &fmt,
                &[Value::from(i)],
            )?));
            i += stride;
        }
    }
    Ok(out)
}

fn values(state: &State, kind: &str, args: &[Value], kw: &Kwargs) -> Result<Vec<Value>, Error> {
    let default: Option<Value> = kw.get("default")?;
    let mut out = Vec::new();
    match kind {
        "items" | "list" | "indexed_items" | "together" | "nested" | "dict" | "first_found"
        | "sequence" => {}
        _ => {
            for a in args {
                let term = term_str(a);
                out.push(match kind {
                    "env" => match std::env::var(&term) {
                        Ok(v) => Value::from(v),
                        Err(_) => default.clone().unwrap_or(Value::from("")),
                    },
                    "file" => {
                        let lstrip: Option<bool> = kw.get("lstrip")?;
                        let rstrip: Option<bool> = kw.get("rstrip")?;
                        let mut s = read(state, &term, "files", "file")?;
                        if rstrip.unwrap_or(true) {
                            s.truncate(s.trim_end().len());
                        }
                        if lstrip.unwrap_or(false) {
                            s = s.trim_start().to_string();
                        }
                        Value::from(s)
                    }
                    "vars" => match state.lookup(&term) {
                        Some(v) if !v.is_undefined() => v,
                        _ => match &default {
                            Some(d) => d.clone(),
                            None => {
                                return Err(Error::new(
                                    ErrorKind::UndefinedError,
                                    format!("No variable named '{term}' was found."),
                                ))
                            }
                        },
                    },
                    "template" => {
                        let path = find_file(state, &term, "templates");
                        let src = read(state, &term, "templates", "template")?;
                        let extra: Option<Value> = kw.get("template_vars")?;
                        let _: Option<bool> = kw.get("convert_data")?;
                        let vars = state.lookup("__vars").unwrap_or_default();
                        let ctx = match extra {
                            Some(e) => minijinja::context! { ..e, ..vars },
                            None => vars,
                        };
                        let src = super::syntax::percent_format_template(&src);
                        let search =
                            super::loader::search_path(path.as_deref(), &search_dirs(state));
                        let env = super::loader::file_env(state.env(), search);
                        Value::from(env.render_str(&src, ctx)?)
                    }
                    "pipe" => Value::from(pipe(state, &term)?.trim_end().to_string()),
                    "lines" => {
                        for l in pipe(state, &term)?.lines() {
                            out.push(Value::from(l));
                        }
                        continue;
                    }
                    "ini" => {
                        out.extend(super::lookup_tables::ini(state, &term, kw)?);
                        continue;
                    }
                    "csvfile" => {
                        out.extend(super::lookup_tables::csvfile(state, &term, kw)?);
                        continue;
                    }
                    "varnames" => {
                        out.extend(super::lookup_tables::varnames(state, &term)?);
                        continue;
                    }
                    "fileglob" => {
                        out.extend(fileglob(state, &term)?);
                        continue;
                    }
                    other => {
                        return Err(err(format!(
                            "lookup plugin `{other}` is not supported (env, file, vars, template, pipe, lines, first_found, fileglob, ini, csvfile, varnames, items, list, indexed_items, dict, together, nested, sequence)"
                        )))
                    }
                });
            }
            return Ok(out);
        }
    }
    // Terms that are lists are taken as their items (listify).
    let terms: Vec<Value> = if args.len() == 1 && args[0].kind() == ValueKind::Seq {
        list_of(&args[0])?
    } else {
        args.to_vec()
    };
    Ok(match kind {
        "items" => {
            for t in terms {
                if t.kind() == ValueKind::Seq {
                    out.extend(list_of(&t)?);
                } else {
                    out.push(t);
                }
            }
            out
        }
        "list" => terms,
        "indexed_items" => terms
            .into_iter()
            .enumerate()
            .map(|(i, x)| Value::from(vec![Value::from(i), x]))
            .collect(),
        "dict" => {
            for d in args {
                if d.kind() != ValueKind::Map {
                    return Err(err("with_dict expects a dict"));
                }
                for k in d.try_iter()? {
                    let v = d.get_item(&k)?;
                    out.push(Value::from_iter([("key", k), ("value", v)]));
                }
            }
            out
        }
        "together" | "nested" => {
            let lists: Vec<Vec<Value>> = terms.iter().map(list_of).collect::<Result<_, _>>()?;
            if kind == "together" {
                let n = lists.iter().map(Vec::len).max().unwrap_or(0);
                (0..n)
                    .map(|i| {
                        Value::from(
                            lists
                                .iter()
                                .map(|l| l.get(i).cloned().unwrap_or(Value::from(())))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect()
            } else {
                let mut acc: Vec<Vec<Value>> = vec![Vec::new()];
                for l in lists {
                    if acc.len().saturating_mul(l.len()) > 1_000_000 {
                        return Err(err("nested: more than a million items"));
                    }
                    acc = acc
                        .into_iter()
                        .flat_map(|p| {
                            l.iter().map(move |x| {
                                let mut p = p.clone();
                                p.push(x.clone());
                                p
                            })
                        })
                        .collect();
                }
                acc.into_iter().map(Value::from).collect()
            }
        }
        "first_found" => first_found(state, args, kw)?,
        "sequence" => sequence(args, kw)?,
        _ => out,
    })
}

/// Runs a lookup with `errors=` handling; `None` when ignored.
fn run(
    state: &State,
    kind: &str,
    args: &[Value],
    kw: &Kwargs,
) -> Result<Option<Vec<Value>>, Error> {
    let errors: Option<String> = kw.get("errors")?;
    match values(state, kind, args, kw) {
        Ok(v) => Ok(Some(v)),
        Err(e) => match errors.as_deref().unwrap_or("strict") {
            "ignore" => Ok(None),
            "warn" => {
                tracing::warn!("lookup('{kind}') failed: {e}");
                Ok(None)
            }
            _ => Err(e),
        },
    }
}

/// A lookup's short name (`ansible.builtin.file` is `file`).
fn short(kind: &str) -> &str {
    kind.strip_prefix("ansible.builtin.").unwrap_or(kind)
}

fn lookup(state: &State, kind: String, args: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let kind = short(&kind);
    let wantlist: Option<bool> = kw.get("wantlist")?;
    let wantlist = wantlist.unwrap_or(false);
    let Some(vals) = run(state, kind, &args, &kw)? else {
        return Ok(if wantlist {
            Value::from(Vec::<Value>::new())
        } else {
            Value::from(())
        });
    };
    if wantlist {
        return Ok(Value::from(vals));
    }
    Ok(match vals.len() {
        1 => vals.into_iter().next().unwrap_or_default(),
        n if n > 1 && vals.iter().all(|v| v.kind() == ValueKind::String) => Value::from(
            vals.iter()
                .map(|v| v.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => Value::from(vals),
    })
}

fn query(state: &State, kind: String, args: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let _: Option<bool> = kw.get("wantlist")?;
    Ok(Value::from(
        run(state, short(&kind), &args, &kw)?.unwrap_or_default(),
    ))
}

pub(super) fn register(env: &mut minijinja::Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
}

#[cfg(test)]
mod unit {
    use serde_json::json;

    use super::super::Templater;

    #[test]
    fn controller_files_are_found_in_the_search_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let role = dir.path().join("role");
        std::fs::create_dir_all(role.join("files")).unwrap();
        std::fs::create_dir_all(role.join("templates")).unwrap();
        std::fs::write(role.join("files/a.conf"), "alpha\n\n").unwrap();
        std::fs::write(role.join("files/b.conf"), "beta").unwrap();
        std::fs::write(role.join("files/c.txt"), "gamma").unwrap();
        std::fs::write(role.join("templates/t.j2"), "{{ greeting }} {{ who }}").unwrap();
        let t = Templater::new();
        let c = t.context(
            json!({"greeting": "hi", "__search_dirs": [role.display().to_string()]})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let r = |s: &str| t.render(&json!(s), &c);
        assert_eq!(r("{{ lookup('file', 'a.conf') }}").unwrap(), json!("alpha"));
        let glob = r("{{ query('fileglob', '*.conf') | map('basename') | list }}").unwrap();
        assert_eq!(glob, json!(["a.conf", "b.conf"]));
        let first = r("{{ lookup('first_found', ['missing.conf', 'b.conf']) }}").unwrap();
        assert_eq!(
            first,
            json!(role.join("files/b.conf").display().to_string())
        );
        let tpl = r("{{ lookup('template', 't.j2', template_vars={'who': 'there'}) }}").unwrap();
        assert_eq!(tpl, json!("hi there"));
        // Text as ansible-core 2.19 renders it (checked with its template
        // lookup and module): none prints nothing, Python's str() of
        // values, trim_blocks, the final newline kept.
        std::fs::write(
            role.join("templates/t1.j2"),
            "a{{ none }}b {{ [1, \"x\"] }} {{ true }}\n{% if true %}\n  in\n{% endif %}\nend\n",
        )
        .unwrap();
        let t1 = r("{{ lookup('template', 't1.j2') }}").unwrap();
        assert_eq!(t1, json!("ab [1, 'x'] True\n  in\nend\n"));
        assert!(r("{{ lookup('file', 'missing.conf') }}").is_err());
        // ini, csvfile, varnames: the values ansible-core 2.19 gave for
        // the same files and terms.
        std::fs::write(
            role.join("files/conf.ini"),
            "[main]\nuser = alice\nport=22\n[other]\nuser: bob\n",
        )
        .unwrap();
        std::fs::write(
            role.join("files/users.csv"),
            "alice,1001,admin\nbob,1002,user\n\"c d\",3,\"x,y\"\n",
        )
        .unwrap();
        std::fs::write(role.join("files/props.properties"), "user=carol\nhome=/h\n").unwrap();
        for (tpl, want) in [
            (
                "{{ lookup('ini', 'user section=main file=conf.ini') }}",
                json!("alice"),
            ),
            (
                "{{ lookup('ini', 'user', section='other', file='conf.ini') }}",
                json!("bob"),
            ),
            (
                "{{ lookup('ini', 'port section=main file=conf.ini') }}",
                json!("22"),
            ),
            (
                "{{ lookup('ini', 'nope section=main file=conf.ini default=dflt') }}",
                json!("dflt"),
            ),
            (
                "{{ lookup('ini', 'nope section=main file=conf.ini') }}",
                json!(""),
            ),
            (
                "{{ lookup('ini', 'home type=properties file=props.properties') }}",
                json!("/h"),
            ),
            (
                "{{ lookup('ini', 'u.* section=main file=conf.ini re=true') }}",
                json!("alice"),
            ),
            (
                "{{ lookup('csvfile', 'bob file=users.csv delimiter=,') }}",
                json!("1002"),
            ),
            (
                "{{ lookup('csvfile', 'bob file=users.csv delimiter=, col=2') }}",
                json!("user"),
            ),
            (
                "{{ lookup('csvfile', 'c d file=users.csv delimiter=, col=2') }}",
                json!("x,y"),
            ),
            (
                "{{ lookup('csvfile', 'zed file=users.csv delimiter=, default=none') }}",
                json!("none"),
            ),
            (
                "{{ lookup('csvfile', 'zed file=users.csv delimiter=,') }}",
                json!([]),
            ),
            ("{{ lookup('varnames', '^gree') }}", json!("greeting")),
        ] {
            assert_eq!(r(tpl).unwrap(), want, "{tpl}");
        }
        assert!(
            r("{{ lookup('ini', 'user=carol type=properties file=props.properties') }}").is_err()
        );
        assert_eq!(
            r("{{ lookup('file', 'missing.conf', errors='ignore') }}").unwrap(),
            json!(null)
        );
    }
}
