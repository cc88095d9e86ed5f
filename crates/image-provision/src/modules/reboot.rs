//! `reboot`: reboots the target, then reconnects (Target::reconnect) until
//! the boot id has changed and `test_command` succeeds, or times out.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use image_core::target::Exec;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `reboot` module.
pub struct Reboot;

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

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
        if ctx.check {
            return Ok(ModuleResult::changed(true).with("rebooted", true));
        }
        let timeout =
            Duration::from_secs(args.opt_i64("reboot_timeout")?.unwrap_or(600).max(1) as u64);
        let pre = args.opt_i64("pre_reboot_delay")?.unwrap_or(0).max(0) as u64;
        let post = args.opt_i64("post_reboot_delay")?.unwrap_or(0).max(0) as u64;
        let test = args
            .opt_str("test_command")
            .unwrap_or_else(|| "whoami".into());
        let boot_cmd = args
            .opt_str("boot_time_command")
            .unwrap_or_else(|| BOOT_ID.into());
        let cmd = args
            .opt_str("reboot_command")
            .unwrap_or_else(|| "systemctl reboot || reboot || shutdown -r now".into());
        let before = ctx
            .sh(&boot_cmd, None)
            .await?
            .stdout_str()
            .trim()
            .to_string();
        let start = Instant::now();
        let line = format!(
            "nohup sh -c 'sleep {}; {}' >/dev/null 2>&1 &",
            pre.max(1),
            cmd.replace('\'', r"'\''")
        );
        let _ = ctx.sh(&line, None).await;
        tokio::time::sleep(Duration::from_secs(pre.max(1) + 2)).await;
        loop {
            if start.elapsed() > timeout {
                return Ok(ModuleResult::fail(format!(
                    "timed out after {timeout:?} waiting for the host to come back"
                )));
            }
            if ctx.target.reconnect().await.is_ok() {
                let e = Exec::new(boot_cmd.clone()).timeout(Duration::from_secs(10));
                if let Ok(o) = ctx.target.exec(&e).await {
                    let now = o.stdout_str().trim().to_string();
                    if o.success() && !now.is_empty() && now != before {
                        let t = ctx.sh(&test, None).await;
                        if t.as_ref().is_ok_and(|o| o.success()) {
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        tokio::time::sleep(Duration::from_secs(post)).await;
        Ok(ModuleResult::changed(true)
            .with("rebooted", true)
            .with("elapsed", start.elapsed().as_secs()))
    }
}
