//! `command`: runs each command line with `sh -c` on the target (or the
//! `exec` setting instead of the id), concurrently up to
//! `--max-concurrent`, and checks `exit-status`, `stdout` and `stderr`.
//! `timeout` is in milliseconds (default 10000, as goss).

use async_trait::async_trait;
use image_core::target::{Exec, TargetError};

use super::{buffered, Observed, Probe, Property, Resource, ResourceSpec};

/// The `command` resource type.
pub struct Command;

const PROPS: &[Property] = &[
    Property::value("exit-status"),
    Property::text("stdout"),
    Property::text("stderr"),
];

#[async_trait]
impl Resource for Command {
    fn key(&self) -> &'static str {
        "command"
    }
    fn type_name(&self) -> &'static str {
        "Command"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn settings(&self) -> &'static [&'static str] {
        &["exec", "timeout"]
    }
    async fn observe(&self, probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        let futs: Vec<_> = specs.iter().map(|s| run_one(probe, s)).collect();
        buffered(futs.into_iter(), probe.max_concurrent).await
    }
}

/// Runs one command.
async fn run_one(probe: &Probe<'_>, s: &ResourceSpec) -> Observed {
    let line = s.setting_str("exec").unwrap_or_else(|| s.id.clone());
    let timeout = s.timeout(10_000);
    let cmd = Exec::new(line).timeout(timeout);
    match probe
        .target
        .exec(&cmd.become_opt(probe.become_.clone()))
        .await
    {
        Ok(out) => {
            let mut o = Observed::default();
            o.set("exit-status", out.status)
                .set("stdout", out.stdout_str())
                .set("stderr", out.stderr_str());
            o
        }
        Err(TargetError::Timeout { after, .. }) => {
            Observed::failed(format!("command execution timed out ({after:?})"))
        }
        Err(e) => Observed::failed(e.to_string()),
    }
}
