//! `deb822_repository`: an APT source in deb822 format at
//! `/etc/apt/sources.list.d/<name>.sources`. A `signed_by` URL is
//! downloaded on the target to `/etc/apt/keyrings/<name>.asc|.gpg` (kept
//! once there); an inline key is written into the file.

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{write_content, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{q, FileSpec};

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
        let fname = name.replace(' ', "-").to_lowercase();
        let dest = format!("/etc/apt/sources.list.d/{fname}.sources");
        let state = args.choice("state", &["present", "absent"], "present")?;
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
        let mut lines = vec![format!("X-Repolib-Name: {name}")];
        let mut field = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                lines.push(format!("{k}: {v}"));
            }
        };
        field("Types", words("types").or(Some("deb".into())));
        field("URIs", words("uris"));
        field("Suites", words("suites"));
        field("Components", words("components"));
        field("Architectures", words("architectures"));
        field("Languages", words("languages"));
        field("Targets", words("targets"));
        field("Enabled", yn("enabled")?);
        field("Trusted", yn("trusted")?);
        field("Allow-Insecure", yn("allow_insecure")?);
        field("Allow-Weak", yn("allow_weak")?);
        field(
            "Allow-Downgrade-To-Insecure",
            yn("allow_downgrade_to_insecure")?,
        );
        field("Check-Date", yn("check_date")?);
        field("Check-Valid-Until", yn("check_valid_until")?);
        field("PDiffs", yn("pdiffs")?);
        field("By-Hash", yn("by_hash")?);
        field("Date-Max-Future", args.opt_str("date_max_future"));
        field("InRelease-Path", args.opt_str("inrelease_path"));
        field("Signed-By", key_path.clone());
        if let Some(k) = inline_key {
            lines.push("Signed-By:".into());
            for l in k.trim_end().lines() {
                lines.push(if l.trim().is_empty() {
                    " .".into()
                } else {
                    format!(" {l}")
                });
            }
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
