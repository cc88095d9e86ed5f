//! `image-cli test` end to end, as a user runs it: the binary against moto
//! (the AWS chain pointed at it by environment variables), an AMI registered
//! in moto standing for a built one, and a booted target standing for the
//! instance launched from it, reached through the definition's
//! `ssh_host`/`ssh_port`; its sshd trusts only the key the test imported into
//! EC2. The verify file, `--command`s and `--conformance` (a fake
//! `ginkgo`/`e2e_node.test` in a kubernetes-test tarball served over HTTP
//! from this process, reached by the guest at 10.0.2.2) run on it; then moto
//! must hold nothing the test made.

mod cli_support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cli_support::*;
use image_aws::aws_sdk_ec2::types::ArchitectureValues;

const VERSION: &str = "v1.31.4";
const VERSION_FILE: &str = "/etc/kubernetes_community_ami_version";

/// Moto and a target whose version file says [`VERSION`].
async fn bed() -> (image_testbed::Moto, image_testbed::Target) {
    let version = (
        PathBuf::from(VERSION_FILE),
        format!("{VERSION}\n").into_bytes(),
        0o644,
    );
    start_moto_and_target(vec![version]).await
}

/// An AMI registered in moto, standing for one `image-cli build` made.
async fn register_ami(ec2: &image_aws::Ec2Clients) -> String {
    let out = ec2
        .client(REGION)
        .register_image()
        .name("cli-test-node-1700000000")
        .architecture(ArchitectureValues::X8664)
        .root_device_name("/dev/sda1")
        .virtualization_type("hvm")
        .send()
        .await
        .expect("RegisterImage");
    out.image_id().expect("an image id").to_string()
}

/// The image ids of every instance moto knows (terminated ones included).
async fn launched_from(ec2: &image_aws::Ec2Clients) -> Vec<String> {
    let out = ec2
        .client(REGION)
        .describe_instances()
        .send()
        .await
        .expect("describe_instances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.image_id().map(str::to_string))
        .collect()
}

fn manifest_with(ami: &str) -> String {
    serde_json::json!({
        "builds": [
            {"name": "node", "builder_type": "amazon-ebs", "build_time": 1, "files": null,
             "artifact_id": "us-east-1:ami-0ffffffffffffffff", "packer_run_uuid": "old-run",
             "custom_data": null},
            {"name": "node", "builder_type": "amazon-ebs", "build_time": 2, "files": null,
             "artifact_id": format!("eu-west-1:ami-0eeeeeeeeeeeeeeee,us-east-1:{ami}"),
             "packer_run_uuid": "last-run", "custom_data": null}
        ],
        "last_run_uuid": "last-run"
    })
    .to_string()
}

fn cli(moto: &image_testbed::Moto, cwd: &Path, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_cli_in_place(moto, cwd, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_runs_commands_and_leaves_nothing() {
    let (moto, target) = bed().await;
    let ec2 = direct(&moto).await;
    let ami = register_ami(&ec2).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("conformance/spec.yaml").display().to_string();
    let port = format!("ssh_port={}", target.ssh_port());

    // The AMI of the manifest's last run (manifest.json in the working
    // directory), the verify file, two commands with streamed output.
    std::fs::write(dir.path().join("manifest.json"), manifest_with(&ami)).unwrap();
    let out = cli(
        &moto,
        dir.path(),
        &[
            "test".into(),
            spec.clone(),
            "--var".into(),
            port.clone(),
            "--command".into(),
            "echo hello-from-the-instance; echo on-stderr >&2; id -un".into(),
            "--command".into(),
            format!("grep -x {VERSION} {VERSION_FILE}"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "image-cli test failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "hello-from-the-instance",
        "on-stderr",
        target.user(),
        ", Failed: 0, Skipped: 0",
        "PASSED",
    ] {
        assert!(stdout.contains(want), "`{want}` missing: {stdout}");
    }
    assert!(stdout.contains(&ami), "{stdout}");
    assert_eq!(launched_from(&ec2).await, vec![ami.clone()]);
    assert_nothing_left(&ec2, &[REGION.into()]).await;

    // --ami, and a verify file that fails: exit 1, nothing left.
    let out = cli(
        &moto,
        dir.path(),
        &[
            "test".into(),
            spec.clone(),
            "--ami".into(),
            ami.clone(),
            "--var".into(),
            port.clone(),
            "--var".into(),
            "expect_version=v9.9.9".into(),
            "--command".into(),
            "touch /tmp/must-not-run".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checks failed"), "{stderr}");
    assert!(stderr.contains("goss.yaml"), "{stderr}");
    assert!(
        !target.root_dir().join("tmp/must-not-run").exists(),
        "a command ran after a failed verify"
    );
    assert_eq!(launched_from(&ec2).await.len(), 2);
    assert_nothing_left(&ec2, &[REGION.into()]).await;

    // A command that fails: exit 1, its status said.
    let out = cli(
        &moto,
        dir.path(),
        &[
            "test".into(),
            spec.clone(),
            "--ami".into(),
            ami.clone(),
            "--var".into(),
            port.clone(),
            "--command".into(),
            "echo about-to-fail; exit 3".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("about-to-fail"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exited 3"), "{stderr}");
    assert_nothing_left(&ec2, &[REGION.into()]).await;

    // Ctrl-C while a command runs: exit 130, everything deleted.
    let out = tokio::task::block_in_place(|| interrupted(&moto, dir.path(), &target, &spec, &ami));
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cancelled at step test"), "{stderr}");
    assert_nothing_left(&ec2, &[REGION.into()]).await;

    // Bad input exits 2 before any EC2 call: no manifest, a bad --ami, two
    // flags that conflict, a bad subnet.
    let empty = tempfile::tempdir().unwrap();
    moto.start_recording().unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["test".into(), spec.clone(), "--var".into(), port.clone()],
        vec![
            "test".into(),
            spec.clone(),
            "--var".into(),
            port.clone(),
            "--ami".into(),
            "i-123".into(),
        ],
        vec![
            "test".into(),
            spec.clone(),
            "--var".into(),
            port.clone(),
            "--ami".into(),
            ami.clone(),
            "--conformance".into(),
            "--cni-subnet".into(),
            "10.0.0.0/99".into(),
        ],
        vec![
            "test".into(),
            spec.clone(),
            "--var".into(),
            port.clone(),
            "--cni-subnet".into(),
            "10.1.0.0/16".into(),
        ],
    ];
    for args in &cases {
        let out = cli(&moto, empty.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    moto.stop_recording().unwrap();
    let calls = build_actions(&moto);
    assert!(calls.is_empty(), "EC2 was called: {calls:?}");
}

/// Runs `image-cli test` with a command that sleeps, sends SIGINT once the
/// command is running, and returns the output.
fn interrupted(
    moto: &image_testbed::Moto,
    cwd: &Path,
    target: &image_testbed::Target,
    spec: &str,
    ami: &str,
) -> std::process::Output {
    let started = target.root_dir().join("var/tmp/cli-test-started");
    let child = cli_command(moto, cwd)
        .args(["test", spec, "--ami", ami, "--var"])
        .arg(format!("ssh_port={}", target.ssh_port()))
        .args(["--command", "touch /var/tmp/cli-test-started; sleep 120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    interrupt(child)
}

/// Serves `files` (URL path -> body) on 127.0.0.1; records the paths asked.
fn serve(files: HashMap<String, Vec<u8>>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push(path.clone());
            let _ = match files.get(&path) {
                Some(body) => s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| s.write_all(body)),
                None => s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    (port, asked)
}

/// A kubernetes-test tarball with the fake `ginkgo` and `e2e_node.test`
/// from tests/fixtures/conformance, the suite passing or failing.
fn fake_tarball(work: &Path, result: &str) -> Vec<u8> {
    let root = work.join(result);
    let bin = root.join("kubernetes/test/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for f in ["ginkgo", "e2e_node.test"] {
        std::fs::copy(fixture(&format!("conformance/{f}")), bin.join(f)).unwrap();
        std::fs::set_permissions(bin.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(bin.join("fake-result"), format!("{result}\n")).unwrap();
    let tgz = work.join(format!("{result}.tar.gz"));
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root)
        .arg("kubernetes")
        .status()
        .expect("tar");
    assert!(st.success());
    std::fs::read(tgz).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_runs_the_node_suite_and_brings_back_its_junit() {
    let (moto, target) = bed().await;
    let ec2 = direct(&moto).await;
    let ami = register_ami(&ec2).await;
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let tarball = "kubernetes-test-linux-amd64.tar.gz";
    let files = HashMap::from([
        (
            format!("/pass/{VERSION}/{tarball}"),
            fake_tarball(work.path(), "pass"),
        ),
        (
            format!("/fail/{VERSION}/{tarball}"),
            fake_tarball(work.path(), "fail"),
        ),
    ]);
    let (http, asked) = serve(files);
    let url = |kind: &str| {
        format!(
            "http://{}:{http}/{kind}/{{version}}/kubernetes-test-linux-{{arch}}.tar.gz",
            image_testbed::HOST_ADDR_FROM_GUEST
        )
    };
    let spec = fixture("conformance/spec.yaml").display().to_string();
    let port = format!("ssh_port={}", target.ssh_port());

    let out = cli(
        &moto,
        dir.path(),
        &[
            "test".into(),
            spec.clone(),
            "--ami".into(),
            ami.clone(),
            "--var".into(),
            port.clone(),
            "--conformance".into(),
            "--cni-subnet".into(),
            "10.99.0.0/16".into(),
            "--test-tarball-url".into(),
            url("pass"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "image-cli test --conformance failed"
    );
    assert_eq!(
        *asked.lock().unwrap(),
        [format!("/pass/{VERSION}/{tarball}")],
        "the tarball of the recorded version and arch"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "fake ginkgo: running ./e2e_node.test",
        "Running Suite: E2eNode Suite",
        "SUCCESS!",
    ] {
        assert!(stdout.contains(want), "`{want}` not streamed: {stdout}");
    }

    // The exact command line ginkgo got, as root, in the unpacked bin dir.
    let root = target.root_dir();
    let argv = std::fs::read_to_string(root.join("var/tmp/fake-ginkgo-argv")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(
        argv[..argv.len() - 1],
        [
            "--nodes=8",
            "--flake-attempts=2",
            "--timeout=4h",
            r"--focus=\[Conformance\]",
            r"--skip=\[Flaky\]|\[Serial\]|\[sig-network\]|Container Lifecycle Hook",
            "./e2e_node.test",
            "--",
            "--k8s-bin-dir=/usr/bin",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--container-runtime-process-name=/usr/local/bin/containerd",
            "--container-runtime-pid-file=",
            "--kubelet-flags=--cgroups-per-qos=true --cgroup-root=/ --runtime-cgroups=/system.slice/containerd.service",
            r#"--extra-log={"name": "containerd.log", "journalctl": ["-u", "containerd"]}"#,
        ]
    );
    let report_dir = argv[argv.len() - 1];
    assert!(
        report_dir.starts_with("--report-dir=/tmp/image-cli-conformance.")
            && report_dir.ends_with("/results"),
        "{report_dir}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/tmp/fake-ginkgo-uid")).unwrap(),
        "0\n"
    );
    assert!(
        std::fs::read_to_string(root.join("var/tmp/fake-ginkgo-cwd"))
            .unwrap()
            .trim_end()
            .ends_with("/kubernetes/test/bin")
    );

    // The CNI files, root's, 0644.
    let bridge = root.join("etc/cni/net.d/10-bridge.conf");
    let loopback = root.join("etc/cni/net.d/99-loopback.conf");
    for f in [&bridge, &loopback] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{}", f.display());
    }
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bridge).unwrap()).unwrap();
    assert_eq!(
        b,
        serde_json::json!({
            "cniVersion": "0.2.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
            "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": "10.99.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}
        })
    );
    let l: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&loopback).unwrap()).unwrap();
    assert_eq!(
        l,
        serde_json::json!({"cniVersion": "0.2.0", "name": "lo", "type": "loopback"})
    );

    // The junit report the fake suite wrote (in the guest's /tmp, a tmpfs
    // the host cannot see), copied to ./conformance-results/<build>/.
    let local = std::fs::read_to_string(dir.path().join("conformance-results/node/junit_01.xml"))
        .expect("the junit report copied");
    assert!(
        local.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
            && local.contains(r#"<testsuite name="E2eNode Suite" tests="2""#)
            && local.contains("Kubelet should write logs [Conformance]"),
        "{local}"
    );
    let copied: Vec<_> = std::fs::read_dir(dir.path().join("conformance-results/node"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(copied, ["junit_01.xml"]);
    assert!(local.contains(r#"failures="0""#), "{local}");
    assert_nothing_left(&ec2, &[REGION.into()]).await;

    // A suite that fails: exit 1, its junit in --conformance-dir.
    let results = dir.path().join("failed-run");
    let out = cli(
        &moto,
        dir.path(),
        &[
            "test".into(),
            spec.clone(),
            "--ami".into(),
            ami.clone(),
            "--var".into(),
            port.clone(),
            "--conformance".into(),
            "--conformance-dir".into(),
            results.display().to_string(),
            "--test-tarball-url".into(),
            url("fail"),
            "--json".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let result = json_event(&out.stdout, "test_result");
    assert_eq!(result["passed"], false, "{result}");
    assert_eq!(result["step"], "test", "{result}");
    assert_eq!(result["conformance"]["exit_status"], 1, "{result}");
    assert_eq!(result["conformance"]["junit"]["failures"], 1, "{result}");
    assert_eq!(result["conformance"]["version"], VERSION, "{result}");
    let junit = std::fs::read_to_string(results.join("junit_01.xml")).unwrap();
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bridge).unwrap()).unwrap();
    assert_eq!(b["ipam"]["subnet"], "10.22.0.0/16", "the default subnet");
    assert_nothing_left(&ec2, &[REGION.into()]).await;
}
