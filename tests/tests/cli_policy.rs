//! `image-cli policy` against what builds really call: every EC2 action a
//! build, its dry run and an `image-cli test` of the AMI it made (moto's
//! recorder) call is in the printed policy, and every action
//! the policy names is called by some configuration (here: a build with
//! copies and launch permissions, a rebuild under the same name with
//! `force_deregister` and snapshot permissions, a build on a spot
//! instance: launch template and EC2 Fleet, and a build with the AMI options
//! `ena_support`, `boot_mode` and `tpm_support`).

mod cli_support;

use std::collections::BTreeSet;

use cli_support::*;

fn policy_actions(out: &std::process::Output) -> BTreeSet<String> {
    assert_eq!(out.status.code(), Some(0), "image-cli policy failed");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("policy JSON");
    assert_eq!(doc["Version"], "2012-10-17");
    doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_covers_every_call_and_names_nothing_unused() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("cli_build/spec.yaml").display().to_string();
    let port = format!("ssh_port={}", target.ssh_port());
    let configs: [&[&str]; 4] = [
        &["--var", "ami_name=cli-policy-image"],
        &[
            "--var",
            "ami_name=cli-policy-image",
            "--var",
            "force_deregister=true",
            "--var",
            "snapshot_users=111122223333",
        ],
        &[
            "--var",
            "ami_name=cli-policy-spot",
            "--var",
            "spot_price=auto",
        ],
        &[
            "--var",
            "ami_name=cli-policy-options",
            "--var",
            "ena_support=true",
            "--var",
            "boot_mode=uefi",
            "--var",
            "tpm_support=v2.0",
        ],
    ];
    let mut called_any = BTreeSet::new();
    let mut named_any = BTreeSet::new();
    for (i, extra) in configs.iter().enumerate() {
        let mut common: Vec<&str> = vec![spec.as_str(), "--var", port.as_str()];
        common.extend_from_slice(extra);

        let mut policy_args = vec!["policy"];
        policy_args.extend_from_slice(&common);
        let named = policy_actions(&run_cli_in_place(&moto, dir.path(), &policy_args));

        // The dry run (before the build takes the AMI name): its read-only
        // checks are in the same policy.
        moto.start_recording().unwrap();
        let mut dry_args = vec!["build", "--dry-run"];
        dry_args.extend_from_slice(&common);
        let out = run_cli_in_place(&moto, dir.path(), &dry_args);
        moto.stop_recording().unwrap();
        assert_eq!(out.status.code(), Some(0), "config {i}: dry run failed");
        let mut called: BTreeSet<String> = build_actions(&moto)
            .into_iter()
            .map(|a| format!("ec2:{a}"))
            .collect();

        moto.start_recording().unwrap();
        let mut build_args = vec!["build"];
        build_args.extend_from_slice(&common);
        let out = run_cli_in_place(&moto, dir.path(), &build_args);
        moto.stop_recording().unwrap();
        assert_eq!(out.status.code(), Some(0), "config {i}: build failed");
        called.extend(build_actions(&moto).into_iter().map(|a| format!("ec2:{a}")));

        // `image-cli test` of the AMI just built (the manifest's last run):
        // launch (spot too in the spot configuration), verify, terminate.
        moto.start_recording().unwrap();
        let mut test_args = vec!["test"];
        test_args.extend_from_slice(&common);
        let out = run_cli_in_place(&moto, dir.path(), &test_args);
        moto.stop_recording().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "config {i}: image-cli test failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tested: BTreeSet<String> = build_actions(&moto)
            .into_iter()
            .map(|a| format!("ec2:{a}"))
            .collect();
        assert!(
            tested.contains("ec2:RunInstances") || tested.contains("ec2:CreateFleet"),
            "config {i}: image-cli test launched nothing: {tested:?}"
        );
        called.extend(tested);

        assert!(!called.is_empty(), "config {i}: nothing recorded");
        let missing: Vec<_> = called.difference(&named).collect();
        assert!(
            missing.is_empty(),
            "config {i}: called but not in the policy: {missing:?}\npolicy: {named:?}"
        );
        called_any.extend(called);
        named_any.extend(named);
    }
    let unused: Vec<_> = named_any.difference(&called_any).collect();
    assert!(
        unused.is_empty(),
        "in the policy but never called: {unused:?}\ncalled: {called_any:?}"
    );
}
