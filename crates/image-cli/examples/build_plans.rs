//! Builds the AMIs of an image definition as `image-cli build SPEC` does,
//! with the library calls the command makes: load the definition, check
//! every file it names (step lists, gossfiles) and its regions before
//! anything is created, then run every build at once
//! ([`image_aws::batch::Batch`]) with [`image_cli::pipeline::PlanHook`]
//! provisioning and verifying each instance, appending each finished build
//! to `manifest.json` and printing the region -> AMI tables.
//!
//! ```text
//! cargo run -p image-cli --example build_plans -- spec.yaml [NAME=VALUE]...
//! ```
//!
//! Credentials and endpoint come from the standard AWS chain. Ctrl-C
//! cancels every build; each deletes what it created. Exit status 0: all
//! built; 1: a build failed; 2: bad input (nothing was called).

use std::process::ExitCode;
use std::sync::Arc;

use image_aws::batch::Batch;
use image_aws::region_check::{check_regions, region_locs};
use image_aws::{BuildRequest, CancelToken, ClientOptions, Ec2Clients, RunOptions};
use image_cli::pipeline::{validate_plans, PlanHook};
use image_cli::progress::Progress;
use image_core::spec::load::{load, Request};

async fn run(spec: String, vars: Vec<String>) -> Result<bool, Box<dyn std::error::Error>> {
    // Everything is read and checked before the first EC2 call.
    let req = Request {
        spec: Some(spec.into()),
        vars,
        ..Default::default()
    };
    let loaded = load(&req, time_now())?;
    let plans = &loaded.resolved.plans;
    let diags = validate_plans(plans);
    if diags.has_errors() {
        return Err(diags.into());
    }
    // The flags' part of a run (`--ssh-source-cidr`, `--on-error`) and
    // packer's wait variables, as `image-cli build` applies them.
    let reqs = BuildRequest::for_run(plans, &RunOptions::default(), |k| std::env::var(k).ok())?;
    let progress = Arc::new(Progress::stderr(false));
    let hook = PlanHook::prepare(plans, progress.clone())?;
    let opts = ClientOptions {
        region: reqs.first().map(|r| r.region.clone()),
        ..Default::default()
    };
    let ec2 = Ec2Clients::from_env(&opts).await;
    let diags = check_regions(&ec2, &reqs, &region_locs(plans)).await;
    if diags.has_errors() {
        return Err(diags.into());
    }

    let cancel = CancelToken::new();
    let _interrupts = image_cli::signals::install(cancel.clone(), false)?;
    let outcome = Batch::new(&ec2, &hook, progress.as_ref())
        .manifest("manifest.json")
        .on_finished(|build, r| progress.finish(build, if r.is_ok() { "built" } else { "failed" }))
        .run(&reqs, cancel)
        .await;
    progress.clear();
    for res in &outcome.built {
        println!("{}", image_aws::ami_table::markdown_table(res));
    }
    for e in &outcome.failed {
        eprintln!("error: {e}");
    }
    for (build, e) in &outcome.manifest_errors {
        eprintln!("error: build `{build}`: {e}");
    }
    Ok(outcome.all_built())
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(spec) = args.next() else {
        eprintln!("usage: build_plans SPEC.yaml [NAME=VALUE]...");
        return ExitCode::from(2);
    };
    match run(spec, args.collect()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}
