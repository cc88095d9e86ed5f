//! The built-in Kubernetes node recipe (`images/node`) under our engine on a
//! real booted target (test bed: Debian bookworm in systemd-nspawn):
//!
//! 1. `node.yml --skip-tags sysprep` converges with the download and apt
//!    fixtures (`scripts/fixtures/build.sh`) served from this process;
//! 2. the re-run reports `changed=0`;
//! 3. the node goss spec (`images/node/goss/goss.yaml`, `OS=debian`,
//!    `PROVIDER=amazon`) passes through `image-verify`;
//! 4. `--tags sysprep` seals the image and `goss-hygiene.yaml` passes (over
//!    the still-open SSH session: sysprep removes the keys used to connect).
//!
//! What a container cannot do, and how it is checked instead:
//! - `vm.*`, `kernel.*`, `fs.*` sysctls cannot be set live in a container
//!   (only the per-namespace `net.*` keys can): `node_apply_sysctl_live` is
//!   off and the persisted `/etc/sysctl.d/99-kubernetes.conf` is checked;
//!   the `net.*` keys are checked live in `/proc/sys`.
//! - `modprobe` (the host kernel has no loadable modules):
//!   `node_load_modules` is off and `/etc/modules-load.d/kubernetes.conf`
//!   is checked.
//! - auditd/chronyd cannot run (no audit netlink, no `CAP_SYS_TIME`): they
//!   are installed and enabled, not started.
//!
//! (`tests/fixtures/node/test-vars.yml` switches those off.) Needs
//! `scripts/testbed/setup.sh` (root), Debian's mirror, dpkg-dev and gnupg.

mod bed_support;
mod cli_support;

use std::net::TcpListener;
use std::path::Path;
use std::time::Instant;

use bed_support::{boot, connect};
use cli_support::{node, workspace};

use image_core::events::{Outcome, Recorder};
use image_core::ssh::SshTarget;
use image_core::target::{Exec, Target};
use image_provision::{parse, Options, Report};
use image_verify::VerifyOptions;
use serde_json::{Map, Value as Json};

fn yaml_vars(p: &Path) -> Map<String, Json> {
    parse::load_vars(p).unwrap_or_else(|d| panic!("{d}"))
}

async fn provision(
    t: &SshTarget,
    extra: &Map<String, Json>,
    tags: &[&str],
    skip: &[&str],
) -> Report {
    let steps = parse::load(&workspace().join("images/node/node.yml"), &[])
        .unwrap_or_else(|d| panic!("{d}"));
    let opts = Options {
        extra_vars: extra.clone(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        skip_tags: skip.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    image_provision::run(t, &steps, &opts, &Recorder::default()).await
}

fn failures(r: &Report) -> String {
    r.results
        .iter()
        .filter(|t| t.outcome == Outcome::Failed)
        .map(|t| format!("{} ({}) {:?}: {}", t.task, t.loc, t.item, t.msg))
        .collect::<Vec<_>>()
        .join("\n")
}

fn changed(r: &Report) -> Vec<String> {
    r.results
        .iter()
        .filter(|t| t.outcome == Outcome::Changed)
        .map(|t| match &t.item {
            Some(i) => format!("{} (item={i})", t.task),
            None => t.task.clone(),
        })
        .collect()
}

async fn goss(t: &SshTarget, file: &str) -> image_verify::Report {
    let dir = workspace().join("images/node/goss");
    let opts = VerifyOptions {
        gossfile: dir.join(file),
        vars_files: vec![dir.join("goss-vars.yaml")],
        vars_inline: vec![
            r#"{"OS": "debian", "PROVIDER": "amazon", "ssh_username": "builder", "ecr_credential_provider_enabled": true}"#.into(),
        ],
        become_: true,
        ..Default::default()
    };
    image_verify::verify(&opts, t)
        .await
        .unwrap_or_else(|d| panic!("{file} loads: {d}"))
}

fn failed_checks(r: &image_verify::Report) -> String {
    r.results
        .iter()
        .filter(|c| !c.successful() && !c.skipped())
        .map(|c| c.failure_text())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn sh(t: &SshTarget, script: &str) -> String {
    let out = t
        .exec(&Exec::new(script.to_string()).become_opt(Some(Default::default())))
        .await
        .expect("exec");
    assert_eq!(out.status, 0, "{script}: {}", out.stderr_str());
    out.stdout_str()
}

#[tokio::test(flavor = "multi_thread")]
async fn node_recipe_converges_reruns_clean_verifies_and_seals() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    node::build_fixtures(port, fixtures.path()).expect("fixtures");
    node::serve(listener, fixtures.path().join("www"));

    let mut extra = yaml_vars(&fixtures.path().join("vars.yml"));
    extra.extend(yaml_vars(
        &workspace().join("tests/fixtures/node/test-vars.yml"),
    ));

    let bed = boot().await;
    let t = connect(&bed).await;
    let root = bed.root_dir().to_path_buf();

    // 1. Converge.
    let t0 = Instant::now();
    let r1 = provision(&t, &extra, &[], &["sysprep"]).await;
    let first = t0.elapsed();
    assert!(!r1.failed(), "first run failed:\n{}", failures(&r1));
    assert!(r1.recap.changed >= 25, "first run: {}", r1.recap);

    let rd = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    // Every sysctl is persisted (the live vm.*/kernel.*/fs.* values cannot
    // be set in a container; see the module docs).
    assert_eq!(
        rd("etc/sysctl.d/99-kubernetes.conf"),
        "net.bridge.bridge-nf-call-iptables=1\n\
         net.bridge.bridge-nf-call-ip6tables=1\n\
         net.ipv4.ip_forward=1\n\
         net.ipv6.conf.all.forwarding=1\n\
         net.ipv6.conf.all.disable_ipv6=0\n\
         fs.inotify.max_user_instances=8192\n\
         fs.inotify.max_user_watches=524288\n\
         vm.overcommit_memory=1\n\
         kernel.panic=10\n\
         kernel.panic_on_oops=1\n"
    );
    // net.* keys are per network namespace: set live.
    assert_eq!(
        sh(
            &t,
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding"
        )
        .await,
        "1\n1\n"
    );
    // No modprobe in a container: the persisted list is what is checked.
    assert_eq!(
        rd("etc/modules-load.d/kubernetes.conf")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["overlay", "br_netfilter"]
    );
    assert!(rd("etc/containerd/config.toml").contains("SystemdCgroup = true"));
    assert!(rd("etc/apt/sources.list.d/kubernetes.sources").contains("Suites: /"));
    assert_eq!(
        sh(
            &t,
            "systemctl is-active containerd; systemctl is-enabled kubelet; apt-mark showhold"
        )
        .await,
        "active\nenabled\nkubeadm\nkubectl\nkubelet\n"
    );

    // 2. Idempotent.
    let t1 = Instant::now();
    let r2 = provision(&t, &extra, &[], &["sysprep"]).await;
    let second = t1.elapsed();
    assert!(!r2.failed(), "re-run failed:\n{}", failures(&r2));
    assert_eq!(r2.recap.changed, 0, "re-run changed: {:?}", changed(&r2));

    // 3. The node spec.
    let v = goss(&t, "goss.yaml").await;
    assert!(
        v.passed(),
        "goss.yaml: {}\n{}",
        v.count_line(),
        failed_checks(&v)
    );
    assert!(v.test_count() > 100, "{}", v.count_line());

    // 4. Seal, then the hygiene spec over the open session.
    let r3 = provision(&t, &extra, &["sysprep"], &[]).await;
    assert!(!r3.failed(), "sysprep failed:\n{}", failures(&r3));
    assert!(r3.recap.changed >= 8, "sysprep: {}", r3.recap);
    let h = goss(&t, "goss-hygiene.yaml").await;
    assert!(
        h.passed(),
        "goss-hygiene.yaml: {}\n{}",
        h.count_line(),
        failed_checks(&h)
    );
    assert!(!root.join("home/builder/.ssh/authorized_keys").exists());
    assert_eq!(rd("etc/machine-id"), "");

    eprintln!(
        "node recipe: first run {first:.1?} ({}), re-run {second:.1?} ({}), {} + {} goss checks",
        r1.recap,
        r2.recap,
        v.test_count(),
        h.test_count()
    );
    drop(t);
    tokio::task::spawn_blocking(move || bed.stop())
        .await
        .expect("stop");
    // The fixtures outlive the target.
    drop(fixtures);
}
