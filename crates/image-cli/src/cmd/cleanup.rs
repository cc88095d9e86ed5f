//! `image-cli cleanup`: finds what crashed or aborted builds left in AWS —
//! everything tagged `image-builder:temporary=true` (instances, AMIs,
//! snapshots, security groups, key pairs) — lists it, and with `--yes`
//! deletes it.
//!
//! ```text
//! image-cli cleanup [--region R].. [--older-than DURATION] [--yes] [--json]
//! ```
//!
//! Without `--region`: every region enabled for the account.

use clap::Args as ClapArgs;
use image_aws::{cleanup, regions, ClientOptions, Ec2Clients, Leftover, Resource, WaitSettings};
use serde_json::json;

use crate::exit::Exit;

/// Arguments of `cleanup`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Look in this region (repeatable; default: every enabled region).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Only what was created more than this long ago (e.g. 2h, 30m, 1d as 24h).
    #[arg(long, value_name = "DURATION", value_parser = older_than)]
    pub older_than: Option<std::time::Duration>,
    /// Delete what was found (without it: only list).
    #[arg(long)]
    pub yes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--older-than`: a duration as the image definition writes them
/// (`90s`, `30m`, `2h`, `1h30m`; plain seconds).
fn older_than(s: &str) -> Result<std::time::Duration, String> {
    image_core::spec::check::parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 30m, 2h, 1h30m; a day is 24h)"))
}

/// Runs `cleanup`.
pub fn run(args: &Args) -> Exit {
    let mut flags = image_core::diag::Diagnostics::default();
    super::flag_checks::regions("--region", &args.regions, &mut flags);
    if flags.has_errors() {
        crate::report::diagnostics(&flags);
        return Exit::BadInput;
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    rt.block_on(run_async(args))
}

async fn run_async(args: &Args) -> Exit {
    let opts = ClientOptions {
        region: args.regions.first().cloned(),
        ..Default::default()
    };
    let ec2 = Ec2Clients::from_env(&opts).await;
    let regions = if args.regions.is_empty() {
        let home = ec2
            .default_region()
            .unwrap_or_else(|| "us-east-1".to_string());
        match regions::enabled_regions(&ec2, &home).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: listing the account's regions: {e} (or name them with --region)");
                return Exit::Failed;
            }
        }
    } else {
        args.regions.clone()
    };
    let found = match cleanup::find_leftovers(&ec2, &regions, args.older_than).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: looking for leftovers: {e}");
            return Exit::Failed;
        }
    };
    list(&found, regions.len(), args.json);
    if found.is_empty() || !args.yes {
        if !found.is_empty() && !args.json {
            eprintln!("run again with --yes to delete them");
        }
        return Exit::Ok;
    }
    let resources: Vec<Resource> = found.iter().map(|l| l.resource.clone()).collect();
    let failures = cleanup::delete_leftovers(&ec2, &resources, &WaitSettings::default()).await;
    if args.json {
        println!(
            "{}",
            json!({
                "deleted": resources.len() - failures.len(),
                "failed": failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            })
        );
    } else {
        for f in &failures {
            eprintln!("error: could not delete {f}");
        }
        println!(
            "deleted {} of {} resource(s)",
            resources.len() - failures.len(),
            resources.len()
        );
    }
    if failures.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

fn list(found: &[Leftover], regions: usize, json_out: bool) {
    if json_out {
        println!("{}", json!({ "leftovers": found }));
        return;
    }
    if found.is_empty() {
        println!("nothing left by image-cli builds in {regions} region(s)");
        return;
    }
    println!("| Region | Kind | Id | Build | Build id | Created |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for l in found {
        let r = &l.resource;
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.region(),
            r.kind(),
            r.id(),
            l.build_name.as_deref().unwrap_or("-"),
            l.build_id.as_deref().unwrap_or("-"),
            l.created.as_deref().unwrap_or("-")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn older_than_takes_the_definitions_durations() {
        assert_eq!(older_than("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(older_than("90"), Ok(Duration::from_secs(90)));
        for bad in ["1d", "5x", "", "h"] {
            assert!(older_than(bad).is_err(), "{bad}");
        }
    }
}
