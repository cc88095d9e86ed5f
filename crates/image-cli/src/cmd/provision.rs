//! `image-cli provision`: runs an ansible step list (tasks or plays, roles,
//! handlers) on a host over SSH or on this machine, like
//! `ansible-playbook`, without Python on the target.
//!
//! ```text
//! image-cli provision (--host [user@]HOST[:PORT] --identity KEY | --local) [--become] [--become-user U]
//!                     [-e k=v | -e @vars.yml | -e '{"json": 1}']... [--check] [--diff]
//!                     [--tags T,..] [--skip-tags T,..] [--start-at-task NAME]
//!                     [--roles-path DIR]... [--syntax-check] STEPS.yaml
//! ```
//!
//! The host flags are [`HostArgs`], shared with `verify`; the output is
//! [`image_provision::print::TaskPrinter`]'s:
//! one line per task (ok / changed / skipping / failed, with the
//! loop item), diffs with `--diff`, then the recap
//! `ok=N changed=N unreachable=N failed=N skipped=N rescued=N ignored=N`.
//! Exit status: 0 success, 2 a task failed, the host was unreachable or the
//! step list is broken (every problem printed with `file:line:col`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args as ClapArgs;
use image_core::diag::{Diagnostic, Diagnostics};
use image_core::target::Target;
use image_provision::print::TaskPrinter;
use image_provision::{parse, Options};

use crate::cmd::host_args::HostArgs;
use crate::exit::Exit;
use crate::report;

/// Shown after `provision --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (as ansible-playbook):
  0    every task succeeded
  2    a task failed, the host was unreachable, or the step list is broken";

/// Arguments of `provision`.
#[derive(Debug, ClapArgs)]
#[command(
    after_help = EXIT_CODES_HELP,
    mut_arg("host", |a| a.required_unless_present_any(["local", "syntax_check"]))
)]
pub struct Args {
    #[command(flatten)]
    pub target: HostArgs,
    /// Extra variables (highest precedence): k=v, @FILE (YAML/JSON) or JSON; repeatable.
    #[arg(long = "extra-vars", short = 'e', value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Report what would change; change nothing.
    #[arg(long, short = 'C')]
    pub check: bool,
    /// Show what changed in files.
    #[arg(long, short = 'D')]
    pub diff: bool,
    /// Only run tasks with these tags (comma-separated; repeatable).
    #[arg(long, short = 't', value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with these tags (comma-separated; repeatable).
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Start at the task with this name.
    #[arg(long, value_name = "NAME")]
    pub start_at_task: Option<String>,
    /// More directories holding roles (colon-separated; repeatable).
    #[arg(long, value_name = "DIR", value_delimiter = ':')]
    pub roles_path: Vec<PathBuf>,
    /// Print one JSON event per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only read and check the step list (and list the warnings of files
    /// reached through `include_*`); run nothing.
    #[arg(long)]
    pub syntax_check: bool,
    /// The step list (a list of tasks or of plays).
    pub steps: PathBuf,
}

/// Runs `provision`.
pub fn run(args: &Args) -> Exit {
    let fail = || {
        let _ = std::io::stdout().flush();
        std::process::exit(2)
    };
    let extra = match image_provision::extra_vars::parse(&args.extra_vars) {
        Ok(m) => m,
        Err(d) => {
            report::diagnostics(&Diagnostics::from(d));
            return Exit::BadInput;
        }
    };
    let target = match args.target.target() {
        Ok(t) => t,
        Err(e) => {
            report::diagnostics(&Diagnostics::from(
                Diagnostic::error(None, e)
                    .with_help("write --host [USER@]HOST[:PORT] (port 1 to 65535) with --identity KEY, or use --local"),
            ));
            return Exit::BadInput;
        }
    };
    // Parse and check the whole tree before connecting anywhere.
    let steps = match parse::load(&args.steps, &args.roles_path) {
        Ok(s) => s,
        Err(d) => {
            report::diagnostics(&d);
            return Exit::BadInput;
        }
    };
    if args.syntax_check {
        for w in &steps.warnings {
            eprintln!("{w}");
        }
        println!("playbook: {}", args.steps.display());
        return Exit::Ok;
    }
    if !steps.warnings.is_empty() {
        eprintln!(
            "note: {} warning(s) about modules or parameters image-cli lacks, or files reached through include_*; \
             a task fails if a run reaches one (see `--syntax-check`)",
            steps.warnings.len()
        );
    }
    let opts = Options {
        extra_vars: extra,
        check: args.check,
        diff: args.diff,
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        start_at_task: args.start_at_task.clone(),
        become_: args.target.become_,
        become_user: args.target.become_user.clone(),
        build: String::new(),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    let json = args.json;
    let outcome = rt.block_on(async {
        let target = target.connect().await?;
        let target = image_provision::round_trips::Counting::new(target);
        let printer = if json {
            TaskPrinter::json(target.name())
        } else {
            TaskPrinter::text(target.name())
        }
        .with_round_trips(target.counter());
        let report = image_provision::run(&target, &steps, &opts, &printer).await;
        printer.recap(&report);
        Ok::<_, String>(report)
    });
    drop(rt);
    match outcome {
        Ok(report) => {
            if report.failed() {
                fail()
            } else {
                Exit::Ok
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            fail()
        }
    }
}
