//! ansible-core 2.19, the reference: runs playbooks with `ansible-playbook`
//! from the test bed's venv (`scripts/testbed/install.sh`) against a target,
//! several playbooks per invocation, and reads the `ansible.posix.json`
//! stdout callback's report into [`Observed`] tasks per playbook.
//!
//! Settings as fast as ansible gets and as the benchmarks use: pipelining,
//! SSH ControlPersist, no host key checking, `/usr/bin/python3` on the target.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value as Json};

use super::observed::{split_loc, Observed, Status};

/// Actions that only load other tasks: compared when skipped or failed only
/// (ansible's callback reports no result for an include that ran).
const LOADERS: &[&str] = &[
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "include_vars_dir",
    "meta",
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "ansible.builtin.include_role",
    "ansible.builtin.import_role",
    "ansible.builtin.meta",
];

/// The ansible-playbook of the test bed's ansible-core venv.
pub fn playbook_bin() -> PathBuf {
    image_testbed::testbed_dir().join("ansible-core-venv/bin/ansible-playbook")
}

/// Where and how to reach the target.
pub struct Conn<'a> {
    /// SSH port on 127.0.0.1.
    pub port: u16,
    /// Login user.
    pub user: &'a str,
    /// Private key.
    pub key: &'a Path,
    /// A private directory for SSH control sockets.
    pub control_dir: &'a Path,
}

/// What one ansible-playbook invocation did.
pub struct BatchRun {
    /// Tasks of each playbook that ran, in the batch's order (a failing
    /// playbook ends the invocation: the ones after it are missing).
    pub per_playbook: Vec<Vec<Observed>>,
    /// ansible-playbook's exit status (0: no host failed).
    pub exit_status: i32,
    /// stderr, for messages.
    pub stderr: String,
}

/// Runs `playbooks` in one `ansible-playbook` invocation with `extra` vars.
pub fn run_batch(conn: &Conn<'_>, playbooks: &[&Path], extra: &Map<String, Json>) -> BatchRun {
    let bin = playbook_bin();
    assert!(
        bin.exists(),
        "{} missing: run scripts/testbed/setup.sh (installs ansible-core)",
        bin.display()
    );
    let ssh_args = format!(
        "-o ControlMaster=auto -o ControlPersist=300s -o ControlPath={}/%C \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
        conn.control_dir.display()
    );
    let mut cmd = Command::new(&bin);
    cmd.env("ANSIBLE_PIPELINING", "1")
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .env("ANSIBLE_SSH_ARGS", ssh_args)
        .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        .env("ANSIBLE_LOCAL_TEMP", conn.control_dir.join("local-tmp"))
        .env("ANSIBLE_HOME", conn.control_dir.join("home"))
        .args(["-i", "127.0.0.1,", "-u", conn.user])
        .arg("--private-key")
        .arg(conn.key)
        .arg("-e")
        .arg(format!("ansible_port={}", conn.port))
        .arg("-e")
        .arg(Json::Object(extra.clone()).to_string());
    cmd.args(playbooks);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The callback prints its report after each playbook, each time with
    // every play so far: the plays new in report k are playbook k's.
    let mut per_playbook = Vec::new();
    let mut seen = 0;
    for report in json_docs(&stdout) {
        let plays = report["plays"].as_array().cloned().unwrap_or_default();
        let mut tasks = Vec::new();
        for play in plays.iter().skip(seen) {
            for t in play["tasks"].as_array().into_iter().flatten() {
                if let Some(o) = observed(t) {
                    tasks.push(o);
                }
            }
        }
        seen = plays.len();
        per_playbook.push(tasks);
    }
    BatchRun {
        per_playbook,
        exit_status: out.status.code().unwrap_or(-1),
        stderr,
    }
}

/// The top-level JSON objects in `text`, in order.
fn json_docs(text: &str) -> Vec<Json> {
    let mut docs = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let mut it = serde_json::Deserializer::from_str(&rest[i..]).into_iter::<Json>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                if v.get("plays").is_some() {
                    docs.push(v);
                }
                rest = &rest[i + used..];
            }
            _ => rest = &rest[i + 1..],
        }
    }
    docs
}

/// One task entry of the callback's report; `None` for loaders and tasks
/// that reported nothing.
fn observed(t: &Json) -> Option<Observed> {
    let hosts = t["hosts"].as_object()?;
    let res = hosts.values().next()?.clone();
    let action = res["action"].as_str().unwrap_or_default().to_string();
    let name = t["task"]["name"].as_str().unwrap_or_default().to_string();
    let status = status_of(&res);
    if LOADERS.contains(&action.as_str()) && matches!(status, Status::Ok | Status::Changed) {
        return None;
    }
    if action == "gather_facts" || name == "Gathering Facts" {
        return None;
    }
    let (file, line) = split_loc(t["task"]["path"].as_str()?)?;
    Some(Observed {
        file,
        line,
        name,
        status,
        action,
        result: res,
    })
}

/// ansible's status of one result.
pub fn status_of(res: &Json) -> Status {
    if res["failed"] == Json::Bool(true) || res["unreachable"] == Json::Bool(true) {
        Status::Failed
    } else if res["skipped"] == Json::Bool(true) {
        Status::Skipped
    } else if res["changed"] == Json::Bool(true) {
        Status::Changed
    } else {
        Status::Ok
    }
}
