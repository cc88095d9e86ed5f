//! `script` (this file is not `script.rs`: [`crate::script`] is the
//! generated-scripts helper): runs a controller-side script (found in `files/`) on the
//! target: `script: files/setup.sh arg1 arg2` (or `cmd:`). The first word
//! is the script, the rest is passed to it as shell text, as ansible does.
//! The script travels inside the command (base64), lands in a private
//! temporary file, runs (through `executable` when given) and is removed.
//! Returns `rc`, `stdout`, `stderr` and their `_lines`. As ansible
//! (`ssh -tt`), on a pseudo-terminal: `stdout` holds both outputs with
//! CRLF line ends.
//!
//! As ansible's action plugin (not the `command` module): `creates` /
//! `removes` are one path each, tested with `test -e` (no glob) before
//! anything else, and a script they stop is *skipped* (`PATH exists,
//! matching creates option`); `chdir` must be absolute; in check mode the
//! script would run (`changed`) when `creates`/`removes` let it, and is
//! skipped without them (`Check mode is not supported for this task.`).

use async_trait::async_trait;
use base64::Engine as _;

use super::command::{run_on_tty, split_words, Runner};
use super::{Args, FreeForm, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Largest script sent (bytes): it travels on the command line.
const MAX_SCRIPT: usize = 256 << 10;

/// The `script` module.
pub struct Script;

#[async_trait]
impl Module for Script {
    fn name(&self) -> &'static str {
        "script"
    }
    fn always_changes(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "cmd",
            "creates",
            "removes",
            "chdir",
            "executable",
            "decrypt",
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
        let creates = args.opt_str("creates").filter(|c| !c.is_empty());
        let removes = args.opt_str("removes").filter(|r| !r.is_empty());
        if let Some(c) = &creates {
            if exists(ctx, c).await? {
                return Ok(ModuleResult::skipped(format!(
                    "{c} exists, matching creates option"
                )));
            }
        }
        if let Some(r) = &removes {
            if !exists(ctx, r).await? {
                return Ok(ModuleResult::skipped(format!(
                    "{r} does not exist, matching removes option"
                )));
            }
        }
        if let Some(dir) = args.opt_str("chdir").filter(|d| !d.is_empty()) {
            if !dir.starts_with('/') {
                return Ok(ModuleResult::fail(format!(
                    "chdir {dir} must be an absolute path for a Unix-aware remote node"
                )));
            }
        }
        let raw = args.str_any(&["cmd", "_raw_params"])?;
        let raw = raw.trim();
        let first = split_words(raw)?
            .into_iter()
            .next()
            .ok_or_else(|| ModuleError::Arg("script: no script given".into()))?;
        let rest = script_args(raw);
        let path = ctx.find_local(&first, "files")?;
        let body = tokio::fs::read(&path)
            .await
            .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", path.display())))?;
        if body.len() > MAX_SCRIPT {
            return Err(ModuleError::Arg(format!(
                "{}: {} bytes; scripts of at most {MAX_SCRIPT} bytes are sent",
                path.display(),
                body.len()
            )));
        }
        if ctx.check {
            if creates.is_some() || removes.is_some() {
                return Ok(ModuleResult::changed(true));
            }
            return Ok(ModuleResult::skipped(
                "Check mode is not supported for this task.",
            ));
        }
        // Tested above, as ansible's action does; not again on the way.
        let mut args = args.clone();
        args.0.remove("creates");
        args.0.remove("removes");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
        let exe = args
            .opt_str("executable")
            .map(|e| format!("{e} "))
            .unwrap_or_default();
        let line = format!(
            "_s=$(mktemp /tmp/.image-cli-script.XXXXXX) || exit 1\nprintf '%s' {b64} | base64 -d > \"$_s\" && chmod 700 \"$_s\" || {{ rm -f \"$_s\"; exit 1; }}\n{exe}\"$_s\" {rest}\n_rc=$?; rm -f \"$_s\"; exit $_rc",
            b64 = q(&b64),
        );
        let mut r = run_on_tty(ctx, &args, &line, Runner::Sh).await?;
        r.data.remove("cmd");
        r.data.remove("delta");
        if !r.failed {
            r.data.remove("msg");
        }
        Ok(r)
    }
}

/// True when `path` exists on the target (`test -e`, as ansible's
/// `_remote_file_exists`, with the task's privilege).
async fn exists(ctx: &ModuleCtx<'_>, path: &str) -> Result<bool, ModuleError> {
    let out = ctx.sh(&format!("test -e {}", q(path)), None).await?;
    Ok(out.status == 0)
}

/// What follows the script's name in the free-form text (as written).
fn script_args(raw: &str) -> &str {
    let mut quote = None;
    for (i, c) in raw.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => return raw[i..].trim(),
            _ => {}
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_line_is_passed_as_written() {
        assert_eq!(
            script_args("files/a.sh one 'two three' $X"),
            "one 'two three' $X"
        );
        assert_eq!(script_args("'my dir/a.sh' x"), "x");
        assert_eq!(script_args("a.sh"), "");
    }
}
