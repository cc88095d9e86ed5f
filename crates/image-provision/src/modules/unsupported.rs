//! Modules that roles name on branches a Linux build host may never take
//! (RHEL subscriptions): the step list parses, and a task that reaches one
//! fails with a message naming the module and what to use instead.
//! Modules not in the registry at all (amazon.aws.s3_object) are reported
//! by the parser as warnings and fail at the task that reaches them.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// A module that is recognised but not implemented.
pub struct Unsupported {
    /// The short name.
    pub name: &'static str,
    /// Why, and what to do instead.
    pub why: &'static str,
}

/// `community.general.redhat_subscription`.
pub static REDHAT_SUBSCRIPTION: Unsupported = Unsupported {
    name: "redhat_subscription",
    why: "RHEL subscription management is not supported; register the host with `subscription-manager` through command",
};

/// `community.general.rhsm_repository`.
pub static RHSM_REPOSITORY: Unsupported = Unsupported {
    name: "rhsm_repository",
    why: "RHEL subscription repositories are not supported; use `subscription-manager repos` through command",
};

#[async_trait]
impl Module for Unsupported {
    fn name(&self) -> &'static str {
        self.name
    }
    fn params(&self) -> &'static [&'static str] {
        &[]
    }
    fn any_params(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, _args: &Args) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::fail(format!(
            "module `{}` is not implemented by image-cli: {}",
            self.name, self.why
        )))
    }
}
