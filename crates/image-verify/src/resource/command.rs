//! `command`: runs each command line with `sh -c` on the target (or the
//! `exec` setting instead of the id), concurrently up to
//! `--max-concurrent`, and checks `exit-status`, `stdout` and `stderr`.
//! `timeout` is in milliseconds (default 10000, as goss). Each command is
//! a section of the run's gathered probe ([`crate::gather`]).

use async_trait::async_trait;

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section, SectionError, SectionResult};

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
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let sections = specs
            .iter()
            .map(|s| Section {
                script: s.setting_str("exec").unwrap_or_else(|| s.id.clone()),
                timeout: Some(s.timeout(10_000)),
                users: true,
                ..Default::default()
            })
            .collect();
        Some(Plan {
            sections,
            read: Box::new(|res| res.into_iter().map(read).collect()),
        })
    }
}

/// What one command did.
fn read(res: SectionResult) -> Observed {
    match res {
        Ok(out) => {
            let mut o = Observed::default();
            o.set("exit-status", out.status)
                .set("stdout", out.stdout_str())
                .set("stderr", out.stderr_str());
            o
        }
        Err(SectionError::TimedOut(after)) => {
            Observed::failed(format!("command execution timed out ({after:?})"))
        }
        Err(SectionError::Failed(e)) => Observed::failed(e),
    }
}
