//! `hostname`: sets the host name (hostnamectl, else /etc/hostname +
//! `hostname`).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `hostname` module.
pub struct Hostname;

#[async_trait]
impl Module for Hostname {
    fn name(&self) -> &'static str {
        "hostname"
    }
    fn params(&self) -> &'static [&'static str] {
        &["name", "use"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let body = format!(
            "n={}\ncur=$(hostname 2>/dev/null); f=$(cat /etc/hostname 2>/dev/null)\nif [ \"$cur\" != \"$n\" ] || [ \"$f\" != \"$n\" ]; then C=1; if [ \"$CHECK\" != 1 ]; then hostnamectl set-hostname \"$n\" 2>/dev/null || {{ printf '%s\\n' \"$n\" > /etc/hostname && {{ hostname \"$n\" 2>/dev/null || true; }}; }} || fail \"setting the hostname failed\"; fi; fi",
            q(&name)
        );
        let out = ctx.run_script(&body, None).await?;
        Ok(ModuleResult::from_script(&out, "hostname").with("name", name))
    }
}
