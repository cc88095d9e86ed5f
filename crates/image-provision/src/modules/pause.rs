//! `pause`: waits `seconds` / `minutes` (no interactive prompts).

use std::time::Duration;

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `pause` module.
pub struct Pause;

#[async_trait]
impl Module for Pause {
    fn name(&self) -> &'static str {
        "pause"
    }
    fn params(&self) -> &'static [&'static str] {
        &["seconds", "minutes", "prompt", "echo"]
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let secs =
            args.opt_i64("seconds")?.unwrap_or(0) + 60 * args.opt_i64("minutes")?.unwrap_or(0);
        if secs == 0 && args.get("prompt").is_some() {
            return Err(ModuleError::Arg(
                "interactive prompts are not supported; give `seconds`".into(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(secs.max(0) as u64)).await;
        Ok(ModuleResult::ok()
            .msg(format!("paused for {secs} s"))
            .with("delta", secs))
    }
}
