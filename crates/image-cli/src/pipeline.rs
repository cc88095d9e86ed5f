//! The provisioning hook of a build: [`PlanHook`] runs a plan's step lists
//! with image-provision (as root, `provision_vars` as extra vars), then
//! checks the instance with its goss files through image-verify
//! (`verify_vars` as the template vars). A failed task or a failed check is a
//! [`HookError`], so image-aws makes no AMI.
//!
//! Everything is parsed and loaded in [`PlanHook::prepare`], before any EC2
//! call: a broken step list or gossfile costs nothing in AWS.
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
use image_aws::{HookError, ProvisionHook};
use image_core::diag::Diagnostics;
use image_core::events::{Event, EventSink, Outcome};
use image_core::spec::{FileRef, Plan};
use image_core::target::Target;
use image_provision::{parse, Steps};
use image_verify::{Suite, VerifyOptions};
use serde_json::{Map, Value as Json};

/// A plan's gossfile, loaded with the plan's `verify_vars`, checked as root.
pub struct VerifyFile {
    /// The gossfile.
    pub path: PathBuf,
    /// Its resources, rendered and parsed.
    pub suite: Arc<Suite>,
    /// How it is run.
    pub opts: VerifyOptions,
}

/// Loads `files` (a plan's `verify` or `test_verify`) with the plan's
/// `verify_vars`; problems (and warnings) go to `diags`.
pub fn load_verify_files(
    plan: &Plan,
    files: &[FileRef],
    diags: &mut Diagnostics,
) -> Vec<VerifyFile> {
    let vars_inline = if plan.verify_vars.is_empty() {
        Vec::new()
    } else {
        vec![Json::Object(plan.verify_vars.clone()).to_string()]
    };
    let mut out = Vec::new();
    for f in files {
        let opts = VerifyOptions {
            gossfile: f.path.clone(),
            become_: true,
            vars_inline: vars_inline.clone(),
            ..VerifyOptions::default()
        };
        match opts.load() {
            Ok(suite) => {
                diags.extend(suite.warnings.clone());
                out.push(VerifyFile {
                    path: f.path.clone(),
                    suite: Arc::new(suite),
                    opts,
                });
            }
            Err(d) => diags.extend(d),
        }
    }
    out
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
        target: Arc<dyn Target>,
    ) -> Result<(), HookError> {
        let path = &f.path;
        let step = format!("verify {}", file_name(path));
        let t0 = Instant::now();
        self.events.emit(&Event::StepStarted {
            build: build.to_string(),
            step: step.clone(),
        });
        let report =
            image_verify::runner::run(&f.suite, target.as_ref(), &f.opts.run_options()).await;
        let failed: Vec<_> = report
            .results
            .iter()
            .filter(|r| !r.successful() && !r.skipped())
            .collect();
        for r in &failed {
            self.events.emit(&Event::Message {
                build: build.to_string(),
                text: format!("verify: {} ({})", r.summary_line(), r.location),
            });
        }
        if report.passed() {
            self.finished(build, &step, Outcome::Ok, t0, report.count_line());
            return Ok(());
        }
        let first: Vec<String> = failed.iter().take(3).map(|r| r.summary_line()).collect();
        let msg = format!(
            "{}: {} of {} checks failed: {}{}",
            path.display(),
            report.failed_count(),
            report.test_count(),
            first.join("; "),
            if failed.len() > 3 { "; …" } else { "" }
        );
        self.finished(build, &step, Outcome::Failed, t0, msg.clone());
        Err(HookError::msg(msg))
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
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
            self.verify_one(build, f, target.clone()).await?;
        }
        Ok(())
    }
}
