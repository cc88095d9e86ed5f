//! The embedding examples run as a user runs them (`cargo run --example`):
//! `build_ami` (crates/image-cli/examples) against moto and a booted target
//! whose sshd trusts only the key pair the build imported into EC2;
//! `build_plans` (what `image-cli build` does, in library calls) on the
//! same bed with the `image-cli build` test's definition;
//! `run_steps` against a booted target over SSH and against this machine;
//! `leftovers` (crates/image-aws/examples) on what an aborted build left.
//! Outcomes are read from moto, the target's disk and the local disk.

mod bed_support;
mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cli_support::{
    artifact_amis, assert_nothing_left, aws_env, direct, fixture, regions, start_moto,
    start_moto_and_target, workspace, REGION,
};
use image_aws::cleanup;
use serde_json::json;

const EXAMPLES: [(&str, &str); 4] = [
    ("image-cli", "build_ami"),
    ("image-cli", "build_plans"),
    ("image-cli", "run_steps"),
    ("image-aws", "leftovers"),
];

/// The examples' binaries, built once per process next to this test binary.
fn example(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"]).current_dir(workspace());
        for (package, _) in EXAMPLES {
            cmd.args(["-p", package]);
        }
        for (_, example) in EXAMPLES {
            cmd.args(["--example", example]);
        }
        let st = cmd.status().expect("running cargo build --example");
        assert!(st.success(), "cargo build of the examples failed");
        // target/debug/deps/<test> -> target/debug/examples
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent()
            .and_then(Path::parent)
            .map(|d| d.join("examples"))
            .expect("target dir")
    });
    let bin = dir.join(name);
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// Runs example `name` with `args` in `cwd`; with `moto`, the standard AWS
/// chain points at it and nothing of this machine's AWS setup leaks in.
fn run(name: &str, cwd: &Path, moto: Option<&image_testbed::Moto>, args: &[&str]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.current_dir(cwd).args(args);
    if let Some(moto) = moto {
        let empty = cwd.join(".aws-empty");
        std::fs::write(&empty, "").expect("writing an empty AWS config");
        aws_env(&mut cmd, moto.url(), &empty);
    }
    let out = tokio::task::block_in_place(|| cmd.output()).expect("running the example");
    eprintln!(
        "{name} {}: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Where `needle` first is in `hay` (panics with `hay` when absent).
fn at(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{hay}"))
}

/// A `BuildRequest` as JSON for the fixture AMIs, SSH to `port`.
fn request(name: &str, ami_name: &str, port: u16, user: &str) -> serde_json::Value {
    json!({
        "name": name,
        "region": REGION,
        "instance_type": "t3.small",
        "source_ami": {"filter": {
            "owners": ["099720109477"],
            "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
        }},
        "ami_name": ami_name,
        "security_group": {"temporary": {"source_cidrs": ["127.0.0.1/32"]}},
        "ssh": {"host": "127.0.0.1", "port": port, "username": user, "timeout_secs": 60},
        "wait": {"initial_interval_ms": 50, "max_interval_ms": 500},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_ami_provisions_checks_and_images_the_instance() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(
        "example",
        "embed-example-1",
        target.ssh_port(),
        target.user(),
    );
    req["ami_regions"] = json!(["us-west-2"]);
    std::fs::write(dir.path().join("request.json"), req.to_string()).unwrap();

    let out = run("build_ami", dir.path(), Some(&moto), &["request.json"]);
    assert_eq!(out.status.code(), Some(0), "build_ami failed");
    let stdout = String::from_utf8_lossy(&out.stdout);

    // Events as they came: connect, the inline task, the goss check, the image.
    let connected = at(&stdout, "[example] connect: Changed");
    let task = at(&stdout, "write the release file");
    let checked = at(&stdout, "[example] goss: Count: 3, Failed: 0");
    let imaged = at(&stdout, "[example] image ...");
    assert!(
        connected < task && task < checked && checked < imaged,
        "{stdout}"
    );

    // The task ran on the target, as root.
    let written = target.sh("stat -c '%U %a' /etc/example-release && cat /etc/example-release");
    assert_eq!(
        written.unwrap(),
        "root 644\nbuilt by the build_ami example\n"
    );

    // One AMI per region, printed and in moto, named as asked.
    let ec2 = direct(&moto).await;
    for region in [REGION, "us-west-2"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{region}: ami-")))
            .unwrap_or_else(|| panic!("no AMI line for {region}:\n{stdout}"));
        let ami = line.split_once(": ").unwrap().1;
        let imgs = ec2
            .client(region)
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .unwrap();
        assert_eq!(imgs.images().len(), 1, "{region}: {ami}");
        assert_eq!(imgs.images()[0].name(), Some("embed-example-1"));
    }
    // Nothing temporary left behind.
    let left = cleanup::find_leftovers(&ec2, &[REGION.into(), "us-west-2".into()], None)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_plans_builds_a_definition_as_image_cli_build_does() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("cli_build/spec.yaml");
    let port = format!("ssh_port={}", target.ssh_port());
    let marker = "built-by-build-plans";
    let vars = [format!("marker={marker}"), format!("expect={marker}")];
    let args = [spec.to_str().unwrap(), &port, &vars[0], &vars[1]];

    // A broken variable: exit 2, and nothing was asked of EC2.
    let out = run(
        "build_plans",
        dir.path(),
        Some(&moto),
        &[spec.to_str().unwrap(), "ssh_port=1", "nope=1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown variable `nope`"));

    let out = run("build_plans", dir.path(), Some(&moto), &args);
    assert_eq!(out.status.code(), Some(0), "build_plans failed");
    let stdout = String::from_utf8_lossy(&out.stdout);

    // The manifest in the working directory: the build, its AMI per region.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap())
            .unwrap();
    let builds = m["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 1, "{m}");
    assert_eq!(m["last_run_uuid"], builds[0]["packer_run_uuid"]);
    let amis = artifact_amis(&builds[0]);
    let all = regions(&["us-west-2", "eu-west-1", "ap-southeast-2"]);
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(amis.keys().cloned().collect::<Vec<_>>(), expected);
    let ec2 = direct(&moto).await;
    for (region, ami) in &amis {
        assert!(
            stdout.contains(ami.as_str()),
            "{ami} not printed:\n{stdout}"
        );
        let imgs = ec2
            .client(region)
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .unwrap();
        assert_eq!(imgs.images().len(), 1, "{region}: {ami}");
    }
    // The definition's step list ran on the target (and its gossfile
    // passed, or there would be no AMI); nothing temporary is left.
    let written = std::fs::read_to_string(target.root_dir().join("etc/built-by-image-cli"))
        .expect("the marker file on the target");
    assert_eq!(written, format!("{marker}\n"));
    assert_nothing_left(&ec2, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_lists_and_deletes_what_an_aborted_build_left() {
    let moto = tokio::task::spawn_blocking(start_moto).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the port: the build fails at `connect` and, with
    // `on_error: abort`, leaves its key pair, security group and instance.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut req = request("aborted", "embed-aborted-1", closed, "builder");
    req["on_error"] = json!("abort");
    req["ssh"]["timeout_secs"] = json!(1);
    std::fs::write(dir.path().join("request.json"), req.to_string()).unwrap();

    let out = run("build_ami", dir.path(), Some(&moto), &["request.json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed at step connect"), "{stderr}");
    assert!(stderr.contains("left in AWS"), "{stderr}");

    let out = run("leftovers", dir.path(), Some(&moto), &[REGION]);
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("3 leftover(s)"), "{listed}");
    for kind in ["key_pair", "security_group", "instance"] {
        assert!(listed.contains(kind), "no {kind} in:\n{listed}");
    }
    assert!(listed.contains("(build aborted, id "), "{listed}");

    let out = run("leftovers", dir.path(), Some(&moto), &["--delete", REGION]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 3"));
    let ec2 = direct(&moto).await;
    let left = cleanup::find_leftovers(&ec2, &[REGION.into()], None)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

const STEPS: &str = r#"
- name: write the marker
  become: true
  copy:
    dest: /etc/run-steps-example
    content: "hello from run_steps\n"
    mode: "0600"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_steps_provisions_and_verifies_a_host_over_ssh() {
    let bed = bed_support::boot().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("steps.yaml"), STEPS).unwrap();
    // Observed as the login user, who can stat a root-only file.
    std::fs::write(
        dir.path().join("goss.yaml"),
        "file:\n  /etc/run-steps-example:\n    exists: true\n    owner: root\n    mode: \"0600\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wrong.yaml"),
        "file:\n  /etc/run-steps-example:\n    exists: true\n    mode: \"0644\"\n",
    )
    .unwrap();
    let host = format!("{}@{}:{}", bed.user(), bed.host(), bed.ssh_port());
    let key = bed.testbed().ed25519_key().display().to_string();

    let out = run(
        "run_steps",
        dir.path(),
        None,
        &["steps.yaml", "goss.yaml", &host, &key],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let task = at(&stdout, "Changed: write the marker");
    let recap = at(
        &stdout,
        &format!("RECAP {host}: ok=2 changed=1 unreachable=0 failed=0"),
    );
    let checks = at(&stdout, "Count: 3, Failed: 0");
    assert!(task < recap && recap < checks, "{stdout}");
    assert_eq!(
        bed.sh("cat /etc/run-steps-example").unwrap(),
        "hello from run_steps\n"
    );

    // Run again: nothing changes; a check that does not hold fails the run.
    let out = run(
        "run_steps",
        dir.path(),
        None,
        &["steps.yaml", "wrong.yaml", &host, &key],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    at(&stdout, "Ok: write the marker");
    at(&stdout, "ok=2 changed=0");
    at(&stdout, "Failed: 1");
    bed_support::stop(bed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_steps_runs_on_this_machine_and_refuses_bad_files_first() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(
        dir.path().join("steps.yaml"),
        format!(
            "- name: write the local marker\n  copy:\n    dest: {}\n    content: \"local\\n\"\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("goss.yaml"),
        format!(
            "file:\n  {}:\n    exists: true\n    contents: [local]\n",
            marker.display()
        ),
    )
    .unwrap();

    let out = run("run_steps", dir.path(), None, &["steps.yaml", "goss.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "local\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    at(&stdout, "Changed: write the local marker");
    at(&stdout, "Count: 2, Failed: 0");

    // A broken step list is reported with its place, and nothing runs.
    std::fs::remove_file(&marker).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "- name: typo\n  copyy:\n    dest: /nowhere\n",
    )
    .unwrap();
    let out = run("run_steps", dir.path(), None, &["bad.yaml", "goss.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:"), "{stderr}");
    assert!(!marker.exists());
}
