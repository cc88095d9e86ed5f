//! `image-cli test`: boots an instance from a built AMI and checks it.
//!
//! ```text
//! image-cli test [SPEC] [--only BUILD] [--ami ami-… | --manifest FILE]
//!                [--var ..] [--var-file ..] [--ssh-source-cidr CIDR]..
//!                [--command CMD].. [--conformance [--conformance-dir DIR]
//!                [--cni-subnet CIDR] [--test-tarball-url URL]] [--json]
//! ```
//!
//! One build is selected from the definition (`--only` when it has
//! several). The AMI is `--ami`, else the build region's AMI of the
//! manifest's last run ([`image_aws::ami_table::AmiTable`]).
//! [`image_aws::test_instance`] launches it with a temporary key pair and
//! security group, exactly as a build would, and
//! [`image_cli::pipeline::TestHook`] runs an
//! [`image_verify::host_test::HostTest`] on it over SSH: the build's verify
//! files, then each `--command` (output streamed, exit status checked), then
//! with `--conformance` the node conformance suite
//! ([`image_verify::conformance`]), whose junit reports are copied to
//! `--conformance-dir`. The first failure stops the test. The instance is
//! always terminated and everything temporary deleted. This file only reads
//! the flags and prints.
//!
//! Exit: 0 passed, 1 a check, command or the suite failed (or AWS/SSH did),
//! 2 bad input (nothing called), 130 interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;
use image_aws::ami_table::AmiTable;
use image_aws::{
    BuildRequest, CancelToken, ClientOptions, Ec2Clients, OnError, SourceAmi, SshConnector,
};
use image_cli::pipeline::{test_result_json, TestHook};
use image_cli::progress::{JsonLines, Progress};
use image_core::diag::{Diagnostic, Diagnostics};
use image_core::events::EventSink;
use image_core::spec::load::check_files;
use image_verify::conformance;
use image_verify::host_test::{HostTest, TestOutput, TestRecord};
use image_verify::plan::{load_verify_files, VerifyFile};
use image_verify::report::Report;
use image_verify::{output, OutputFormat};
use serde_json::json;

use crate::cmd::spec_args::SpecArgs;
use crate::cmd::ssh_source_args::SshSourceArgs;
use crate::exit::Exit;
use crate::report;

/// Arguments of `test`.
#[derive(Debug, ClapArgs)]
#[command(after_help = crate::exit::EXIT_CODES_HELP, after_long_help = super::build::after_help())]
pub struct Args {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The AMI to test (in the build's region). Default: the build's AMI of
    /// the manifest's last run.
    #[arg(long, value_name = "AMI", conflicts_with = "manifest")]
    pub ami: Option<String>,
    /// The manifest `image-cli build` wrote.
    #[arg(long, value_name = "FILE", default_value = "manifest.json")]
    pub manifest: PathBuf,
    #[command(flatten)]
    pub ssh: SshSourceArgs,
    /// Run this shell command on the instance after the verify files
    /// (repeatable, in order); its output is streamed, a non-zero exit fails
    /// the test.
    #[arg(long = "command", value_name = "CMD")]
    pub commands: Vec<String>,
    /// Run the Kubernetes node conformance suite (ginkgo, `[Conformance]`)
    /// for the version in /etc/kubernetes_community_ami_version.
    #[arg(long)]
    pub conformance: bool,
    /// Copy the suite's report directory (junit XML) here
    /// [default: ./conformance-results/<build>/].
    #[arg(long, value_name = "DIR", requires = "conformance")]
    pub conformance_dir: Option<PathBuf>,
    /// Subnet of the CNI bridge written for the suite.
    #[arg(long, value_name = "CIDR", requires = "conformance", default_value = conformance::DEFAULT_CNI_SUBNET)]
    pub cni_subnet: String,
    /// kubernetes-test tarball URL (a mirror); `{version}` and `{arch}` are
    /// filled in.
    #[arg(long, value_name = "URL", requires = "conformance", default_value = conformance::DEFAULT_TARBALL_URL)]
    pub test_tarball_url: String,
    /// One JSON object per line on stdout (events, output, the result).
    #[arg(long)]
    pub json: bool,
}

/// Everything checked, nothing called yet.
struct Ready {
    req: BuildRequest,
    ami: String,
    verify: Vec<VerifyFile>,
    conformance: Option<conformance::Options>,
    region_locs: image_aws::region_check::RegionLocs,
}

/// The AMI of `build` in `region` from the last run of the manifest at `path`.
fn read_manifest(path: &Path, build: &str, region: &str) -> Result<String, String> {
    let table = AmiTable::read_last_run(path)?;
    table
        .ami(build, region)
        .map(str::to_string)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn prepare(args: &Args) -> Result<Ready, Diagnostics> {
    let err = |msg: String, help: &str| {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::error(None, msg).with_help(help));
        d
    };
    let loaded = args.spec.load()?;
    let mut plans = loaded.resolved.plans.clone();
    let mut diags = loaded.resolved.warnings.clone();
    diags.extend(check_files(&plans));
    if diags.has_errors() {
        return Err(diags);
    }
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    if plans.len() != 1 {
        return Err(if plans.is_empty() {
            err(
                "no build selected: check --only/--except".to_string(),
                "`image-cli inspect` lists the definition's builds",
            )
        } else {
            err(
                format!(
                    "{} builds selected ({}): test one at a time with --only BUILD",
                    plans.len(),
                    names.join(", ")
                ),
                "add --only BUILD",
            )
        });
    }
    let run = args.ssh.run_options(OnError::Cleanup);
    let mut req = match BuildRequest::for_run(&plans, &run, |k| std::env::var(k).ok()) {
        Ok(mut reqs) => reqs.remove(0),
        Err(e) => {
            diags.extend(e);
            return Err(diags);
        }
    };
    let plan = plans.remove(0);
    // `--ami` was checked with the other flags.
    let ami = match &args.ami {
        Some(a) => a.clone(),
        None => read_manifest(&args.manifest, &plan.name, &plan.region).map_err(|e| {
            err(
                e,
                "run `image-cli build` first, or name the AMI with --ami ami-…",
            )
        })?,
    };
    req.source_ami = SourceAmi::Id(ami.clone());

    let verify = load_verify_files(&plan, &plan.test_verify, &mut diags);
    let conformance = if args.conformance {
        if let Err(e) = conformance::check_cidr(&args.cni_subnet) {
            diags.push(
                Diagnostic::error(None, format!("--cni-subnet: {e}"))
                    .with_help("give an address and a prefix length, like `10.22.0.0/16`"),
            );
        }
        let dir = args
            .conformance_dir
            .clone()
            .unwrap_or_else(|| Path::new("conformance-results").join(&plan.name));
        let mut o = conformance::Options::new(dir);
        o.cni_subnet = args.cni_subnet.clone();
        o.tarball_url = args.test_tarball_url.clone();
        Some(o)
    } else {
        None
    };
    if diags.has_errors() {
        return Err(diags);
    }
    report::diagnostics(&diags);
    Ok(Ready {
        req,
        ami,
        verify,
        conformance,
        region_locs: image_aws::region_check::region_locs(std::slice::from_ref(&plan)),
    })
}

/// Streamed output and gossfile results: text to stdout, or JSON lines.
struct Printer {
    build: String,
    json: bool,
}

impl TestOutput for Printer {
    fn verify_report(&self, _file: &Path, report: &Report) {
        if !self.json {
            print!("{}", output::render(report, OutputFormat::Rspecish));
        }
    }
    fn line(&self, source: &str, text: &str) {
        if self.json {
            JsonLines::print(&json!({
                "event": "output", "build": self.build, "source": source, "line": text,
            }));
        } else {
            crate::report::out_line(text);
        }
    }
}

/// Runs `test`.
pub fn run(args: &Args) -> Exit {
    let mut flags = args.ssh.run_options(OnError::Cleanup).problems();
    super::flag_checks::ami("--ami", args.ami.as_deref(), &mut flags);
    if flags.has_errors() {
        report::diagnostics(&flags);
        return Exit::BadInput;
    }
    let ready = match prepare(args) {
        Ok(r) => r,
        Err(diags) => {
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
    };
    let progress: Option<Arc<Progress>> = (!args.json).then(|| Arc::new(Progress::stderr(false)));
    let events: Arc<dyn EventSink> = match &progress {
        Some(p) => p.clone(),
        None => Arc::new(JsonLines),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    let Ready {
        req,
        ami,
        verify,
        conformance,
        region_locs,
    } = ready;
    let hook = TestHook::new(
        HostTest::new(verify, args.commands.clone(), conformance),
        events.clone(),
        Arc::new(Printer {
            build: req.name.clone(),
            json: args.json,
        }),
    );
    let exit = rt.block_on(async {
        let cancel = CancelToken::new();
        let interrupts = match image_cli::signals::install(cancel.clone(), false) {
            Ok(i) => Some(i),
            Err(e) => {
                crate::report::err_line(&format!("warning: cannot watch for Ctrl-C: {e}"));
                None
            }
        };
        let opts = ClientOptions {
            region: Some(req.region.clone()),
            checkip_url: std::env::var(image_aws::public_ip::URL_ENV).ok(),
            ..Default::default()
        };
        let ec2 = Ec2Clients::from_env(&opts).await;
        let diags = image_aws::region_check::check_test_region(&ec2, &req, &region_locs).await;
        report::diagnostics(&diags);
        if diags.has_errors() {
            return Exit::BadInput;
        }
        let r = image_aws::test_instance(&ec2, &req, &hook, &SshConnector, events.as_ref(), cancel)
            .await;
        if let Some(p) = &progress {
            p.finish(&req.name, if r.is_ok() { "passed" } else { "failed" });
            p.clear();
        }
        let interrupted = interrupts.as_ref().is_some_and(|i| i.interrupted());
        summarise(args, &req, &ami, r, &hook.record(), interrupted)
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    exit
}

fn summarise(
    args: &Args,
    req: &BuildRequest,
    ami: &str,
    r: Result<image_aws::TestResult, image_aws::BuildError>,
    record: &TestRecord,
    interrupted: bool,
) -> Exit {
    let passed = r.is_ok();
    if args.json {
        JsonLines::print(&test_result_json(req, ami, &r, record));
    } else {
        crate::report::out_line(&format!(
            "test of build `{}`: {ami} in {}",
            req.name, req.region
        ));
        for line in record.summary_lines() {
            crate::report::out_line(&line);
        }
        match &r {
            Ok(res) => {
                crate::report::out_line(&format!(
                    "PASSED (instance {} terminated)",
                    res.instance.id
                ));
                for f in &res.cleanup_failures {
                    crate::report::err_line(&format!("warning: could not delete {f}"));
                }
            }
            Err(e) => {
                crate::report::build_error("test of", e);
                crate::report::out_line("FAILED");
            }
        }
    }
    let cleanup_failed = match &r {
        Ok(res) => !res.cleanup_failures.is_empty(),
        Err(e) => !e.left.is_empty(),
    };
    if interrupted {
        Exit::Interrupted
    } else if !passed || cleanup_failed {
        Exit::Failed
    } else {
        Exit::Ok
    }
}
