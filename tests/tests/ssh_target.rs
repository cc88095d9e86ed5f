//! Reaching a host over SSH: [`SshTarget`] against a real booted Debian
//! target (systemd-nspawn, OpenSSH 9.2, user `builder` with passwordless
//! sudo) from the test bed. Every test boots its own target.
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bed_support::{boot, stop};
use image_core::ssh::{HostKeyPolicy, SshAuth, SshConfig, SshTarget};
use image_core::target::{Become, Exec, FileMeta, Target, TargetError};
use image_testbed::{Target as Bed, TargetOptions};

fn config(bed: &Bed, auth: SshAuth) -> SshConfig {
    let mut cfg = SshConfig::new(bed.host(), bed.ssh_port(), bed.user(), auth);
    cfg.retry_until = Duration::from_secs(30);
    cfg
}

fn ed25519(bed: &Bed) -> SshAuth {
    SshAuth::key_file(bed.testbed().ed25519_key())
}

async fn connect(bed: &Bed) -> SshTarget {
    SshTarget::connect(config(bed, ed25519(bed)))
        .await
        .expect("connect as builder")
}

/// Runs a command on the target through the host side (no SSH).
fn host_sh(bed: &Bed, script: &str) -> String {
    // `block_in_place`: the test bed API blocks (multi-threaded runtime).
    tokio::task::block_in_place(|| bed.sh(script)).expect("host-side command")
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_reports_exit_status_stdout_and_stderr() {
    let bed = boot().await;
    let t = connect(&bed).await;
    assert_eq!(t.name(), format!("builder@127.0.0.1:{}", bed.ssh_port()));
    let out = t
        .exec(&Exec::new("echo to-out; echo to-err >&2; exit 7"))
        .await
        .expect("exec");
    assert_eq!(out.status, 7);
    assert_eq!(out.stdout_str(), "to-out\n");
    assert_eq!(out.stderr_str(), "to-err\n");
    let out = t.exec(&Exec::new("true")).await.expect("exec true");
    assert!(out.success() && out.stdout.is_empty() && out.stderr.is_empty());
    let out = t.exec(&Exec::new("no-such-command-x")).await.expect("exec");
    assert_eq!(out.status, 127);
    assert!(
        out.stderr_str().contains("not found"),
        "{}",
        out.stderr_str()
    );
    // Killed by a signal.
    let out = t.exec(&Exec::new("kill -KILL $$")).await.expect("exec");
    assert_eq!(out.status, -1, "killed by a signal");
    // On a terminal (as `ssh -tt`): both outputs on it, CRLF line ends; the
    // same through sudo (which never takes a become shell then).
    for cmd in [
        Exec::new("echo to-out; echo to-err >&2; [ -t 1 ] && exit 3").tty(),
        Exec::new("echo to-out; echo to-err >&2; [ -t 1 ] && exit 3")
            .tty()
            .become_root(),
    ] {
        let out = t.exec(&cmd).await.expect("exec on a terminal");
        assert_eq!(out.status, 3, "stdout is a terminal");
        assert_eq!(out.stdout_str(), "to-out\r\nto-err\r\n");
        assert_eq!(out.stderr_str(), "");
    }
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_feeds_stdin() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let out = t
        .exec(&Exec::new("tr a-z A-Z").stdin("hello\nworld\n"))
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "HELLO\nWORLD\n");
    // Larger than the channel window (2 MiB), checked byte for byte.
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = t
        .exec(&Exec::new("cat").stdin(big.clone()))
        .await
        .expect("echo big stdin");
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout == big, "stdin echoed back differs");
    // Without stdin the command sees EOF at once (does not hang).
    let out = t.exec(&Exec::new("wc -c")).await.expect("exec");
    assert_eq!(out.stdout_str().trim(), "0");
    // A command that does not read its input is not an error.
    let out = t
        .exec(&Exec::new("echo done").stdin(vec![b'x'; 4 * 1024 * 1024]))
        .await
        .expect("unread stdin");
    assert_eq!(out.stdout_str(), "done\n");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_sets_env_and_cwd() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let out = t
        .exec(
            &Exec::new(r#"printf '%s|%s|%s' "$A" "$B" "$(pwd)""#)
                .env("A", "one two")
                .env("B", "it's $HOME")
                .cwd("/usr/share"),
        )
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "one two|it's $HOME|/usr/share");
    // The same through sudo: env and cwd apply inside.
    let out = t
        .exec(
            &Exec::new(r#"echo "$A $(id -un) $(pwd)""#)
                .env("A", "x")
                .cwd("/etc")
                .become_root(),
        )
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "x root /etc\n");
    let out = t
        .exec(&Exec::new("pwd").cwd("/nonexistent"))
        .await
        .expect("exec");
    assert_ne!(out.status, 0);
    assert!(
        out.stderr_str().contains("/nonexistent"),
        "{}",
        out.stderr_str()
    );
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_returns_10mb_stdout_with_large_stderr() {
    let bed = boot().await;
    let t = connect(&bed).await;
    // 3 MB of stderr first (more than the window: a client that read all of
    // stdout before stderr would hang), then 10 MiB of stdout, then stderr.
    let out = t
        .exec(
            &Exec::new(
                "head -c 3000000 /dev/zero | tr '\\0' e >&2; \
                 head -c 10485760 /dev/zero | tr '\\0' o; \
                 head -c 1000 /dev/zero | tr '\\0' f >&2",
            )
            .timeout(Duration::from_secs(120)),
        )
        .await
        .expect("exec");
    assert!(out.success(), "{}", out.status);
    assert_eq!(out.stdout.len(), 10 * 1024 * 1024);
    assert!(out.stdout.iter().all(|&b| b == b'o'));
    assert_eq!(out.stderr.len(), 3_001_000);
    assert!(out.stderr[..3_000_000].iter().all(|&b| b == b'e'));
    assert!(out.stderr[3_000_000..].iter().all(|&b| b == b'f'));
    // Interleaved in small pieces.
    let out = t
        .exec(&Exec::new(
            "for i in $(seq 1 200); do echo out$i; echo err$i >&2; done",
        ))
        .await
        .expect("exec");
    assert_eq!(out.stdout_str().lines().count(), 200);
    assert_eq!(out.stderr_str().lines().last(), Some("err200"));
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_and_get_with_mode_and_owner() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let root = bed.root_dir().to_path_buf();

    // As the login user, into its home.
    let meta = FileMeta {
        mode: Some(0o640),
        ..Default::default()
    };
    t.put("/home/builder/notes.txt", b"first\n", &meta, None)
        .await
        .expect("put");
    let p = root.join("home/builder/notes.txt");
    assert_eq!(std::fs::read(&p).expect("read on host"), b"first\n");
    let md = std::fs::metadata(&p).expect("stat on host");
    assert_eq!(md.mode() & 0o7777, 0o640);
    let stat = t
        .exec(&Exec::new("stat -c '%a %U %G' /home/builder/notes.txt"))
        .await
        .expect("stat");
    assert_eq!(stat.stdout_str(), "640 builder builder\n");
    assert_eq!(
        t.get("/home/builder/notes.txt", None).await.expect("get"),
        b"first\n"
    );
    // Replacing keeps the existing mode when none is given.
    t.put(
        "/home/builder/notes.txt",
        b"second\n",
        &FileMeta::default(),
        None,
    )
    .await
    .expect("put again");
    let md = std::fs::metadata(&p).expect("stat on host");
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(std::fs::read(&p).expect("read"), b"second\n");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(root.join("home/builder"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("image-cli"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Through sudo into a root-owned directory, with owner and group.
    let meta = FileMeta {
        mode: Some(0o600),
        owner: Some("root".into()),
        group: Some("builder".into()),
    };
    let root_become = Become::default();
    t.put(
        "/etc/image-cli-test.conf",
        b"secret=1\n",
        &meta,
        Some(&root_become),
    )
    .await
    .expect("put with sudo");
    let p = root.join("etc/image-cli-test.conf");
    let md = std::fs::metadata(&p).expect("stat on host");
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(md.uid(), 0);
    let stat = t
        .exec(&Exec::new("stat -c '%a %U %G' /etc/image-cli-test.conf"))
        .await
        .expect("stat");
    assert_eq!(stat.stdout_str(), "600 root builder\n");
    // Unreadable for builder, readable through sudo.
    let e = t
        .get("/etc/image-cli-test.conf", None)
        .await
        .expect_err("not readable without sudo");
    assert!(
        matches!(&e, TargetError::File { op: "read", detail, .. } if detail.contains("Permission denied")),
        "{e}"
    );
    assert_eq!(
        t.get("/etc/image-cli-test.conf", Some(&root_become))
            .await
            .expect("get with sudo"),
        b"secret=1\n"
    );
    // Without sudo, a root-owned directory is not writable.
    let e = t
        .put("/etc/nope.conf", b"x", &FileMeta::default(), None)
        .await
        .expect_err("no permission");
    assert!(matches!(e, TargetError::File { op: "write", .. }), "{e}");
    assert!(!root.join("etc/nope.conf").exists());

    // A missing parent directory: File error with the remote message.
    let e = t
        .put("/no/such/dir/f", b"x", &FileMeta::default(), None)
        .await
        .expect_err("missing dir");
    match &e {
        TargetError::File {
            op, path, detail, ..
        } => {
            assert_eq!((*op, path.as_str()), ("write", "/no/such/dir/f"));
            assert!(
                detail.contains("nonexistent") || detail.contains("No such"),
                "{e}"
            );
        }
        other => panic!("expected File, got {other}"),
    }
    // A missing file.
    let e = t
        .get("/no/such/file", None)
        .await
        .expect_err("missing file");
    assert!(
        matches!(&e, TargetError::File { op: "read", detail, .. } if detail.contains("No such file")),
        "{e}"
    );
    // Binary content, larger than the window, round-trips exactly.
    let blob: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    // (/var/tmp: the guest's /tmp is a tmpfs, invisible from the host.)
    t.put("/var/tmp/blob", &blob, &FileMeta::default(), None)
        .await
        .expect("put blob");
    assert!(t.get("/var/tmp/blob", None).await.expect("get blob") == blob);
    assert!(std::fs::read(root.join("var/tmp/blob")).expect("read blob") == blob);
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_runs_as_root_and_refusal_is_reported() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let out = t
        .exec(&Exec::new("id -u").become_root())
        .await
        .expect("sudo id");
    assert_eq!(out.stdout_str().trim(), "0");
    let out = t
        .exec(&Exec::new("id -un").become_opt(Some(Become {
            user: "nobody".into(),
        })))
        .await
        .expect("sudo -u nobody");
    assert_eq!(out.stdout_str().trim(), "nobody");
    // A user without sudo rights, logging in with the same key.
    host_sh(
        &bed,
        "useradd --create-home --shell /bin/bash plain && usermod --password '*' plain && \
         install -d -o plain -g plain -m 0700 /home/plain/.ssh && \
         install -o plain -g plain -m 0600 /home/builder/.ssh/authorized_keys /home/plain/.ssh/",
    );
    let mut cfg = config(&bed, ed25519(&bed));
    cfg.user = "plain".into();
    let plain = SshTarget::connect(cfg).await.expect("connect as plain");
    let out = plain.exec(&Exec::new("id -un")).await.expect("exec");
    assert_eq!(out.stdout_str().trim(), "plain");
    let e = plain
        .exec(&Exec::new("id -u").become_root())
        .await
        .expect_err("no sudo rights");
    match &e {
        TargetError::SudoRefused { host, detail } => {
            assert!(host.starts_with("plain@"), "{e}");
            assert!(detail.starts_with("sudo:"), "{e}");
        }
        other => panic!("expected SudoRefused, got {other}"),
    }
    let e = plain
        .put(
            "/etc/x",
            b"x",
            &FileMeta::default(),
            Some(&Become::default()),
        )
        .await
        .expect_err("put through refused sudo");
    assert!(matches!(e, TargetError::SudoRefused { .. }), "{e}");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_commands_share_one_session() {
    let bed = boot().await;
    let t = connect(&bed).await;
    for i in 0..50 {
        let out = t
            .exec(&Exec::new(format!("echo {i}")))
            .await
            .unwrap_or_else(|e| panic!("command {i}: {e}"));
        assert!(out.success());
        assert_eq!(out.stdout_str(), format!("{i}\n"));
    }
    // One TCP connection to sshd (seen from the target).
    let conns = t
        .exec(&Exec::new(
            "ss -Htn state established '( sport = :22 )' | wc -l",
        ))
        .await
        .expect("ss");
    assert_eq!(conns.stdout_str().trim(), "1");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_exec_from_several_tasks() {
    let bed = boot().await;
    let t = Arc::new(connect(&bed).await);
    t.exec(&Exec::new("mkdir -p /tmp/barrier"))
        .await
        .expect("mkdir");
    // Each command waits until all of them have started: this only finishes
    // if the commands really run at the same time on the session.
    const N: usize = 8;
    let mut tasks = Vec::new();
    for i in 0..N {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let barrier = Exec::new(format!(
                "touch /tmp/barrier/{i}; \
                 while [ $(ls /tmp/barrier | wc -l) -lt {N} ]; do sleep 0.05; done; \
                 echo task{i}"
            ))
            .timeout(Duration::from_secs(30));
            let out = t.exec(&barrier).await?;
            let mut outs = vec![out.stdout_str()];
            for j in 0..10 {
                let out = t.exec(&Exec::new(format!("echo {i}-{j}"))).await?;
                outs.push(out.stdout_str());
            }
            Ok::<_, TargetError>(outs)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outs = task.await.expect("task").expect("commands");
        assert_eq!(outs[0], format!("task{i}\n"));
        for (j, o) in outs[1..].iter().enumerate() {
            assert_eq!(o, &format!("{i}-{j}\n"));
        }
    }
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_retries_until_sshd_is_up() {
    let bed = tokio::task::spawn_blocking(|| Bed::start_without_waiting(TargetOptions::default()))
        .await
        .expect("boot task")
        .expect("test bed target");
    let mut cfg = config(&bed, ed25519(&bed));
    cfg.retry_until = Duration::from_secs(60);
    cfg.connect_timeout = Duration::from_secs(5);
    let t = SshTarget::connect(cfg)
        .await
        .expect("connect while booting");
    let out = t.exec(&Exec::new("echo up")).await.expect("exec");
    assert_eq!(out.stdout_str(), "up\n");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_and_in_memory_keys_authenticate() {
    let bed = boot().await;
    let tb = bed.testbed().clone();
    let auths = [
        SshAuth::key_file(tb.rsa_key()),
        SshAuth::key_memory(std::fs::read_to_string(tb.ed25519_key()).expect("read key")),
        SshAuth::key_memory(std::fs::read_to_string(tb.rsa_key()).expect("read key")),
    ];
    for auth in auths {
        let what = format!("{auth:?}");
        let t = SshTarget::connect(config(&bed, auth))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let out = t.exec(&Exec::new("id -un")).await.expect("exec");
        assert_eq!(out.stdout_str(), "builder\n", "{what}");
    }
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_key_is_auth_failed() {
    let bed = boot().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("id_other");
    let st = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "not-authorized",
            "-f",
        ])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let mut cfg = config(&bed, SshAuth::key_file(&key));
    cfg.retry_until = Duration::from_secs(2);
    let e = SshTarget::connect(cfg).await.expect_err("unknown key");
    match &e {
        TargetError::AuthFailed { user, detail, .. } => {
            assert_eq!(user, "builder");
            assert!(detail.contains("id_other"), "{e}");
        }
        other => panic!("expected AuthFailed, got {other}"),
    }
    assert!(e.to_string().contains("`builder`"), "{e}");
    // An in-memory key is refused the same way.
    let pem = std::fs::read_to_string(&key).expect("read key");
    let mut cfg = config(&bed, SshAuth::key_memory(pem));
    cfg.retry_until = Duration::ZERO;
    let e = SshTarget::connect(cfg).await.expect_err("unknown key");
    assert!(matches!(e, TargetError::AuthFailed { .. }), "{e}");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_unreachable() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let tb = image_testbed::Testbed::locate().expect("test bed");
    let mut cfg = SshConfig::new(
        "127.0.0.1",
        port,
        "builder",
        SshAuth::key_file(tb.ed25519_key()),
    );
    cfg.retry_until = Duration::from_secs(1);
    let e = SshTarget::connect(cfg).await.expect_err("closed port");
    match &e {
        TargetError::Unreachable { host, detail } => {
            assert_eq!(host, &format!("builder@127.0.0.1:{port}"));
            assert!(detail.contains("refused"), "{e}");
            assert!(detail.contains("tried"), "{e}");
        }
        other => panic!("expected Unreachable, got {other}"),
    }
    assert!(e.is_connection_lost());
}

/// `SHA256:...` of a public key file, by ssh-keygen.
fn keygen_fingerprint(pubkey: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubkey)
        .output()
        .expect("ssh-keygen -lf");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn host_key_pinning() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let seen = t.host_key_fingerprint();
    assert!(seen.starts_with("SHA256:") && seen.len() == 50, "{seen}");
    // It is one of the target's host keys, as ssh-keygen prints them.
    let etc = bed.root_dir().join("etc/ssh");
    let by_alg: Vec<(&str, String)> = ["ed25519", "ecdsa", "rsa"]
        .iter()
        .map(|a| {
            (
                *a,
                keygen_fingerprint(&etc.join(format!("ssh_host_{a}_key.pub"))),
            )
        })
        .collect();
    assert!(
        by_alg.iter().any(|(_, f)| *f == seen),
        "{seen} not in {by_alg:?}"
    );
    drop(t);
    // Pinning any of the host's keys connects.
    for (alg, fp) in &by_alg {
        let mut cfg = config(&bed, ed25519(&bed));
        cfg.host_key = HostKeyPolicy::Fingerprint(fp.clone());
        let t = SshTarget::connect(cfg)
            .await
            .unwrap_or_else(|e| panic!("pinned {alg} key: {e}"));
        assert_eq!(&t.host_key_fingerprint(), fp, "{alg}");
        assert!(t.exec(&Exec::new("true")).await.expect("exec").success());
    }
    // A wrong pin is refused at once, not retried.
    let mut cfg = config(&bed, ed25519(&bed));
    cfg.host_key =
        HostKeyPolicy::Fingerprint("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    cfg.retry_until = Duration::from_secs(60);
    let t0 = std::time::Instant::now();
    let e = SshTarget::connect(cfg).await.expect_err("wrong pin");
    match &e {
        TargetError::HostKeyMismatch {
            host,
            found,
            expected,
        } => {
            assert_eq!(host, &format!("127.0.0.1:{}", bed.ssh_port()));
            assert_eq!(found, &seen);
            assert!(expected.starts_with("SHA256:AAAA"));
        }
        other => panic!("expected HostKeyMismatch, got {other}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "retried a mismatch");
    stop(bed).await;
}

/// The pid of the sshd process serving our session (changes on reconnect).
async fn session_pid(t: &SshTarget) -> String {
    let out = t
        .exec(&Exec::new(
            "p=$$; while [ \"$p\" -gt 1 ]; do \
               case \"$(cat /proc/$p/cmdline | tr '\\0' ' ')\" in 'sshd: '*) echo $p; exit;; esac; \
               p=$(awk '/^PPid:/{print $2}' /proc/$p/status); \
             done",
        ))
        .await
        .expect("session pid");
    let pid = out.stdout_str().trim().to_string();
    assert!(!pid.is_empty(), "no sshd ancestor: {}", out.stderr_str());
    pid
}

#[tokio::test(flavor = "multi_thread")]
async fn command_timeout_kills_and_keeps_the_session() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let session = session_pid(&t).await;
    let e = t
        .exec(&Exec::new("sleep 987").timeout(Duration::from_millis(500)))
        .await
        .expect_err("times out");
    match &e {
        TargetError::Timeout { command, after, .. } => {
            assert_eq!(command, "sleep 987");
            assert_eq!(*after, Duration::from_millis(500));
        }
        other => panic!("expected Timeout, got {other}"),
    }
    // Through sudo as well (the process is root's).
    let e = t
        .exec(
            &Exec::new("sleep 988")
                .become_root()
                .timeout(Duration::from_millis(500)),
        )
        .await
        .expect_err("times out");
    assert!(matches!(e, TargetError::Timeout { .. }), "{e}");
    // Still usable, and the timed-out commands are gone.
    let out = t
        .exec(&Exec::new("pgrep -fa 'sleep 98[78]' || echo none"))
        .await
        .expect("exec after timeout");
    assert_eq!(out.stdout_str(), "none\n");
    // On the same session (no reconnect was needed).
    assert_eq!(session_pid(&t).await, session);
    // A default timeout from the configuration.
    let mut cfg = config(&bed, ed25519(&bed));
    cfg.command_timeout = Some(Duration::from_millis(300));
    let t2 = SshTarget::connect(cfg).await.expect("connect");
    let e = t2.exec(&Exec::new("sleep 5")).await.expect_err("times out");
    assert!(matches!(e, TargetError::Timeout { .. }), "{e}");
    let out = t2.exec(&Exec::new("echo ok")).await.expect("exec");
    assert_eq!(out.stdout_str(), "ok\n");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_starts_after_its_timeout_never_runs() {
    // A loaded host: the command's login shell is still starting when its
    // timeout passes (bash reads ~/.bashrc under sshd; here it waits 2 s for
    // this command only), so the kill that follows finds no process of it.
    // The kill's marker must stop the command when it does start.
    let bed = boot().await;
    host_sh(
        &bed,
        "h=$(getent passwd builder | cut -d: -f6); \
         sed -i '1i case \"$BASH_EXECUTION_STRING\" in *started-989*) sleep 2;; esac' \"$h/.bashrc\"",
    );
    let t = connect(&bed).await;
    let e = t
        .exec(&Exec::new("touch /tmp/started-989; sleep 989").timeout(Duration::from_millis(500)))
        .await
        .expect_err("times out");
    assert!(matches!(e, TargetError::Timeout { .. }), "{e}");
    // Past the login's end: the command would be running by now.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = host_sh(
        &bed,
        "pgrep -fa '[s]leep 989' || echo none; [ -e /tmp/started-989 ] && echo started || echo not started",
    );
    assert_eq!(out, "none\nnot started\n");
    // The session is still usable.
    let out = t.exec(&Exec::new("echo ok")).await.expect("exec");
    assert_eq!(out.stdout_str(), "ok\n");
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connection_is_disconnected_then_reconnects() {
    let bed = boot().await;
    let t = Arc::new(connect(&bed).await);
    let first = session_pid(&t).await;
    let running = {
        let t = t.clone();
        tokio::spawn(async move { t.exec(&Exec::new("sleep 30; echo late")).await })
    };
    // Wait until the command runs, then kill the session's sshd processes.
    for _ in 0..100 {
        let ps = host_sh(&bed, "pgrep -f '[s]leep 30' || true");
        if !ps.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host_sh(&bed, "pkill -KILL -f 'sshd: [b]uilder' || true");
    let e = running
        .await
        .expect("task")
        .expect_err("connection killed mid-command");
    assert!(matches!(e, TargetError::Disconnected { .. }), "{e}");
    assert!(e.is_connection_lost());
    // The next command reconnects by itself.
    let out = t.exec(&Exec::new("echo back")).await.expect("reconnected");
    assert_eq!(out.stdout_str(), "back\n");
    let second = session_pid(&t).await;
    assert_ne!(second, first);
    // An explicit reconnect (as after a reboot) gives a fresh session.
    t.reconnect().await.expect("reconnect");
    let out = t.exec(&Exec::new("echo again")).await.expect("exec");
    assert_eq!(out.stdout_str(), "again\n");
    let third = session_pid(&t).await;
    assert_ne!(third, second);
    // A session dropped while idle is replaced transparently: the command had
    // not reached the host, so it runs on a new session.
    host_sh(&bed, "pkill -KILL -f 'sshd: [b]uilder' || true");
    for _ in 0..100 {
        let conns = host_sh(&bed, "ss -Htn state established '( sport = :22 )'");
        if conns.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = t
        .exec(&Exec::new("echo fresh"))
        .await
        .expect("exec after idle drop");
    assert_eq!(out.stdout_str(), "fresh\n");
    assert_ne!(session_pid(&t).await, third);
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_large_io_and_timeouts_keep_the_session_sound() {
    let bed = boot().await;
    let t = Arc::new(connect(&bed).await);
    let session = session_pid(&t).await;
    // Several tasks push and pull megabytes through the one session while
    // others time out mid-transfer: no data mixed up, nothing left running,
    // no reconnect needed.
    let tasks: Vec<_> = (0..8u32)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                for j in 0..3u32 {
                    let data: Vec<u8> = (0..(1_000_000 + i * 1000 + j))
                        .map(|k| (k.wrapping_mul(31) ^ i) as u8)
                        .collect();
                    let out = t
                        .exec(&Exec::new("cat; head -c 200000 /dev/zero >&2").stdin(data.clone()))
                        .await?;
                    assert!(out.stdout == data, "task {i} round {j}: stdout differs");
                    assert_eq!(out.stderr.len(), 200_000);
                    let p = format!("/var/tmp/t{i}-{j}");
                    t.put(&p, &data, &FileMeta::default(), None).await?;
                    assert!(t.get(&p, None).await? == data, "task {i} round {j}: file");
                    let slow = Exec::new("cat >/dev/null; sleep 976")
                        .stdin(vec![1u8; 300_000])
                        .timeout(Duration::from_millis(200 + u64::from(i) * 20));
                    match t.exec(&slow).await {
                        Err(TargetError::Timeout { .. }) => {}
                        other => panic!("task {i} round {j}: expected a timeout, got {other:?}"),
                    }
                }
                Ok::<_, TargetError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("commands");
    }
    let out = t
        .exec(&Exec::new("pgrep -fa '[s]leep 976' || echo none"))
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "none\n");
    assert_eq!(session_pid(&t).await, session);
    stop(bed).await;
}

/// Become-shell server loops running on the target (seen from the host).
fn become_shells(bed: &Bed) -> usize {
    host_sh(
        bed,
        // Children of sudo only: a server's own short-lived forks (`$(...)`,
        // `rm`) share its command line.
        "for p in $(pgrep -x sudo); do pgrep -P \"$p\" -f '^sh -s image-cli-become-shel[l]'; done | wc -l",
    )
    .trim()
    .parse()
    .expect("a count")
}

/// A target without become shells (every sudo command on its own channel).
async fn connect_per_command(bed: &Bed) -> SshTarget {
    let mut cfg = config(bed, ed25519(bed));
    cfg.become_shell = false;
    SshTarget::connect(cfg).await.expect("connect as builder")
}

#[tokio::test(flavor = "multi_thread")]
async fn become_shell_gives_the_same_results_as_per_command_sudo() {
    let bed = boot().await;
    let plain = connect_per_command(&bed).await;
    let binary: Vec<u8> = (0..700_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let nobody = Some(Become {
        user: "nobody".into(),
    });
    let cases = [
        Exec::new("echo to-out; echo to-err >&2; exit 7"),
        Exec::new("true"),
        Exec::new("exit 255"),
        Exec::new("no-such-command-x"),
        Exec::new("id -un; echo \"$HOME\"; pwd"),
        Exec::new("tr a-z A-Z").stdin("hello\nworld\n"),
        Exec::new("wc -c"),
        Exec::new("echo done").stdin(vec![b'x'; 3 * 1024 * 1024]),
        Exec::new(r#"printf '%s|%s|%s' "$A" "$B" "$(pwd)""#)
            .env("A", "one two")
            .env("B", "it's $HOME")
            .cwd("/usr/share"),
        Exec::new("pwd").cwd("/nonexistent"),
        // Binary data with NUL bytes, both ways, and on stderr.
        Exec::new("cat; printf 'a\\0b' >&2").stdin(binary.clone()),
        Exec::new("printf '\\0\\0\\377'; exit 3"),
        // A command that exits its own shell, or sets a trap, leaves the
        // next one alone.
        Exec::new("trap 'echo trapped' EXIT; cd /; export Z=1; exit 4"),
        Exec::new("echo \"${Z-unset}\"; umask"),
        Exec::new("id -un").become_opt(nobody.clone()),
        Exec::new("for i in $(seq 1 200); do echo out$i; echo err$i >&2; done"),
    ];
    for (i, case) in cases.iter().enumerate() {
        let case = if case.become_.is_some() {
            case.clone()
        } else {
            case.clone().become_root()
        };
        let want = plain.exec(&case).await.expect("per-command sudo");
        let got = t_exec(&bed, &case).await;
        assert_eq!(got, want, "case {i}: `{}`", case.command);
    }
    assert_eq!(become_shells(&bed), 0, "a fresh target per case has none");

    // Through one shelled target, several kinds, checked against the above.
    let t = connect(&bed).await;
    for (i, case) in cases.iter().enumerate() {
        let case = if case.become_.is_some() {
            case.clone()
        } else {
            case.clone().become_root()
        };
        let want = plain.exec(&case).await.expect("per-command sudo");
        let got = t.exec(&case).await.expect("through the become shell");
        assert_eq!(got, want, "case {i}: `{}`", case.command);
    }
    // One shell for root, one for nobody.
    assert_eq!(become_shells(&bed), 2);

    // 10 MiB of stdout after 3 MB of stderr.
    let out = t
        .exec(
            &Exec::new(
                "head -c 3000000 /dev/zero | tr '\\0' e >&2; \
                 head -c 10485760 /dev/zero | tr '\\0' o; \
                 head -c 1000 /dev/zero | tr '\\0' f >&2",
            )
            .become_root(),
        )
        .await
        .expect("exec");
    assert!(out.success(), "{}", out.status);
    assert_eq!(out.stdout.len(), 10 * 1024 * 1024);
    assert!(out.stdout.iter().all(|&b| b == b'o'));
    assert_eq!(out.stderr.len(), 3_001_000);
    assert!(out.stderr[..3_000_000].iter().all(|&b| b == b'e'));
    assert!(out.stderr[3_000_000..].iter().all(|&b| b == b'f'));

    // put/get through sudo go through the shell too.
    let root_become = Become::default();
    let meta = FileMeta {
        mode: Some(0o600),
        owner: Some("root".into()),
        group: Some("builder".into()),
    };
    t.put("/etc/image-cli-blob", &binary, &meta, Some(&root_become))
        .await
        .expect("put with sudo");
    assert!(
        t.get("/etc/image-cli-blob", Some(&root_become))
            .await
            .expect("get with sudo")
            == binary
    );
    let md = std::fs::metadata(bed.root_dir().join("etc/image-cli-blob")).expect("stat");
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o600, 0));
    let e = t
        .get("/etc/no-such-file", Some(&root_become))
        .await
        .expect_err("missing");
    assert!(
        matches!(&e, TargetError::File { op: "read", detail, .. } if detail.contains("No such file")),
        "{e}"
    );
    // A command's own failing `sudo` is its output, not a refusal.
    let out = t
        .exec(&Exec::new("sudo -n -u nobody -g nogroup-x true").become_root())
        .await
        .expect("inner sudo failure is the command's");
    assert_eq!(out.status, 1);
    assert!(
        out.stderr_str().starts_with("sudo:"),
        "{}",
        out.stderr_str()
    );
    // Still one shell per user: nothing leaked.
    assert_eq!(become_shells(&bed), 2);
    stop(bed).await;
}

/// Runs `case` on a new default (shelled) target, so that each case starts
/// its own shell.
async fn t_exec(bed: &Bed, case: &Exec) -> image_core::target::Output {
    let t = connect(bed).await;
    let out = t.exec(case).await.expect("through the become shell");
    drop(t);
    // The shell ends with its session.
    for _ in 0..100 {
        if become_shells(bed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn become_shell_serves_200_commands_and_concurrent_ones() {
    let bed = boot().await;
    let t = Arc::new(connect(&bed).await);
    // 200 sequential commands, all in the same shell (same parent process).
    let mut server = None;
    for i in 0..200 {
        let out = t
            .exec(&Exec::new(format!("echo {i} $PPID $(id -u)")).become_root())
            .await
            .unwrap_or_else(|e| panic!("command {i}: {e}"));
        let s = out.stdout_str();
        let f: Vec<&str> = s.split_whitespace().collect();
        assert_eq!((f[0], f[2]), (i.to_string().as_str(), "0"), "{s}");
        match &server {
            None => server = Some(f[1].to_string()),
            Some(p) => assert_eq!(p, f[1], "command {i} ran in another shell"),
        }
    }
    assert_eq!(become_shells(&bed), 1);
    // Standard input travels in the request: no file is left behind.
    // Text (a here-document) and not (base64) alike.
    for i in 0..20 {
        let mut input = vec![b'i'; i * 1000];
        if i % 2 == 1 {
            input.push(b'\n');
        }
        let out = t
            .exec(&Exec::new("wc -c").stdin(input.clone()).become_root())
            .await
            .expect("with stdin");
        assert_eq!(out.stdout_str().trim(), input.len().to_string());
    }
    let left = host_sh(&bed, "find /dev/shm -mindepth 1 | wc -l");
    assert_eq!(left.trim(), "0", "{left}");

    // Concurrent commands: each waits until all have started, so this only
    // finishes if they really run at once (more than the shells: the rest
    // go through sudo one by one).
    t.exec(&Exec::new("mkdir -p /tmp/bb").become_root())
        .await
        .expect("mkdir");
    const N: usize = 6;
    let mut tasks = Vec::new();
    for i in 0..N {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let barrier = Exec::new(format!(
                "touch /tmp/bb/{i}; \
                 while [ $(ls /tmp/bb | wc -l) -lt {N} ]; do sleep 0.05; done; \
                 echo task{i} $(id -un)"
            ))
            .become_root()
            .timeout(Duration::from_secs(30));
            let out = t.exec(&barrier).await?;
            let mut outs = vec![out.stdout_str()];
            for j in 0..20 {
                let data = format!("{i}-{j}\n").repeat(1000 * j + 1);
                let out = t
                    .exec(&Exec::new("cat").stdin(data.clone()).become_root())
                    .await?;
                assert_eq!(out.stdout_str(), data, "task {i} round {j}");
                outs.push(format!("{j}"));
            }
            Ok::<_, TargetError>(outs)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outs = task.await.expect("task").expect("commands");
        assert_eq!(outs[0], format!("task{i} root\n"));
        assert_eq!(outs.len(), 21);
    }
    let n = become_shells(&bed);
    assert!(
        (1..=image_core::ssh::MAX_SHELLS_PER_USER).contains(&n),
        "{n} shells"
    );
    stop(bed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_become_shell_never_gives_a_wrong_result() {
    let bed = boot().await;
    let t = Arc::new(connect(&bed).await);
    let out = t
        .exec(&Exec::new("echo first").become_root())
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "first\n");
    assert_eq!(become_shells(&bed), 1);
    // Killed while idle: the next command runs in a new shell (or, if the
    // end of the old one had not reached us, fails cleanly).
    for round in 0..3 {
        host_sh(&bed, "pkill -KILL -f 'image-cli-become-shel[l]' || true");
        for _ in 0..100 {
            if become_shells(&bed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cmd = Exec::new(format!("echo again{round}")).become_root();
        match t.exec(&cmd).await {
            Ok(out) => assert_eq!(out.stdout_str(), format!("again{round}\n")),
            Err(e) => {
                assert!(matches!(e, TargetError::Disconnected { .. }), "{e}");
                let out = t.exec(&cmd).await.expect("after a clean error");
                assert_eq!(out.stdout_str(), format!("again{round}\n"));
            }
        }
    }
    // Killed while running a command: that command fails (it may have run
    // partly), never reports success.
    let running = {
        let t = t.clone();
        tokio::spawn(async move {
            t.exec(&Exec::new("sleep 20; echo late").become_root())
                .await
        })
    };
    for _ in 0..200 {
        let ps = host_sh(&bed, "pgrep -f '^sleep 2[0]' || true");
        if !ps.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    host_sh(&bed, "pkill -KILL -f 'image-cli-become-shel[l]' || true");
    // The command's processes hold the channel's output (as under sshd):
    // the reply ends when they do; the command carries on to `echo late`,
    // but without the shell's end marker that is no success.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!running.is_finished(), "ended before its output closed");
    host_sh(&bed, "pkill -f '^sleep 2[0]' || true");
    let res = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the command ends with its processes")
        .expect("task");
    let e = res.expect_err("killed mid-command");
    assert!(matches!(e, TargetError::Disconnected { .. }), "{e}");
    // And the target is usable again (after a reconnect, as the engine does).
    t.reconnect().await.expect("reconnect");
    let out = t
        .exec(&Exec::new("echo back; id -un").become_root())
        .await
        .expect("exec after reconnect");
    assert_eq!(out.stdout_str(), "back\nroot\n");
    // A refused sudo is still SudoRefused, also the second time (the user's
    // shells are off on that session).
    host_sh(
        &bed,
        "useradd --create-home --shell /bin/bash plain && usermod --password '*' plain && \
         install -d -o plain -g plain -m 0700 /home/plain/.ssh && \
         install -o plain -g plain -m 0600 /home/builder/.ssh/authorized_keys /home/plain/.ssh/",
    );
    let mut cfg = config(&bed, ed25519(&bed));
    cfg.user = "plain".into();
    let plain = SshTarget::connect(cfg).await.expect("connect as plain");
    for _ in 0..2 {
        let e = plain
            .exec(&Exec::new("id -u").become_root())
            .await
            .expect_err("no sudo rights");
        assert!(
            matches!(&e, TargetError::SudoRefused { detail, .. } if detail.starts_with("sudo:")),
            "{e}"
        );
    }
    stop(bed).await;
}

/// Not a benchmark, a sanity check printed for the record: a become command
/// through the shell costs less than one through sudo on its own channel.
#[tokio::test(flavor = "multi_thread")]
async fn become_shell_is_cheaper_than_sudo_per_command() {
    let bed = boot().await;
    let shelled = connect(&bed).await;
    let plain = connect_per_command(&bed).await;
    let cmd = Exec::new("test -d /etc").become_root();
    let mut mean = Vec::new();
    for t in [&shelled, &plain] {
        t.exec(&cmd).await.expect("warm up");
        let t0 = std::time::Instant::now();
        for _ in 0..50 {
            assert!(t.exec(&cmd).await.expect("exec").success());
        }
        mean.push(t0.elapsed() / 50);
    }
    eprintln!(
        "become command: {:?} through the shell, {:?} through sudo per command",
        mean[0], mean[1]
    );
    assert!(mean[0] < mean[1], "{mean:?}");
    stop(bed).await;
}
