//! `group`: creates, changes (gid) or removes a group.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `group` module.
pub struct Group;

#[async_trait]
impl Module for Group {
    fn name(&self) -> &'static str {
        "group"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "gid",
            "system",
            "state",
            "local",
            "non_unique",
            "force",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    /// Every effect sets `C`.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let _ = args;
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let gid = args.opt_str("gid").unwrap_or_default();
        let body = if state == "absent" {
            format!(
                "n={}\nif getent group \"$n\" >/dev/null; then C=1; do_ groupdel \"$n\"; fi",
                q(&name)
            )
        } else {
            format!(
                "n={}; gid={}\nif e=$(getent group \"$n\"); then _g=${{e#*:}}; _g=${{_g#*:}}; [ -n \"$gid\" ] && [ \"${{_g%%:*}}\" != \"$gid\" ] && {{ C=1; do_ groupmod -g \"$gid\" \"$n\"; }}\nelse C=1; set -- {}; [ -n \"$gid\" ] && set -- \"$@\" -g \"$gid\"; do_ groupadd \"$@\" \"$n\"; fi",
                q(&name),
                q(&gid),
                if args.bool_or("system", false)? { "-r" } else { "" }
            )
        };
        let body = format!(
            // Unchanged: the entry read above is the one to report.
            "{body}\nif [ {} = present ] && {{ {{ [ \"$C\" = 0 ] && [ -n \"$e\" ]; }} || e=$(getent group {}); }}; then echo \"@@gr=$e\"; fi",
            q(&state),
            q(&name)
        );
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, &name);
        r.data.insert("name".into(), name.into());
        r.data.insert("state".into(), state.into());
        if let Some(gid) = out
            .get("gr")
            .and_then(|g| g.split(':').nth(2))
            .and_then(|g| g.parse::<u64>().ok())
        {
            r.data.insert("gid".into(), gid.into());
            r.data
                .insert("system".into(), args.bool_or("system", false)?.into());
        }
        Ok(r)
    }
}
