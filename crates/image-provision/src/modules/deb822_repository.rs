//! `deb822_repository`: an APT source in deb822 format at
//! `/etc/apt/sources.list.d/<name>.sources`. A `signed_by` URL is
//! downloaded on the target to `/etc/apt/keyrings/<name>.asc|.gpg` (kept
//! once there); an inline key is written into the file.
//!
//! The file is written as ansible's module writes it (python-debian's
//! `Deb822.dump()`: one field per given parameter, in sorted parameter
//! order). ansible's module imports python3-debian and fails when the
//! target's Python lacks it (it does not install it); image-cli needs no
//! Python, but on a target with `/usr/bin/python3` and no python3-debian it
//! fails the same way, so a playbook behaves alike under both.

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{write_content, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{q, FileSpec};

/// Prints `missing` when the target has Python 3 but not python3-debian.
/// The package's file in the usual module directories answers with the
/// shell alone; only when it is in none of them does Python try the import
/// (70 ms for `debian.deb822` where it is found elsewhere, issue #16).
const NEEDS_DEBIAN: &str = "if [ -x /usr/bin/python3 ]; then _f=; for _d in /usr/lib/python3/dist-packages /usr/local/lib/python3*/dist-packages /usr/lib/python3*/site-packages /usr/local/lib/python3*/site-packages; do [ -f \"$_d/debian/deb822.py\" ] && { _f=1; break; }; done; [ -n \"$_f\" ] || /usr/bin/python3 -c 'import debian.deb822' >/dev/null 2>&1 || echo missing; fi";

/// The `deb822_repository` module.
pub struct Deb822Repository;

#[async_trait]
impl Module for Deb822Repository {
    fn name(&self) -> &'static str {
        "deb822_repository"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "types",
            "uris",
            "suites",
            "components",
            "signed_by",
            "architectures",
            "enabled",
            "trusted",
            "allow_insecure",
            "allow_weak",
            "allow_downgrade_to_insecure",
            "check_date",
            "check_valid_until",
            "date_max_future",
            "inrelease_path",
            "languages",
            "pdiffs",
            "targets",
            "by_hash",
            "mode",
            "state",
            "install_python_debian",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let fname = slug(&name);
        let dest = format!("/etc/apt/sources.list.d/{fname}.sources");
        let state = args.choice("state", &["present", "absent"], "present")?;
        let probe = ctx.sh(NEEDS_DEBIAN, None).await?;
        if probe.stdout_str().trim() == "missing" {
            return Ok(ModuleResult::fail(
                "Failed to import the required Python library (python3-debian) on the target's Python /usr/bin/python3. Please read the module documentation and install it in the appropriate location.",
            ));
        }
        if state == "absent" {
            let out = ctx
                .run_script(&format!("rmf {}\nfor k in /etc/apt/keyrings/{f}.asc /etc/apt/keyrings/{f}.gpg; do rmf \"$k\"; done", q(&dest), f = fname), None)
                .await?;
            return Ok(ModuleResult::from_script(&out, &dest));
        }
        let words = |k: &str| -> Option<String> {
            let l = args.list(k);
            (!l.is_empty()).then(|| l.join(" "))
        };
        let yn = |k: &str| -> Result<Option<String>, ModuleError> {
            Ok(match args.get(k) {
                None => None,
                Some(v) => Some(
                    if super::json_bool(v)
                        .ok_or_else(|| ModuleError::Arg(format!("`{k}` must be a boolean")))?
                    {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                ),
            })
        };
        let mut key_path = None;
        let mut key_changed = false;
        let mut inline_key = None;
        if let Some(sb) = args.opt_str("signed_by") {
            if sb.starts_with("http://") || sb.starts_with("https://") {
                let script = format!(
                    r#"u={url}; b=/etc/apt/keyrings/{f}
if [ -f "$b.asc" ]; then echo "@@key=$b.asc"; return 0; fi
if [ -f "$b.gpg" ]; then echo "@@key=$b.gpg"; return 0; fi
C=1
if [ "$CHECK" = 1 ]; then echo "@@key=$b.asc"; return 0; fi
mkdir -p /etc/apt/keyrings
t=$(mktemp) || fail "mktemp failed"
dl "$u" "$t" 2>"$t.err" || {{ e=$(cat "$t.err"); rm -f "$t" "$t.err"; fail "Request failed: $e ($u)"; }}
rm -f "$t.err"
if grep -q -- '-----BEGIN PGP' "$t"; then k="$b.asc"; else k="$b.gpg"; fi
mv "$t" "$k" && chmod 644 "$k" || fail "writing $k failed"
echo "@@key=$k""#,
                    url = q(&sb),
                    f = fname
                );
                let out = ctx
                    .run_script_dl(&script, None, &super::http::Request::get(&sb))
                    .await?;
                if let Some(f) = out.failed {
                    return Ok(ModuleResult::fail(f));
                }
                key_changed = out.changed;
                key_path = out.get("key").map(str::to_string);
            } else if sb.contains("BEGIN PGP") {
                inline_key = Some(sb);
            } else {
                key_path = Some(sb);
            }
        }
        // As ansible's module: one field per given parameter, in the
        // parameters' sorted order, named from the parameter.
        let mut fields: Vec<(&str, String)> = vec![("name", name.clone())];
        for k in [
            "types",
            "uris",
            "suites",
            "components",
            "architectures",
            "languages",
            "targets",
        ] {
            let v = if k == "types" {
                words(k).or(Some("deb".into()))
            } else {
                words(k)
            };
            fields.extend(v.map(|v| (k, v)));
        }
        for k in [
            "enabled",
            "trusted",
            "allow_insecure",
            "allow_weak",
            "allow_downgrade_to_insecure",
            "check_date",
            "check_valid_until",
            "pdiffs",
            "by_hash",
        ] {
            fields.extend(yn(k)?.map(|v| (k, v)));
        }
        for k in ["date_max_future", "inrelease_path"] {
            fields.extend(args.opt_str(k).map(|v| (k, v)));
        }
        fields.extend(key_path.clone().or(inline_key).map(|v| ("signed_by", v)));
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let mut lines = Vec::new();
        for (k, v) in fields {
            lines.push(field_line(k, &v));
        }
        let content = lines.join("\n") + "\n";
        let spec = FileSpec {
            dest: dest.clone(),
            mode: args.mode("mode")?.or(Some("644".into())),
            force: true,
            ..Default::default()
        };
        let mut r = write_content(ctx, &spec, content.as_bytes(), None).await?;
        r.changed |= key_changed;
        if let Some(k) = key_path {
            r.data.insert("key_filename".into(), Json::String(k));
        }
        r.data.insert("repo".into(), Json::String(content));
        Ok(r)
    }
}

/// ansible's field name for a parameter (`X-Repolib-Name`, `URIs`, else
/// the words title-cased and joined by `-`: `By-Hash`, `Pdiffs`).
fn field_name(k: &str) -> String {
    match k {
        "name" => "X-Repolib-Name".into(),
        "uris" => "URIs".into(),
        _ => k
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f
                        .to_uppercase()
                        .chain(c.flat_map(char::to_lowercase))
                        .collect(),
                    None => String::new(),
                }
            })
            .collect::<Vec<String>>()
            .join("-"),
    }
}

/// One field as python-debian writes it: `Name: value`, or a multi-line
/// value on indented lines under `Name:` (each line stripped, an empty one
/// written `.`, as ansible formats it).
fn field_line(k: &str, v: &str) -> String {
    if !v.contains('\n') {
        return format!("{}: {v}", field_name(k));
    }
    let body: Vec<String> = v
        .trim()
        .lines()
        .map(|l| match l.trim() {
            "" => "    .".to_string(),
            t => format!("    {t}"),
        })
        .collect();
    format!("{}:\n{}", field_name(k), body.join("\n"))
}

/// ansible's file name stem for a repository name: lower case, runs of
/// `_` and whitespace made `-`, then anything but `a-z0-9-` dropped.
fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut in_sep = false;
    for c in name.to_lowercase().chars() {
        if c == '_' || c.is_whitespace() {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
            continue;
        }
        in_sep = false;
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fields_as_ansible_writes_them() {
        assert_eq!(slug("My_Repo  x.y"), "my-repo-xy");
        assert_eq!(field_name("by_hash"), "By-Hash");
        assert_eq!(field_name("pdiffs"), "Pdiffs");
        assert_eq!(field_name("inrelease_path"), "Inrelease-Path");
        assert_eq!(
            field_line("signed_by", "-----BEGIN\n\n  abc \n-----END\n"),
            "Signed-By:\n    -----BEGIN\n    .\n    abc\n    -----END"
        );
    }
}
