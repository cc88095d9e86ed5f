//! `image-cli policy`: prints the minimal IAM policy (JSON) the selected
//! builds of a definition need — the EC2 actions their steps call, KMS with a
//! customer key, `iam:PassRole` with an instance profile,
//! `ec2:DescribeRegions` with `ami_regions: all` (see `image_aws::policy`).
//! Calls nothing.

use clap::Args as ClapArgs;
use image_aws::{policy, BuildRequest};

use crate::cmd::spec_args::SpecArgs;
use crate::exit::Exit;
use crate::report;

/// Arguments of `policy`.
#[derive(Debug, ClapArgs)]
#[command(after_help = crate::exit::EXIT_CODES_HELP)]
pub struct Args {
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Runs `policy`.
pub fn run(args: &Args) -> Exit {
    let loaded = match args.spec.load() {
        Ok(l) => l,
        Err(diags) => {
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
    };
    report::diagnostics(&loaded.resolved.warnings);
    // What is missing to run a build (SSH CIDRs, ...) does not change the
    // actions it needs.
    let reqs: Vec<BuildRequest> = loaded
        .resolved
        .plans
        .iter()
        .map(|p| BuildRequest::from_plan_lenient(p).0)
        .collect();
    if reqs.is_empty() {
        eprintln!("error: no build selected: check --only/--except");
        return Exit::BadInput;
    }
    match serde_json::to_string_pretty(&policy::document(&reqs)) {
        Ok(text) => {
            println!("{text}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}
