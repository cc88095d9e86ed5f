//! ansible's Jinja tests beyond minijinja's built-ins (`defined`, `none`,
//! `string`, `mapping`, `in`, ... come from minijinja): task results
//! (`failed`, `changed`, `skipped`, `success`, ...), sets (`subset`,
//! `superset`, `contains`, `any`, `all`), Python truth (`truthy`, `falsy`),
//! paths on the controller (`file`, `directory`, `link`, `exists`, `abs`,
//! `mount`, `same_file`) and `nan`, `vault_encrypted`.
//! `match`/`search`/`regex` live with the regex filters, `version` with
//! the version comparison.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, Value};

use super::filters::to_bool;
use super::{err, list_of};

fn result<'a>(v: &'a Value, test: &str) -> Result<&'a Value, Error> {
    if v.kind() != ValueKind::Map {
        return Err(err(format!("The '{test}' test expects a dictionary")));
    }
    Ok(v)
}

fn flag(v: &Value, key: &str) -> bool {
    // The test's value is the key's value, taken for its Python truth.
    v.get_attr(key).map(|x| x.is_true()).unwrap_or(false)
}

fn changed(v: &Value) -> Result<bool, Error> {
    let v = result(v, "changed")?;
    // A `changed` key decides; only without one do loop results count.
    if !v.get_attr("changed").unwrap_or_default().is_undefined() {
        return Ok(flag(v, "changed"));
    }
    let results = v.get_attr("results").unwrap_or_default();
    if results.kind() == ValueKind::Seq {
        for r in list_of(&results)? {
            if r.kind() == ValueKind::Map && flag(&r, "changed") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn path_test(p: &str, what: &str) -> bool {
    let path = std::path::Path::new(p);
    match what {
        "file" => path.is_file(),
        "directory" => path.is_dir(),
        "link" => path.is_symlink(),
        "exists" => path.exists(),
        "abs" => path.is_absolute(),
        _ => false,
    }
}

fn is_mount(p: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = std::path::Path::new(p);
    let (Ok(m), Ok(parent)) = (
        std::fs::symlink_metadata(path),
        std::fs::metadata(path.join("..")),
    ) else {
        return false;
    };
    m.dev() != parent.dev() || m.ino() == parent.ino()
}

fn same_file(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

pub(super) fn register(env: &mut Environment<'static>) {
    for name in ["succeeded", "success", "successful"] {
        env.add_test(name, |v: Value| -> Result<bool, Error> {
            Ok(!flag(result(&v, "success")?, "failed"))
        });
    }
    for name in ["failed", "failure"] {
        env.add_test(name, |v: Value| -> Result<bool, Error> {
            Ok(flag(result(&v, "failed")?, "failed"))
        });
    }
    for name in ["changed", "change"] {
        env.add_test(name, |v: Value| changed(&v));
    }
    for name in ["skipped", "skip"] {
        env.add_test(name, |v: Value| -> Result<bool, Error> {
            Ok(flag(result(&v, "skipped")?, "skipped"))
        });
    }
    env.add_test("finished", |v: Value| -> Result<bool, Error> {
        let f = result(&v, "finished")?
            .get_attr("finished")
            .unwrap_or_default();
        Ok(f.is_undefined() || f == Value::from(1) || f.is_true())
    });
    env.add_test("started", |v: Value| -> Result<bool, Error> {
        let f = result(&v, "started")?
            .get_attr("started")
            .unwrap_or_default();
        Ok(f.is_undefined() || f == Value::from(1) || f.is_true())
    });
    env.add_test("unreachable", |v: Value| -> Result<bool, Error> {
        Ok(flag(result(&v, "unreachable")?, "unreachable"))
    });
    env.add_test("reachable", |v: Value| -> Result<bool, Error> {
        Ok(!flag(result(&v, "reachable")?, "unreachable"))
    });
    env.add_test("contains", |v: Value, x: Value| -> Result<bool, Error> {
        Ok(list_of(&v)?.contains(&x))
    });
    env.add_test("subset", |a: Value, b: Value| -> Result<bool, Error> {
        let b = list_of(&b)?;
        Ok(list_of(&a)?.iter().all(|x| b.contains(x)))
    });
    env.add_test("superset", |a: Value, b: Value| -> Result<bool, Error> {
        let a = list_of(&a)?;
        Ok(list_of(&b)?.iter().all(|x| a.contains(x)))
    });
    // Jinja's `sequence`: anything with a length and items (str, list, dict).
    env.add_test("sequence", |v: Value| {
        matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map
        )
    });
    // Python's bool is an int: `true is number`.
    env.add_test("number", |v: Value| {
        matches!(v.kind(), ValueKind::Number | ValueKind::Bool)
    });
    env.add_test("any", |v: Value| -> Result<bool, Error> {
        Ok(list_of(&v)?.iter().any(Value::is_true))
    });
    env.add_test("all", |v: Value| -> Result<bool, Error> {
        Ok(list_of(&v)?.iter().all(Value::is_true))
    });
    env.add_test("truthy", |v: Value, kw: Kwargs| -> Result<bool, Error> {
        let conv: Option<bool> = kw.get("convert_bool")?;
        kw.assert_all_used()?;
        Ok(if conv.unwrap_or(false) && v.kind() == ValueKind::String {
            to_bool(&v)
        } else {
            v.is_true()
        })
    });
    env.add_test("falsy", |v: Value, kw: Kwargs| -> Result<bool, Error> {
        let conv: Option<bool> = kw.get("convert_bool")?;
        kw.assert_all_used()?;
        Ok(!if conv.unwrap_or(false) && v.kind() == ValueKind::String {
            to_bool(&v)
        } else {
            v.is_true()
        })
    });
    for what in ["file", "directory", "link", "exists", "abs"] {
        env.add_test(what, move |p: String| path_test(&p, what));
    }
    env.add_test("is_file", |p: String| path_test(&p, "file"));
    env.add_test("is_dir", |p: String| path_test(&p, "directory"));
    env.add_test("is_link", |p: String| path_test(&p, "link"));
    env.add_test("is_abs", |p: String| path_test(&p, "abs"));
    env.add_test("mount", |p: String| is_mount(&p));
    env.add_test("is_mount", |p: String| is_mount(&p));
    env.add_test("same_file", |a: String, b: String| same_file(&a, &b));
    env.add_test("is_same_file", |a: String, b: String| same_file(&a, &b));
    env.add_test("nan", |v: Value| {
        super::filters::as_float(&v).is_some_and(f64::is_nan) && v.kind() == ValueKind::Number
    });
    env.add_test("vault_encrypted", |v: Value| {
        v.as_str().is_some_and(|s| s.starts_with("$ANSIBLE_VAULT;"))
    });
    env.add_test("vaulted_file", |p: String| {
        std::fs::read_to_string(p).is_ok_and(|s| s.starts_with("$ANSIBLE_VAULT;"))
    });
}
