//! A variable marked `sensitive` is masked in every output of `build`,
//! failing and succeeding, as text, `--json` and `-vvv`: a task that echoes
//! it (and fails, so that its output is reported) never prints it, nor does
//! the manifest or any request EC2 (moto, recorded) receives. The value
//! still reaches the instance: the successful build writes it there.

mod cli_support;

use std::path::Path;

use cli_support::*;

const SECRET: &str = "tok-7Hq2-hardening-secret";

/// The cli_build fixture with a sensitive `token` passed to the steps and
/// into the manifest's custom data, and `steps` as its step list.
fn write_spec(dir: &Path, steps: &str) {
    let spec = std::fs::read_to_string(fixture("cli_build/spec.yaml")).unwrap();
    let spec = spec
        .replace(
            "variables:\n",
            &format!("variables:\n  token: {{ sensitive: true, default: {SECRET} }}\n"),
        )
        .replace(
            "  provision_vars:\n",
            "  provision_vars:\n    token: \"{{ token }}\"\n",
        );
    assert!(spec.contains("token: \"{{ token }}\""), "fixture changed");
    std::fs::write(dir.join("spec.yaml"), spec).unwrap();
    // The fixture's own task first: its goss file checks the marker file.
    let marker = std::fs::read_to_string(fixture("cli_build/steps.yaml")).unwrap();
    std::fs::write(dir.join("steps.yaml"), format!("{marker}{steps}")).unwrap();
    std::fs::copy(fixture("cli_build/goss.yaml"), dir.join("goss.yaml")).unwrap();
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_value_is_masked_in_every_build_output() {
    let (moto, target) = start_moto_and_target(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = format!("ssh_port={}", target.ssh_port());
    let common = ["--var", port.as_str(), "--var", "ami_regions=us-west-2"];

    // A failing task that prints the secret, in each output mode.
    write_spec(
        d,
        "- name: leak the token\n  shell: \"echo token={{ token }}; echo err={{ token }} >&2; exit 3\"\n",
    );
    for (i, mode) in [&[][..], &["--json"][..], &["-vvv", "--show-tasks"][..]]
        .iter()
        .enumerate()
    {
        let name = format!("ami_name=hardening-secrets-fail-{i}");
        let mut args = vec!["build", "spec.yaml", "--var", name.as_str()];
        args.extend_from_slice(&common);
        args.extend_from_slice(mode);
        moto.start_recording().unwrap();
        let out = run_cli_in_place(&moto, d, &args);
        moto.stop_recording().unwrap();
        assert_eq!(out.status.code(), Some(1), "{mode:?}: the task should fail");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_no_secret("stdout", &stdout);
        assert_no_secret("stderr", &stderr);
        // The failure is reported, with the output masked.
        assert!(
            format!("{stdout}{stderr}").contains("<sensitive>"),
            "{mode:?}: the task's output is not reported:\n{stdout}\n{stderr}"
        );
        let calls = serde_json::to_string(&moto.recorded_calls().unwrap()).unwrap();
        assert_no_secret("EC2 requests", &calls);
    }

    // A successful build whose task prints the secret and writes it on the
    // instance; -vvv logs everything.
    write_spec(
        d,
        "- name: use the token\n  shell: \"echo token={{ token }}; echo '{{ token }}' > /etc/hardening-token\"\n",
    );
    let manifest = d.join("manifest.json");
    let mut args = vec![
        "build",
        "spec.yaml",
        "--var",
        "ami_name=hardening-secrets-ok",
        "--manifest",
        manifest.to_str().unwrap(),
        "-vvv",
        "--show-tasks",
    ];
    args.extend_from_slice(&common);
    let out = run_cli_in_place(&moto, d, &args);
    assert_eq!(out.status.code(), Some(0), "the build should pass");
    assert_no_secret("stdout", &String::from_utf8_lossy(&out.stdout));
    assert_no_secret("stderr", &String::from_utf8_lossy(&out.stderr));
    assert_no_secret("manifest", &std::fs::read_to_string(&manifest).unwrap());
    let on_disk = std::fs::read_to_string(target.root_dir().join("etc/hardening-token")).unwrap();
    assert_eq!(
        on_disk.trim(),
        SECRET,
        "the value must still reach the instance"
    );
}
