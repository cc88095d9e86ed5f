//! `yum_repository`: one repository section of a `.repo` file
//! (`<reposdir>/<file>.repo`, `file` defaulting to the repository's name), as
//! ansible's module keeps it: the file is read and parsed as an INI file, the
//! section is replaced (its keys sorted, written last) or removed, the other
//! sections stay; the file is written only when the parsed repositories
//! change and removed when its last section goes. Returns `repo` and `state`.

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{self, q};

/// Parameters that are not repository keys.
const OTHER_PARAMS: &[&str] = &[
    "name",
    "description",
    "file",
    "reposdir",
    "state",
    "mode",
    "owner",
    "group",
    "unsafe_writes",
    "attributes",
    "seuser",
    "serole",
    "setype",
    "selevel",
];

/// Repository keys with their value type, as ansible's argument spec.
const KEYS: &[(&str, Kind)] = &[
    ("bandwidth", Kind::Str),
    ("baseurl", Kind::Lines),
    ("cost", Kind::Str),
    ("countme", Kind::Bool),
    ("deltarpm_metadata_percentage", Kind::Str),
    ("deltarpm_percentage", Kind::Str),
    ("enabled", Kind::Bool),
    ("enablegroups", Kind::Bool),
    ("exclude", Kind::Words),
    ("failovermethod", Kind::Str),
    ("gpgcakey", Kind::Str),
    ("gpgcheck", Kind::Bool),
    ("gpgkey", Kind::Lines),
    ("module_hotfixes", Kind::Bool),
    ("http_caching", Kind::Str),
    ("include", Kind::Str),
    ("includepkgs", Kind::Words),
    ("ip_resolve", Kind::Str),
    ("keepalive", Kind::Bool),
    ("keepcache", Kind::Str),
    ("metadata_expire", Kind::Str),
    ("metadata_expire_filter", Kind::Str),
    ("metalink", Kind::Str),
    ("mirrorlist", Kind::Str),
    ("mirrorlist_expire", Kind::Str),
    ("password", Kind::Str),
    ("priority", Kind::Str),
    ("protect", Kind::Bool),
    ("proxy", Kind::Str),
    ("proxy_password", Kind::Str),
    ("proxy_username", Kind::Str),
    ("repo_gpgcheck", Kind::Bool),
    ("retries", Kind::Str),
    ("s3_enabled", Kind::Bool),
    ("skip_if_unavailable", Kind::Bool),
    ("sslcacert", Kind::Str),
    ("ssl_check_cert_permissions", Kind::Bool),
    ("sslclientcert", Kind::Str),
    ("sslclientkey", Kind::Str),
    ("sslverify", Kind::Bool),
    ("throttle", Kind::Str),
    ("timeout", Kind::Str),
    ("ui_repoid_vars", Kind::Str),
    ("username", Kind::Str),
];

/// Aliases of repository keys: (alias, key).
const ALIASES: &[(&str, &str)] = &[
    ("excludepkgs", "exclude"),
    ("ca_cert", "sslcacert"),
    ("client_cert", "sslclientcert"),
    ("client_key", "sslclientkey"),
    ("validate_certs", "sslverify"),
];

/// How a key's value is written.
#[derive(Clone, Copy)]
enum Kind {
    /// As given.
    Str,
    /// A boolean as `1`/`0`.
    Bool,
    /// A list, one item per line.
    Lines,
    /// A list, space separated.
    Words,
}

/// Every parameter name (the repository keys, their aliases, the others).
fn all_params() -> &'static [&'static str] {
    static P: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        OTHER_PARAMS
            .iter()
            .copied()
            .chain(KEYS.iter().map(|(k, _)| *k))
            .chain(ALIASES.iter().map(|(a, _)| *a))
            .collect()
    })
}

/// A parsed `.repo` file: sections in file order, keys in file order.
type Ini = Vec<(String, Vec<(String, String)>)>;

/// Parses an INI file as Python's `RawConfigParser` does for `.repo` files:
/// `#`/`;` comment lines, `[section]`, `key = value` or `key: value` (key
/// lower-cased), indented continuation lines joined with newlines.
fn parse(text: &str) -> Result<Ini, String> {
    let mut ini: Ini = Vec::new();
    let mut last_key = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            last_key = false;
            continue;
        }
        if line.starts_with([' ', '\t']) && last_key {
            if let Some((_, kv)) = ini.last_mut() {
                if let Some((_, v)) = kv.last_mut() {
                    v.push('\n');
                    v.push_str(t);
                }
            }
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            ini.retain(|(s, _)| s != name);
            ini.push((name.to_string(), Vec::new()));
            last_key = false;
            continue;
        }
        let Some(i) = t.find(['=', ':']) else {
            return Err(format!("line {}: not `key = value`: {t}", n + 1));
        };
        let Some((_, kv)) = ini.last_mut() else {
            return Err(format!("line {}: a key before any [section]", n + 1));
        };
        let key = t[..i].trim().to_lowercase();
        let value = t[i + 1..].trim().to_string();
        kv.retain(|(k, _)| *k != key);
        kv.push((key, value));
        last_key = true;
    }
    Ok(ini)
}

/// The file as `RawConfigParser.write` writes it.
fn write(ini: &Ini) -> String {
    let mut out = String::new();
    for (section, kv) in ini {
        out.push_str(&format!("[{section}]\n"));
        for (k, v) in kv {
            out.push_str(&format!("{k} = {}\n", v.replace('\n', "\n\t")));
        }
        out.push('\n');
    }
    out
}

/// What ansible compares to decide `changed`: sections and keys sorted.
fn dump(ini: &Ini) -> String {
    let mut sorted: Vec<(String, Vec<(String, String)>)> = ini.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, kv) in &mut sorted {
        kv.sort();
    }
    write(&sorted)
}

/// A parameter's value as written into the file.
fn value(kind: Kind, key: &str, v: &Json) -> Result<String, ModuleError> {
    let items = |v: &Json| -> Vec<String> {
        match v {
            Json::Array(a) => a.iter().map(super::json_to_string).collect(),
            Json::String(s) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            other => vec![super::json_to_string(other)],
        }
    };
    Ok(match kind {
        Kind::Str => super::json_to_string(v),
        Kind::Bool => match super::json_bool(v) {
            Some(true) => "1".into(),
            Some(false) => "0".into(),
            None => {
                return Err(ModuleError::Arg(format!(
                    "yum_repository: `{key}` must be a boolean, got {v}"
                )))
            }
        },
        Kind::Lines => items(v).join("\n"),
        Kind::Words => items(v).join(" "),
    })
}

/// The `yum_repository` module.
pub struct YumRepository;

#[async_trait]
impl Module for YumRepository {
    fn name(&self) -> &'static str {
        "yum_repository"
    }
    fn params(&self) -> &'static [&'static str] {
        all_params()
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let file = args.opt_str("file").unwrap_or_else(|| name.clone());
        let dir = args
            .opt_str("reposdir")
            .unwrap_or_else(|| "/etc/yum.repos.d".into());
        let dest = format!("{}/{file}.repo", dir.trim_end_matches('/'));
        // The section's keys, sorted as ansible adds them (`name` is the
        // description).
        let mut section: Vec<(String, String)> = Vec::new();
        if state == "present" {
            let description = args.opt_str("description").ok_or_else(|| {
                ModuleError::Arg(
                    "yum_repository: state is present but all of the following are missing: description"
                        .into(),
                )
            })?;
            if ["baseurl", "mirrorlist", "metalink"]
                .iter()
                .all(|k| args.get(k).is_none_or(Json::is_null))
            {
                return Err(ModuleError::Arg(
                    "yum_repository: state is present but any of the following are missing: baseurl, mirrorlist, metalink".into(),
                ));
            }
            section.push(("name".into(), description));
            for (k, kind) in KEYS {
                let given = args.get(k).or_else(|| {
                    ALIASES
                        .iter()
                        .find(|(_, key)| key == k)
                        .and_then(|(a, _)| args.get(a))
                });
                if let Some(v) = given.filter(|v| !v.is_null()) {
                    section.push((k.to_string(), value(*kind, k, v)?));
                }
            }
            section.sort();
        }

        let out = ctx
            .run_script(
                &format!(
                    "[ -d {d} ] || fail \"Repo directory '$(printf %s {d})' does not exist.\"\n{}",
                    script::read_file_body(&dest),
                    d = q(&dir)
                ),
                None,
            )
            .await?;
        if let Some(f) = &out.failed {
            return Ok(ModuleResult::fail(f.clone()));
        }
        let before_text = script::read_content(&out);
        let mut ini = match parse(before_text.as_deref().unwrap_or("")) {
            Ok(i) => i,
            Err(e) => return Ok(ModuleResult::fail(format!("{dest}: {e}"))),
        };
        let before = dump(&ini);
        ini.retain(|(s, _)| *s != name);
        if state == "present" {
            ini.push((name.clone(), section));
        }
        let after = dump(&ini);
        let changed = before != after;
        let mut r = if ini.is_empty() {
            // No section left: the file goes (nothing to do when absent).
            let out = ctx.run_script(&format!("rmf {}", q(&dest)), None).await?;
            ModuleResult::from_script(&out, &dest)
        } else if changed || before_text.is_some() {
            // Unchanged: the same content, only the attributes may be set.
            let spec = file_spec(args, dest.clone())?;
            let content = if changed {
                write(&ini)
            } else {
                before_text.clone().unwrap_or_default()
            };
            super::write_content(ctx, &spec, content.as_bytes(), before_text.clone()).await?
        } else {
            ModuleResult::ok()
        };
        if ctx.diff && changed {
            r.diff = vec![crate::diff::Diff::new(&dest, before, after)];
        }
        Ok(r.with("repo", name).with("state", state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_as_configparser() {
        let text = "# comment\n[a]\nname=A\nbaseurl = http://x/1\n  http://x/2\n\n[b]\nName: B\n";
        let ini = parse(text).expect("parse");
        assert_eq!(ini.len(), 2);
        assert_eq!(
            ini[0].1[1],
            ("baseurl".into(), "http://x/1\nhttp://x/2".into())
        );
        assert_eq!(ini[1].1[0], ("name".into(), "B".into()));
        assert_eq!(
            write(&ini),
            "[a]\nname = A\nbaseurl = http://x/1\n\thttp://x/2\n\n[b]\nname = B\n\n"
        );
        assert!(parse("key = v\n").is_err());
    }

    #[test]
    fn dump_ignores_order() {
        let a = parse("[b]\ny=1\nx=2\n[a]\nz=3\n").expect("a");
        let b = parse("[a]\nz = 3\n[b]\nx = 2\ny = 1\n").expect("b");
        assert_eq!(dump(&a), dump(&b));
    }

    #[test]
    fn values_as_ansible_writes_them() {
        assert_eq!(
            value(Kind::Bool, "k", &Json::from("yes")).ok(),
            Some("1".into())
        );
        assert_eq!(
            value(Kind::Bool, "k", &Json::from(false)).ok(),
            Some("0".into())
        );
        assert!(value(Kind::Bool, "k", &Json::from("maybe")).is_err());
        let l = serde_json::json!(["a", "b"]);
        assert_eq!(value(Kind::Lines, "k", &l).ok(), Some("a\nb".into()));
        assert_eq!(value(Kind::Words, "k", &l).ok(), Some("a b".into()));
        assert_eq!(
            value(Kind::Str, "k", &Json::from(10)).ok(),
            Some("10".into())
        );
    }
}
