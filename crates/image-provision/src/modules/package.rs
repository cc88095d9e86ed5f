//! `package`: installs or removes packages with the target's package
//! manager (the `pkg_mgr` fact): apt or dnf/yum.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `package` module.
pub struct Package;

#[async_trait]
impl Module for Package {
    fn name(&self) -> &'static str {
        "package"
    }
    fn params(&self) -> &'static [&'static str] {
        &["name", "state", "use"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        let mut a = args.clone();
        a.0.remove("use");
        let mgr = args
            .opt_str("use")
            .filter(|u| u != "auto")
            .unwrap_or_else(|| ctx.fact("pkg_mgr").to_string());
        match mgr.as_str() {
            "apt" => super::apt::Apt.run(ctx, &a).await,
            "dnf" | "yum" | "dnf5" => super::dnf::Dnf.run(ctx, &a).await,
            other => Err(ModuleError::Arg(format!(
                "package: package manager `{other}` is not supported (apt, dnf, yum)"
            ))),
        }
    }
}
