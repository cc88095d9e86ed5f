//! `fail`: fails the task with a message.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `fail` module.
pub struct Fail;

#[async_trait]
impl Module for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }
    fn params(&self) -> &'static [&'static str] {
        &["msg"]
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        Ok(ModuleResult::fail(
            args.opt_str("msg")
                .unwrap_or_else(|| "Failed as requested from task".into()),
        ))
    }
}
