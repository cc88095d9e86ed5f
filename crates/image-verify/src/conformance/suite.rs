//! What the suite needs, as pure functions: the Kubernetes version and
//! architecture of the node, the test tarball's URL, the CNI files and the
//! ginkgo command line (the settings of image-builder's README).

use image_core::target::shell_quote;

/// Where image-builder records the Kubernetes version of a node image.
pub const VERSION_FILE: &str = "/etc/kubernetes_community_ami_version";
/// The CNI configuration directory.
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// The bridge network configuration written before the suite runs.
pub const BRIDGE_CONF: &str = "/etc/cni/net.d/10-bridge.conf";
/// The loopback configuration written before the suite runs.
pub const LOOPBACK_CONF: &str = "/etc/cni/net.d/99-loopback.conf";
/// The bridge's subnet unless `--cni-subnet` says otherwise (the README's).
pub const DEFAULT_CNI_SUBNET: &str = "10.22.0.0/16";
/// The test tarball; `{version}` and `{arch}` are filled in.
pub const DEFAULT_TARBALL_URL: &str =
    "https://dl.k8s.io/{version}/kubernetes-test-linux-{arch}.tar.gz";
/// ginkgo `--focus`: the conformance tests.
pub const FOCUS: &str = r"\[Conformance\]";
/// ginkgo `--skip`: what the README skips on a single node.
pub const SKIP: &str = r"\[Flaky\]|\[Serial\]|\[sig-network\]|Container Lifecycle Hook";
/// containerd's CRI socket.
pub const CONTAINER_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";
/// Where image-builder installs containerd.
pub const CONTAINER_RUNTIME_PROCESS: &str = "/usr/local/bin/containerd";
/// Parallel ginkgo processes (the README's).
pub const GINKGO_NODES: u32 = 8;
/// Retries of a failed spec (the README's `--flakeAttempts=2`).
pub const FLAKE_ATTEMPTS: u32 = 2;
/// ginkgo v2 stops a suite after 1 h by default; the node suite can take longer.
pub const SUITE_TIMEOUT: &str = "4h";
/// The directory of the tarball holding `ginkgo` and `e2e_node.test`.
pub const TEST_BIN_DIR: &str = "kubernetes/test/bin";
/// The version in [`VERSION_FILE`]'s text: trimmed, with a leading `v`
/// (`1.31.4` -> `v1.31.4`). Refuses anything that is not a version.
pub fn parse_version(text: &str) -> Result<String, String> {
    let t = text.trim();
    let v = t.strip_prefix('v').unwrap_or(t);
    let mut parts = v.splitn(3, '.');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let (major, minor, rest) = (parts.next(), parts.next(), parts.next());
    let patch_ok = rest.is_some_and(|r| {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    });
    if numeric(major) && numeric(minor) && patch_ok {
        Ok(format!("v{v}"))
    } else {
        Err(format!(
            "`{t}` is not a Kubernetes version (expected e.g. v1.31.4)"
        ))
    }
}

/// The Go architecture of a `uname -m`.
pub fn go_arch(uname_m: &str) -> Result<&'static str, String> {
    match uname_m.trim() {
        "x86_64" | "amd64" => Ok("amd64"),
        "aarch64" | "arm64" => Ok("arm64"),
        "ppc64le" => Ok("ppc64le"),
        "s390x" => Ok("s390x"),
        other => Err(format!(
            "no kubernetes-test tarball for architecture `{other}`"
        )),
    }
}

/// `template` with `{version}` and `{arch}` filled in.
pub fn tarball_url(template: &str, version: &str, arch: &str) -> String {
    template
        .replace("{version}", version)
        .replace("{arch}", arch)
}

/// Checks an IPv4 or IPv6 CIDR (`10.22.0.0/16`).
pub fn check_cidr(cidr: &str) -> Result<(), String> {
    if image_core::spec::check::is_cidr(cidr) {
        Ok(())
    } else {
        Err(format!(
            "`{cidr}` is not a CIDR (e.g. {DEFAULT_CNI_SUBNET})"
        ))
    }
}

/// The bridge network of the README (`cni0`, host-local IPAM on `subnet`,
/// default route), for [`BRIDGE_CONF`].
pub fn bridge_conf(subnet: &str) -> String {
    format!(
        r#"{{
    "cniVersion": "0.2.0",
    "name": "mynet",
    "type": "bridge",
    "bridge": "cni0",
    "isGateway": true,
    "ipMasq": true,
    "ipam": {{
        "type": "host-local",
        "subnet": "{subnet}",
        "routes": [
            {{ "dst": "0.0.0.0/0" }}
        ]
    }}
}}
"#
    )
}

/// The loopback network of the README, for [`LOOPBACK_CONF`].
pub fn loopback_conf() -> String {
    r#"{
    "cniVersion": "0.2.0",
    "name": "lo",
    "type": "loopback"
}
"#
    .to_string()
}

/// The arguments of `ginkgo` (run in [`TEST_BIN_DIR`] as root): the README's
/// flags in ginkgo v2 spelling, then after `--` the node suite's flags for
/// containerd, with the junit reports written to `report_dir`.
pub fn ginkgo_args(report_dir: &str) -> Vec<String> {
    vec![
        format!("--nodes={GINKGO_NODES}"),
        format!("--flake-attempts={FLAKE_ATTEMPTS}"),
        format!("--timeout={SUITE_TIMEOUT}"),
        format!("--focus={FOCUS}"),
        format!("--skip={SKIP}"),
        "./e2e_node.test".to_string(),
        "--".to_string(),
        "--k8s-bin-dir=/usr/bin".to_string(),
        format!("--container-runtime-endpoint={CONTAINER_RUNTIME_ENDPOINT}"),
        format!("--container-runtime-process-name={CONTAINER_RUNTIME_PROCESS}"),
        "--container-runtime-pid-file=".to_string(),
        "--kubelet-flags=--cgroups-per-qos=true --cgroup-root=/ --runtime-cgroups=/system.slice/containerd.service".to_string(),
        r#"--extra-log={"name": "containerd.log", "journalctl": ["-u", "containerd"]}"#.to_string(),
        format!("--report-dir={report_dir}"),
    ]
}

/// The shell line running the suite from `bin_dir`, every argument quoted.
pub fn suite_command(bin_dir: &str, report_dir: &str) -> String {
    let args: Vec<String> = ginkgo_args(report_dir)
        .iter()
        .map(|a| shell_quote(a))
        .collect();
    format!("cd {} && ./ginkgo {}", shell_quote(bin_dir), args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("v1.31.4\n").unwrap(), "v1.31.4");
        assert_eq!(parse_version(" 1.30.0 ").unwrap(), "v1.30.0");
        assert_eq!(parse_version("v1.32.0-rc.1").unwrap(), "v1.32.0-rc.1");
        for bad in [
            "",
            "latest",
            "v1.31",
            "v1.31.x",
            "v1.31.4/../x",
            "v1.31.4 x",
        ] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arches_and_urls() {
        assert_eq!(go_arch("x86_64\n").unwrap(), "amd64");
        assert_eq!(go_arch("aarch64").unwrap(), "arm64");
        assert!(go_arch("mips").is_err());
        assert_eq!(
            tarball_url(DEFAULT_TARBALL_URL, "v1.31.4", "arm64"),
            "https://dl.k8s.io/v1.31.4/kubernetes-test-linux-arm64.tar.gz"
        );
        assert_eq!(
            tarball_url(
                "http://mirror/k8s/{version}/t-{arch}.tgz",
                "v1.30.1",
                "amd64"
            ),
            "http://mirror/k8s/v1.30.1/t-amd64.tgz"
        );
        assert_eq!(
            tarball_url("http://m/fixed.tgz", "v1", "amd64"),
            "http://m/fixed.tgz"
        );
    }

    #[test]
    fn cni_files_are_the_readmes() {
        let b = bridge_conf("10.99.0.0/16");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["type"], "bridge");
        assert_eq!(v["bridge"], "cni0");
        assert_eq!(v["cniVersion"], "0.2.0");
        assert_eq!(v["isGateway"], true);
        assert_eq!(v["ipMasq"], true);
        assert_eq!(v["ipam"]["type"], "host-local");
        assert_eq!(v["ipam"]["subnet"], "10.99.0.0/16");
        assert_eq!(v["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        let l: serde_json::Value = serde_json::from_str(&loopback_conf()).unwrap();
        assert_eq!(
            l,
            serde_json::json!({"cniVersion": "0.2.0", "name": "lo", "type": "loopback"})
        );
        assert!(check_cidr("10.22.0.0/16").is_ok());
        assert!(check_cidr("fd00::/64").is_ok());
        for bad in ["10.22.0.0", "10.22.0.0/33", "x/8", "10.22.0.0/16\"}"] {
            assert!(check_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ginkgo_command_line() {
        let args = ginkgo_args("/tmp/w/results");
        assert_eq!(
            args,
            [
                "--nodes=8",
                "--flake-attempts=2",
                "--timeout=4h",
                r"--focus=\[Conformance\]",
                r"--skip=\[Flaky\]|\[Serial\]|\[sig-network\]|Container Lifecycle Hook",
                "./e2e_node.test",
                "--",
                "--k8s-bin-dir=/usr/bin",
                "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
                "--container-runtime-process-name=/usr/local/bin/containerd",
                "--container-runtime-pid-file=",
                "--kubelet-flags=--cgroups-per-qos=true --cgroup-root=/ --runtime-cgroups=/system.slice/containerd.service",
                r#"--extra-log={"name": "containerd.log", "journalctl": ["-u", "containerd"]}"#,
                "--report-dir=/tmp/w/results",
            ]
        );
        let line = suite_command("/tmp/w/kubernetes/test/bin", "/tmp/w/results");
        assert!(
            line.starts_with("cd /tmp/w/kubernetes/test/bin && ./ginkgo --nodes=8 "),
            "{line}"
        );
        assert!(line.contains(r"'--focus=\[Conformance\]'"), "{line}");
    }
}
