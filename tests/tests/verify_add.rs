//! `image-cli verify add` and `verify autoadd` over SSH against a booted
//! test-bed target (Debian, systemd, sshd): the gossfile they write records
//! the host's state as goss's `add` does, entries merge into one file, and
//! `image-cli verify` of that file passes on the same host.
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;
mod cli_support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

fn cli(args: &[&str]) -> Output {
    std::process::Command::new(cli_support::image_cli())
        .args(args)
        .output()
        .expect("run image-cli")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `doc[kind][key][attr]`.
fn get<'a>(doc: &'a Value, kind: &str, key: &str, attr: &str) -> &'a Value {
    doc.get(kind)
        .and_then(|k| k.get(key))
        .and_then(|r| r.get(attr))
        .unwrap_or_else(|| panic!("no {kind}.{key}.{attr} in\n{doc:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn add_and_autoadd_write_a_gossfile_that_verifies() {
    let bed = bed_support::boot().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("goss.yaml");
    let gossfile = file.to_str().expect("utf-8 path");
    let host = format!("{}@{}:{}", bed.user(), bed.host(), bed.ssh_port());
    let key = bed.testbed().ed25519_key().display().to_string();
    let remote = ["--host", host.as_str(), "-i", key.as_str(), "-g", gossfile];
    let add = |args: &[&str]| {
        let mut a = vec!["verify", "add"];
        a.extend(remote);
        a.extend(args);
        ok(&cli(&a))
    };

    let printed = add(&["package", "openssh-server", "no-such-pkg-xyz"]);
    assert!(printed.contains("openssh-server:"), "{printed}");
    add(&["file", "/etc/passwd", "/etc/os-release", "/no/such/file"]);
    add(&["user", "builder"]);
    add(&["group", "builder"]);
    add(&["service", "ssh"]);
    add(&["port", "tcp:22"]);
    add(&["command", "echo hello; echo '!bang' >&2; exit 3"]);
    add(&["kernel-param", "kernel.ostype"]);
    add(&["interface", "lo"]);
    add(&["mount", "/"]);
    add(&["--exclude-attr", "addrs", "dns", "localhost"]);
    add(&["addr", "tcp://127.0.0.1:22"]);
    // A second add of the same key replaces it; other keys stay.
    add(&["package", "openssh-server"]);
    // autoadd as root: sshd's sockets are root's.
    let mut a = vec!["verify", "autoadd", "--become"];
    a.extend(remote);
    a.extend(["sshd", "builder"]);
    let printed = ok(&cli(&a));
    assert!(printed.contains("process:"), "{printed}");

    let text = std::fs::read_to_string(&file).expect("gossfile written");
    eprintln!("{text}");
    let doc: Value = image_core::yaml::parse("goss.yaml", &text)
        .expect("YAML")
        .to_json();
    let t = Value::Bool(true);
    let f = Value::Bool(false);
    assert_eq!(get(&doc, "package", "openssh-server", "installed"), &t);
    let versions = get(&doc, "package", "openssh-server", "versions");
    assert!(versions.as_array().is_some_and(|v| v.len() == 1), "{text}");
    assert_eq!(get(&doc, "package", "no-such-pkg-xyz", "installed"), &f);
    assert!(doc["package"]["no-such-pkg-xyz"].get("versions").is_none());
    assert_eq!(get(&doc, "file", "/etc/passwd", "mode"), "0644");
    assert_eq!(get(&doc, "file", "/etc/passwd", "owner"), "root");
    assert_eq!(get(&doc, "file", "/etc/passwd", "filetype"), "file");
    assert_eq!(get(&doc, "file", "/etc/os-release", "filetype"), "symlink");
    assert_eq!(
        get(&doc, "file", "/etc/os-release", "linked-to"),
        "../usr/lib/os-release"
    );
    assert_eq!(get(&doc, "file", "/no/such/file", "exists"), &f);
    assert_eq!(
        doc["file"]["/no/such/file"].as_object().map(|m| m.len()),
        Some(1)
    );
    assert_eq!(get(&doc, "user", "builder", "home"), "/home/builder");
    assert!(get(&doc, "user", "builder", "uid").is_u64(), "{text}");
    assert_eq!(get(&doc, "group", "builder", "exists"), &t);
    assert_eq!(get(&doc, "service", "ssh", "enabled"), &t);
    assert_eq!(get(&doc, "service", "ssh", "running"), &t);
    assert_eq!(get(&doc, "port", "tcp:22", "listening"), &t);
    let cmd = "echo hello; echo '!bang' >&2; exit 3";
    assert_eq!(get(&doc, "command", cmd, "exit-status"), 3);
    let lines = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(lines(get(&doc, "command", cmd, "stdout")), ["hello"]);
    assert_eq!(lines(get(&doc, "command", cmd, "stderr")), ["\\!bang"]);
    assert_eq!(get(&doc, "command", cmd, "timeout"), 10000);
    assert_eq!(get(&doc, "kernel-param", "kernel.ostype", "value"), "Linux");
    assert_eq!(get(&doc, "interface", "lo", "mtu"), 65536);
    assert_eq!(get(&doc, "mount", "/", "exists"), &t);
    assert_eq!(get(&doc, "dns", "localhost", "resolvable"), &t);
    assert!(doc["dns"]["localhost"].get("addrs").is_none(), "excluded");
    assert_eq!(get(&doc, "addr", "tcp://127.0.0.1:22", "reachable"), &t);
    // autoadd: the process, the port its sockets listen on, the user and
    // group named `builder`, nothing for names that are not packages.
    assert_eq!(get(&doc, "process", "sshd", "running"), &t);
    // `add` recorded tcp:22; the sshd processes also listen on tcp6:22.
    assert_eq!(get(&doc, "port", "tcp6:22", "listening"), &t);
    assert_eq!(get(&doc, "user", "sshd", "exists"), &t);
    assert_eq!(get(&doc, "user", "builder", "exists"), &t);
    assert!(doc["package"].get("sshd").is_none(), "{text}");

    // The written file verifies on the same host.
    let out = cli(&[
        "verify",
        "--host",
        &host,
        "-i",
        &key,
        "--format",
        "documentation",
        gossfile,
    ]);
    let report = ok(&out);
    eprintln!("{report}");
    assert!(report.contains("Failed: 0"), "{report}");
    assert!(Path::new(&file).exists());

    bed_support::stop(bed).await;
}
