//! `image-cli build`: packer build, for EC2.
//!
//! ```text
//! image-cli build [SPEC] [--only ..] [--except ..] [--var ..] [--var-file ..]
//!                 [--on-error cleanup|abort] [--parallel-builds N]
//!                 [--manifest FILE] [--ssh-source-cidr CIDR].. [--dry-run] [--json]
//! ```
//!
//! Everything is checked before the first EC2 call — the definition, its
//! files, every step list and gossfile: bad input exits 2 having called
//! nothing. Then the selected builds run concurrently
//! ([`image_aws::batch::Batch`], with [`image_cli::pipeline::PlanHook`]
//! provisioning and verifying), each finished build is appended to the
//! manifest, and a region -> AMI table is printed. This file reads the flags
//! and prints; `examples/build_plans.rs` makes the same library calls.
//! Exit: 0 all built, 1 a build failed, 130 interrupted.
//!
//! Packer's `AWS_POLL_DELAY_SECONDS` and `AWS_MAX_ATTEMPTS` set how the
//! waits poll ([`image_aws::wait_env::wait_settings_from_env`]); image-aws itself reads no
//! environment.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args as ClapArgs, ValueEnum};
use image_aws::batch::{Batch, BatchOutcome};
use image_aws::{BuildRequest, CancelToken, ClientOptions, Ec2Clients, OnError, RunOptions};
use image_cli::pipeline::PlanHook;
use image_cli::progress::{JsonLines, Progress};
use image_core::diag::{Diagnostic, Diagnostics};
use image_core::events::EventSink;
use image_core::spec::load::check_files;
use serde_json::json;

use crate::cmd::spec_args::SpecArgs;
use crate::cmd::ssh_source_args::SshSourceArgs;
use crate::exit::Exit;
use crate::report;

/// What to do with what a failed build made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnErrorArg {
    /// Delete everything the build created (default).
    Cleanup,
    /// Leave everything for debugging and list it (the instance is gone
    /// once the AMI was available: it is terminated while the copies run).
    Abort,
}

/// The environment variables of the waits, as `--help` shows them.
pub(crate) const WAIT_ENV_HELP: &str = "\
Environment (as packer's amazon-ebs):
  AWS_POLL_DELAY_SECONDS  poll every N seconds (decimals allowed), without
                          backoff or jitter, while waiting for instances and
                          AMIs (default: every fifth of the time waited,
                          2 s to 30 s; an AMI at once, then from 10 s
                          after its CreateImage / CopyImage)
  AWS_MAX_ATTEMPTS        give a wait up after N polls (default: only the
                          timeouts: image_wait_timeout, 15 min for instances);
                          cleanup never gives up early
";

/// `--help`: the wait variables, then the exit codes (`-h` shows only
/// the exit codes, set on the subcommand).
pub(crate) fn after_help() -> String {
    format!("{WAIT_ENV_HELP}\n{}", crate::exit::EXIT_CODES_HELP)
}

/// Arguments of `build`.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = after_help())]
pub struct Args {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// On failure or interrupt: delete what the build made, or leave it and list it.
    #[arg(long, value_enum, default_value = "cleanup")]
    pub on_error: OnErrorArg,
    /// Run at most N builds at once (0 = all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub parallel_builds: usize,
    /// Append finished builds to this packer-style manifest.
    #[arg(long, value_name = "FILE", default_value = "manifest.json")]
    pub manifest: PathBuf,
    #[command(flatten)]
    pub ssh: SshSourceArgs,
    /// Resolve the source AMIs and check everything with read-only calls;
    /// print what each build would create.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object per line on stdout (events, results) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show every provisioning task and check, not only the pipeline steps.
    #[arg(long)]
    pub show_tasks: bool,
}

/// Everything checked, nothing called yet.
struct Ready {
    reqs: Vec<BuildRequest>,
    hook: Option<PlanHook>,
    region_locs: image_aws::region_check::RegionLocs,
    /// Printed once the regions are checked.
    warnings: Diagnostics,
}

/// The run's options from the flags.
fn run_options(args: &Args) -> RunOptions {
    args.ssh.run_options(match args.on_error {
        OnErrorArg::Cleanup => OnError::Cleanup,
        OnErrorArg::Abort => OnError::Abort,
    })
}

fn prepare(args: &Args, events: Arc<dyn EventSink>) -> Result<Ready, Diagnostics> {
    let loaded = args.spec.load()?;
    let plans = loaded.resolved.plans.clone();
    let mut diags = loaded.resolved.warnings.clone();
    diags.extend(check_files(&plans));
    if diags.has_errors() {
        return Err(diags);
    }
    if plans.is_empty() {
        diags.push(Diagnostic::error(
            None,
            "no build selected: check --only/--except".to_string(),
        ));
        return Err(diags);
    }
    let reqs = match BuildRequest::for_run(&plans, &run_options(args), |k| std::env::var(k).ok()) {
        Ok(reqs) => reqs,
        Err(e) => {
            diags.extend(e);
            return Err(diags);
        }
    };
    // A dry run reads; it does not need the step lists loaded.
    let hook = if args.dry_run {
        None
    } else {
        let hook = PlanHook::prepare(&plans, events)?;
        diags.extend(hook.warnings().clone());
        Some(hook)
    };
    Ok(Ready {
        reqs,
        hook,
        region_locs: image_aws::region_check::region_locs(&plans),
        warnings: diags,
    })
}

/// Runs `build`.
pub fn run(args: &Args) -> Exit {
    let progress: Option<Arc<Progress>> =
        (!args.json).then(|| Arc::new(Progress::stderr(args.show_tasks)));
    let events: Arc<dyn EventSink> = match &progress {
        Some(p) => p.clone(),
        None => Arc::new(JsonLines),
    };
    let flags = run_options(args).problems();
    if flags.has_errors() {
        report::diagnostics(&flags);
        return Exit::BadInput;
    }
    let ready = match prepare(args, events.clone()) {
        Ok(r) => r,
        Err(diags) => {
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    let exit = rt.block_on(async {
        let opts = ClientOptions {
            region: ready.reqs.first().map(|r| r.region.clone()),
            checkip_url: std::env::var(image_aws::public_ip::URL_ENV).ok(),
            ..Default::default()
        };
        let ec2 = Ec2Clients::from_env(&opts).await;
        // Before the first mutating call: a region that does not exist or
        // is not enabled is bad input.
        let mut diags =
            image_aws::region_check::check_regions(&ec2, &ready.reqs, &ready.region_locs).await;
        if diags.has_errors() {
            // The offline "unknown region" warning says less than the error.
            let at: Vec<_> = diags.0.iter().map(|d| d.location.clone()).collect();
            diags.0.extend(
                ready
                    .warnings
                    .0
                    .iter()
                    .filter(|w| !at.contains(&w.location))
                    .cloned(),
            );
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
        // A warning, when the regions could not be asked.
        report::diagnostics(&diags);
        report::diagnostics(&ready.warnings);
        if args.dry_run {
            dry_run(&ec2, &ready.reqs, args.json).await
        } else {
            let hook = match &ready.hook {
                Some(h) => h,
                None => return Exit::Failed,
            };
            builds(
                args,
                &ec2,
                &ready.reqs,
                hook,
                events.as_ref(),
                progress.as_deref(),
            )
            .await
        }
    });
    // Do not wait for lingering SSH sessions of cancelled builds.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    exit
}

async fn dry_run(ec2: &Ec2Clients, reqs: &[BuildRequest], json_out: bool) -> Exit {
    let mut exit = Exit::Ok;
    for r in reqs {
        match image_aws::dry_run(ec2, r).await {
            Ok(d) => {
                if json_out {
                    JsonLines::print(&json!({"event": "dry_run", "plan": d}));
                    continue;
                }
                report::out_line(d.to_string().trim_end());
            }
            Err(e) => {
                report::err_line(&format!("error: {e}"));
                exit = Exit::Failed;
            }
        }
    }
    exit
}

async fn builds(
    args: &Args,
    ec2: &Ec2Clients,
    reqs: &[BuildRequest],
    hook: &PlanHook,
    events: &dyn EventSink,
    progress: Option<&Progress>,
) -> Exit {
    let cancel = CancelToken::new();
    let interrupts =
        match image_cli::signals::install(cancel.clone(), args.on_error == OnErrorArg::Abort) {
            Ok(i) => Some(i),
            Err(e) => {
                report::err_line(&format!("warning: cannot watch for Ctrl-C: {e}"));
                None
            }
        };
    let outcome = Batch::new(ec2, hook, events)
        .parallel(args.parallel_builds)
        .manifest(&args.manifest)
        .on_finished(|build, r| {
            if let Some(p) = progress {
                match r {
                    Ok(res) => p.finish(build, &format!("built {} AMI(s)", res.amis.len())),
                    Err(_) => p.finish(build, "failed"),
                }
            }
        })
        .run(reqs, cancel)
        .await;
    if let Some(p) = progress {
        p.clear();
    }
    let interrupted = interrupts.as_ref().is_some_and(|i| i.interrupted());
    summarise(args, &outcome, interrupted)
}

fn summarise(args: &Args, outcome: &BatchOutcome, interrupted: bool) -> Exit {
    for (build, e) in &outcome.manifest_errors {
        report::err_line(&format!("error: build `{build}`: {e}"));
    }
    for res in &outcome.built {
        if args.json {
            JsonLines::print(&res.event_json());
            continue;
        }
        report::out_line(&image_aws::ami_table::markdown_table(res));
        for (region, why) in &res.failed_regions {
            report::err_line(&format!(
                "error: build `{}`: no AMI in {region}: {why}",
                res.build
            ));
        }
        for f in &res.cleanup_failures {
            report::err_line(&format!(
                "warning: build `{}`: could not delete {f}",
                res.build
            ));
        }
    }
    for e in &outcome.failed {
        if args.json {
            JsonLines::print(&e.event_json());
            continue;
        }
        report::build_error("build", e);
    }
    if !args.json && !outcome.built.is_empty() {
        report::err_line(&format!("manifest: {}", args.manifest.display()));
    }
    if interrupted {
        Exit::Interrupted
    } else if !outcome.all_built() {
        Exit::Failed
    } else {
        Exit::Ok
    }
}
