//! The main job end to end: `image-cli build --only ubuntu-2404` of the
//! BUILT-IN definition (`images/kubernetes.yaml`: the real node recipe
//! `images/node/node.yml`, verified with `images/node/goss/goss.yaml`),
//! as `scripts/demo` runs it. EC2 is moto (with Ubuntu 24.04 AMIs matching
//! the built-in source filter); the instance is a booted test-bed target
//! reached through `ssh_host`/`ssh_port` whose sshd trusts only the key the
//! build imported into EC2, with an `ubuntu` user (the built-in
//! `ssh_username`). Downloads (containerd, runc, CNI, crictl, the
//! pkgs.k8s.io-like apt repo with fake kubelet/kubeadm/kubectl) come from
//! the fixtures (`scripts/fixtures/build.sh`) served by this process.
//!
//! The target is Debian bookworm in systemd-nspawn standing in for Ubuntu
//! 24.04, so the build gets the built-in definition's test-bed switches as
//! variables (`cli_support::node::TESTBED_VARS`): `verify_os=debian` picks
//! the goss spec's `os/debian.yaml` instead of `os/ubuntu.yaml` (daemons
//! enabled but not running, only net.* sysctls live, no SSM snap), and
//! modprobe, live vm.*/kernel.*/fs.* sysctls, starting auditd/chrony, the
//! SSM agent, image pre-pull and dist-upgrade are off.
//!
//! Needs `scripts/testbed/setup.sh` (root), Debian's mirror (base
//! packages), dpkg-dev and gnupg.

mod cli_support;

use cli_support::*;
use image_aws::cleanup;

const BUILD_COPY_REGIONS: [&str; 2] = ["us-west-2", "eu-west-1"];

fn build_regions() -> Vec<String> {
    regions(&BUILD_COPY_REGIONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_ubuntu_2404_builds_with_the_node_recipe_on_the_test_bed() {
    let fixtures = tempfile::tempdir().expect("tempdir");
    let (moto, target, fx) = {
        let dir = fixtures.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let fx = node::start_node_fixtures(&dir).expect("fixtures");
            let moto = start_moto();
            let tb = image_testbed::Testbed::locate().expect("test bed");
            let ubuntu = ubuntu_user_files(tb.rootfs()).expect("user files");
            let target = start_target(&moto, ubuntu);
            (moto, target, fx)
        })
        .await
        .expect("setup")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("manifest.json");
    let ssh_port = format!("ssh_port={}", target.ssh_port());
    let copy = format!("ami_regions={}", BUILD_COPY_REGIONS.join(","));
    let build_region = format!("build_region={REGION}");
    let args = [
        "build",
        "--only",
        "ubuntu-2404",
        "--var",
        "ssh_host=127.0.0.1",
        "--var",
        &ssh_port,
        "--var",
        &build_region,
        "--var",
        &copy,
        "--var",
        "ami_users=111122223333",
        "--var-file",
        fx.var_file.to_str().expect("utf-8 path"),
        "--ssh-source-cidr",
        "127.0.0.1/32",
        "--manifest",
        manifest.to_str().expect("utf-8 path"),
    ];
    let t0 = std::time::Instant::now();
    let out = run_cli_in_place(&moto, dir.path(), &args);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(0), "image-cli build failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| Region | AMI |"), "{stdout}");

    // The manifest: the build, an AMI per region as region:ami-….
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).expect("manifest"))
            .expect("manifest JSON");
    let builds = m["builds"].as_array().expect("builds");
    assert_eq!(builds.len(), 1, "{m}");
    assert_eq!(builds[0]["name"], "ubuntu-2404");
    assert_eq!(builds[0]["builder_type"], "amazon-ebs");
    let amis = artifact_amis(&builds[0]);
    assert_amis_listed(&amis, &build_regions(), &stdout);

    // In moto: each AMI named and tagged as the built-in definition says.
    let ec2 = direct(&moto).await;
    for (region, ami) in &amis {
        let imgs = ec2
            .client(region)
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .expect("describe_images");
        let img = &imgs.images()[0];
        assert!(
            img.name()
                .unwrap_or("")
                .starts_with("capa-ami-ubuntu-24.04-1.31.4-"),
            "{region}: {:?}",
            img.name()
        );
        let tags = tags_of(img);
        for (k, v) in [
            ("kubernetes_version", "v1.31.4"),
            ("kubernetes_series", "v1.31"),
            ("containerd_version", "v1.7.27"),
            ("runc_version", "v1.1.15"),
            ("cni_version", "v1.5.1"),
            ("crictl_version", "v1.31.1"),
            ("distribution", "ubuntu"),
            ("distribution_release", "noble"),
            ("distribution_version", "24.04"),
            ("image_builder_version", "image-cli"),
        ] {
            assert_eq!(
                tags.get(k).map(String::as_str),
                Some(v),
                "{region} {k}: {tags:?}"
            );
        }
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
    assert_nothing_left(&ec2, &build_regions()).await;

    // What the recipe left on the "instance"'s disk.
    let root = target.root_dir().to_path_buf();
    let rd = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(
        rd("etc/containerd/config.toml").contains("SystemdCgroup = true"),
        "containerd config"
    );
    assert_eq!(rd("etc/kubernetes_community_ami_version").trim(), "v1.31.4");
    let release = rd("etc/image-cli-release");
    assert!(release.contains("ubuntu-2404"), "{release}");
    // kubelet/kubeadm/kubectl installed from the fixture repo, held.
    let status = rd("var/lib/dpkg/status");
    for pkg in ["kubelet", "kubeadm", "kubectl"] {
        let stanza = status
            .split("\n\n")
            .find(|s| s.lines().any(|l| l == format!("Package: {pkg}")))
            .unwrap_or_else(|| panic!("{pkg} not in the dpkg status"));
        assert!(
            stanza.contains("Status: hold ok installed"),
            "{pkg}: {stanza}"
        );
        assert!(stanza.contains("Version: 1.31.4-1.1"), "{pkg}: {stanza}");
    }
    // Sealed by sysprep: no host keys, no machine id, no authorized keys,
    // no downloads.
    let host_keys: Vec<_> = std::fs::read_dir(root.join("etc/ssh"))
        .expect("etc/ssh")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ssh_host_"))
        .collect();
    assert!(host_keys.is_empty(), "host keys left: {host_keys:?}");
    assert_eq!(rd("etc/machine-id"), "");
    for p in [
        "root/.ssh/authorized_keys",
        "home/ubuntu/.ssh/authorized_keys",
        "var/cache/image-cli/downloads",
    ] {
        assert!(!root.join(p).exists(), "{p} left");
    }

    eprintln!("image-cli build --only ubuntu-2404 on the test bed: {took:.1?}");
    tokio::task::spawn_blocking(move || {
        target.stop();
        drop(moto);
    })
    .await
    .expect("teardown");
    drop(fixtures);
}
