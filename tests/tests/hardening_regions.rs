//! A region that does not exist never reaches a mutating EC2 call: `build`
//! asks the account's regions once (`DescribeRegions`) before it creates
//! anything, and a bad build region or copy region is exit 2 at the place
//! the definition names it. Checked on moto with its recorder.

mod cli_support;

use std::path::Path;

use cli_support::*;

/// A build in `region` copying to `copies`, everything else valid.
fn spec(dir: &Path, region: &str, copies: &str) {
    let spec = format!(
        "builds:
  b:
    source_ami: ami-0123456789abcdef0
    instance_type: t3.small
    region: {region}
    ssh_username: ubuntu
    ami_name: hardening-regions
    temporary_security_group_source_cidrs: [127.0.0.1/32]
    ami_regions: [{copies}]
    provision: [steps.yaml]
"
    );
    std::fs::write(dir.join("spec.yaml"), spec).unwrap();
    std::fs::write(dir.join("steps.yaml"), "- command: /bin/true\n").unwrap();
}

/// Runs `args` with the recorder on; returns the output and the EC2
/// actions called.
fn recorded(
    moto: &image_testbed::Moto,
    dir: &Path,
    args: &[&str],
) -> (std::process::Output, Vec<String>) {
    moto.start_recording().unwrap();
    let out = run_cli(moto, dir, args);
    moto.stop_recording().unwrap();
    let calls = build_actions(moto);
    moto.reset().unwrap();
    (out, calls)
}

#[test]
fn a_nonexistent_region_fails_before_any_mutating_call() {
    let moto = start_moto();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    for (region, copies, at) in [
        ("us-east-9", "", "spec.yaml:5:13"),
        ("us-east-1", "us-west-2, xx-nowhere-7", "spec.yaml:9:30"),
    ] {
        spec(d, region, copies);
        for extra in [&[][..], &["--dry-run"][..], &["--json"][..]] {
            let mut args = vec!["build", "spec.yaml"];
            args.extend_from_slice(extra);
            let (out, calls) = recorded(&moto, d, &args);
            assert_eq!(out.status.code(), Some(2), "{region} {copies} {extra:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("{at}: error: build `b`: region `")),
                "{stderr}"
            );
            assert!(stderr.contains("does not exist\n  help: "), "{stderr}");
            assert!(
                !stderr.contains("warning: unknown region"),
                "said twice: {stderr}"
            );
            assert_eq!(
                calls,
                vec!["DescribeRegions".to_string()],
                "{region} {copies} {extra:?}"
            );
        }
    }
    let stderr_of = |region: &str| {
        spec(d, region, "");
        let (out, _) = recorded(&moto, d, &["build", "spec.yaml", "--dry-run"]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(stderr_of("us-east-9").contains("did you mean `us-east-1`?"));

    // A good region goes on (the dry run reads the source AMI next).
    spec(d, "us-east-1", "us-west-2");
    let (_, calls) = recorded(&moto, d, &["build", "spec.yaml", "--dry-run"]);
    assert_eq!(
        calls.first().map(String::as_str),
        Some("DescribeRegions"),
        "{calls:?}"
    );
    assert!(calls.len() > 1, "{calls:?}");
}
