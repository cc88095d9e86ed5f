//! `assert`: fails unless every expression in `that` is true.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `assert` module.
pub struct Assert;

#[async_trait]
impl Module for Assert {
    fn name(&self) -> &'static str {
        "assert"
    }
    fn reads_vars(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &["that", "fail_msg", "msg", "success_msg", "quiet"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["that"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let that: Vec<String> = match args.get("that") {
            Some(serde_json::Value::Array(a)) => a.iter().map(super::json_to_string).collect(),
            Some(v) => vec![super::json_to_string(v)],
            None => Vec::new(),
        };
        for expr in &that {
            let e = crate::when::strip_braces(expr);
            let ok = match ctx.templates.cond(&e, ctx.vars) {
                Ok(b) => b,
                Err(err) => {
                    return Ok(ModuleResult::fail(format!(
                        "assertion `{e}` could not be evaluated: {err}"
                    )))
                }
            };
            if !ok {
                let msg = args
                    .opt_str_any(&["fail_msg", "msg"])
                    .unwrap_or_else(|| "Assertion failed".into());
                // ansible's `msg` is the message alone; the failed
                // expression is in `assertion`.
                return Ok(ModuleResult::fail(msg)
                    .with("assertion", e.clone())
                    .with("evaluated_to", false));
            }
        }
        let msg = args
            .opt_str("success_msg")
            .unwrap_or_else(|| "All assertions passed".into());
        Ok(ModuleResult::ok().msg(msg))
    }
}
