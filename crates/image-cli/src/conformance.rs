//! Node conformance on a test instance (`image-cli test --conformance`), as
//! image-builder's "Testing Images" section does it by hand:
//!
//! 1. read the Kubernetes version the image was baked for from
//!    [`VERSION_FILE`] (`v1.31.4`) and the architecture from `uname -m`;
//! 2. write a CNI bridge ([`BRIDGE_CONF`], subnet configurable) and loopback
//!    ([`LOOPBACK_CONF`]) configuration, mode 0644, as root;
//! 3. download `kubernetes-test-linux-<arch>.tar.gz` for that version
//!    ([`DEFAULT_TARBALL_URL`], overridable for mirrors) and unpack
//!    `kubernetes/test/bin`;
//! 4. run the node e2e suite as root with ginkgo, focused on
//!    `[Conformance]` and skipping what the README skips, against containerd
//!    ([`ginkgo_args`]), streaming its output;
//! 5. copy the report directory (junit XML) to a local directory.
//!
//! The command line and file contents are pure functions ([`ginkgo_args`],
//! [`bridge_conf`], [`loopback_conf`], [`tarball_url`]); [`run`] does the
//! I/O over any [`Target`]. [`stream_exec`] runs a command and hands its
//! output over line by line while it runs (the `Target` trait only returns
//! output at the end, so the command writes to a file that is followed).
//!
//! ```no_run
//! # async fn demo(t: &dyn image_core::target::Target) -> Result<(), image_cli::conformance::Error> {
//! use image_cli::conformance::{self, Options, PrintSink};
//! let report = conformance::run(t, &Options::new("conformance-results/node"), &PrintSink).await?;
//! println!("passed: {}", report.passed());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use image_core::target::{shell_quote, Become, Exec, FileMeta, Target, TargetError};
use serde::Serialize;

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

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    /// Subnet of the CNI bridge.
    pub cni_subnet: String,
    /// Test tarball URL; `{version}` and `{arch}` are filled in.
    pub tarball_url: String,
    /// Local directory the report directory is copied to.
    pub results_dir: PathBuf,
    /// How often streamed output is fetched.
    pub poll_interval: Duration,
}

impl Options {
    /// The README's settings, results copied to `results_dir`.
    pub fn new(results_dir: impl Into<PathBuf>) -> Self {
        Options {
            cni_subnet: DEFAULT_CNI_SUBNET.to_string(),
            tarball_url: DEFAULT_TARBALL_URL.to_string(),
            results_dir: results_dir.into(),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Why the suite could not be run (a failing suite is a [`Report`]).
#[derive(Debug)]
pub struct Error {
    /// What was being done: `reading /etc/kubernetes_community_ami_version`, ...
    pub what: String,
    /// Why it failed.
    pub detail: String,
}

impl Error {
    fn new(what: impl Into<String>, detail: impl fmt::Display) -> Self {
        Error {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance: {}: {}", self.what, self.detail)
    }
}

impl std::error::Error for Error {}

/// Totals of the junit reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JunitSummary {
    /// `<testsuite>` elements seen.
    pub suites: u64,
    /// Specs.
    pub tests: u64,
    /// Failed specs.
    pub failures: u64,
    /// Errored specs.
    pub errors: u64,
    /// Skipped (or disabled) specs.
    pub skipped: u64,
}

/// What a conformance run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The Kubernetes version (from [`VERSION_FILE`]).
    pub version: String,
    /// `amd64`, `arm64`.
    pub arch: String,
    /// The tarball downloaded.
    pub url: String,
    /// The command line run (as root) on the instance.
    pub command: String,
    /// ginkgo's exit status.
    pub exit_status: i32,
    /// The local copy of the report directory.
    pub results_dir: PathBuf,
    /// The files copied, local paths.
    pub files: Vec<PathBuf>,
    /// Totals of the junit files among them.
    pub junit: JunitSummary,
}

impl Report {
    /// True when ginkgo exited 0 and no junit report counts a failure.
    pub fn passed(&self) -> bool {
        self.exit_status == 0 && self.junit.failures == 0 && self.junit.errors == 0
    }
}

/// Where progress and the suite's output go.
pub trait Sink: Send + Sync {
    /// A status line (`downloading …`).
    fn status(&self, text: &str);
    /// One line of the suite's output.
    fn line(&self, text: &str);
}

/// A [`Sink`] printing status lines to stderr and output to stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintSink;

impl Sink for PrintSink {
    fn status(&self, text: &str) {
        eprintln!("conformance: {text}");
    }
    fn line(&self, text: &str) {
        println!("{text}");
    }
}

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
    let bad = || format!("`{cidr}` is not a CIDR (e.g. {DEFAULT_CNI_SUBNET})");
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok(())
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

/// Adds the `<testsuite>` totals of one junit XML document to `sum`.
/// (`<testsuites>` wrappers are not counted: their totals repeat the suites'.)
pub fn add_junit(sum: &mut JunitSummary, xml: &str) {
    let mut rest = xml;
    while let Some(i) = rest.find("<testsuite") {
        rest = &rest[i + "<testsuite".len()..];
        let Some(next) = rest.chars().next() else {
            break;
        };
        if !(next.is_whitespace() || next == '>' || next == '/') {
            continue; // <testsuites
        }
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        sum.suites += 1;
        sum.tests += attr(tag, "tests");
        sum.failures += attr(tag, "failures");
        sum.errors += attr(tag, "errors");
        sum.skipped += attr(tag, "skipped").max(attr(tag, "disabled"));
    }
}

fn attr(tag: &str, name: &str) -> u64 {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest[..i].chars().last().is_some_and(char::is_whitespace);
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        if !before_ok {
            continue;
        }
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let val = &after[1..];
        let val = &val[..val.find(q).unwrap_or(val.len())];
        return val.trim().parse().unwrap_or(0);
    }
    0
}

/// The local path of a report file: `results_dir` + its path below
/// `report_dir` on the instance. None for paths that would leave
/// `results_dir`.
pub fn local_path(results_dir: &Path, report_dir: &str, remote: &str) -> Option<PathBuf> {
    let rel = remote.strip_prefix(report_dir)?.strip_prefix('/')?;
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(results_dir.join(rel))
}

fn failed(what: &str, host: &str, out: &image_core::target::Output) -> Error {
    let err = out.stderr_str();
    let detail = if err.trim().is_empty() {
        out.stdout_str()
    } else {
        err
    };
    Error::new(
        what,
        format!("exit {} on {host}: {}", out.status, detail.trim()),
    )
}

async fn exec_ok(t: &dyn Target, what: &str, cmd: Exec) -> Result<String, Error> {
    let out = t.exec(&cmd).await.map_err(|e| Error::new(what, e))?;
    if !out.success() {
        return Err(failed(what, &t.name(), &out));
    }
    Ok(out.stdout_str())
}

/// Runs the node conformance suite on `t` (see the module docs). A suite
/// that runs and fails is an `Ok` [`Report`] that has not
/// [`Report::passed`]; `Err` means it could not be run or its results not
/// fetched.
pub async fn run(t: &dyn Target, opts: &Options, sink: &dyn Sink) -> Result<Report, Error> {
    check_cidr(&opts.cni_subnet).map_err(|e| Error::new("--cni-subnet", e))?;
    let root = Become::default();
    let host = t.name();

    let what = format!("reading {VERSION_FILE}");
    let text = t
        .get(VERSION_FILE, None)
        .await
        .map_err(|e| Error::new(&what, e))?;
    let version = parse_version(&String::from_utf8_lossy(&text))
        .map_err(|e| Error::new(&what, format!("{e} on {host}")))?;
    let uname = exec_ok(t, "uname -m", Exec::new("uname -m")).await?;
    let arch = go_arch(&uname).map_err(|e| Error::new("uname -m", e))?;
    sink.status(&format!("Kubernetes {version} ({arch}) on {host}"));

    exec_ok(
        t,
        &format!("creating {CNI_CONF_DIR}"),
        Exec::new(format!("mkdir -p {CNI_CONF_DIR}")).become_root(),
    )
    .await?;
    let meta = FileMeta {
        mode: Some(0o644),
        owner: Some("root".to_string()),
        group: Some("root".to_string()),
    };
    for (path, content) in [
        (BRIDGE_CONF, bridge_conf(&opts.cni_subnet)),
        (LOOPBACK_CONF, loopback_conf()),
    ] {
        t.put(path, content.as_bytes(), &meta, Some(&root))
            .await
            .map_err(|e| Error::new(format!("writing {path}"), e))?;
    }
    sink.status(&format!(
        "wrote {BRIDGE_CONF} (subnet {}) and {LOOPBACK_CONF}",
        opts.cni_subnet
    ));

    let work = exec_ok(
        t,
        "creating a work directory",
        Exec::new("mktemp -d /tmp/image-cli-conformance.XXXXXXXX"),
    )
    .await?
    .trim()
    .to_string();
    let url = tarball_url(&opts.tarball_url, &version, arch);
    let tarball = format!("{work}/kubernetes-test.tar.gz");
    sink.status(&format!("downloading {url}"));
    let (qu, qt) = (shell_quote(&url), shell_quote(&tarball));
    exec_ok(
        t,
        &format!("downloading {url}"),
        Exec::new(format!(
            "if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o {qt} {qu}; \
             else wget -q -O {qt} {qu}; fi"
        )),
    )
    .await?;
    let bin_dir = format!("{work}/{TEST_BIN_DIR}");
    let qb = shell_quote(&bin_dir);
    exec_ok(
        t,
        &format!("unpacking {url}"),
        Exec::new(format!(
            "tar -xzf {qt} -C {} {TEST_BIN_DIR} && test -x {qb}/ginkgo && test -x {qb}/e2e_node.test",
            shell_quote(&work)
        )),
    )
    .await?;

    let report_dir = format!("{work}/results");
    let command = suite_command(&bin_dir, &report_dir);
    sink.status(&format!("running as root: {command}"));
    let on_line = |l: &str| sink.line(l);
    let exit_status = stream_exec(t, &command, Some(&root), opts.poll_interval, &on_line)
        .await
        .map_err(|e| Error::new("running the suite", e))?;
    sink.status(&format!("ginkgo exited {exit_status}"));

    let (files, junit) = collect(t, &report_dir, &opts.results_dir).await?;
    sink.status(&format!(
        "{} result file(s) copied to {}",
        files.len(),
        opts.results_dir.display()
    ));
    Ok(Report {
        version,
        arch: arch.to_string(),
        url,
        command,
        exit_status,
        results_dir: opts.results_dir.clone(),
        files,
        junit,
    })
}

/// Copies every file under `report_dir` (read as root) below `results_dir`.
async fn collect(
    t: &dyn Target,
    report_dir: &str,
    results_dir: &Path,
) -> Result<(Vec<PathBuf>, JunitSummary), Error> {
    let root = Become::default();
    let qr = shell_quote(report_dir);
    let list = exec_ok(
        t,
        &format!("listing {report_dir}"),
        Exec::new(format!("if [ -d {qr} ]; then find {qr} -type f; fi")).become_root(),
    )
    .await?;
    tokio::fs::create_dir_all(results_dir)
        .await
        .map_err(|e| Error::new(format!("creating {}", results_dir.display()), e))?;
    let mut files = Vec::new();
    let mut junit = JunitSummary::default();
    for remote in list.lines().filter(|l| !l.trim().is_empty()) {
        let Some(local) = local_path(results_dir, report_dir, remote) else {
            continue;
        };
        let data = t
            .get(remote, Some(&root))
            .await
            .map_err(|e| Error::new(format!("fetching {remote}"), e))?;
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::new(format!("creating {}", parent.display()), e))?;
        }
        tokio::fs::write(&local, &data)
            .await
            .map_err(|e| Error::new(format!("writing {}", local.display()), e))?;
        let is_junit = local
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("junit") && n.ends_with(".xml"));
        if is_junit {
            add_junit(&mut junit, &String::from_utf8_lossy(&data));
        }
        files.push(local);
    }
    files.sort();
    Ok((files, junit))
}

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8], on_line: &(dyn Fn(&str) + Send + Sync)) {
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            on_line(text.trim_end_matches('\r'));
        }
    }

    fn flush(&mut self, on_line: &(dyn Fn(&str) + Send + Sync)) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            on_line(&text);
        }
    }
}

/// Runs `command` on `t` (through sudo with `become_`), handing its output
/// (stdout and stderr merged) to `on_line` line by line while it runs, and
/// returns its exit status. The output goes to a file in a private
/// temporary directory that is read every `interval` and removed at the end.
pub async fn stream_exec(
    t: &dyn Target,
    command: &str,
    become_: Option<&Become>,
    interval: Duration,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<i32, TargetError> {
    let mk = t
        .exec(&Exec::new("mktemp -d /tmp/image-cli-output.XXXXXXXX"))
        .await?;
    if !mk.success() {
        return Err(TargetError::Other {
            host: t.name(),
            detail: format!("mktemp -d: {}", mk.stderr_str().trim()),
        });
    }
    let dir = mk.stdout_str().trim().to_string();
    let log = shell_quote(&format!("{dir}/output"));
    let run =
        Exec::new(format!("( {command}\n) >{log} 2>&1 </dev/null")).become_opt(become_.cloned());
    let mut lines = Lines::default();
    let mut offset: u64 = 0;
    let fut = t.exec(&run);
    tokio::pin!(fut);
    let result = loop {
        tokio::select! {
            r = &mut fut => break r,
            _ = tokio::time::sleep(interval) => {
                offset += follow(t, &log, offset, &mut lines, on_line).await;
            }
        }
    };
    follow(t, &log, offset, &mut lines, on_line).await;
    lines.flush(on_line);
    let _ = t
        .exec(&Exec::new(format!("rm -rf {}", shell_quote(&dir))).become_opt(become_.cloned()))
        .await;
    Ok(result?.status)
}

/// Hands over what `log` gained after `offset` bytes; returns how many.
async fn follow(
    t: &dyn Target,
    log: &str,
    offset: u64,
    lines: &mut Lines,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> u64 {
    let cmd = Exec::new(format!(
        "if [ -f {log} ]; then tail -c +{} {log}; fi",
        offset + 1
    ));
    match t.exec(&cmd).await {
        Ok(out) if out.success() => {
            lines.push(&out.stdout, on_line);
            out.stdout.len() as u64
        }
        Ok(_) | Err(_) => 0,
    }
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

    #[test]
    fn junit_totals() {
        let mut s = JunitSummary::default();
        add_junit(
            &mut s,
            r#"<?xml version="1.0"?>
<testsuites tests="9" failures="9">
  <testsuite name="E2eNode Suite" tests="3" failures="1" errors="0" skipped="1" time="1">
    <testcase name="a"/>
  </testsuite>
</testsuites>"#,
        );
        add_junit(
            &mut s,
            r#"<testsuite tests='2' disabled="4" failures='0'></testsuite>"#,
        );
        assert_eq!(
            s,
            JunitSummary {
                suites: 2,
                tests: 5,
                failures: 1,
                errors: 0,
                skipped: 5
            }
        );
    }

    #[test]
    fn report_files_stay_inside_the_results_dir() {
        let d = Path::new("/out");
        assert_eq!(
            local_path(d, "/tmp/w/results", "/tmp/w/results/junit_01.xml"),
            Some(PathBuf::from("/out/junit_01.xml"))
        );
        assert_eq!(
            local_path(d, "/tmp/w/results", "/tmp/w/results/logs/kubelet.log"),
            Some(PathBuf::from("/out/logs/kubelet.log"))
        );
        assert_eq!(local_path(d, "/tmp/w/results", "/tmp/w/results/../x"), None);
        assert_eq!(local_path(d, "/tmp/w/results", "/etc/passwd"), None);
        assert_eq!(local_path(d, "/tmp/w/results", "/tmp/w/results2/x"), None);
    }

    #[test]
    fn lines_are_split_across_chunks() {
        let got = std::sync::Mutex::new(Vec::new());
        let f = |l: &str| got.lock().unwrap().push(l.to_string());
        let mut lines = Lines::default();
        lines.push(b"one\r\ntw", &f);
        lines.push(b"o\nthree", &f);
        lines.flush(&f);
        assert_eq!(*got.lock().unwrap(), ["one", "two", "three"]);
    }
}
