//! `sysctl`: keeps `name=value` in a sysctl file (default
//! `/etc/sysctl.conf`), reloads that file when it changed (`reload`), and
//! with `sysctl_set` sets the live value. One read round trip when all is
//! in place.

use async_trait::async_trait;

use super::{file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::diff::Diff;
use crate::script::{self, q};

/// The `sysctl` module.
pub struct Sysctl;

#[async_trait]
impl Module for Sysctl {
    fn name(&self) -> &'static str {
        "sysctl"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "key",
            "value",
            "val",
            "state",
            "sysctl_file",
            "reload",
            "sysctl_set",
            "ignoreerrors",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name|key"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        let name = args.str_any(&["name", "key"])?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let value = args.opt_str_any(&["value", "val"]).map(|v| norm(&v));
        if state == "present" && value.is_none() {
            return Err(ModuleError::Arg("state=present needs `value`".into()));
        }
        let file = args
            .opt_str("sysctl_file")
            .unwrap_or_else(|| "/etc/sysctl.conf".into());
        let reload = args.bool_or("reload", true)?;
        let set = args.bool_or("sysctl_set", false)?;
        let ignore = args.bool_or("ignoreerrors", false)?;
        let read = format!(
            "{}echo \"@@live=$(sysctl -n {} 2>/dev/null | tr -s ' \\t' '  ')\"\n",
            script::read_file_body(&file),
            q(&name)
        );
        let out = ctx.run_script(&read, None).await?;
        if let Some(f) = &out.failed {
            return Ok(ModuleResult::fail(f.clone()));
        }
        let before = script::read_content(&out).unwrap_or_default();
        let mut lines: Vec<String> = before.lines().map(str::to_string).collect();
        let is_key = |l: &str| {
            let t = l.trim_start();
            !t.starts_with('#')
                && !t.starts_with(';')
                && t.split('=').next().map(str::trim) == Some(name.as_str())
                && t.contains('=')
        };
        let idx: Vec<usize> = (0..lines.len()).filter(|i| is_key(&lines[*i])).collect();
        match (&value, idx.first()) {
            (Some(v), Some(&i)) if state == "present" => {
                lines[i] = format!("{name}={v}");
                for j in idx[1..].iter().rev() {
                    lines.remove(*j);
                }
            }
            (Some(v), None) if state == "present" => lines.push(format!("{name}={v}")),
            _ => {
                for j in idx.iter().rev() {
                    lines.remove(*j);
                }
            }
        }
        let mut after = lines.join("\n");
        if !lines.is_empty() {
            after.push('\n');
        }
        if after.trim_end() == before.trim_end() {
            after = before.clone();
        }
        let file_changed = after != before;
        let live = out.get("live").unwrap_or("").trim().to_string();
        let live_wrong = set && state == "present" && value.as_deref() != Some(live.as_str());
        if !file_changed && !live_wrong {
            return Ok(ModuleResult::ok().with("name", name));
        }
        let spec = file_spec(&Args::default(), file.clone())?;
        let mut body = if file_changed {
            script::write_file_body(&spec, &script::sha256_hex(after.as_bytes()))
        } else {
            "cat >/dev/null\n".to_string()
        };
        let e = if ignore { "-e " } else { "" };
        if file_changed && reload {
            body.push_str(&format!(
                "if [ \"$CHECK\" != 1 ]; then _o=$(sysctl {e}-p {} 2>&1) || fail \"reloading {} failed: $_o\"; fi\n",
                q(&file),
                file
            ));
        }
        if live_wrong {
            body.push_str(&format!(
                "C=1; if [ \"$CHECK\" != 1 ]; then _o=$(sysctl {e}-w {} 2>&1) || fail \"sysctl -w {name} failed: $_o\"; fi\n",
                q(&format!("{name}={}", value.clone().unwrap_or_default()))
            ));
        }
        let out = ctx
            .run_script(&body, Some(after.clone().into_bytes()))
            .await?;
        let mut r = ModuleResult::from_script(&out, &file);
        r.diff.clear();
        if ctx.diff && file_changed {
            r.diff.push(Diff::new(&file, before, after));
        }
        r.data.insert("name".into(), name.into());
        Ok(r)
    }
}

fn norm(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}
