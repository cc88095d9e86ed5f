//! Lists what failed, aborted or killed builds left in AWS (everything
//! image-aws tags temporary, and the AMIs of builds that never finished),
//! and with `--delete` deletes it.
//!
//! ```text
//! cargo run -p image-aws --example leftovers -- us-east-1 eu-west-1
//! cargo run -p image-aws --example leftovers -- --delete us-east-1 eu-west-1
//! ```
//!
//! Credentials and endpoint come from the standard AWS chain. Name the
//! build region and the copy regions: an AMI is recognised as partial
//! through its build's temporary resources, which live in the build region.
//! Exit status 1 when something could not be listed or deleted.

use std::process::ExitCode;

use image_aws::{cleanup, ClientOptions, Ec2Clients, Resource, WaitSettings};

#[tokio::main]
async fn main() -> ExitCode {
    let mut regions: Vec<String> = std::env::args().skip(1).collect();
    let delete = regions.iter().any(|a| a == "--delete");
    regions.retain(|a| a != "--delete");
    if regions.is_empty() {
        eprintln!("usage: leftovers [--delete] REGION...");
        return ExitCode::from(2);
    }

    let ec2 = Ec2Clients::from_env(&ClientOptions::default()).await;
    let found = match cleanup::find_leftovers(&ec2, &regions, None).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for l in &found {
        let build = l.build_name.as_deref().unwrap_or("?");
        let id = l.build_id.as_deref().unwrap_or("?");
        println!("{} (build {build}, id {id})", l.resource);
    }
    println!("{} leftover(s)", found.len());
    if !delete || found.is_empty() {
        return ExitCode::SUCCESS;
    }

    let resources: Vec<Resource> = found.into_iter().map(|l| l.resource).collect();
    let failures = cleanup::delete_leftovers(&ec2, &resources, &WaitSettings::default()).await;
    for f in &failures {
        eprintln!("error: {f}");
    }
    println!("deleted {}", resources.len() - failures.len());
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
