//! The verifier over SSH against a real booted Debian target (test bed:
//! systemd-nspawn, sshd, user `builder` with passwordless sudo): the
//! image-builder style suite with `PROVIDER=nspawn`, `service` (needs a
//! running systemd), the network resources seen from the target, and
//! `--become` for root-only files.
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bed_support::{boot, connect};
use image_core::ssh::SshTarget;
use image_core::target::Become;
use image_verify::report::{Report, Status};
use image_verify::runner::{run, RunOptions};
use image_verify::suite::load_str;
use image_verify::template::TemplateData;
use image_verify::{output, OutputFormat, VerifyOptions};

async fn check(t: &SshTarget, yaml: &str, become_: bool) -> Report {
    let data = TemplateData {
        vars: serde_json::json!({}),
        env: BTreeMap::new(),
    };
    let suite = load_str("goss.yaml", yaml, Path::new("."), &data)
        .unwrap_or_else(|d| panic!("bad gossfile:\n{d}"));
    let opts = RunOptions {
        become_: become_.then(Become::default),
        ..Default::default()
    };
    run(&suite, t, &opts).await
}

fn failed(r: &Report) -> Vec<String> {
    r.results
        .iter()
        .filter(|t| t.status == Status::Failed)
        .map(|t| format!("{}: {}", t.resource_id, t.property))
        .collect()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/verify")
}

#[tokio::test(flavor = "multi_thread")]
async fn verifies_a_booted_target_over_ssh() {
    let bed = boot().await;
    let t = connect(&bed).await;

    // The image-builder style suite, as a build would run it.
    let dir = fixtures().join("image-builder");
    let opts = VerifyOptions {
        gossfile: dir.join("goss.yaml"),
        vars_files: vec![dir.join("goss-vars.yaml")],
        vars_inline: vec![
            r#"{"OS": "debian", "ARCH": "amd64", "PROVIDER": "nspawn", "kubernetes_version": "1.30.2", "containerd_version": "1.7.13"}"#.into(),
        ],
        become_: true,
        ..Default::default()
    };
    let report = image_verify::verify(&opts, &t).await.expect("suite loads");
    assert!(
        report.passed(),
        "{}",
        output::render(&report, OutputFormat::Documentation)
    );
    assert!(report
        .results
        .iter()
        .any(|r| r.resource_type == "Service" && r.resource_id == "ssh"));

    // Services, and the resources that need a real host.
    let r = check(
        &t,
        &format!(
            r#"service:
  ssh: {{enabled: true, running: true}}
  sshd: {{running: true}}
  no-such-service: {{running: true}}
  systemd-journald: {{enabled: false}}
process:
  sshd: {{running: true}}
port:
  tcp:22: {{listening: true, ip: [0.0.0.0]}}
  tcp:2323: {{listening: true}}
user:
  builder: {{exists: true, groups: [builder], home: /home/builder}}
interface:
  lo: {{exists: true, addrs: [127.0.0.1/8]}}
addr:
  tcp://127.0.0.1:22: {{reachable: true}}
dns:
  localhost: {{resolvable: true}}
mount:
  /: {{exists: true, filesystem: overlay}}
file:
  /etc/shadow: {{exists: true, mode: "0640", contents: ["/^root:/"]}}
kernel-param:
  kernel.hostname: {{value: {{have-len: {{gt: 0}}}}}}
command:
  id -un: {{exit-status: 0, stdout: [builder]}}
http:
  http://{host}:{port}/: {{status: 200}}
"#,
            host = image_testbed::GUEST_ADDR,
            port = 1
        )
        .replace(
            "kernel.hostname: {value: {have-len: {gt: 0}}}",
            "kernel.hostname: {value: {not: \"\"}}",
        ),
        false,
    )
    .await;
    let f = failed(&r);
    assert!(f.contains(&"no-such-service: running".to_string()), "{f:?}");
    assert!(
        f.contains(&"systemd-journald: enabled".to_string()),
        "{f:?}"
    );
    assert!(f.contains(&"tcp:2323: listening".to_string()), "{f:?}");
    // Without sudo /etc/shadow cannot be read.
    assert!(f.contains(&"/etc/shadow: contents".to_string()), "{f:?}");
    // Nothing listens on port 1 of the guest: curl fails.
    assert!(f.iter().any(|x| x.starts_with("http://")), "{f:?}");
    assert_eq!(
        f.len(),
        5,
        "{}",
        output::render(&r, OutputFormat::Documentation)
    );

    // With --become: root reads /etc/shadow and `id -un` is root.
    let r = check(
        &t,
        "file:\n  /etc/shadow: {contents: [\"/^root:/\"]}\ncommand:\n  id -un: {stdout: [root]}\n",
        true,
    )
    .await;
    assert!(
        r.passed(),
        "{}",
        output::render(&r, OutputFormat::Documentation)
    );

    tokio::task::spawn_blocking(move || bed.stop())
        .await
        .expect("stop");
}
