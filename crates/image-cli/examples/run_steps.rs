//! Runs a step list (ansible tasks or playbook) and then a gossfile against
//! any `Target`: this machine, or a host over SSH. The same two calls run
//! inside an image build's provisioning hook (see `build_ami.rs`).
//!
//! ```text
//! cargo run -p image-cli --example run_steps -- steps.yaml goss.yaml
//! cargo run -p image-cli --example run_steps -- steps.yaml goss.yaml builder@10.0.0.7:22 ~/.ssh/id_ed25519
//! ```
//!
//! Each task's result is printed as it finishes, then the recap and the
//! checks. Exit status 0: every task ran and every check passed; 1: a task
//! or a check failed; 2: bad arguments or files.

use std::path::Path;
use std::process::ExitCode;

use image_core::events::{Event, EventSink};
use image_core::target_spec::TargetSpec;
use image_verify::output::{self, OutputFormat};
use image_verify::VerifyOptions;

/// Prints each finished task.
struct Print;

impl EventSink for Print {
    fn emit(&self, event: &Event) {
        if let Event::StepFinished {
            step,
            outcome,
            message,
            ..
        } = event
        {
            println!("{outcome:?}: {step} {message}");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [steps, goss, rest @ ..] = args.as_slice() else {
        eprintln!("usage: run_steps STEPS.yaml GOSS.yaml [[USER@]HOST[:PORT] KEY_FILE]");
        return ExitCode::from(2);
    };
    // Everything is read and checked before connecting anywhere.
    let steps = match image_provision::parse::load(Path::new(steps), &[]) {
        Ok(s) => s,
        Err(diags) => {
            eprint!("{diags}");
            return ExitCode::from(2);
        }
    };
    let verify = VerifyOptions {
        gossfile: goss.into(),
        ..Default::default()
    };
    let suite = match image_verify::load(&verify).await {
        Ok(s) => s,
        Err(diags) => {
            eprint!("{diags}");
            return ExitCode::from(2);
        }
    };
    // This machine, or `[user@]host[:port]` over SSH with the key file.
    let spec = TargetSpec::from_flags(
        rest.first().map(String::as_str),
        rest.get(1).map(Into::into),
    );
    let target = match async { spec?.connect().await }.await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    let report = image_provision::run(target.as_ref(), &steps, &Default::default(), &Print).await;
    println!("RECAP {}: {}", report.host, report.recap);
    if report.failed() {
        return ExitCode::FAILURE;
    }
    let checked = image_verify::runner::run(&suite, target.as_ref(), &verify.run_options()).await;
    print!("{}", output::render(&checked, OutputFormat::Documentation));
    if checked.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
