//! `reboot` (ansible.builtin.reboot): reboots the host and waits for it to
//! come back.
//!
//! As ansible does, "went down and came back" is told by the boot id
//! (`boot_time_command`, default `cat /proc/sys/kernel/random/boot_id`)
//! differing from the one read before the reboot, never by the connection
//! dropping (a host slow to shut down still answers for a while):
//! 1. read the boot id (the task fails if it cannot: nothing rebooted);
//! 2. start `reboot_command` in the background after `pre_reboot_delay`
//!    (at least 1 s, so the command returns before the link drops);
//! 3. wait `post_reboot_delay`, then reconnect and read the boot id until it
//!    differs, then run `test_command` (default `whoami`) until it succeeds;
//!    each probe is bounded by `connect_timeout` (default 10 s), the whole by
//!    `reboot_timeout` (default 600 s) from the reboot command.
//!
//! Returns `rebooted: true` and `elapsed` (whole seconds since the reboot
//! command). Check mode: changed, `rebooted: true`, `elapsed: 0`, nothing
//! run. Once the reboot command went out the module never returns a
//! connection error (the engine would retry the task, rebooting again): it
//! fails the task instead. `msg` and `search_paths` are accepted and unused.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use image_core::target::Exec;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `reboot` module.
pub struct Reboot;

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";
const REBOOT: &str = "systemctl reboot || reboot || shutdown -r now";
/// Pause between two probes of a host that is not back yet.
const PROBE_PAUSE: Duration = Duration::from_secs(1);

/// A seconds argument (negative counts as 0).
fn secs(args: &Args, k: &str, default: u64) -> Result<u64, ModuleError> {
    Ok(args.opt_i64(k)?.map(|v| v.max(0) as u64).unwrap_or(default))
}

/// Why a probe failed.
struct ProbeError {
    why: String,
    /// The session is gone: reconnect before the next probe.
    lost: bool,
}

/// Runs `cmd` with the task's become and environment within `limit`; its
/// trimmed stdout if it succeeded.
async fn probe(ctx: &ModuleCtx<'_>, cmd: &str, limit: Duration) -> Result<String, ProbeError> {
    let mut e = Exec::new(cmd.to_string())
        .become_opt(ctx.become_.clone())
        .timeout(limit);
    e.env = ctx.env.clone();
    let failed = |why: String, lost: bool| Err(ProbeError { why, lost });
    // The command timeout does not cover opening the channel on a session
    // whose peer vanished: bound the whole call too.
    match tokio::time::timeout(limit + Duration::from_secs(1), ctx.target.exec(&e)).await {
        Err(_) => failed(format!("`{cmd}` did not answer within {limit:?}"), true),
        Ok(Err(e)) => failed(e.to_string(), e.is_connection_lost()),
        Ok(Ok(o)) if o.success() => Ok(o.stdout_str().trim().to_string()),
        Ok(Ok(o)) => failed(
            format!(
                "`{cmd}` exited with {}: {}",
                o.status,
                o.stderr_str().trim()
            ),
            false,
        ),
    }
}

#[async_trait]
impl Module for Reboot {
    fn name(&self) -> &'static str {
        "reboot"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "reboot_timeout",
            "connect_timeout",
            "msg",
            "pre_reboot_delay",
            "post_reboot_delay",
            "test_command",
            "reboot_command",
            "boot_time_command",
            "search_paths",
        ]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let timeout = Duration::from_secs(secs(args, "reboot_timeout", 600)?.max(1));
        let probe_limit = Duration::from_secs(secs(args, "connect_timeout", 10)?.max(1));
        let pre = secs(args, "pre_reboot_delay", 0)?;
        let post = Duration::from_secs(secs(args, "post_reboot_delay", 0)?);
        let test = args
            .opt_str("test_command")
            .unwrap_or_else(|| "whoami".into());
        let boot_cmd = args
            .opt_str("boot_time_command")
            .unwrap_or_else(|| BOOT_ID.into());
        let cmd = args
            .opt_str("reboot_command")
            .unwrap_or_else(|| REBOOT.into());
        if ctx.check {
            return Ok(ModuleResult::changed(true)
                .with("rebooted", true)
                .with("elapsed", 0));
        }

        // A lost connection here is the engine's to retry: nothing happened.
        let mut e = Exec::new(boot_cmd.clone()).become_opt(ctx.become_.clone());
        e.env = ctx.env.clone();
        let o = ctx.target.exec(&e).await?;
        let before = o.stdout_str().trim().to_string();
        if !o.success() || before.is_empty() {
            return Ok(ModuleResult::fail(format!(
                "cannot read the boot id before rebooting with `{boot_cmd}` (exit {}): {}",
                o.status,
                o.stderr_str().trim()
            ))
            .with("rebooted", false));
        }

        let start = Instant::now();
        let deadline = start + timeout;
        // In the background, holding none of the command's descriptors (nor
        // the become shell's sentinel, fd 7): the command returns at once.
        let line = format!(
            "nohup sh -c 'sleep {}; {}' </dev/null >/dev/null 2>&1 7>&- &",
            pre.max(1),
            cmd.replace('\'', r"'\''")
        );
        if let Err(e) = probe(ctx, &line, probe_limit).await {
            return Ok(ModuleResult::fail(format!(
                "starting the reboot command failed: {}",
                e.why
            ))
            .with("rebooted", false));
        }
        tokio::time::sleep(Duration::from_secs(pre.max(1)) + post).await;

        let remaining = || deadline.saturating_duration_since(Instant::now());
        let timed_out = |phase: &str, last: &str| {
            ModuleResult::fail(format!(
                "timed out after {timeout:?} waiting for the host to {phase} (last: {last})"
            ))
            .with("rebooted", true)
            .with("elapsed", start.elapsed().as_secs())
        };

        // Down and up again: a new session that reads another boot id.
        let mut last = String::from("no attempt");
        loop {
            let left = remaining();
            if left.is_zero() {
                return Ok(timed_out("come back", &last));
            }
            match tokio::time::timeout(left, ctx.target.reconnect()).await {
                Err(_) => last = "reconnecting timed out".into(),
                Ok(Err(e)) => last = format!("reconnecting: {e}"),
                Ok(Ok(())) => match probe(ctx, &boot_cmd, probe_limit.min(remaining())).await {
                    Ok(now) if !now.is_empty() && now != before => break,
                    Ok(_) => last = "boot id unchanged: not rebooted yet".into(),
                    Err(e) => last = e.why,
                },
            }
            tokio::time::sleep(PROBE_PAUSE.min(remaining())).await;
        }

        // Up enough to work.
        loop {
            let left = remaining();
            if left.is_zero() {
                return Ok(timed_out("pass `test_command`", &last));
            }
            match probe(ctx, &test, probe_limit.min(left)).await {
                Ok(_) => break,
                Err(e) => {
                    last = e.why;
                    tokio::time::sleep(PROBE_PAUSE.min(remaining())).await;
                    if e.lost {
                        let left = remaining();
                        if let Ok(Err(e)) = tokio::time::timeout(left, ctx.target.reconnect()).await
                        {
                            last = format!("reconnecting: {e}");
                        }
                    }
                }
            }
        }
        Ok(ModuleResult::changed(true)
            .with("rebooted", true)
            .with("elapsed", start.elapsed().as_secs()))
    }
}
