//! `raw`: runs a command line as it is (no creates/removes/chdir). Here it
//! is the same as `shell` without options, since nothing needs Python. As
//! ansible (`ssh -tt`), on a pseudo-terminal: `stdout` holds both outputs
//! with CRLF line ends.

use async_trait::async_trait;

use super::command::{run_on_tty, Runner};
use super::{Args, FreeForm, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `raw` module.
pub struct Raw;

#[async_trait]
impl Module for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn always_changes(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &["executable"]
    }
    fn free_form(&self) -> FreeForm {
        FreeForm::Command
    }
    fn required(&self) -> &'static [&'static str] {
        &["_raw_params"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let line = args.str("_raw_params")?;
        let runner = match args.opt_str("executable") {
            Some(e) => Runner::Executable(e),
            None => Runner::Raw,
        };
        // ansible's raw result: the command's `rc` and outputs (no `cmd`,
        // no times; `msg` only on failure).
        let mut r = run_on_tty(ctx, args, &line, runner).await?;
        r.data.remove("cmd");
        r.data.remove("delta");
        if !r.failed {
            r.data.remove("msg");
        }
        Ok(r)
    }
}
