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
    fn always_changes(&self) -> bool {
        true
    }
    fn one_exec(&self) -> bool {
        true
    }
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::command::creates_probe(args)
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
        // As ansible's `run_command` (Python's `shell=True`): `/bin/sh -c
        // LINE` as its own process, so the shell's messages read as under
        // ansible (`/bin/sh: 1: x: not found`, lines counted in LINE).
        let runner = Runner::Executable(args.opt_str("executable").unwrap_or("/bin/sh".into()));
        run_command(ctx, args, &line, runner).await
    }
}
