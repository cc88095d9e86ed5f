//! `process`: running processes by executable name (`/proc/PID/comm`, as
//! goss matches them), all names read in one shell loop of builtins.

use async_trait::async_trait;

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section};

/// The `process` resource type.
pub struct Process;

const PROPS: &[Property] = &[Property::value("running")];

/// Prints the comm of every process, one per line.
pub const SCRIPT: &str =
    "for d in /proc/[0-9]*; do IFS= read -r c < \"$d/comm\" 2>/dev/null && printf '%s\\n' \"$c\"; done; true";

/// Parses the process names.
pub fn parse(out: &str, names: &[&str]) -> Vec<Observed> {
    names
        .iter()
        .map(|n| {
            // comm is truncated to 15 bytes by the kernel.
            let short: String = n.chars().take(15).collect();
            let running = out.lines().any(|l| l == *n || l == short);
            let mut o = Observed::default();
            o.set("running", running);
            o
        })
        .collect()
}

#[async_trait]
impl Resource for Process {
    fn key(&self) -> &'static str {
        "process"
    }
    fn type_name(&self) -> &'static str {
        "Process"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let names: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        Some(Plan::one(specs, Section::new(SCRIPT), move |out| {
            parse(out, &names)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn parses() {
        let o = parse(
            "systemd\nsshd\nkube-controller\n",
            &["sshd", "nginx", "kube-controller-manager"],
        );
        assert_eq!(o[0].values["running"], Value::Bool(true));
        assert_eq!(o[1].values["running"], Value::Bool(false));
        assert_eq!(o[2].values["running"], Value::Bool(true));
    }
}
