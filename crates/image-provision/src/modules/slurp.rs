//! `slurp`: a file's content, base64-encoded (`content`, `source`,
//! `encoding: base64`), in one round trip. Read-only; works in check mode.

use async_trait::async_trait;
use serde_json::json;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `slurp` module.
pub struct Slurp;

#[async_trait]
impl Module for Slurp {
    fn name(&self) -> &'static str {
        "slurp"
    }
    fn params(&self) -> &'static [&'static str] {
        &["src", "path"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["src|path"]
    }
    /// A probe: read-only: a check-mode run is the run.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let src = args.str_any(&["src", "path"])?;
        let body = format!(
            r#"p={p}
[ -e "$p" ] || fail "File not found: $p"
[ -d "$p" ] && fail "Source is a directory and must be a file: $p"
[ -r "$p" ] || fail "File is not readable: $p"
printf '@@content='; b64 "$p" || fail "Unable to slurp file: $p"; echo
"#,
            p = q(&src)
        );
        let out = ctx.run_script(&body, None).await?;
        if let Some(f) = out.failed {
            return Ok(ModuleResult::fail(f));
        }
        Ok(ModuleResult::ok()
            .with(
                "content",
                out.get("content").unwrap_or("").trim().to_string(),
            )
            .with("source", json!(src))
            .with("encoding", "base64"))
    }
}
