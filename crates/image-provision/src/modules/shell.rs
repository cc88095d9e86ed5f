//! `shell`: runs a command line through the shell (pipes, redirections,
//! variables), with `creates` / `removes` / `chdir` / `executable` / `stdin`.

use async_trait::async_trait;

use super::command::{run_command, Runner};
use super::{Args, FreeForm, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `shell` module.
pub struct Shell;

#[async_trait]
impl Module for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "cmd",
            "creates",
            "removes",
            "chdir",
            "executable",
            "stdin",
            "stdin_add_newline",
            "strip_empty_ends",
            "warn",
        ]
    }
    fn free_form(&self) -> FreeForm {
        FreeForm::Command
    }
    fn required(&self) -> &'static [&'static str] {
        &["cmd|_raw_params"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let line = args.str_any(&["cmd", "_raw_params"])?;
        let runner = match args.opt_str("executable") {
            Some(e) => Runner::Executable(e),
            None => Runner::Sh,
        };
        run_command(ctx, args, &line, runner).await
    }
}
