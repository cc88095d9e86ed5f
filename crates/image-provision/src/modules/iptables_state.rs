//! `iptables_state` (community.general): `state: saved` writes
//! `iptables-save` (or `ip6tables-save`) output to `path`, changed when the
//! file's content differs; `state: restored` loads `path` with
//! `iptables-restore`, changed when the live rules differ afterwards. The
//! rollback-on-lost-connection of ansible's async mode is not reproduced
//! (`_back`/`_timeout` are refused). Returns `applied`, `initial_state`,
//! `saved`, `restored`, `tables` (of the chosen table, or all).

use async_trait::async_trait;
use serde_json::json;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `iptables_state` module.
pub struct IptablesState;

#[async_trait]
impl Module for IptablesState {
    fn name(&self) -> &'static str {
        "iptables_state"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "state",
            "path",
            "ip_version",
            "table",
            "noflush",
            "counters",
            "modprobe",
            "wait",
            "_timeout",
            "_back",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["state", "path"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        for k in ["_back", "_timeout", "modprobe"] {
            if args.get(k).is_some() {
                return Err(ModuleError::Arg(format!(
                    "iptables_state: `{k}` is not supported (no rollback on a lost connection)"
                )));
            }
        }
        let state = args.choice("state", &["saved", "restored"], "saved")?;
        let path = args.str("path")?;
        let v6 = args.choice("ip_version", &["ipv4", "ipv6"], "ipv4")? == "ipv6";
        let bin = if v6 { "ip6tables" } else { "iptables" };
        let mut save = format!("{bin}-save");
        let mut restore = format!("{bin}-restore");
        if let Some(t) = args.opt_str("table") {
            save.push_str(&format!(" -t {}", q(&t)));
            restore.push_str(&format!(" -T {}", q(&t)));
        }
        if args.bool_or("counters", false)? {
            save.push_str(" -c");
            restore.push_str(" -c");
        }
        if args.bool_or("noflush", false)? {
            restore.push_str(" -n");
        }
        if let Some(w) = args.opt_str("wait") {
            restore.push_str(&format!(" -w {}", q(&w)));
        }
        // Comments and counters in `-save` output change between runs:
        // compare without them.
        let norm = "grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'";
        let body = if state == "saved" {
            format!(
                r#"p={p}
n=$({save} 2>/tmp/.image-cli-ipt.$$) || {{ e=$(cat /tmp/.image-cli-ipt.$$); rm -f /tmp/.image-cli-ipt.$$; fail "$e"; }}; rm -f /tmp/.image-cli-ipt.$$
if [ ! -f "$p" ] || [ "$(printf '%s\n' "$n" | {norm})" != "$(cat "$p" | {norm})" ]; then
  C=1; before "$p"
  if [ "$CHECK" != 1 ]; then printf '%s\n' "$n" > "$p" || fail "writing $p failed"; fi
fi
printf '@@saved=%s\n' "$(printf '%s' "$n" | b64_)"
"#,
                p = q(&path)
            )
        } else {
            format!(
                r#"p={p}
[ -f "$p" ] || fail "source $p not found"
i=$({save} 2>/dev/null) || fail "{save} failed"
{restore} --test < "$p" >/dev/null 2>&1 || fail "Failed to restore iptables rules from $p"
if [ "$CHECK" != 1 ]; then
  _o=$({restore} < "$p" 2>&1) || fail "$_o"
  a=$({save} 2>/dev/null)
else a=$i; fi
[ "$(printf '%s\n' "$i" | {norm})" != "$(printf '%s\n' "$a" | {norm})" ] && C=1
[ "$CHECK" = 1 ] && [ "$(printf '%s\n' "$i" | {norm})" != "$(cat "$p" | {norm})" ] && C=1
printf '@@initial=%s\n' "$(printf '%s' "$i" | b64_)"
printf '@@restored=%s\n' "$(printf '%s' "$a" | b64_)"
"#,
                p = q(&path)
            )
        };
        let body = format!(
            "command -v {bin}-save >/dev/null 2>&1 || fail 'Failed to find required executable \"{bin}-save\"'\nb64_() {{ base64 -w0 2>/dev/null || base64 | tr -d '\\n'; }}\n{body}"
        );
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, &path);
        let lines = |k: &str| {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD
                .decode(out.get(k).unwrap_or("").trim())
                .unwrap_or_default();
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        if state == "saved" {
            r.data.insert("saved".into(), json!(lines("saved")));
        } else {
            r.data
                .insert("initial_state".into(), json!(lines("initial")));
            r.data.insert("restored".into(), json!(lines("restored")));
            r.data
                .insert("applied".into(), json!(!ctx.check && !r.failed));
        }
        Ok(r)
    }
}
