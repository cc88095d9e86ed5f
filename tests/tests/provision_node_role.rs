//! The step engine against real booted Debian targets (test bed): a
//! Kubernetes-node-like role converges (packages from the Debian archive, a
//! checksummed download from a local HTTP server unpacked on the target, a
//! template, sysctls, modules-load files, a systemd unit with a drop-in and
//! a restart handler); the re-run reports changed=0; check mode on a fresh
//! target reports changes and makes none; a broken step list names
//! `file:line:col` and changes nothing.
//!
//! Needs `scripts/testbed/setup.sh` (root) and Debian's mirror.

mod bed_support;

use std::path::{Path, PathBuf};

use bed_support::{boot, connect, serve};
use image_core::events::Recorder;
use image_core::ssh::SshTarget;
use image_core::target::Target;
use image_provision::{parse, Options, Report};
use image_testbed::HOST_ADDR_FROM_GUEST;
use serde_json::json;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/provision/node")
}

/// A tarball with `crictl` (a shell script printing its version).
fn artifact(version: &str) -> Vec<u8> {
    let d = tempfile::tempdir().expect("tempdir");
    let bin = d.path().join("crictl");
    std::fs::write(&bin, format!("#!/bin/sh\necho crictl {version}\n")).expect("write");
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&bin)
        .status()
        .expect("chmod");
    let out = d.path().join("a.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(d.path())
        .arg("crictl")
        .status()
        .expect("tar");
    assert!(st.success());
    std::fs::read(out).expect("read tarball")
}

async fn provision(t: &SshTarget, extra: &serde_json::Value, check: bool) -> Report {
    let steps = parse::load(&fixture().join("site.yaml"), &[]).unwrap_or_else(|d| panic!("{d}"));
    let opts = Options {
        extra_vars: extra.as_object().cloned().unwrap_or_default(),
        check,
        diff: true,
        ..Default::default()
    };
    image_provision::run(t, &steps, &opts, &Recorder::default()).await
}

fn changed_tasks(r: &Report) -> Vec<String> {
    r.results
        .iter()
        .filter(|t| t.outcome == image_core::events::Outcome::Changed)
        .map(|t| format!("{} {:?}", t.task, t.item))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn node_role_converges_and_reruns_with_no_changes() {
    let tarball = artifact("1.0");
    let sha = image_provision::script::sha256_hex(&tarball);
    let port = serve(tarball);
    let extra = json!({
        "artifact_url": format!("http://{HOST_ADDR_FROM_GUEST}:{port}/crictl.tar.gz"),
        "artifact_sha256": sha,
    });
    let bed = boot().await;
    let t = connect(&bed).await;
    let root = bed.root_dir().to_path_buf();

    // Check mode first: reports changes, changes nothing.
    let r = provision(&t, &extra, true).await;
    assert_eq!(
        r.recap.failed,
        0,
        "check mode: {:#?}",
        r.results
            .iter()
            .filter(|t| t.outcome == image_core::events::Outcome::Failed)
            .collect::<Vec<_>>()
    );
    assert!(
        r.recap.changed > 5,
        "check mode reports changes: {}",
        r.recap
    );
    for p in [
        "etc/motd.dpkg-new",
        "etc/default/kubelet",
        "etc/systemd/system/demo.service",
        "usr/local/bin/crictl",
        "etc/sysctl.d/99-kubernetes-net.conf",
    ] {
        assert!(!root.join(p).exists(), "check mode created {p}");
    }
    assert!(!root.join("usr/bin/jq").exists(), "check mode installed jq");

    let t0 = std::time::Instant::now();
    let r = provision(&t, &extra, false).await;
    let first = t0.elapsed();
    assert_eq!(
        r.recap.failed,
        0,
        "{:#?}",
        r.results
            .iter()
            .filter(|t| t.outcome == image_core::events::Outcome::Failed)
            .collect::<Vec<_>>()
    );
    assert!(r.recap.changed > 10, "{}", r.recap);
    let rd = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(root.join("usr/bin/jq").exists());
    assert_eq!(rd("etc/motd"), "Kubernetes node built by image-cli\n");
    assert!(
        rd("etc/default/kubelet").contains("DISTRO=debian12"),
        "{}",
        rd("etc/default/kubelet")
    );
    assert_eq!(
        rd("etc/sysctl.d/99-kubernetes-net.conf"),
        "net.ipv4.ip_forward=1\nnet.ipv4.conf.all.rp_filter=1\n"
    );
    assert_eq!(
        rd("etc/sysctl.d/99-kubernetes-vm.conf"),
        "vm.overcommit_memory=1\nkernel.panic=10\n"
    );
    assert_eq!(rd("etc/modules-load.d/br_netfilter.conf"), "br_netfilter\n");
    assert_eq!(rd("etc/kubernetes/node.conf"), "role=worker\n");
    assert!(rd("etc/group").contains("kube:"));
    let role = t
        .exec(&image_core::target::Exec::new(
            "cat /run/demo-role; systemctl is-enabled demo; cat /proc/sys/net/ipv4/ip_forward",
        ))
        .await
        .expect("exec");
    assert_eq!(role.stdout_str(), "worker\nenabled\n1\n");

    let t1 = std::time::Instant::now();
    let r2 = provision(&t, &extra, false).await;
    let second = t1.elapsed();
    assert_eq!(r2.recap.failed, 0, "{:#?}", r2.results);
    assert_eq!(
        r2.recap.changed,
        0,
        "re-run changed: {:?}",
        changed_tasks(&r2)
    );
    eprintln!(
        "first run {first:?}, idempotent re-run {second:?} ({} tasks)",
        r2.results.len()
    );
    tokio::task::spawn_blocking(move || bed.stop())
        .await
        .expect("stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_step_list_names_the_place_and_changes_nothing() {
    let err = parse::load(&fixture().join("broken.yaml"), &[])
        .err()
        .expect("broken step list is refused")
        .to_string();
    assert!(
        err.contains("broken.yaml:9:9: error: unknown parameter `regexpp` for module `lineinfile`"),
        "{err}"
    );
    assert!(err.contains("did you mean `regexp`?"), "{err}");
    // Parsing is all-or-nothing: with a broken list nothing runs, so the
    // first (valid) task never reaches the target.
    let bed = boot().await;
    let t = connect(&bed).await;
    if let Ok(steps) = parse::load(&fixture().join("broken.yaml"), &[]) {
        image_provision::run(&t, &steps, &Options::default(), &Recorder::default()).await;
    }
    assert!(!bed.root_dir().join("etc/should-not-exist").exists());
    tokio::task::spawn_blocking(move || bed.stop())
        .await
        .expect("stop");
}
