//! The `reboot` module against a real target that comes back: a test-bed
//! target with `survive_reboot`, which nspawn boots again on the same
//! overlay and the same SSH port when the guest reboots.
//!
//! * a real reboot: the task is changed with `rebooted: true`, the boot id
//!   differs afterwards, a file written before is still there (same disk),
//!   and the later tasks of the play run over the reconnected session;
//! * check mode: changed, and nothing reboots.
//!
//! The test bed's side of a reboot is tested with the test bed
//! (`crates/testbed/tests/testbed.rs`).
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;

use std::time::{Duration, Instant};

use bed_support::{boot_with, connect, stop};
use image_core::events::{Outcome, Recorder};
use image_core::ssh::SshTarget;
use image_core::target::{Exec, Target};
use image_provision::{parse, Options, Report};
use image_testbed::{Target as Bed, TargetOptions};
use serde_json::Value as Json;

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

/// A target that survives reboots, booted off the async runtime.
async fn boot_surviving() -> Bed {
    boot_with(TargetOptions::default().survive_reboot(true)).await
}

/// Runs `cmd` on the target; its trimmed stdout. Panics on failure.
async fn sh(t: &SshTarget, cmd: &str) -> String {
    let o = t
        .exec(&Exec::new(cmd).become_root())
        .await
        .unwrap_or_else(|e| panic!("`{cmd}`: {e}"));
    assert!(o.success(), "`{cmd}`: {}", o.stderr_str());
    o.stdout_str().trim().to_string()
}

/// Runs a step list (become root, like a build) on `t`.
async fn run(t: &SshTarget, yaml: &str, check: bool) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let steps =
        parse::parse_str("steps.yaml", yaml, dir.path(), &[]).unwrap_or_else(|d| panic!("{d}"));
    let opts = Options {
        check,
        become_: true,
        ..Default::default()
    };
    image_provision::run(t, &steps, &opts, &Recorder::default()).await
}

fn failures(r: &Report) -> String {
    r.results
        .iter()
        .filter(|t| t.outcome == Outcome::Failed || t.unreachable)
        .map(|t| format!("[{} @ {}] {}", t.task, t.loc, t.msg))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result of the task named `name`.
fn task<'a>(r: &'a Report, name: &str) -> &'a image_provision::TaskResult {
    r.results
        .iter()
        .find(|t| t.task == name)
        .unwrap_or_else(|| {
            panic!(
                "no task `{name}` in {:?}",
                r.results.iter().map(|t| &t.task).collect::<Vec<_>>()
            )
        })
}

fn stdout_of(r: &Report, name: &str) -> String {
    task(r, name).result["stdout"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_comes_back_on_the_same_disk_and_the_play_goes_on() {
    let bed = boot_surviving().await;
    let t = connect(&bed).await;
    let before = sh(&t, BOOT_ID).await;
    assert_eq!(before.len(), 36, "boot id {before:?}");
    sh(&t, "echo kept > /var/tmp/before-reboot.txt").await;
    let (port, leader) = (bed.ssh_port(), bed.leader_pid());

    let t0 = Instant::now();
    let r = run(
        &t,
        r#"
- name: reboot
  reboot: {reboot_timeout: 120}
  register: rb
- name: boot id
  command: cat /proc/sys/kernel/random/boot_id
  register: after
- name: kept file
  command: cat /var/tmp/before-reboot.txt
  register: kept
- name: registered values survive the reboot
  assert:
    that:
      - rb.rebooted
      - rb.elapsed >= 0
      - after.stdout | length == 36
- name: write after
  copy: {dest: /var/tmp/after-reboot.txt, content: "after\n"}
"#,
        false,
    )
    .await;
    let took = t0.elapsed();
    eprintln!("play with a reboot took {took:?}; recap {}", r.recap);
    assert_eq!(r.recap.failed, 0, "{}", failures(&r));
    assert_eq!(r.recap.unreachable, 0, "{}", failures(&r));

    let rb = task(&r, "reboot");
    assert_eq!(rb.outcome, Outcome::Changed, "{}", rb.msg);
    assert_eq!(rb.result["rebooted"], Json::Bool(true), "{}", rb.result);
    let elapsed = rb.result["elapsed"].as_u64().expect("elapsed");
    assert!(
        elapsed <= took.as_secs() && elapsed < 120,
        "elapsed {elapsed}"
    );
    eprintln!("reboot task: {:?}, elapsed {elapsed} s", rb.elapsed);

    let after = stdout_of(&r, "boot id");
    assert_eq!(after.len(), 36, "boot id after {after:?}");
    assert_ne!(
        after, before,
        "boot id unchanged: the target did not reboot"
    );
    assert_eq!(stdout_of(&r, "kept file"), "kept", "same disk after reboot");
    assert_eq!(task(&r, "write after").outcome, Outcome::Changed);

    // The bed booted the guest once more, on the same port.
    assert_eq!(bed.boots(), 2);
    assert_eq!(bed.ssh_port(), port);
    assert_ne!(bed.leader_pid(), leader);
    assert_eq!(
        std::fs::read_to_string(bed.root_dir().join("var/tmp/after-reboot.txt"))
            .unwrap_or_default(),
        "after\n"
    );
    // And the session keeps working for whatever comes next.
    assert_eq!(sh(&t, BOOT_ID).await, after);
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_in_check_mode_reports_changed_and_does_not_reboot() {
    let bed = boot_surviving().await;
    let t = connect(&bed).await;
    let before = sh(&t, BOOT_ID).await;
    let r = run(
        &t,
        "- name: reboot\n  reboot: {reboot_timeout: 120}\n",
        true,
    )
    .await;
    assert_eq!(r.recap.failed, 0, "{}", failures(&r));
    let rb = task(&r, "reboot");
    assert_eq!(rb.outcome, Outcome::Changed, "{}", rb.msg);
    assert_eq!(rb.result["rebooted"], Json::Bool(true), "{}", rb.result);
    assert!(rb.elapsed < Duration::from_secs(2), "{:?}", rb.elapsed);
    // Nothing was scheduled either (the real module waits >= 1 s before
    // rebooting).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sh(&t, BOOT_ID).await, before);
    assert_eq!(bed.boots(), 1);
    stop(bed).await;
}
