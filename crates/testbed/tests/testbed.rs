//! Tests of the test bed itself: moto answers and resets; targets boot to an
//! SSH banner, are inspectable from the host, have their own host keys, reach
//! the host's loopback only when asked, and leave nothing behind (on drop, and
//! after their test process was killed); with `survive_reboot` a rebooted
//! guest boots again on the same disk and port, and leaves nothing behind
//! either (dropped mid-reboot, or its test process killed).
//!
//! Needs root and `scripts/testbed/setup.sh`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use image_testbed::{Moto, Rootfs, Target, TargetOptions, Testbed, HOST_ADDR_FROM_GUEST};

/// Pids of live processes whose comm is `comm` and whose command line
/// contains `needle`.
fn processes(comm: &str, needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if c.trim_end() == comm && !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// What a target leaves on the host while it runs.
struct Traces {
    name: String,
    root: PathBuf,
    run_dir: PathBuf,
    leader: u32,
    cgroups: Vec<PathBuf>,
}

impl Traces {
    fn of(t: &Target) -> Traces {
        let run_dir = t.root_dir().parent().unwrap().to_path_buf();
        let cgroups = [
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/systemd",
            "/sys/fs/cgroup",
        ]
        .iter()
        .map(|r| Path::new(r).join("image-testbed").join(t.name()))
        .filter(|p| p.exists())
        .collect();
        Traces {
            name: t.name().to_string(),
            root: t.root_dir().to_path_buf(),
            run_dir,
            leader: t.leader_pid().unwrap(),
            cgroups,
        }
    }

    fn assert_present(&self) {
        assert!(mounted(&self.root), "overlay mounted");
        assert!(pid_alive(self.leader), "leader alive");
        assert_eq!(
            processes("systemd-nspawn", &self.name).len(),
            1,
            "one nspawn"
        );
        assert_eq!(
            processes("slirp4netns", &self.run_dir.to_string_lossy()).len(),
            1,
            "one slirp4netns"
        );
        assert!(!self.cgroups.is_empty(), "own cgroup dirs");
    }

    fn assert_gone(&self) {
        assert!(
            !mounted(&self.root),
            "overlay still mounted: {}",
            self.root.display()
        );
        assert!(
            !pid_alive(self.leader),
            "leader {} still alive",
            self.leader
        );
        assert!(
            processes("systemd-nspawn", &self.name).is_empty(),
            "nspawn left"
        );
        assert!(
            processes("slirp4netns", &self.run_dir.to_string_lossy()).is_empty(),
            "slirp4netns left"
        );
        assert!(
            !self.run_dir.exists(),
            "run dir left: {}",
            self.run_dir.display()
        );
        for cg in &self.cgroups {
            assert!(!cg.exists(), "cgroup left: {}", cg.display());
        }
    }
}

fn ssh(t: &Target, key: &Path, user: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(key)
        .args([
            "-p",
            &t.ssh_port().to_string(),
            &format!("{user}@{}", t.host()),
            command,
        ])
        .output()
        .unwrap()
}

#[test]
fn locate_finds_keys_and_rootfs() {
    let tb = Testbed::locate().unwrap();
    assert_eq!(tb.user(), "builder");
    for k in [
        tb.ed25519_key(),
        tb.rsa_key(),
        tb.ed25519_public_key(),
        tb.rsa_public_key(),
    ] {
        assert!(k.is_file(), "{}", k.display());
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tb.ed25519_key())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(tb
        .rootfs()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("rootfs-"));
}

#[test]
fn moto_starts_answers_resets_and_records() {
    let t0 = Instant::now();
    let moto = Moto::start().unwrap();
    eprintln!("moto started in {:?} on {}", t0.elapsed(), moto.url());
    let pid = moto.pid().unwrap();
    let (status, _) = moto.request("GET", "/moto-api/", &[], b"").unwrap();
    assert_eq!(status, 200);

    moto.start_recording().unwrap();
    let created = moto
        .ec2_query(
            "us-east-1",
            "Action=CreateKeyPair&KeyName=tb-test&KeyType=ed25519",
        )
        .unwrap();
    assert!(created.contains("tb-test"), "{created}");
    let listed = moto
        .ec2_query("us-east-1", "Action=DescribeKeyPairs")
        .unwrap();
    assert!(listed.contains("tb-test"), "{listed}");
    moto.stop_recording().unwrap();
    assert_eq!(
        moto.recorded_actions().unwrap(),
        ["CreateKeyPair", "DescribeKeyPairs"]
    );

    let t1 = Instant::now();
    moto.reset().unwrap();
    eprintln!("moto reset in {:?}", t1.elapsed());
    let listed = moto
        .ec2_query("us-east-1", "Action=DescribeKeyPairs")
        .unwrap();
    assert!(!listed.contains("tb-test"), "{listed}");
    // Not recording any more.
    assert_eq!(moto.recorded_actions().unwrap().len(), 2);

    drop(moto);
    assert!(!pid_alive(pid), "moto_server still running after drop");
}

#[test]
fn target_boots_is_inspectable_and_leaves_nothing() {
    let t0 = Instant::now();
    let opts = TargetOptions::default()
        .file("/etc/testbed-marker", "hello\n", 0o640)
        .file(
            "/lib/systemd/system/testbed-extra.service",
            "[Service]\nExecStart=/bin/true\n",
            0o644,
        )
        .file("/home/builder/.config/tb/x", "x", 0o600);
    let t = Target::start(opts).unwrap();
    eprintln!(
        "target {} booted to SSH banner in {:?}",
        t.name(),
        t0.elapsed()
    );
    let traces = Traces::of(&t);
    traces.assert_present();

    let banner = t.read_banner(Duration::from_secs(5)).unwrap();
    assert!(banner.starts_with("SSH-2.0-OpenSSH_"), "{banner}");

    let os = std::fs::read_to_string(t.root_dir().join("etc/os-release")).unwrap();
    assert!(os.contains("VERSION_CODENAME=bookworm"), "{os}");

    // Extra files landed, symlinked dirs of the rootfs stayed symlinks and
    // created parents kept the rootfs's owner.
    assert_eq!(
        std::fs::read_to_string(t.root_dir().join("etc/testbed-marker")).unwrap(),
        "hello\n"
    );
    assert!(std::fs::symlink_metadata(t.root_dir().join("lib"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(t
        .root_dir()
        .join("usr/lib/systemd/system/testbed-extra.service")
        .is_file());
    let out = t
        .sh("stat -c '%U %a' /home/builder /home/builder/.config/tb/x /etc/testbed-marker")
        .unwrap();
    assert_eq!(out, "builder 755\nroot 600\nroot 640\n");

    // Commands without SSH.
    assert_eq!(t.sh("hostname").unwrap().trim(), t.name());
    let out = t.exec_host_side(["cat", "/etc/debian_version"]).unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("12."));
    assert_eq!(t.sh("systemctl is-active ssh").unwrap().trim(), "active");
    assert_eq!(
        t.sh("runuser -u builder -- sudo -n id -u").unwrap().trim(),
        "0"
    );
    assert!(t.sh("ip -4 addr show tap0").unwrap().contains("10.0.2.100"));
    assert!(
        t.sh("cat /etc/machine-id").unwrap().trim().len() == 32,
        "machine-id generated"
    );

    // Real SSH with both test keys, as builder and as root.
    let tb = t.testbed().clone();
    for (key, user, cmd, want) in [
        (tb.ed25519_key(), "builder", "sudo -n id -un", "root"),
        (tb.rsa_key(), "builder", "id -un", "builder"),
        (tb.ed25519_key(), "root", "id -un", "root"),
    ] {
        let out = ssh(&t, key, user, cmd);
        assert!(
            out.status.success(),
            "ssh {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    }

    let t1 = Instant::now();
    drop(t);
    eprintln!("target stopped in {:?}", t1.elapsed());
    traces.assert_gone();
}

/// A minimal HTTP server on the host's 127.0.0.1 answering once.
fn serve_once() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nfrom-h");
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, h)
}

#[test]
fn two_targets_side_by_side_with_and_without_host_loopback() {
    let t0 = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Target::start(TargetOptions::default()).unwrap());
        let b = s.spawn(|| Target::start(TargetOptions::default().host_loopback(false)).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!("two targets booted in parallel in {:?}", t0.elapsed());
    assert_ne!(a.name(), b.name());
    assert_ne!(a.ssh_port(), b.ssh_port());
    let (ka, kb) = (
        a.host_public_key("ed25519").unwrap(),
        b.host_public_key("ed25519").unwrap(),
    );
    assert!(ka.starts_with("ssh-ed25519 "), "{ka}");
    assert_ne!(ka, kb, "targets share host keys");
    assert_ne!(
        a.host_public_key("rsa").unwrap(),
        b.host_public_key("rsa").unwrap()
    );
    // Host keys differ from the base rootfs (which has none).
    let tb = a.testbed().clone();
    assert!(!tb.rootfs().join("etc/ssh/ssh_host_ed25519_key").exists());

    // Host loopback: reachable from `a` at 10.0.2.2, not from `b`.
    let (port, h) = serve_once();
    let got = a
        .sh(&format!(
            "curl -sS -m 10 http://{HOST_ADDR_FROM_GUEST}:{port}/"
        ))
        .unwrap();
    assert_eq!(got, "from-h");
    h.join().unwrap();
    let (port, _h) = serve_once();
    let out = b
        .exec_host_side([
            "curl",
            "-sS",
            "-m",
            "3",
            &format!("http://{HOST_ADDR_FROM_GUEST}:{port}/"),
        ])
        .unwrap();
    assert!(
        !out.status.success(),
        "host loopback reachable despite host_loopback(false)"
    );

    let (ta, tb_) = (Traces::of(&a), Traces::of(&b));
    drop(a);
    drop(b);
    ta.assert_gone();
    tb_.assert_gone();
}

#[test]
fn connect_while_sshd_is_not_up_yet_then_wait() {
    let t = Target::start_without_waiting(TargetOptions::default()).unwrap();
    // Right after start, sshd is normally not up: slirp accepts, then closes.
    let early = t.read_banner(Duration::from_secs(1));
    eprintln!("early banner attempt after {:?}: {early:?}", t.uptime());
    let banner = t.wait_ssh(Duration::from_secs(60)).unwrap();
    eprintln!("banner after {:?}", t.uptime());
    assert!(banner.starts_with("SSH-2.0-"));
}

/// Runs the ignored test `helper` of this binary in a child process, reads
/// its `TARGET …` line, then kills it with SIGKILL (no Drop runs) and
/// returns the line.
fn helper_target_line(helper: &str) -> String {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            helper,
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
    child.kill().expect("kill helper");
    child.wait().expect("wait helper");
    line
}

/// Helper run in a child process by `killed_test_process_is_reaped`: boots a
/// target, prints its name, then waits to be killed.
#[test]
#[ignore = "helper of killed_test_process_is_reaped"]
fn helper_boot_and_hang() {
    if std::env::var_os("IMAGE_TESTBED_HELPER").is_none() {
        return;
    }
    let t = Target::start(TargetOptions::default()).unwrap();
    let moto = Moto::start().unwrap();
    println!(
        "TARGET {} {} MOTO {}",
        t.name(),
        t.leader_pid().unwrap(),
        moto.pid().unwrap()
    );
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn killed_test_process_is_reaped() {
    let line = helper_target_line("helper_boot_and_hang");
    let f: Vec<&str> = line.split_whitespace().collect();
    let (name, leader, moto_pid): (&str, u32, u32) =
        (f[1], f[2].parse().unwrap(), f[4].parse().unwrap());

    let tb = Testbed::locate().unwrap();
    let run_dir = tb.run_dir().join(name);
    // Other tests running in parallel may reap it first: either way it goes.
    let reaped = tb.reap_stale().unwrap();
    eprintln!("reaped {reaped} stale run dirs");
    let traces = Traces {
        name: name.to_string(),
        root: run_dir.join("root"),
        run_dir,
        leader,
        cgroups: ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"]
            .iter()
            .map(|r| Path::new(r).join("image-testbed").join(name))
            .collect(),
    };
    // A reaper in another test process may be mid-way (SIGTERM, grace,
    // SIGKILL): give it a bounded time to finish before asserting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while (pid_alive(moto_pid) || pid_alive(leader) || traces.run_dir.exists())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = tb.reap_stale();
    }
    traces.assert_gone();
    assert!(!pid_alive(moto_pid), "moto left");
}

// ------------------------------------------------------------- reboots --

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What a target named `name` with run dir `run_dir` leaves on the host.
struct RebootTraces {
    name: String,
    run_dir: PathBuf,
    leaders: Vec<u32>,
}

impl RebootTraces {
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
fn reboot_guest(bed: &Target) {
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
    let bed = Target::start(TargetOptions::default().survive_reboot(true)).expect("boot");
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

    let traces = RebootTraces {
        name: bed.name().to_string(),
        run_dir,
        leaders: vec![leader, new_leader],
    };
    drop(bed);
    assert_eq!(traces.left(), Vec::<String>::new());
}

/// Reboots a surviving target, waits until `ready` says so, drops it, and
/// checks that nothing is left.
fn drop_while_rebooting(what: &str, ready: impl Fn(&Target, u32) -> bool) {
    let bed = Target::start(TargetOptions::default().survive_reboot(true)).expect("boot");
    let run_dir = bed.root_dir().parent().expect("run dir").to_path_buf();
    let leader = bed.leader_pid().expect("leader");
    reboot_guest(&bed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(&bed, leader) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(ready(&bed, leader), "{what}: not reached");
    let mut traces = RebootTraces {
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
    let bed = Target::start(TargetOptions::default()).expect("boot");
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
    let bed = Target::start(TargetOptions::default().survive_reboot(true)).expect("boot");
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
    let line = helper_target_line("helper_reboot_and_hang");
    let f: Vec<&str> = line.split_whitespace().collect();
    let name = f[1].to_string();
    let leaders: Vec<u32> = f[2..].iter().map(|p| p.parse().expect("pid")).collect();

    let tb = Testbed::locate().expect("test bed");
    let traces = RebootTraces {
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

#[test]
fn rpm_target_boots_with_an_rpm_database_and_dnf() {
    let repo = Testbed::locate().unwrap().rpm_repo().unwrap();
    for f in [
        "RPM-GPG-KEY-testbed",
        "main/repodata/repomd.xml",
        "extra/repodata/repomd.xml",
    ] {
        assert!(repo.join(f).is_file(), "{} missing", repo.join(f).display());
    }
    let t = Target::start(TargetOptions::default().rootfs(Rootfs::Rpm)).unwrap();
    let traces = Traces::of(&t);
    traces.assert_present();
    // The release package in the system database, dnf reads $releasever
    // from it, the facts see an AL2023 look-alike, and there is no apt.
    let out = t
        .sh("rpm -q tb-system-release && rpm -q --whatprovides 'system-release(releasever)' --qf '%{NAME}\\n' && . /etc/os-release && echo \"$ID $VERSION_ID\" && python3 -c 'import dnf; print(dnf.rpm.detect_releasever(\"/\"))' && command -v dnf && ! command -v apt-get")
        .unwrap();
    assert_eq!(
        out,
        "tb-system-release-2023.0-1.noarch\ntb-system-release\namzn 2023\n2023\n/usr/bin/dnf\n",
    );
    t.stop();
    traces.assert_gone();
}
