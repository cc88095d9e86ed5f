//! Subcommands. Each lives in its own file with an `Args` struct (clap
//! derive) and a `run(&Args) -> Exit` function.
//!
//! To add one, say `build`:
//! 1. create `cmd/build.rs` with `pub struct Args` (`#[derive(clap::Args)]`,
//!    usually `#[command(flatten)] pub spec: spec_args::SpecArgs` to take the
//!    image definition and its `--var`/`--var-file`/`--only`/`--except`
//!    flags) and `pub fn run(args: &Args) -> Exit`;
//! 2. add `pub mod build;` below, a `Build(build::Args)` variant with a doc
//!    comment (it becomes the help text) to [`Command`], and its arm in
//!    [`run`].

pub mod build;
pub mod cleanup;
pub mod completions;
pub mod flag_checks;
pub mod host_args;
pub mod init;
pub mod inspect;
pub mod man;
pub mod manifest;
pub mod policy;
pub mod provision;
pub mod spec_args;
pub mod ssh_source_args;
pub mod test;
pub mod validate;
pub mod verify;

use clap::Subcommand;

use crate::exit::Exit;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an image definition and its variables; print what is wrong.
    #[command(after_help = crate::exit::EXIT_CODES_HELP)]
    Validate(validate::Args),
    /// Show an image definition's variables and builds.
    #[command(after_help = crate::exit::EXIT_CODES_HELP)]
    Inspect(inspect::Args),
    /// Check a host against a gossfile (goss validate / render).
    Verify(verify::Args),
    /// Run an ansible step list (tasks, plays, roles) on a host.
    Provision(provision::Args),
    /// Build AMIs: instance, provisioning, verification, image, copies.
    #[command(after_help = crate::exit::EXIT_CODES_HELP)]
    Build(build::Args),
    /// Find (and with --yes delete) what failed or interrupted builds left in AWS.
    Cleanup(cleanup::Args),
    /// Print the minimal IAM policy the selected builds need.
    Policy(policy::Args),
    /// Boot an instance from a built AMI and check it: verify files,
    /// commands, node conformance; then terminate it.
    #[command(after_help = crate::exit::EXIT_CODES_HELP)]
    Test(test::Args),
    /// Read a build manifest (the region -> AMI table of the last run).
    Manifest(manifest::Args),
    /// Write the built-in image definition and its files to a directory.
    #[command(after_help = crate::exit::EXIT_CODES_HELP)]
    Init(init::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the man page (roff), of image-cli or of one subcommand.
    Man(man::Args),
}

/// Runs `cmd`.
pub fn run(cmd: Command) -> Exit {
    match cmd {
        Command::Validate(args) => validate::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Provision(args) => provision::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Cleanup(args) => cleanup::run(&args),
        Command::Policy(args) => policy::run(&args),
        Command::Manifest(args) => manifest::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}

/// The async runtime of the commands that talk to hosts or AWS. Two worker
/// threads: the work is I/O-bound and blocking SSH calls run on tokio's
/// blocking pool.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // As the main thread's: templates and YAML from user files are
        // parsed and rendered on the workers too, and their nesting limits
        // (minijinja's, the YAML depth limit) are sized for that stack.
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::Failed
        })
}
