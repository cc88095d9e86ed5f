//! Builds an AMI from Rust with a provisioning hook of its own: once the
//! instance answers over SSH, the hook runs an inline step list
//! (image-provision), then an inline goss check (image-verify); if either
//! fails there is no AMI and everything the build made is deleted. Every
//! event is printed as it comes.
//!
//! The build is an [`image_aws::BuildRequest`] read from a JSON file (its
//! fields are documented on the struct, the settings' on
//! [`image_aws::BuildSettings`], whose keys are the definition's and sit
//! beside the request's own; the ones left out take their defaults). Credentials and endpoint come from the standard AWS chain
//! (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, ...).
//!
//! ```text
//! cat > request.json <<'EOF'
//! {"name": "node", "region": "us-east-1", "instance_type": "t3.small",
//!  "source_ami": {"filter": {"owners": ["099720109477"],
//!    "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"}},
//!  "ami_name": "example-node-1"}
//! EOF
//! cargo run -p image-cli --example build_ami -- request.json
//! ```
//!
//! Ctrl-C cancels the build and deletes what it created. Exit status 0: the
//! AMIs are printed as `region: ami-…`; 1: the error (and what was left in
//! AWS with `"on_error": "abort"`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use image_aws::{build, BuildRequest, CancelToken, ClientOptions, Ec2Clients, FnHook, HookError};
use image_core::events::{Event, EventSink};
use image_core::target::{Become, Target};
use image_verify::runner::RunOptions;
use image_verify::template::TemplateData;

/// What the image gets: ansible tasks, run as root.
const STEPS: &str = r#"
- name: write the release file
  copy:
    dest: /etc/example-release
    content: "built by the build_ami example\n"
    mode: "0644"
"#;

/// What the image must pass before it is imaged: a gossfile.
const CHECK: &str = r#"
file:
  /etc/example-release:
    exists: true
    mode: "0644"
    contents: ["built by the build_ami example"]
"#;

/// Prints each event on stdout as it comes.
struct Print;

impl EventSink for Print {
    fn emit(&self, event: &Event) {
        match event {
            Event::StepStarted { build, step } => println!("[{build}] {step} ..."),
            Event::StepFinished {
                build,
                step,
                outcome,
                elapsed_ms,
                message,
            } => println!("[{build}] {step}: {outcome:?} ({elapsed_ms} ms) {message}"),
            Event::Message { build, text } => println!("[{build}] {text}"),
        }
    }
}

/// Provisions, then checks, the instance behind `target`.
async fn provision(
    build: String,
    target: Arc<dyn Target>,
    steps: Arc<image_provision::Steps>,
    check: Arc<image_verify::Suite>,
) -> Result<(), HookError> {
    let opts = image_provision::Options {
        become_: true,
        build: build.clone(),
        ..Default::default()
    };
    let report = image_provision::run(target.as_ref(), &steps, &opts, &Print).await;
    if report.failed() {
        return Err(HookError::msg(format!(
            "provisioning failed: {}",
            report.recap
        )));
    }
    let become_root = RunOptions {
        become_: Some(Become::default()),
        ..Default::default()
    };
    let checked = image_verify::runner::run(&check, target.as_ref(), &become_root).await;
    Print.emit(&Event::Message {
        build,
        text: format!("goss: {}", checked.count_line()),
    });
    if !checked.passed() {
        let failed: Vec<String> = checked
            .results
            .iter()
            .filter(|r| !r.successful() && !r.skipped())
            .map(|r| r.summary_line())
            .collect();
        return Err(HookError::msg(format!(
            "checks failed: {}",
            failed.join("; ")
        )));
    }
    Ok(())
}

async fn run(request_file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let req: BuildRequest = serde_json::from_str(&std::fs::read_to_string(request_file)?)?;
    // Both are parsed before anything is created in AWS.
    let here = Path::new(".");
    let steps = Arc::new(image_provision::parse::parse_str(
        "steps.yaml",
        STEPS,
        here,
        &[],
    )?);
    let check = Arc::new(image_verify::suite::load_str(
        "goss.yaml",
        CHECK,
        here,
        &TemplateData::new(serde_json::json!({})),
    )?);
    let hook = FnHook(move |build: String, target: Arc<dyn Target>| {
        provision(build, target, steps.clone(), check.clone())
    });

    let cancel = CancelToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });

    let ec2 = Ec2Clients::from_env(&ClientOptions::default()).await;
    let res = build(&ec2, &req, &hook, &Print, cancel).await?;
    for (region, ami) in &res.amis {
        println!("{region}: {ami}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(request_file) = std::env::args().nth(1) else {
        eprintln!("usage: build_ami REQUEST.json");
        return ExitCode::from(2);
    };
    match run(&request_file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
