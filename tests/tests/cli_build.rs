//! `image-cli build` end to end, as a user runs it: the binary, the AWS
//! standard chain pointed at moto by environment variables, a booted target
//! reached through the definition's `ssh_host`/`ssh_port` whose sshd trusts
//! only the key the build imported into EC2, the fixture step list and goss
//! file. Then moto, the manifest and the target's disk are inspected.

mod cli_support;

use cli_support::*;
use image_aws::cleanup;

fn all_regions() -> Vec<String> {
    regions(&COPY_REGIONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_provisions_verifies_copies_and_records_the_manifest() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("cli_build/spec.yaml");
    let port = target.ssh_port().to_string();
    let manifest = dir.path().join("manifest.json");
    // The target refuses the test bed's own key: only EC2's key pairs get in.
    let tb = target.testbed().clone();
    let refused = image_core::ssh::SshTarget::connect({
        let mut cfg = image_core::ssh::SshConfig::new(
            "127.0.0.1".to_string(),
            target.ssh_port(),
            target.user().to_string(),
            image_core::ssh::SshAuth::key_file(tb.ed25519_key().to_path_buf()),
        );
        cfg.retry_until = std::time::Duration::from_secs(1);
        cfg
    })
    .await;
    assert!(refused.is_err(), "the test bed key still gets in");

    let out = run_cli_in_place(
        &moto,
        dir.path(),
        &[
            "build",
            spec.to_str().unwrap(),
            "--var",
            &format!("ssh_port={port}"),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "image-cli build failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| Region | AMI |"), "{stdout}");

    // The manifest: one build, an AMI per region as region:ami-….
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let builds = m["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 1, "{m}");
    assert_eq!(builds[0]["name"], "node");
    assert_eq!(builds[0]["builder_type"], "amazon-ebs");
    assert_eq!(m["last_run_uuid"], builds[0]["packer_run_uuid"]);
    let amis = artifact_amis(&builds[0]);
    assert_amis_listed(&amis, &all_regions(), &stdout);

    // In moto: each AMI with its tags and launch permissions.
    let ec2 = direct(&moto).await;
    for (region, ami) in &amis {
        let c = ec2.client(region);
        let imgs = c.describe_images().image_ids(ami).send().await.unwrap();
        let img = &imgs.images()[0];
        let tags = tags_of(img);
        assert_eq!(
            tags.get("purpose").map(String::as_str),
            Some("cli-build-test"),
            "{region}: {tags:?}"
        );
        assert_eq!(
            tags.get("marker").map(String::as_str),
            Some("built-by-image-cli"),
            "{region}"
        );
        assert!(
            !tags.contains_key(cleanup::TAG_TEMPORARY),
            "{region}: {tags:?}"
        );
        assert_eq!(
            launch_users(&ec2, region, ami).await,
            ["111122223333"],
            "{region}"
        );
    }
    assert_eq!(
        own_images(&ec2, &all_regions())
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        4
    );
    assert_nothing_left(&ec2, &all_regions()).await;

    // The step list ran on the target, through the key EC2 handed out.
    let marker = std::fs::read_to_string(target.root_dir().join("etc/built-by-image-cli"))
        .expect("the marker file on the target");
    assert_eq!(marker, "built-by-image-cli\n");

    // The table of the last run, again, from the manifest.
    let out = run_cli_in_place(
        &moto,
        dir.path(),
        &[
            "manifest",
            "table",
            "--manifest",
            manifest.to_str().unwrap(),
            "--format",
            "csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.contains(&format!("node,us-east-1,{}", amis["us-east-1"])),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_verify_makes_no_ami_and_leaves_nothing() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("cli_build/spec.yaml");
    let port = format!("ssh_port={}", target.ssh_port());
    let out = run_cli_in_place(
        &moto,
        dir.path(),
        &[
            "build",
            spec.to_str().unwrap(),
            "--var",
            &port,
            "--var",
            "expect=something-else",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("goss.yaml"), "{stderr}");
    assert!(stderr.contains("checks failed"), "{stderr}");
    // Provisioning did run; the verification refused the image.
    assert!(target.root_dir().join("etc/built-by-image-cli").is_file());
    let ec2 = direct(&moto).await;
    assert!(
        own_images(&ec2, &all_regions()).await.is_empty(),
        "an AMI was made"
    );
    assert_nothing_left(&ec2, &all_regions()).await;
    assert!(
        !dir.path().join("manifest.json").exists(),
        "a manifest was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_without_a_single_ec2_call() {
    let moto = tokio::task::spawn_blocking(start_moto).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A broken step list next to an otherwise good definition.
    for f in ["spec.yaml", "goss.yaml"] {
        std::fs::copy(fixture(&format!("cli_build/{f}")), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("steps.yaml"),
        "- name: broken\n  copy:\n    dest: /x\n    no_such_option: 1\n  when: [\n",
    )
    .unwrap();
    let bad_steps = dir.path().join("spec.yaml");
    let bad_spec = fixture("cli_build/bad-spec.yaml");
    moto.start_recording().unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["build".into(), bad_spec.display().to_string()],
        vec![
            "build".into(),
            bad_steps.display().to_string(),
            "--var".into(),
            "ssh_port=22".into(),
        ],
        vec!["build".into(), bad_steps.display().to_string()], // ssh_port is required
        vec!["build".into(), "--only".into(), "no-such-build".into()],
        vec!["policy".into(), bad_spec.display().to_string()],
    ];
    for args in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_cli_in_place(&moto, dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    moto.stop_recording().unwrap();
    let calls = moto.recorded_actions().unwrap();
    assert!(calls.is_empty(), "EC2 was called: {calls:?}");
}

/// Starts `image-cli build` whose SSH never comes up (port 1), interrupts it
/// once connect is being retried, and returns its output.
fn interrupted_build(
    moto: &image_testbed::Moto,
    cwd: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let spec = fixture("cli_build/spec.yaml");
    let child = cli_command(moto, cwd)
        .args(["build", spec.to_str().unwrap(), "--var", "ssh_port=1"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the instance to exist (connect is then being retried).
    let ec2 = moto;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let xml = ec2
            .ec2_query(REGION, "Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=running")
            .unwrap();
        if xml.contains("<instanceId>") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no instance launched");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    interrupt(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_cleans_up_and_exits_130() {
    let moto = tokio::task::spawn_blocking(start_moto).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::task::block_in_place(|| interrupted_build(&moto, dir.path(), &[]));
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cancelling the builds"), "{stderr}");
    assert!(stderr.contains("cancelled at step"), "{stderr}");
    let ec2 = direct(&moto).await;
    assert!(own_images(&ec2, &all_regions()).await.is_empty());
    assert_nothing_left(&ec2, &all_regions()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_abort_lists_what_is_left_and_cleanup_deletes_it() {
    let moto = tokio::task::spawn_blocking(start_moto).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::task::block_in_place(|| {
        interrupted_build(&moto, dir.path(), &["--on-error", "abort"])
    });
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("left in AWS"), "{stderr}");
    for kind in [
        "instance i-",
        "security_group sg-",
        "key_pair image-builder-",
    ] {
        assert!(stderr.contains(kind), "{kind} not listed: {stderr}");
    }
    let ec2 = direct(&moto).await;
    let left = cleanup::find_leftovers(&ec2, &all_regions(), None)
        .await
        .unwrap();
    assert_eq!(left.len(), 3, "{left:?}");

    // `cleanup` lists them, and deletes them with --yes.
    let regions: Vec<String> = all_regions()
        .iter()
        .flat_map(|r| ["--region".to_string(), r.clone()])
        .collect();
    let mut args = vec!["cleanup"];
    args.extend(regions.iter().map(String::as_str));
    let out = run_cli_in_place(&moto, dir.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.matches("| us-east-1 |").count(), 3, "{listed}");
    assert_eq!(
        cleanup::find_leftovers(&ec2, &all_regions(), None)
            .await
            .unwrap()
            .len(),
        3,
        "listing deleted something"
    );
    args.push("--yes");
    let out = run_cli_in_place(&moto, dir.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 3 of 3"));
    assert_nothing_left(&ec2, &all_regions()).await;
    // Without --region: every enabled region (moto's 30-odd) is searched.
    let out = run_cli_in_place(&moto, dir.path(), &["cleanup", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["leftovers"].as_array().map(Vec::len), Some(0), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ami_regions_all_copies_to_every_enabled_region() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("cli_build/all-regions.yaml");
    let port = format!("ssh_port={}", target.ssh_port());
    let out = run_cli_in_place(
        &moto,
        dir.path(),
        &["build", spec.to_str().unwrap(), "--var", &port, "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let result = json_event(&out.stdout, "build_result");
    let amis = result["amis"].as_object().unwrap();
    let ec2 = direct(&moto).await;
    let enabled = image_aws::regions::enabled_regions(&ec2, REGION)
        .await
        .unwrap();
    assert!(enabled.len() > 10, "{enabled:?}");
    let got: Vec<&String> = amis.keys().collect();
    assert_eq!(
        got,
        enabled.iter().collect::<Vec<_>>(),
        "one AMI per enabled region"
    );
    assert_eq!(result["failed_regions"], serde_json::json!({}));
    let left = cleanup::find_leftovers(&ec2, &enabled, None).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
