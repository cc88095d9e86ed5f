//! `debug`: prints a message (`msg`) or a variable (`var`, an expression).

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `debug` module.
pub struct Debug;

#[async_trait]
impl Module for Debug {
    fn name(&self) -> &'static str {
        "debug"
    }
    fn reads_vars(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &["msg", "var", "verbosity"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        if args.opt_i64("verbosity")?.unwrap_or(0) > 0 {
            let mut r = ModuleResult::ok();
            r.skipped = true;
            return Ok(r.msg("skipped: verbosity"));
        }
        if let Some(var) = args.opt_str("var") {
            let v = match ctx
                .templates
                .eval(&crate::when::strip_braces(&var), ctx.vars)
            {
                Ok(v) if v.is_undefined() => Json::String("VARIABLE IS NOT DEFINED!".into()),
                Ok(v) => serde_json::to_value(&v).unwrap_or(Json::Null),
                Err(e) => Json::String(format!("VARIABLE IS NOT DEFINED! ({e})")),
            };
            let text = format!(
                "{var}: {}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            );
            let mut r = ModuleResult::ok().msg(text);
            r.data.insert(var, v);
            return Ok(r);
        }
        let msg = args
            .get("msg")
            .cloned()
            .unwrap_or(Json::String("Hello world!".into()));
        let text = match &msg {
            Json::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        let mut r = ModuleResult::ok().msg(text);
        r.data.insert("msg".into(), msg);
        Ok(r)
    }
}
