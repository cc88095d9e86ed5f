//! `command`: runs a program with arguments (no shell features), with
//! `creates` / `removes` / `chdir` / `stdin`. Always "changed" when it runs;
//! in check mode: skipped without `creates`/`removes`; with them, "changed"
//! when it would run and "ok" when they say it would not (as ansible).
//! The run code is shared with `shell` and `raw`. A program that cannot be
//! executed (not found, not executable) fails as ansible's `run_command`
//! does on its OSError: `rc` the errno (2, 13), "Error executing command.",
//! not changed, `cmd` the quoted line, no output (not the shell's 127).

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use super::{Args, FreeForm, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `command` module.
pub struct Command;

#[async_trait]
impl Module for Command {
    fn name(&self) -> &'static str {
        "command"
    }
    fn always_changes(&self) -> bool {
        true
    }
    fn one_exec(&self) -> bool {
        true
    }
    fn check_is_probe(&self, args: &Args, _facts: &serde_json::Map<String, Json>) -> bool {
        creates_probe(args)
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "cmd",
            "argv",
            "creates",
            "removes",
            "chdir",
            "stdin",
            "stdin_add_newline",
            "strip_empty_ends",
            "expand_argument_vars",
            "warn",
            // Accepted and not used, as ansible-core does (it warns that
            // `executable` has no effect on `command` since 2.4).
            "executable",
        ]
    }
    fn free_form(&self) -> FreeForm {
        FreeForm::Command
    }
    fn required(&self) -> &'static [&'static str] {
        &["cmd|argv|_raw_params"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let words: Vec<String> = if let Some(Json::Array(argv)) = args.get("argv") {
            argv.iter().map(super::json_to_string).collect()
        } else {
            split_words(&args.str_any(&["cmd", "_raw_params"])?)?
        };
        let line = words.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
        let script = match words.first() {
            Some(program) => format!("{}{line}", exec_check(program)),
            None => line.clone(),
        };
        let mut r = run_command(ctx, args, &script, Runner::Sh).await?;
        if let Some(errno) = exec_error(&r) {
            let mut e = ModuleResult::ok()
                .msg("Error executing command.")
                .with("rc", errno)
                .with("cmd", line)
                .with("stdout", "")
                .with("stderr", "")
                .with("stdout_lines", json!([]))
                .with("stderr_lines", json!([]));
            e.failed = true;
            return Ok(e);
        }
        // ansible's `cmd` of the command module is the argument vector.
        if r.data.contains_key("cmd") {
            r.data.insert("cmd".into(), json!(words));
        }
        Ok(r)
    }
}

/// Shell lines run before the program: print `@@exec-error ERRNO` and stop
/// when it cannot be executed (ENOENT 2: not found; EACCES 13: a directory
/// or not executable), what Python's exec would raise. A name without `/`
/// is looked up in `PATH` (a shell builtin does not count).
fn exec_check(program: &str) -> String {
    let p = q(program);
    if program.contains('/') {
        format!(
            "if [ ! -e {p} ]; then echo '@@exec-error 2'; exit 0; \
             elif [ -d {p} ] || [ ! -x {p} ]; then echo '@@exec-error 13'; exit 0; fi\n"
        )
    } else {
        // Each `PATH` directory in turn, as Python's execvpe: the first
        // executable file wins; a file there that is not executable makes
        // EACCES, nothing at all ENOENT.
        format!(
            "_x=2; _ifs=$IFS; IFS=:; for _d in $PATH; do \
             if [ -f \"${{_d:-.}}\"/{p} ]; then \
             if [ -x \"${{_d:-.}}\"/{p} ]; then _x=0; break; else _x=13; fi; fi; done; \
             IFS=$_ifs; [ $_x = 0 ] || {{ echo \"@@exec-error $_x\"; exit 0; }}\n"
        )
    }
}

/// The errno [`exec_check`] reported, if it did.
fn exec_error(r: &ModuleResult) -> Option<i64> {
    let out = r.data.get("stdout")?.as_str()?;
    out.strip_prefix("@@exec-error ")?.trim().parse().ok()
}

/// How the command line is run.
pub enum Runner {
    /// `sh -c LINE`.
    Sh,
    /// `EXECUTABLE -c LINE`.
    Executable(String),
    /// As it is, no creates/removes/chdir.
    Raw,
}

/// Runs a command line with the common options; shared by command and
/// shell.
pub async fn run_command(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    line: &str,
    runner: Runner,
) -> Result<ModuleResult, ModuleError> {
    run_with(ctx, args, line, runner, false).await
}

/// [`run_command`] on a pseudo-terminal, as ansible runs `raw` and
/// `script` (`ssh -tt`): standard error arrives in `stdout`, lines end with
/// CRLF, and the output is returned as it came (no `strip_empty_ends`).
pub async fn run_on_tty(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    line: &str,
    runner: Runner,
) -> Result<ModuleResult, ModuleError> {
    run_with(ctx, args, line, runner, true).await
}

async fn run_with(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    line: &str,
    runner: Runner,
    tty: bool,
) -> Result<ModuleResult, ModuleError> {
    let creates = args.opt_str("creates");
    let removes = args.opt_str("removes");
    let mut pre = String::new();
    if let Some(c) = &creates {
        pre.push_str(&format!(
            "for f in {}; do [ -e \"$f\" ] && {{ echo '@@skip' {}; exit 0; }}; done\n",
            glob_word(c),
            q(&format!("{c} exists"))
        ));
    }
    if let Some(r) = &removes {
        pre.push_str(&format!("_e=0; for f in {}; do [ -e \"$f\" ] && _e=1; done; [ $_e = 0 ] && {{ echo '@@skip' {}; exit 0; }}\n", glob_word(r), q(&format!("{r} does not exist"))));
    }
    if ctx.check {
        // ansible's check-mode result: `rc` 0, no output, no times.
        let would = |r: ModuleResult, msg: String, stdout: String| {
            r.msg(msg)
                .with("rc", 0)
                .with("cmd", line)
                .with("stdout_lines", json!(super::splitlines(&stdout)))
                .with("stdout", stdout)
                .with("stderr", "")
                .with("stderr_lines", json!([]))
        };
        let run = "Command would have run if not in check mode".to_string();
        if pre.is_empty() {
            let mut r = would(ModuleResult::ok(), run, String::new());
            r.skipped = true;
            return Ok(r);
        }
        let out = ctx.sh(&format!("{pre}echo '@@run'"), None).await?;
        let text = out.stdout_str();
        // A check standing for a real run says what that run says (see
        // `creates_probe`).
        let verb = if ctx.probe { "Did" } else { "Would" };
        if let Some(r) = not_run(&text, line, verb) {
            return Ok(r);
        }
        // As ansible: with creates/removes deciding it would run, check
        // mode reports changed (not skipped).
        return Ok(would(ModuleResult::changed(true), run, String::new()));
    }
    if let Some(dir) = args.opt_str("chdir") {
        pre.push_str(&format!("cd {} || exit 1\n", q(&dir)));
    }
    let script = match runner {
        Runner::Sh => format!("{pre}{line}"),
        Runner::Executable(exe) => format!("{pre}exec {} -c {}", q(&exe), q(line)),
        Runner::Raw => line.to_string(),
    };
    let stdin = args.opt_str("stdin").map(|mut s| {
        if args.bool_or("stdin_add_newline", true).unwrap_or(true) {
            s.push('\n');
        }
        s.into_bytes()
    });
    let start = std::time::Instant::now();
    let out = ctx.sh_on(&script, stdin, tty).await?;
    let delta = start.elapsed();
    let mut stdout = out.stdout_str();
    if let Some(r) = not_run(&stdout, line, "Did") {
        return Ok(r);
    }
    let mut stderr = out.stderr_str();
    if !tty && args.bool_or("strip_empty_ends", true)? {
        stdout = stdout.trim_end_matches('\n').to_string();
        stderr = stderr.trim_end_matches('\n').to_string();
    }
    let failed = out.status != 0;
    let mut r = ModuleResult::changed(true)
        .with("rc", out.status)
        .with("cmd", line)
        .with("stdout_lines", json!(super::splitlines(&stdout)))
        .with("stderr_lines", json!(super::splitlines(&stderr)))
        .with("delta", format!("{:.6}", delta.as_secs_f64()));
    if failed {
        r.failed = true;
        // The result's `msg` is ansible's; the message shown for the task
        // also names the status and the end of standard error.
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        r.msg = Some(if tail.is_empty() {
            format!("non-zero return code {}", out.status)
        } else {
            format!("non-zero return code {}: {}", out.status, tail.join("\n"))
        });
    }
    r.data.insert("stdout".into(), Json::String(stdout));
    r.data.insert("stderr".into(), Json::String(stderr));
    let msg = if failed { "non-zero return code" } else { "" };
    r.data.insert("msg".into(), Json::String(msg.into()));
    Ok(r)
}

/// True when a check of `command`/`shell` with these arguments is a probe
/// (see [`Module::check_is_probe`]): with `creates` or `removes`, the check
/// tests them and changes nothing; when they say the command would not
/// run, the real run would not run it either, and the check (made with
/// [`ModuleCtx::probe`]) returns the real run's result.
pub fn creates_probe(args: &Args) -> bool {
    ["creates", "removes"]
        .iter()
        .any(|k| args.opt_str(k).is_some_and(|v| !v.is_empty()))
}

/// The result of a command that `creates`/`removes` did not let run,
/// when the test's output (`stdout`) says so; `verb` as for
/// [`skip_words`].
fn not_run(stdout: &str, line: &str, verb: &str) -> Option<ModuleResult> {
    let l = stdout.lines().find(|l| l.starts_with("@@skip"))?;
    // ansible: not run, `stdout` says why, `msg` too (quoting the path).
    let (msg, said) = skip_words(l[6..].trim(), verb);
    Some(
        ModuleResult::ok()
            .msg(msg)
            .with("rc", 0)
            .with("cmd", line)
            .with("stdout", said.clone())
            .with("stdout_lines", json!([said]))
            .with("stderr", "")
            .with("stderr_lines", json!([])),
    )
}

/// ansible's `msg` and `stdout` for a command not run because of
/// `creates`/`removes` (`why`: `PATH exists`, `PATH does not exist`);
/// `verb`: `Did`, or `Would` in check mode.
fn skip_words(why: &str, verb: &str) -> (String, String) {
    let (path, rest) = why
        .rsplit_once(" does not exist")
        .map(|(p, _)| (p, "does not exist"))
        .or_else(|| why.rsplit_once(" exists").map(|(p, _)| (p, "exists")))
        .unwrap_or((why, ""));
    (
        format!("{verb} not run command since '{path}' {rest}"),
        format!("skipped, since {why}"),
    )
}

/// A path for `for f in ...`: globs stay globs, the rest is quoted.
fn glob_word(s: &str) -> String {
    if s.contains(['*', '?', '[']) && !s.contains([' ', '\'', '"', '$', '`', ';']) {
        s.to_string()
    } else {
        q(s)
    }
}

/// Splits a command line like a POSIX shell would into words (quotes and
/// backslashes), without expanding anything.
pub fn split_words(s: &str) -> Result<Vec<String>, ModuleError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => {
                            return Err(ModuleError::Arg(format!("unterminated quote in `{s}`")))
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => break,
                        },
                        Some(x) => cur.push(x),
                        None => {
                            return Err(ModuleError::Arg(format!("unterminated quote in `{s}`")))
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"echo "a b" 'c d' e\ f"#).unwrap(),
            vec!["echo", "a b", "c d", "e f"]
        );
    }
}
