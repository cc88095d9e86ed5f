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
        // ansible: a given duration under one second waits one second; the
        // unit of `stdout` is minutes unless `seconds` was given.
        let (secs, unit) = match (args.opt_i64("minutes")?, args.opt_i64("seconds")?) {
            (Some(m), _) => (Some((m * 60).max(1)), "minutes"),
            (None, Some(s)) => (Some(s.max(1)), "seconds"),
            (None, None) => (None, "minutes"),
        };
        if secs.is_none() && args.get("prompt").is_some() {
            return Err(ModuleError::Arg(
                "interactive prompts are not supported; give `seconds`".into(),
            ));
        }
        let start = std::time::Instant::now();
        if let Some(s) = secs {
            tokio::time::sleep(Duration::from_secs(s as u64)).await;
        }
        let took = start.elapsed().as_secs_f64();
        let shown = if unit == "minutes" { took / 60.0 } else { took };
        let shown = (shown * 100.0).round() / 100.0;
        let shown = if shown.fract() == 0.0 {
            format!("{shown:.1}")
        } else {
            format!("{shown}")
        };
        Ok(ModuleResult::ok()
            .msg(format!("paused for {} s", secs.unwrap_or(0)))
            .with("delta", took as i64)
            .with("rc", 0)
            .with("stdout", format!("Paused for {shown} {unit}"))
            .with("stderr", "")
            .with("echo", args.bool_or("echo", true)?)
            .with("user_input", ""))
    }
}
