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
    /// As ansible's package action: other parameters go to the backend
    /// module, which checks them when the task runs.
    fn any_params(&self) -> bool {
        true
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    /// As the backend's (apt only).
    fn check_is_probe(
        &self,
        args: &Args,
        facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let mgr = args.opt_str("use").filter(|u| u != "auto").or_else(|| {
            facts
                .get("pkg_mgr")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
        let mut a = args.clone();
        a.0.remove("use");
        mgr.as_deref() == Some("apt") && super::apt::Apt.check_is_probe(&a, facts)
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let mut a = args.clone();
        a.0.remove("use");
        let mgr = args
            .opt_str("use")
            .filter(|u| u != "auto")
            .unwrap_or_else(|| ctx.fact("pkg_mgr").to_string());
        let dnf = matches!(mgr.as_str(), "dnf" | "yum" | "dnf5");
        let backend: &dyn Module = match mgr.as_str() {
            "apt" => &super::apt::Apt,
            _ if dnf => &super::dnf::Dnf,
            other => {
                return Err(ModuleError::Arg(format!(
                    "package: package manager `{other}` is not supported (apt, dnf, yum)"
                )))
            }
        };
        let unknown: Vec<&str> =
            a.0.keys()
                .map(String::as_str)
                .filter(|k| !backend.params().contains(k))
                .collect();
        if !unknown.is_empty() {
            return Err(ModuleError::Arg(format!(
                "Unsupported parameters for ({}) module: {}",
                backend.name(),
                unknown.join(", ")
            )));
        }
        // ansible's package action runs the dnf module, not the dnf action
        // (which would add the `pkg_mgr` fact).
        if dnf {
            return super::dnf::Dnf.packages(ctx, &a).await;
        }
        backend.run(ctx, &a).await
    }
}
