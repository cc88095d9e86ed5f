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
//! [`bridge_conf`], [`loopback_conf`], [`tarball_url`], in `suite`); the
//! junit totals are read in `junit`; the report directory is brought back in
//! `results`; [`run`] does the I/O over any [`Target`], streaming the
//! suite's output with [`image_core::stream::stream_exec`]. [`Report`] says
//! what happened ([`Report::summary`] in one line, or JSON through serde).
//!
//! ```no_run
//! # async fn demo(t: &dyn image_core::target::Target) -> Result<(), image_verify::conformance::Error> {
//! use image_verify::conformance::{self, Options, PrintSink};
//! let report = conformance::run(t, &Options::new("conformance-results/node"), &PrintSink).await?;
//! println!("passed: {}", report.passed());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use image_core::stream::stream_exec;
use image_core::target::{shell_quote, Become, Exec, FileMeta, Target};
use serde::Serialize;

mod junit;
mod results;
mod suite;

pub use junit::{add_junit, JunitSummary};
pub use results::local_path;
pub use suite::*;

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
    pub(crate) fn new(what: impl Into<String>, detail: impl fmt::Display) -> Self {
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

    /// One line for people: `Kubernetes v1.31.4 (amd64): passed; ginkgo exit
    /// 0; junit: 12 test(s), 0 failure(s), 0 error(s); results in DIR`.
    pub fn summary(&self) -> String {
        format!(
            "Kubernetes {} ({}): {}; ginkgo exit {}; junit: {} test(s), {} failure(s), {} error(s); results in {}",
            self.version,
            self.arch,
            if self.passed() { "passed" } else { "FAILED" },
            self.exit_status,
            self.junit.tests,
            self.junit.failures,
            self.junit.errors,
            self.results_dir.display()
        )
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

pub(crate) async fn exec_ok(t: &dyn Target, what: &str, cmd: Exec) -> Result<String, Error> {
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

    let (files, junit) = results::collect(t, &report_dir, &opts.results_dir).await?;
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
