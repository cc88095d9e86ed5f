//! The `reboot` module against a real target that comes back: a test-bed
//! target with `survive_reboot`, which nspawn boots again on the same
//! overlay and the same SSH port when the guest reboots.
//!
//! * a real reboot: the task is changed with `rebooted: true`, the boot id
//!   differs afterwards, a file written before is still there (same disk),
//!   and the later tasks of the play run over the reconnected session;
//! * check mode: changed, and nothing reboots;
//! * the test bed itself: a rebooted guest is booted again with a new leader
//!   on the same port and leaves nothing behind, on drop and after its test
//!   process was killed (the reaper finds the new boot's processes); without
//!   `survive_reboot` a reboot still ends the target.
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bed_support::{boot_with, connect, stop};
use image_core::events::{Outcome, Recorder};
use image_core::ssh::SshTarget;
use image_core::target::{Exec, Target};
use image_provision::{parse, Options, Report};
use image_testbed::{Target as Bed, TargetOptions, Testbed};
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

// ------------------------------------------------------------ the test bed --

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Live processes whose comm is `comm` and whose command line contains
/// `needle`.
fn processes(comm: &str, needle: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| {
            let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            c.trim_end() == comm
                && pid_alive(pid)
                && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

/// What a target named `name` with run dir `run_dir` leaves on the host.
struct Traces {
    name: String,
    run_dir: PathBuf,
    leaders: Vec<u32>,
}

impl Traces {
    fn cgroups(&self) -> Vec<PathBuf> {
        [
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup",
        ]
        .iter()
        .map(|r| Path::new(r).join("image-testbed").join(&self.name))
        .filter(|p| p.exists())
        .collect()
    }

    /// What is left, empty when nothing.
    fn left(&self) -> Vec<String> {
        let mut left = Vec::new();
        for l in &self.leaders {
            if pid_alive(*l) {
                left.push(format!("leader {l}"));
            }
        }
        for p in processes("systemd-nspawn", &self.name) {
            left.push(format!("systemd-nspawn {p}"));
        }
        for p in processes("slirp4netns", &self.run_dir.to_string_lossy()) {
            left.push(format!("slirp4netns {p}"));
        }
        if mounted(&self.run_dir.join("root")) {
            left.push("overlay mount".into());
        }
        for cg in self.cgroups() {
            left.push(format!("cgroup {}", cg.display()));
        }
        if self.run_dir.exists() {
            left.push(format!("run dir {}", self.run_dir.display()));
        }
        left
    }
}

/// Reboots the guest from the host side (no SSH).
fn reboot_guest(bed: &Bed) {
    let out = bed
        .exec_host_side(["systemctl", "reboot"])
        .expect("nsenter");
    assert!(
        out.status.success(),
        "systemctl reboot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bed_boots_a_rebooted_guest_again_on_the_same_disk_and_port() {
    let bed = Bed::start(TargetOptions::default().survive_reboot(true)).expect("boot");
    let run_dir = bed.root_dir().parent().expect("run dir").to_path_buf();
    let (port, leader) = (bed.ssh_port(), bed.leader_pid().expect("leader"));
    let boot_id = bed.sh(BOOT_ID).expect("boot id");
    bed.sh("echo kept > /var/tmp/kept").expect("write");
    let key = bed.host_public_key("ed25519").expect("host key");

    let t0 = Instant::now();
    reboot_guest(&bed);
    let banner = bed
        .wait_boot(2, Duration::from_secs(90))
        .expect("booted again");
    eprintln!("rebooted to an SSH banner in {:?}", t0.elapsed());
    assert!(banner.starts_with("SSH-2.0-"), "{banner}");
    assert_eq!(bed.boots(), 2);
    assert_eq!(bed.ssh_port(), port);
    let new_leader = bed.leader_pid().expect("new leader");
    assert_ne!(new_leader, leader);
    assert!(!pid_alive(leader), "old leader {leader} alive");
    assert_ne!(bed.sh(BOOT_ID).expect("boot id"), boot_id);
    assert_eq!(bed.sh("cat /var/tmp/kept").expect("read"), "kept\n");
    // Same disk, same host keys: clients that pinned it still connect.
    assert_eq!(bed.host_public_key("ed25519").expect("host key"), key);
    assert_eq!(
        bed.sh("systemctl is-active ssh").expect("ssh").trim(),
        "active"
    );

    // One nspawn, one slirp4netns, both recorded for a reaper.
    let nspawns = processes("systemd-nspawn", bed.name());
    assert_eq!(nspawns.len(), 1, "{nspawns:?}");
    assert_eq!(ppid(new_leader), Some(nspawns[0]));
    let slirps = processes("slirp4netns", &run_dir.to_string_lossy());
    assert_eq!(slirps.len(), 1, "{slirps:?}");
    let pids = std::fs::read_to_string(run_dir.join("pids")).expect("pids record");
    assert_eq!(
        pids,
        format!("systemd-nspawn {}\nslirp4netns {}\n", nspawns[0], slirps[0])
    );

    let traces = Traces {
        name: bed.name().to_string(),
        run_dir,
        leaders: vec![leader, new_leader],
    };
    drop(bed);
    assert_eq!(traces.left(), Vec::<String>::new());
}

/// Reboots a surviving target, waits until `ready` says so, drops it, and
/// checks that nothing is left.
fn drop_while_rebooting(what: &str, ready: impl Fn(&Bed, u32) -> bool) {
    let bed = Bed::start(TargetOptions::default().survive_reboot(true)).expect("boot");
    let run_dir = bed.root_dir().parent().expect("run dir").to_path_buf();
    let leader = bed.leader_pid().expect("leader");
    reboot_guest(&bed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(&bed, leader) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(ready(&bed, leader), "{what}: not reached");
    let mut traces = Traces {
        name: bed.name().to_string(),
        run_dir,
        leaders: vec![leader],
    };
    // A leader of the next boot, if it got that far.
    traces.leaders.extend(bed.leader_pid());
    let t0 = Instant::now();
    drop(bed);
    eprintln!("{what}: dropped in {:?}", t0.elapsed());
    // A process killed by teardown can take a moment to be gone from /proc
    // on a loaded machine: a real leak stays.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = traces.left();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = traces.left();
    }
    assert_eq!(left, Vec::<String>::new(), "{what}");
}

#[test]
fn bed_dropped_while_the_guest_reboots_leaves_nothing() {
    // Going down (nspawn exiting or just exited).
    drop_while_rebooting("old guest down", |_, leader| !pid_alive(leader));
    // Coming up: the supervisor has started the next nspawn.
    drop_while_rebooting("next boot started", |bed, _| bed.boots() == 2);
}

#[test]
fn bed_without_survive_reboot_ends_with_the_guest() {
    let bed = Bed::start(TargetOptions::default()).expect("boot");
    let leader = bed.leader_pid().expect("leader");
    reboot_guest(&bed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pid_alive(leader) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid_alive(leader), "guest did not go down");
    let err = bed
        .wait_ssh(Duration::from_secs(10))
        .expect_err("a rebooted target is gone by default");
    assert!(err.to_string().contains("exited"), "{err}");
    assert_eq!(bed.boots(), 1);
}

/// Helper run in a child process by
/// `killed_test_process_after_a_reboot_is_reaped`: boots a target, reboots
/// it, prints it, then waits to be killed.
#[test]
#[ignore = "helper of killed_test_process_after_a_reboot_is_reaped"]
fn helper_reboot_and_hang() {
    if std::env::var_os("IMAGE_TESTBED_HELPER").is_none() {
        return;
    }
    let bed = Bed::start(TargetOptions::default().survive_reboot(true)).expect("boot");
    let first = bed.leader_pid().expect("leader");
    reboot_guest(&bed);
    bed.wait_boot(2, Duration::from_secs(90))
        .expect("booted again");
    println!(
        "TARGET {} {first} {}",
        bed.name(),
        bed.leader_pid().expect("leader")
    );
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_secs(180));
}

#[test]
fn killed_test_process_after_a_reboot_is_reaped() {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "helper_reboot_and_hang",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IMAGE_TESTBED_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("helper");
    let mut out = child.stdout.take().expect("stdout");
    let mut text = String::new();
    let mut buf = [0u8; 256];
    let line = loop {
        let n = out.read(&mut buf).expect("read helper");
        if n == 0 {
            let _ = child.kill();
            panic!("helper exited: {text}");
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(start) = text.find("TARGET ") {
            if let Some(len) = text[start..].find('\n') {
                break text[start..start + len].to_string();
            }
        }
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let name = f[1].to_string();
    let leaders: Vec<u32> = f[2..].iter().map(|p| p.parse().expect("pid")).collect();
    child.kill().expect("kill helper"); // SIGKILL: no Drop runs
    child.wait().expect("wait helper");

    let tb = Testbed::locate().expect("test bed");
    let traces = Traces {
        run_dir: tb.run_dir().join(&name),
        name,
        leaders,
    };
    // Any test process starting a target reaps stale run dirs: this one or
    // another may do it, either way it goes, in a bounded time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let _ = tb.reap_stale();
    while !traces.left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let _ = tb.reap_stale();
    }
    assert_eq!(traces.left(), Vec::<String>::new());
}
