//! The provisioning hook of a build: [`PlanHook`] runs a plan's step lists
//! with image-provision (as root, `provision_vars` as extra vars), then
//! checks the instance with its goss files through image-verify
//! (`verify_vars` as the template vars). A failed task or a failed check is a
//! [`HookError`], so image-aws makes no AMI.
//!
//! Everything is parsed and loaded in [`PlanHook::prepare`], before any EC2
//! call: a broken step list or gossfile costs nothing in AWS.
//!
//! [`TestHook`] is the same glue for `image-cli test`: an
//! [`image_verify::host_test::HostTest`] run on the instance that
//! [`image_aws::test_instance`] launches from a built AMI.
//!
//! ```no_run
//! # fn demo(plans: &[image_core::spec::Plan]) -> Result<(), image_core::diag::Diagnostics> {
//! use std::sync::Arc;
//! let hook = image_cli::pipeline::PlanHook::prepare(plans, Arc::new(image_core::events::NoEvents))?;
//! // image_aws::build(&ec2, &req, &hook, &events, cancel).await
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use image_aws::{BuildError, BuildRequest, HookError, ProvisionHook, TestResult};
use image_core::diag::Diagnostics;
use image_core::events::{Event, EventSink, Outcome};
use image_core::spec::{FileRef, Plan};
use image_core::target::Target;
use image_provision::{parse, Steps};
use image_verify::host_test::{FailureCause, HostTest, TestFailure, TestOutput, TestRecord};
use image_verify::plan::{file_name, load_verify_files, run_file, VerifyFile};
use serde_json::{json, Map, Value as Json};

/// Every static check `build` (and `test`) makes before any EC2 call, and
/// nothing more: the files the plans name exist, every step list parses and
/// every gossfile (`verify` and `test_verify`, with the build's vars) loads.
/// Each problem once, even when builds share a file. A plan set with no
/// error here is one `build` does not refuse as bad input.
///
/// ```no_run
/// # fn demo(plans: &[image_core::spec::Plan]) {
/// let diags = image_cli::pipeline::validate_plans(plans);
/// eprint!("{diags}");
/// if diags.has_errors() {
///     std::process::exit(2);
/// }
/// # }
/// ```
pub fn validate_plans(plans: &[Plan]) -> Diagnostics {
    let mut diags = image_core::spec::load::check_files(plans);
    if !diags.has_errors() {
        match PlanHook::prepare(plans, Arc::new(image_core::events::NoEvents)) {
            Ok(hook) => diags.extend(hook.warnings().clone()),
            Err(d) => diags.extend(d),
        }
        for p in plans {
            // By default test_verify is verify, already loaded above.
            let extra: Vec<FileRef> = p
                .test_verify
                .iter()
                .filter(|f| !p.verify.iter().any(|v| v.path == f.path))
                .cloned()
                .collect();
            if !extra.is_empty() {
                load_verify_files(p, &extra, &mut diags);
            }
        }
    }
    let mut unique = Diagnostics::default();
    for d in diags.0 {
        if !unique.0.contains(&d) {
            unique.push(d);
        }
    }
    unique
}

/// One build's step lists and gossfiles, loaded.
struct Prepared {
    provision: Vec<(PathBuf, Arc<Steps>)>,
    provision_vars: Map<String, Json>,
    verify: Vec<VerifyFile>,
}

/// Provisions and verifies the instance of each build (by build name).
pub struct PlanHook {
    builds: HashMap<String, Prepared>,
    events: Arc<dyn EventSink>,
    warnings: Diagnostics,
}

impl PlanHook {
    /// Parses every plan's step lists and loads its gossfiles with their
    /// vars. Returns every problem of every file at once.
    pub fn prepare(plans: &[Plan], events: Arc<dyn EventSink>) -> Result<PlanHook, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut builds = HashMap::new();
        for p in plans {
            let mut prepared = Prepared {
                provision: Vec::new(),
                provision_vars: p.provision_vars.clone(),
                verify: Vec::new(),
            };
            for f in &p.provision {
                match parse::load(&f.path, &[]) {
                    Ok(steps) => {
                        diags.extend(Diagnostics(steps.warnings.clone()));
                        prepared.provision.push((f.path.clone(), Arc::new(steps)))
                    }
                    Err(d) => diags.extend(d),
                }
            }
            prepared.verify = load_verify_files(p, &p.verify, &mut diags);
            builds.insert(p.name.clone(), prepared);
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(PlanHook {
            builds,
            events,
            warnings: diags,
        })
    }

    /// The warnings of the step lists and gossfiles (a file reached only
    /// through `include_*` that has a problem, a key given twice...).
    pub fn warnings(&self) -> &Diagnostics {
        &self.warnings
    }

    /// Step lists and gossfiles per build: `(build, provision, verify)`.
    pub fn summary(&self) -> Vec<(String, usize, usize)> {
        let mut out: Vec<_> = self
            .builds
            .iter()
            .map(|(n, p)| (n.clone(), p.provision.len(), p.verify.len()))
            .collect();
        out.sort();
        out
    }

    fn finished(&self, build: &str, step: &str, outcome: Outcome, t0: Instant, msg: String) {
        self.events
            .emit(&Event::finished(build, step, outcome, t0.elapsed(), msg));
    }

    async fn provision_one(
        &self,
        build: &str,
        path: &std::path::Path,
        steps: Arc<Steps>,
        vars: &Map<String, Json>,
        target: Arc<dyn Target>,
    ) -> Result<(), HookError> {
        let step = format!("provision {}", file_name(path));
        let t0 = Instant::now();
        self.events.emit(&Event::StepStarted {
            build: build.to_string(),
            step: step.clone(),
        });
        let opts = image_provision::Options {
            extra_vars: vars.clone(),
            become_: true,
            build: build.to_string(),
            ..Default::default()
        };
        // On its own task: the engine's future is Send only for concrete
        // lifetimes, which a spawned task with owned inputs has.
        let events = self.events.clone();
        let report = tokio::spawn(async move {
            image_provision::run(target.as_ref(), &steps, &opts, events.as_ref()).await
        })
        .await
        .map_err(|e| HookError::msg(format!("{}: provisioning panicked: {e}", path.display())))?;
        if !report.failed() {
            self.finished(build, &step, Outcome::Changed, t0, report.recap.to_string());
            return Ok(());
        }
        let first = report
            .results
            .iter()
            .find(|r| (r.outcome == Outcome::Failed && !r.ignored) || r.unreachable);
        let why = match first {
            Some(r) => format!(
                "task `{}`{} ({}) failed on {}: {}",
                r.task,
                r.item
                    .as_ref()
                    .map(|i| format!(" (item={i})"))
                    .unwrap_or_default(),
                r.loc,
                report.host,
                r.msg.trim()
            ),
            None => format!("{} on {}", report.recap, report.host),
        };
        let msg = format!("{}: {why}", path.display());
        self.finished(build, &step, Outcome::Failed, t0, msg.clone());
        Err(HookError::msg(msg))
    }

    async fn verify_one(
        &self,
        build: &str,
        f: &VerifyFile,
        target: &dyn Target,
    ) -> Result<(), HookError> {
        let checked = run_file(build, f, target, self.events.as_ref()).await;
        if checked.passed() {
            Ok(())
        } else {
            Err(HookError::msg(checked.message))
        }
    }
}

#[async_trait]
impl ProvisionHook for PlanHook {
    async fn provision(&self, build: &str, target: Arc<dyn Target>) -> Result<(), HookError> {
        let Some(p) = self.builds.get(build) else {
            return Err(HookError::msg(format!(
                "no provisioning prepared for build `{build}`"
            )));
        };
        for (path, steps) in &p.provision {
            self.provision_one(
                build,
                path,
                steps.clone(),
                &p.provision_vars,
                target.clone(),
            )
            .await?;
        }
        for f in &p.verify {
            self.verify_one(build, f, target.as_ref()).await?;
        }
        Ok(())
    }
}

/// The hook of `image-cli test`: runs a [`HostTest`] (gossfiles, commands,
/// conformance) on the instance image-aws launched from the AMI; its first
/// failure fails the test.
///
/// ```no_run
/// # async fn demo(plan: &image_core::spec::Plan, ami: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use image_aws::{test_instance, BuildRequest, CancelToken, ClientOptions, Ec2Clients, SourceAmi, SshConnector};
/// use image_core::diag::Diagnostics;
/// use image_core::events::NoEvents;
/// use image_verify::host_test::{HostTest, PrintOutput};
/// let mut diags = Diagnostics::default();
/// let files = image_verify::plan::load_verify_files(plan, &plan.test_verify, &mut diags);
/// let test = HostTest::new(files, vec!["kubeadm version".into()], None);
/// let hook = image_cli::pipeline::TestHook::new(test, Arc::new(NoEvents), Arc::new(PrintOutput));
/// let mut req = BuildRequest::from_plan(plan)?;
/// req.source_ami = SourceAmi::Id(ami.to_string());
/// let ec2 = Ec2Clients::from_env(&ClientOptions::default()).await;
/// let res = test_instance(&ec2, &req, &hook, &SshConnector, &NoEvents, CancelToken::new()).await;
/// for line in hook.record().summary_lines() {
///     println!("{line}");
/// }
/// println!("{}", if res.is_ok() { "PASSED" } else { "FAILED" });
/// # Ok(()) }
/// ```
pub struct TestHook {
    test: HostTest,
    events: Arc<dyn EventSink>,
    output: Arc<dyn TestOutput>,
}

impl TestHook {
    /// A hook running `test`, its steps reported on `events`, its output
    /// (gossfile results, streamed lines) on `output`.
    pub fn new(test: HostTest, events: Arc<dyn EventSink>, output: Arc<dyn TestOutput>) -> Self {
        TestHook {
            test,
            events,
            output,
        }
    }

    /// What the test found so far (all of it once `test_instance` returned).
    pub fn record(&self) -> TestRecord {
        self.test.record()
    }
}

/// The `test_result` object `image-cli test --json` prints: the build,
/// region and AMI tested, whether it passed, what the [`TestRecord`] holds
/// (verify files, commands, conformance), and the instance and cleanup
/// failures, or the failed step, error and what was left in AWS.
///
/// ```no_run
/// # fn demo(req: &image_aws::BuildRequest, r: Result<image_aws::TestResult, image_aws::BuildError>, hook: &image_cli::pipeline::TestHook) {
/// let v = image_cli::pipeline::test_result_json(req, "ami-0123456789abcdef0", &r, &hook.record());
/// println!("{v}");
/// # }
/// ```
pub fn test_result_json(
    req: &BuildRequest,
    ami: &str,
    r: &Result<TestResult, BuildError>,
    record: &TestRecord,
) -> Json {
    let mut v = json!({
        "event": "test_result",
        "build": req.name,
        "region": req.region,
        "ami": ami,
        "passed": r.is_ok(),
        "verify": record.verify,
        "commands": record.commands,
        "conformance": record.conformance,
        "conformance_error": record.conformance_error,
    });
    match r {
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
    v
}

fn hook_error(e: TestFailure) -> HookError {
    match e.cause {
        None => HookError::msg(e.message),
        Some(FailureCause::Target(c)) => HookError::with_source(e.message, c),
        Some(FailureCause::Conformance(c)) => HookError::with_source(e.message, c),
    }
}

#[async_trait]
impl ProvisionHook for TestHook {
    async fn provision(&self, build: &str, target: Arc<dyn Target>) -> Result<(), HookError> {
        self.test
            .run(
                build,
                target.as_ref(),
                self.events.as_ref(),
                self.output.as_ref(),
            )
            .await
            .map_err(hook_error)
    }
}
