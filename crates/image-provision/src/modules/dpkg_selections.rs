//! `dpkg_selections`: a package's dpkg selection (`hold`, `install`, ...).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `dpkg_selections` module.
pub struct DpkgSelections;

#[async_trait]
impl Module for DpkgSelections {
    fn name(&self) -> &'static str {
        "dpkg_selections"
    }
    fn params(&self) -> &'static [&'static str] {
        &["name", "selection"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name", "selection"]
    }
    /// A probe: the check compares the selection and sets nothing.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let sel = args.choice(
            "selection",
            &["install", "hold", "deinstall", "purge"],
            "install",
        )?;
        let body = format!(
            "n={}; s={}\ncur=$(dpkg --get-selections \"$n\" 2>/dev/null | awk '{{print $2}}')\n[ -n \"$cur\" ] || [ \"$s\" != install ] || cur=not-present\nif [ \"$cur\" != \"$s\" ]; then echo \"@@before_sel=$cur\"; C=1; [ \"$CHECK\" = 1 ] || {{ echo \"$n $s\" | dpkg --set-selections || fail 'dpkg --set-selections failed'; }}; fi",
            q(&name),
            q(&sel)
        );
        let out = ctx.run_script(&body, None).await?;
        Ok(ModuleResult::from_script(&out, &name)
            .with("before", out.get("before_sel").unwrap_or("").to_string())
            .with("after", sel))
    }
}
