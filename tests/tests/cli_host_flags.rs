//! The host flags every host command shares (`--host`, `-i`, `-b/--become`,
//! `--become-user`, one struct in image-cli): `image-cli provision` and
//! `image-cli verify` over SSH against a booted test-bed target, as a user
//! runs them. Outcomes are read from the target's disk and the exit codes.
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;
mod cli_support;

use std::process::Output;

fn cli(cwd: &std::path::Path, args: &[&str]) -> Output {
    let out = std::process::Command::new(cli_support::image_cli())
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run image-cli");
    eprintln!(
        "image-cli {}: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const STEPS: &str = r#"
- name: write the root-only marker
  copy:
    dest: /etc/host-flags-marker
    content: "secret marker\n"
    mode: "0600"
"#;

const GOSS: &str = r#"
file:
  /etc/host-flags-marker:
    exists: true
    owner: root
    contents: ["secret marker"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_and_verify_reach_the_host_and_become_as_asked() {
    let bed = bed_support::boot().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("steps.yaml"), STEPS).unwrap();
    std::fs::write(dir.path().join("goss.yaml"), GOSS).unwrap();
    let host = format!("{}@{}:{}", bed.user(), bed.host(), bed.ssh_port());
    let key = bed.testbed().ed25519_key().display().to_string();
    let at = ["--host", host.as_str(), "-i", key.as_str()];
    let with =
        |rest: &[&str]| -> Vec<String> { at.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run = |cmd: &str, args: Vec<String>| {
        let mut all = vec![cmd];
        all.extend(args.iter().map(String::as_str));
        tokio::task::block_in_place(|| cli(dir.path(), &all))
    };

    // provision -b: the task ran as root, printed as ansible-playbook does.
    let out = run("provision", with(&["-b", "steps.yaml"]));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("changed: [{host}] write the root-only marker")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("RECAP {host} : ok=")), "{stdout}");
    assert_eq!(
        bed.sh("stat -c '%U %a' /etc/host-flags-marker").unwrap(),
        "root 600\n"
    );

    // Again with --json: nothing changes; each task says its round trips.
    let out = run("provision", with(&["--become", "--json", "steps.yaml"]));
    assert_eq!(out.status.code(), Some(0));
    let task = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "step_finished" && v["step"] == "write the root-only marker")
        .expect("the task's JSON event");
    assert_eq!(task["outcome"], "ok", "{task}");
    assert!(task["round_trips"].as_u64().unwrap_or(0) >= 1, "{task}");

    // verify: the contents are readable only as root.
    let out = run("verify", with(&["-b", "goss.yaml"]));
    assert_eq!(out.status.code(), Some(0), "verify -b");
    let out = run("verify", with(&["goss.yaml"]));
    assert_eq!(out.status.code(), Some(1), "verify without -b");
    // --become-user is honoured: becoming the login user cannot read it.
    let out = run(
        "verify",
        with(&["--become", "--become-user", bed.user(), "goss.yaml"]),
    );
    assert_eq!(out.status.code(), Some(1), "verify --become-user");
    let out = run(
        "verify",
        with(&["--become", "--become-user", "root", "goss.yaml"]),
    );
    assert_eq!(out.status.code(), Some(0), "verify --become-user root");

    // Usage errors are the same on both commands.
    for cmd in ["provision", "verify"] {
        let out = run(
            cmd,
            vec![
                "--host".into(),
                "h".into(),
                "--local".into(),
                "x.yaml".into(),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
            "{cmd}"
        );
    }
    bed_support::stop(bed).await;
}
