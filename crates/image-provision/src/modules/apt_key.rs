//! `apt_key`: adds an APT signing key. With `keyring`, the key (from `url`,
//! `data` or `file`) is written to that file when its content differs
//! (armored keys are kept armored, so give `.asc`, or binary `.gpg`);
//! without, `apt-key add` is used, skipped when `id` is already known.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `apt_key` module.
pub struct AptKey;

#[async_trait]
impl Module for AptKey {
    fn name(&self) -> &'static str {
        "apt_key"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "url",
            "data",
            "file",
            "keyring",
            "id",
            "state",
            "keyserver",
            "validate_certs",
        ]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let keyring = args.opt_str("keyring");
        let id = args.opt_str("id").unwrap_or_default();
        if state == "absent" {
            let body = match &keyring {
                Some(k) => format!("rmf {}", q(k)),
                None => format!("i={}; [ -n \"$i\" ] || fail 'state=absent needs id or keyring'; if apt-key export \"$i\" 2>/dev/null | grep -q BEGIN; then C=1; do_ apt-key del \"$i\"; fi", q(&id)),
            };
            let out = ctx
                .run_script_dl(
                    &body,
                    None,
                    &super::http::Request::get(&args.opt_str("url").unwrap_or_default()),
                )
                .await?;
            return Ok(ModuleResult::from_script(&out, "apt_key"));
        }
        let fetch = if let Some(u) = args.opt_str("url") {
            format!("dl {u} \"$t\" 2>\"$t.err\" || {{ e=$(cat \"$t.err\"); rm -f \"$t.err\"; fail \"Failed to download key at {raw}: $e\"; }}; rm -f \"$t.err\"", u = q(&u), raw = u.replace('"', ""))
        } else if let Some(d) = args.opt_str("data") {
            format!("printf '%s\\n' {} > \"$t\"", q(&d))
        } else if let Some(f) = args.opt_str("file") {
            format!("cp {} \"$t\" || fail 'cannot read key file'", q(&f))
        } else if args.opt_str("keyserver").is_some() {
            return Err(ModuleError::Arg(
                "keyserver is not supported; give url, data or file".into(),
            ));
        } else {
            return Err(ModuleError::Arg("apt_key needs url, data or file".into()));
        };
        let body = match &keyring {
            Some(k) => format!(
                "k={}\n[ -f \"$k\" ] && [ -n {id} ] && return 0\nt=$(mktemp) || fail mktemp\n{fetch}\nif ! cmp -s \"$t\" \"$k\"; then C=1; if [ \"$CHECK\" != 1 ]; then mkdir -p \"$(dirname \"$k\")\"; mv \"$t\" \"$k\" && chmod 644 \"$k\" || fail \"writing $k failed\"; fi; fi\nrm -f \"$t\"",
                q(k),
                id = q(&id)
            ),
            None => format!(
                "i={}\nif [ -n \"$i\" ] && apt-key export \"$i\" 2>/dev/null | grep -q BEGIN; then return 0; fi\nt=$(mktemp) || fail mktemp\n{fetch}\nC=1; [ \"$CHECK\" = 1 ] || {{ _o=$(apt-key add \"$t\" 2>&1) || fail \"apt-key add failed: $_o\"; }}\nrm -f \"$t\"",
                q(&id)
            ),
        };
        let out = ctx
            .run_script_dl(
                &body,
                None,
                &super::http::Request::get(&args.opt_str("url").unwrap_or_default()),
            )
            .await?;
        Ok(ModuleResult::from_script(&out, "apt_key"))
    }
}
