//! `image-cli`: bakes Kubernetes node AMIs (packer amazon-ebs + ansible +
//! goss, in one binary).
//!
//! This file only parses the command line and dispatches to a subcommand in
//! [`cmd`]; everything an embedder would need (loading and resolving image
//! definitions, building, verifying) lives in the library crates.

mod cmd;
mod exit;
mod logging;
mod report;
mod usage;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// Bakes Kubernetes node AMIs from an image definition.
// `--version`: the package version and the git commit (build.rs).
#[derive(Debug, Parser)]
#[command(name = "image-cli", version = env!("IMAGE_CLI_VERSION"), after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    /// More logging on stderr: -v info, -vv debug, -vvv trace (default: warnings).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    // args_os: a file name that is not UTF-8 is an error of clap's, not a panic.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let words: Vec<String> = args
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            return usage::report(e, &Cli::command(), &words).into();
        }
    };
    logging::init(cli.verbose);
    cmd::run(cli.command).into()
}
