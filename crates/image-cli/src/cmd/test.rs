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
//! manifest's last run. [`image_aws::test_instance`] launches it with a
//! temporary key pair and security group, exactly as a build would, and the
//! hook here runs, over SSH: the build's verify files (image-verify), then
//! each `--command` (output streamed, exit status checked), then with
//! `--conformance` the node conformance suite
//! ([`image_cli::conformance`]), whose junit reports are copied to
//! `--conformance-dir`. The first failure stops the test. The instance is
//! always terminated and everything temporary deleted.
//!
//! Exit: 0 passed, 1 a check, command or the suite failed (or AWS/SSH did),
//! 2 bad input (nothing called), 130 interrupted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args as ClapArgs;
use image_aws::manifest::Manifest;
use image_aws::{
    BuildRequest, CancelToken, ClientOptions, Ec2Clients, HookError, ProvisionHook, SourceAmi,
    SshConnector,
};
use image_cli::conformance::{self, Sink};
use image_cli::pipeline::{load_verify_files, VerifyFile};
use image_cli::progress::{JsonLines, Progress};
use image_core::diag::{Diagnostic, Diagnostics};
use image_core::events::{Event, EventSink, Outcome};
use image_core::spec::load::check_files;
use image_core::target::Target;
use image_verify::{output, OutputFormat};
use serde::Serialize;
use serde_json::json;

use crate::cmd::spec_args::SpecArgs;
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
    /// Allow SSH into the temporary security group from this CIDR
    /// (repeatable; replaces the definition's
    /// temporary_security_group_source_cidrs). With neither (nor
    /// security_group_ids), SSH is allowed from this machine's public
    /// address /32, learned from https://checkip.amazonaws.com (or
    /// $IMAGE_BUILDER_CHECKIP_URL) before any EC2 call; never from
    /// 0.0.0.0/0. ssh_interface private_ip/private_dns needs CIDRs (e.g.
    /// the VPC's).
    #[arg(long = "ssh-source-cidr", value_name = "CIDR")]
    pub ssh_source_cidrs: Vec<String>,
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
    region_locs: super::RegionLocs,
}

/// The AMI of `build` in `region` from the manifest's last run.
fn ami_from_manifest(m: &Manifest, build: &str, region: &str) -> Result<String, String> {
    let entry = m
        .builds
        .iter()
        .rev()
        .find(|b| b.name == build && b.packer_run_uuid == m.last_run_uuid)
        .ok_or_else(|| format!("the last run recorded has no build `{build}`"))?;
    entry
        .artifact_id
        .split(',')
        .filter_map(|p| p.trim().split_once(':'))
        .find(|(r, _)| *r == region)
        .map(|(_, ami)| ami.to_string())
        .ok_or_else(|| {
            format!(
                "build `{build}` of the last run has no AMI in {region} (artifact_id `{}`)",
                entry.artifact_id
            )
        })
}

fn read_manifest(path: &Path, build: &str, region: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "reading the manifest {}: {e} (run `image-cli build` first, or pass --ami)",
            path.display()
        )
    })?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a packer manifest: {e}", path.display()))?;
    ami_from_manifest(&m, build, region)
        .map_err(|e| format!("{}: {e} (pass --ami)", path.display()))
}

fn prepare(args: &Args) -> Result<Ready, Diagnostics> {
    let err = |msg: String| {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::error(None, msg));
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
        return Err(err(if plans.is_empty() {
            "no build selected: check --only/--except".to_string()
        } else {
            format!(
                "{} builds selected ({}): test one at a time with --only BUILD",
                plans.len(),
                names.join(", ")
            )
        }));
    }
    let mut plan = plans.remove(0);
    if !args.ssh_source_cidrs.is_empty() {
        plan.temporary_security_group_source_cidrs = args.ssh_source_cidrs.clone();
    }
    let Some(mut req) = super::request_from_plan(&plan, &mut diags) else {
        return Err(diags);
    };
    let ami = match &args.ami {
        Some(a) if a.starts_with("ami-") => a.clone(),
        Some(a) => return Err(err(format!("--ami `{a}` is not an AMI id (ami-…)"))),
        None => read_manifest(&args.manifest, &plan.name, &plan.region).map_err(err)?,
    };
    req.source_ami = SourceAmi::Id(ami.clone());
    // The same wait variables as `build` (packer's).
    match super::build::wait_settings_from_env(&req.wait, |k| std::env::var(k).ok()) {
        Ok(w) => req.wait = w,
        Err(e) => diags.push(Diagnostic::error(None, e)),
    }

    let verify = load_verify_files(&plan, &plan.test_verify, &mut diags);
    let conformance = if args.conformance {
        if let Err(e) = conformance::check_cidr(&args.cni_subnet) {
            diags.push(Diagnostic::error(None, format!("--cni-subnet: {e}")));
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
        region_locs: super::region_locs(std::slice::from_ref(&plan)),
    })
}

/// What one verify file found.
#[derive(Debug, Clone, Serialize)]
struct VerifyRecord {
    file: PathBuf,
    passed: bool,
    summary: String,
    failures: Vec<String>,
}

/// What one `--command` did.
#[derive(Debug, Clone, Serialize)]
struct CommandRecord {
    command: String,
    exit_status: Option<i32>,
    error: Option<String>,
}

/// What the test found, in order.
#[derive(Debug, Default, Clone, Serialize)]
struct Record {
    verify: Vec<VerifyRecord>,
    commands: Vec<CommandRecord>,
    conformance: Option<conformance::Report>,
    conformance_error: Option<String>,
}

/// Streamed output: text to stdout, or JSON lines.
struct OutputSink {
    build: String,
    json: bool,
    events: Arc<dyn EventSink>,
}

impl OutputSink {
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

impl Sink for OutputSink {
    fn status(&self, text: &str) {
        self.events.emit(&Event::Message {
            build: self.build.clone(),
            text: format!("conformance: {text}"),
        });
    }
    fn line(&self, text: &str) {
        OutputSink::line(self, "conformance", text);
    }
}

/// The checks run on the instance.
struct TestHook {
    verify: Vec<VerifyFile>,
    commands: Vec<String>,
    conformance: Option<conformance::Options>,
    events: Arc<dyn EventSink>,
    json: bool,
    record: Mutex<Record>,
}

impl TestHook {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn started(&self, build: &str, step: &str) -> Instant {
        self.events.emit(&Event::StepStarted {
            build: build.to_string(),
            step: step.to_string(),
        });
        Instant::now()
    }

    fn finished(&self, build: &str, step: &str, outcome: Outcome, t0: Instant, msg: String) {
        self.events
            .emit(&Event::finished(build, step, outcome, t0.elapsed(), msg));
    }

    async fn verify_one(
        &self,
        build: &str,
        f: &VerifyFile,
        target: Arc<dyn Target>,
    ) -> Result<(), HookError> {
        let step = format!("verify {}", file_name(&f.path));
        let t0 = self.started(build, &step);
        let report =
            image_verify::runner::run(&f.suite, target.as_ref(), &f.opts.run_options()).await;
        if !self.json {
            print!("{}", output::render(&report, OutputFormat::Rspecish));
        }
        let failures: Vec<String> = report
            .results
            .iter()
            .filter(|r| !r.successful() && !r.skipped())
            .map(|r| format!("{} ({})", r.summary_line(), r.location))
            .collect();
        let passed = report.passed();
        self.record().verify.push(VerifyRecord {
            file: f.path.clone(),
            passed,
            summary: report.count_line(),
            failures: failures.clone(),
        });
        if passed {
            self.finished(build, &step, Outcome::Ok, t0, report.count_line());
            return Ok(());
        }
        let msg = format!(
            "{}: {} of {} checks failed: {}",
            f.path.display(),
            report.failed_count(),
            report.test_count(),
            failures
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        self.finished(build, &step, Outcome::Failed, t0, msg.clone());
        Err(HookError::msg(msg))
    }

    async fn command(
        &self,
        build: &str,
        n: usize,
        command: &str,
        target: &dyn Target,
    ) -> Result<(), HookError> {
        let step = format!("command {n}");
        let t0 = self.started(build, &step);
        self.events.emit(&Event::Message {
            build: build.to_string(),
            text: format!("$ {command}"),
        });
        let sink = OutputSink {
            build: build.to_string(),
            json: self.json,
            events: self.events.clone(),
        };
        let on_line = |l: &str| sink.line("command", l);
        let r =
            conformance::stream_exec(target, command, None, Duration::from_millis(500), &on_line)
                .await;
        let (exit_status, error) = match &r {
            Ok(s) => (Some(*s), None),
            Err(e) => (None, Some(e.to_string())),
        };
        self.record().commands.push(CommandRecord {
            command: command.to_string(),
            exit_status,
            error: error.clone(),
        });
        match r {
            Ok(0) => {
                self.finished(
                    build,
                    &step,
                    Outcome::Ok,
                    t0,
                    format!("`{command}`: exit 0"),
                );
                Ok(())
            }
            Ok(s) => {
                let msg = format!("command `{command}` exited {s}");
                self.finished(build, &step, Outcome::Failed, t0, msg.clone());
                Err(HookError::msg(msg))
            }
            Err(e) => {
                let msg = format!("command `{command}`: {e}");
                self.finished(build, &step, Outcome::Failed, t0, msg.clone());
                Err(HookError::with_source(format!("command `{command}`"), e))
            }
        }
    }

    async fn conformance(
        &self,
        build: &str,
        opts: &conformance::Options,
        target: &dyn Target,
    ) -> Result<(), HookError> {
        let step = "conformance";
        let t0 = self.started(build, step);
        let sink = OutputSink {
            build: build.to_string(),
            json: self.json,
            events: self.events.clone(),
        };
        match conformance::run(target, opts, &sink).await {
            Ok(report) => {
                let passed = report.passed();
                let msg = format!(
                    "Kubernetes {} ({}): {}; ginkgo exit {}; junit: {} test(s), {} failure(s), {} error(s); results in {}",
                    report.version,
                    report.arch,
                    if passed { "passed" } else { "FAILED" },
                    report.exit_status,
                    report.junit.tests,
                    report.junit.failures,
                    report.junit.errors,
                    report.results_dir.display()
                );
                self.record().conformance = Some(report);
                if passed {
                    self.finished(build, step, Outcome::Ok, t0, msg);
                    Ok(())
                } else {
                    self.finished(build, step, Outcome::Failed, t0, msg.clone());
                    Err(HookError::msg(format!("conformance suite failed: {msg}")))
                }
            }
            Err(e) => {
                self.record().conformance_error = Some(e.to_string());
                self.finished(build, step, Outcome::Failed, t0, e.to_string());
                Err(HookError::with_source("conformance suite not run", e))
            }
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[async_trait]
impl ProvisionHook for TestHook {
    async fn provision(&self, build: &str, target: Arc<dyn Target>) -> Result<(), HookError> {
        for f in &self.verify {
            self.verify_one(build, f, target.clone()).await?;
        }
        for (i, c) in self.commands.iter().enumerate() {
            self.command(build, i + 1, c, target.as_ref()).await?;
        }
        if let Some(opts) = &self.conformance {
            self.conformance(build, opts, target.as_ref()).await?;
        }
        Ok(())
    }
}

/// Runs `test`.
pub fn run(args: &Args) -> Exit {
    let mut flags = Diagnostics::default();
    super::flag_checks::cidrs("--ssh-source-cidr", &args.ssh_source_cidrs, &mut flags);
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
    let hook = TestHook {
        verify,
        commands: args.commands.clone(),
        conformance,
        events: events.clone(),
        json: args.json,
        record: Mutex::new(Record::default()),
    };
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
        // Only the build region matters to a test instance.
        let mut launch = req.clone();
        launch.ami_regions.clear();
        launch.region_kms_key_ids.clear();
        if let Err(diags) = super::check_regions(&ec2, &[launch], &region_locs).await {
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
        let r = image_aws::test_instance(&ec2, &req, &hook, &SshConnector, events.as_ref(), cancel)
            .await;
        if let Some(p) = &progress {
            p.finish(&req.name, if r.is_ok() { "passed" } else { "failed" });
            p.clear();
        }
        let interrupted = interrupts.as_ref().is_some_and(|i| i.interrupted());
        let record = hook.record().clone();
        summarise(args, &req, &ami, r, &record, interrupted)
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    exit
}

fn summarise(
    args: &Args,
    req: &BuildRequest,
    ami: &str,
    r: Result<image_aws::TestResult, image_aws::BuildError>,
    record: &Record,
    interrupted: bool,
) -> Exit {
    let passed = r.is_ok();
    if args.json {
        let mut v = json!({
            "event": "test_result",
            "build": req.name,
            "region": req.region,
            "ami": ami,
            "passed": passed,
            "verify": record.verify,
            "commands": record.commands,
            "conformance": record.conformance,
            "conformance_error": record.conformance_error,
        });
        match &r {
            Ok(res) => {
                v["build_id"] = json!(res.build_id);
                v["instance_id"] = json!(res.instance.id);
                v["cleanup_failures"] = json!(res
                    .cleanup_failures
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>());
            }
            Err(e) => {
                v["build_id"] = json!(e.build_id);
                v["step"] = json!(e.step.as_str());
                v["error"] = json!(e.error.to_string());
                v["cancelled"] = json!(e.is_cancelled());
                v["left"] = json!(e.left);
            }
        }
        JsonLines::print(&v);
    } else {
        crate::report::out_line(&format!(
            "test of build `{}`: {ami} in {}",
            req.name, req.region
        ));
        for f in &record.verify {
            crate::report::out_line(&format!(
                "  verify {}: {} ({})",
                file_name(&f.file),
                if f.passed { "passed" } else { "FAILED" },
                f.summary
            ));
        }
        for c in &record.commands {
            match (c.exit_status, &c.error) {
                (Some(s), _) => {
                    crate::report::out_line(&format!("  command `{}`: exit {s}", c.command))
                }
                (None, Some(e)) => {
                    crate::report::out_line(&format!("  command `{}`: {e}", c.command))
                }
                (None, None) => {}
            }
        }
        if let Some(c) = &record.conformance {
            crate::report::out_line(&format!(
                "  conformance Kubernetes {} ({}): {} (ginkgo exit {}, {} test(s), {} failure(s)); results: {}",
                c.version,
                c.arch,
                if c.passed() { "passed" } else { "FAILED" },
                c.exit_status,
                c.junit.tests,
                c.junit.failures,
                c.results_dir.display()
            ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use image_aws::manifest::ManifestBuild;

    #[test]
    fn the_manifest_gives_the_last_runs_ami_of_the_build_region() {
        let b = |name: &str, run: &str, art: &str| ManifestBuild {
            name: name.into(),
            builder_type: "amazon-ebs".into(),
            build_time: 1,
            files: None,
            artifact_id: art.into(),
            packer_run_uuid: run.into(),
            custom_data: None,
        };
        let m = Manifest {
            builds: vec![
                b("node", "r1", "us-east-1:ami-old"),
                b("node", "r2", "eu-west-1:ami-eu,us-east-1:ami-new"),
                b("other", "r2", "us-east-1:ami-other"),
            ],
            last_run_uuid: "r2".into(),
        };
        assert_eq!(
            ami_from_manifest(&m, "node", "us-east-1").unwrap(),
            "ami-new"
        );
        assert_eq!(
            ami_from_manifest(&m, "node", "eu-west-1").unwrap(),
            "ami-eu"
        );
        assert!(ami_from_manifest(&m, "node", "ap-south-1")
            .unwrap_err()
            .contains("no AMI in ap-south-1"));
        let m2 = Manifest {
            last_run_uuid: "r3".into(),
            ..m
        };
        assert!(ami_from_manifest(&m2, "node", "us-east-1")
            .unwrap_err()
            .contains("no build `node`"));
    }
}
