//! Reaching this machine: [`LocalTarget`] runs the same operations as the SSH
//! target, on temporary directories. Run as root (as the test bed is), the
//! user switches go through `runuser`.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use image_core::local::LocalTarget;
use image_core::target::{Become, Exec, FileMeta, Target, TargetError};

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn path_in(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}

#[tokio::test]
async fn exec_reports_exit_status_stdout_and_stderr() {
    let t = LocalTarget::new();
    assert_eq!(t.name(), "local");
    let out = t
        .exec(&Exec::new("echo to-out; echo to-err >&2; exit 7"))
        .await
        .expect("exec");
    assert_eq!(
        (out.status, out.stdout_str(), out.stderr_str()),
        (7, "to-out\n".to_string(), "to-err\n".to_string())
    );
    let out = t.exec(&Exec::new("no-such-command-x")).await.expect("exec");
    assert_eq!(out.status, 127);
    let out = t.exec(&Exec::new("kill -KILL $$")).await.expect("exec");
    assert_eq!(out.status, -1);
}

#[tokio::test]
async fn exec_feeds_stdin() {
    let t = LocalTarget::new();
    let out = t
        .exec(&Exec::new("tr a-z A-Z").stdin("hello\n"))
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "HELLO\n");
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = t
        .exec(&Exec::new("cat").stdin(big.clone()))
        .await
        .expect("exec");
    assert!(out.stdout == big, "stdin echoed back differs");
    let out = t.exec(&Exec::new("wc -c")).await.expect("exec");
    assert_eq!(out.stdout_str().trim(), "0");
    let out = t
        .exec(&Exec::new("echo done").stdin(vec![b'x'; 4 * 1024 * 1024]))
        .await
        .expect("unread stdin");
    assert_eq!(out.stdout_str(), "done\n");
}

#[tokio::test]
async fn exec_sets_env_and_cwd() {
    let t = LocalTarget::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_string_lossy().into_owned();
    let out = t
        .exec(
            &Exec::new(r#"printf '%s|%s|%s' "$A" "$B" "$(pwd)""#)
                .env("A", "one two")
                .env("B", "it's $HOME")
                .cwd(&d),
        )
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), format!("one two|it's $HOME|{d}"));
    let out = t
        .exec(&Exec::new("pwd").cwd("/nonexistent"))
        .await
        .expect("exec");
    assert_ne!(out.status, 0);
}

#[tokio::test]
async fn exec_returns_10mb_stdout_with_large_stderr() {
    let t = LocalTarget::new();
    let out = t
        .exec(&Exec::new(
            "head -c 3000000 /dev/zero | tr '\\0' e >&2; \
             head -c 10485760 /dev/zero | tr '\\0' o",
        ))
        .await
        .expect("exec");
    assert!(out.success());
    assert_eq!(out.stdout.len(), 10 * 1024 * 1024);
    assert!(out.stdout.iter().all(|&b| b == b'o'));
    assert_eq!(out.stderr.len(), 3_000_000);
}

#[tokio::test]
async fn put_and_get_with_mode_and_owner() {
    let t = LocalTarget::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = path_in(&dir, "notes.txt");
    let meta = FileMeta {
        mode: Some(0o640),
        ..Default::default()
    };
    t.put(&p, b"first\n", &meta, None).await.expect("put");
    let md = std::fs::metadata(&p).expect("stat");
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(t.get(&p, None).await.expect("get"), b"first\n");
    // Replacing keeps the mode when none is given; no temporary is left.
    t.put(&p, b"second\n", &FileMeta::default(), None)
        .await
        .expect("put again");
    assert_eq!(std::fs::metadata(&p).expect("stat").mode() & 0o7777, 0o640);
    assert_eq!(std::fs::read(&p).expect("read"), b"second\n");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["notes.txt".to_string()]);

    if is_root() {
        let meta = FileMeta {
            mode: Some(0o600),
            owner: Some("nobody".into()),
            group: Some("nogroup".into()),
        };
        let q = path_in(&dir, "owned");
        t.put(&q, b"x", &meta, None).await.expect("put with owner");
        let out = t
            .exec(&Exec::new(format!("stat -c '%a %U %G' {q}")))
            .await
            .expect("stat");
        assert_eq!(out.stdout_str(), "600 nobody nogroup\n");
        // As another user (runuser): written by that user.
        let shared = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            shared.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .expect("chmod");
        let nobody = Become {
            user: "nobody".into(),
        };
        let r = path_in(&shared, "by-nobody");
        t.put(&r, b"n", &FileMeta::default(), Some(&nobody))
            .await
            .expect("put as nobody");
        let out = t
            .exec(&Exec::new(format!("stat -c '%U' {r}")))
            .await
            .expect("stat");
        assert_eq!(out.stdout_str(), "nobody\n");
        assert_eq!(t.get(&r, Some(&nobody)).await.expect("get as nobody"), b"n");
        // nobody cannot read a root-only file.
        let secret = path_in(&shared, "secret");
        t.put(
            &secret,
            b"s",
            &FileMeta {
                mode: Some(0o600),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("put secret");
        let e = t
            .get(&secret, Some(&nobody))
            .await
            .expect_err("not readable by nobody");
        assert!(matches!(e, TargetError::File { op: "read", .. }), "{e}");
    }

    let e = t
        .put("/no/such/dir/f", b"x", &FileMeta::default(), None)
        .await
        .expect_err("missing dir");
    assert!(
        matches!(&e, TargetError::File { op: "write", path, .. } if path == "/no/such/dir/f"),
        "{e}"
    );
    let e = t
        .get("/no/such/file", None)
        .await
        .expect_err("missing file");
    assert!(
        matches!(&e, TargetError::File { op: "read", detail, .. } if detail.contains("No such file")),
        "{e}"
    );
}

#[tokio::test]
async fn become_switches_user() {
    let t = LocalTarget::new();
    let me = t.exec(&Exec::new("id -un")).await.expect("exec");
    // Becoming ourselves runs directly.
    let out = t
        .exec(&Exec::new("id -un").become_opt(Some(Become {
            user: me.stdout_str().trim().to_string(),
        })))
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), me.stdout_str());
    if is_root() {
        let out = t
            .exec(&Exec::new("id -un").become_root())
            .await
            .expect("exec");
        assert_eq!(out.stdout_str(), "root\n");
        let out = t
            .exec(
                &Exec::new(r#"echo "$(id -un) $A $(pwd)""#)
                    .env("A", "x")
                    .cwd("/")
                    .become_opt(Some(Become {
                        user: "nobody".into(),
                    })),
            )
            .await
            .expect("exec");
        assert_eq!(out.stdout_str(), "nobody x /\n");
    }
}

#[tokio::test]
async fn command_timeout_kills_the_command() {
    let t = LocalTarget::new();
    let e = t
        .exec(&Exec::new("sleep 977; echo late").timeout(Duration::from_millis(300)))
        .await
        .expect_err("times out");
    match &e {
        TargetError::Timeout { host, after, .. } => {
            assert_eq!(host, "local");
            assert_eq!(*after, Duration::from_millis(300));
        }
        other => panic!("expected Timeout, got {other}"),
    }
    // The whole process group is gone.
    let out = t
        .exec(&Exec::new("pgrep -f '[s]leep 977' || echo none"))
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "none\n");
    let t = LocalTarget {
        command_timeout: Some(Duration::from_millis(200)),
    };
    let e = t.exec(&Exec::new("sleep 5")).await.expect_err("times out");
    assert!(matches!(e, TargetError::Timeout { .. }), "{e}");
    assert!(t.exec(&Exec::new("true")).await.expect("exec").success());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_exec_from_several_tasks() {
    let t = Arc::new(LocalTarget::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_string_lossy().into_owned();
    const N: usize = 8;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (t, d) = (t.clone(), d.clone());
            tokio::spawn(async move {
                let barrier = Exec::new(format!(
                    "touch {d}/{i}; while [ $(ls {d} | wc -l) -lt {N} ]; do sleep 0.05; done; echo {i}"
                ))
                .timeout(Duration::from_secs(30));
                t.exec(&barrier).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.expect("task").expect("exec");
        assert_eq!(out.stdout_str(), format!("{i}\n"));
    }
}
