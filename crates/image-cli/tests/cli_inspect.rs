//! `image-cli validate` and `inspect` on definitions that are fine: the good
//! examples of the corpus and the built-in definition. (The broken ones are
//! in `spec_corpus.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/spec")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-cli"))
        .args(args)
        .current_dir(corpus())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("RUST_LOG")
        .output()
        .expect("run image-cli")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "image-cli {args:?}: {stderr}");
    assert!(stderr.is_empty(), "image-cli {args:?} warned: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn good_examples_and_the_builtin_validate() {
    assert_eq!(
        ok(&["validate", "good-minimal.yaml"]),
        "good-minimal.yaml: 1 build valid: node\n"
    );
    assert_eq!(
        ok(&["validate", "good-full.yaml"]),
        "good-full.yaml: 2 builds valid: ubuntu-2204, ubuntu-2404-arm\n"
    );
    assert_eq!(
        ok(&["validate"]),
        "<builtin>: 5 builds valid: ubuntu-2204, ubuntu-2404, al2023, ubuntu-2404-arm64, al2023-arm64\n"
    );
    assert_eq!(
        ok(&["validate", "good-full.yaml", "--except", "*-arm"]),
        "good-full.yaml: 1 build valid: ubuntu-2204\n"
    );
}

#[test]
fn inspect_prints_variables_and_builds() {
    let out = ok(&[
        "inspect",
        "good-full.yaml",
        "--var",
        "kubernetes_version=1.29.3",
    ]);
    for want in [
        "Spec: good-full.yaml",
        "kubernetes_version = \"1.29.3\"  [--var]",
        "kubernetes_series = \"v1.29\"  [default]",
        "regions = [\"eu-west-1\",\"us-west-2\"]  [default]",
        "      copy targets",
        "api_token = <sensitive> (sensitive)",
        "  ubuntu-2204:",
        "    source_ami:    name=ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-* owners=099720109477 architecture=x86_64 most_recent",
        "    instance_type: t3.medium",
        "  ubuntu-2404-arm:",
        "    instance_type: t4g.medium",
        "    region:        us-east-1",
        "    ami_regions:   eu-west-1, us-west-2",
        "    ami_name:      k8s-ubuntu-2204-1.29.3-20231114",
        "    provision:     steps/base.yaml, steps/arm.yaml",
        "    verify:        goss/node.yaml",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("s3cret"), "secret leaked:\n{out}");
}

#[test]
fn inspect_builtin_shows_its_defaults() {
    let out = ok(&["inspect"]);
    for want in [
        "Spec: <builtin>",
        "kubernetes_version = \"1.31.4\"  [default]",
        "kubernetes_series = \"v1.31\"  [default]",
        "build_region = \"us-east-1\"  [default]",
        "containerd_url = \"https://github.com/containerd/containerd/releases/download/v1.7.27/containerd-1.7.27-linux-amd64.tar.gz\"  [default]",
        "      containerd tarball for amd64 builds",
        "temporary_security_group_source_cidrs = []  [default]",
        "  ubuntu-2404:",
        "owners=099720109477",
        "    instance_type: t3.small",
        "    ami_regions:   <build region only>",
        "    ami_name:      capa-ami-ubuntu-24.04-1.31.4-1700000000",
        "    provision:     node/node.yml",
        "    verify:        node/goss/goss.yaml",
        "  al2023-arm64:",
        "owners=137112412989",
        "    instance_type: t4g.small",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn init_writes_the_builtin_files_which_validate() {
    let dir = std::env::temp_dir().join(format!("image-cli-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = ok(&["init", dir.to_str().expect("utf-8 path")]);
    assert!(out.contains("node/node.yml"), "{out}");
    assert!(dir.join("node/goss/goss.yaml").is_file());
    let spec = dir.join("kubernetes.yaml");
    assert_eq!(
        ok(&[
            "validate",
            spec.to_str().expect("utf-8 path"),
            "--only",
            "al2023"
        ]),
        format!("{}: 1 build valid: al2023\n", spec.display())
    );
    // A second init refuses to overwrite (exit 2) unless --force.
    assert_eq!(
        run(&["init", dir.to_str().expect("utf-8 path")])
            .status
            .code(),
        Some(2)
    );
    ok(&["init", "--force", dir.to_str().expect("utf-8 path")]);
    std::fs::remove_dir_all(&dir).expect("remove the written files");
}

#[test]
fn inspect_json_masks_sensitive_values() {
    let out = ok(&[
        "inspect",
        "good-full.yaml",
        "--json",
        "--only",
        "ubuntu-2204",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(!out.contains("s3cret"), "secret leaked:\n{out}");
    let vars = doc["variables"].as_array().expect("variables");
    let token = vars
        .iter()
        .find(|v| v["name"] == "api_token")
        .expect("api_token");
    assert_eq!(token["value"], "<sensitive>");
    let builds = doc["builds"].as_array().expect("builds");
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0]["provision_vars"]["token"], "<sensitive>");
    assert_eq!(builds[0]["root_device"]["volume_size"], 30);
    assert_eq!(
        builds[0]["ami_regions"],
        serde_json::json!(["eu-west-1", "us-west-2"])
    );
}

#[test]
fn help_documents_exit_codes_and_usage_errors_exit_2() {
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["inspect", "--help"],
    ] {
        let out = ok(args);
        assert!(
            out.contains("Exit codes:") && out.contains("130  interrupted"),
            "{out}"
        );
    }
    assert_eq!(run(&["validate", "--no-such-flag"]).status.code(), Some(2));
    let out = run(&["validate", "no-such-file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot read image definition `no-such-file.yaml`: no such file\n  help: check the path (relative paths are relative to the current directory)\n"
    );
}
