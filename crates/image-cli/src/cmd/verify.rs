//! `image-cli verify`: goss's `validate` and `render` over a target.
//!
//! ```text
//! image-cli verify [--host [user@]HOST[:PORT] --identity KEY | --local] [--become [--become-user U]]
//!                  [--vars FILE]... [--vars-inline JSON]...
//!                  [--format documentation|rspecish|json|junit|nagios|prometheus|structured|tap|silent]
//!                  [--format-options perfdata,verbose,pretty,sort,exclude_raw]
//!                  [--retry-timeout DURATION --sleep DURATION] [--max-concurrent N] GOSSFILE
//! image-cli verify render [--vars FILE]... [--vars-inline JSON]... GOSSFILE
//! image-cli verify add [--host ... -i KEY [--become] | --local] [-g GOSSFILE]
//!                      [--exclude-attr ATTR]... [--timeout D] [--server DNS] TYPE NAME...
//! image-cli verify autoadd [--host ... -i KEY [--become] | --local] [-g GOSSFILE] NAME...
//! ```
//!
//! The host flags are [`HostArgs`], shared with `provision`. Everything but
//! flag parsing and printing lives in `image-verify`. Exit codes are
//! goss's: 0 passed, 1 a check failed (2 with `--format nagios`, 0 with
//! `structured`), 3 retries timed out, 78 bad spec (also: no tests).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};
use image_verify::options::parse_duration;
use image_verify::{output, suite, ExitCode as VerifyExit, OutputFormat, VerifyOptions};

use crate::cmd::host_args::HostArgs;
use crate::exit::Exit;
use crate::report;

/// Shown after `verify --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (as goss):
  0    every check passed
  1    a check failed (or the target could not be reached)
  2    a check failed, with --format nagios (CRITICAL); structured always exits 0
  3    checks still failed when --retry-timeout ran out
  78   bad gossfile, vars or options";

/// Arguments of `verify`.
#[derive(Debug, ClapArgs)]
#[command(args_conflicts_with_subcommands = true, after_help = EXIT_CODES_HELP)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `verify` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the gossfile rendered with its vars, all includes merged (goss render).
    Render(RenderArgs),
    /// Record resources of one type from the host's state into a gossfile (goss add).
    Add(AddArgs),
    /// Record every resource named NAME that exists on the host: file, group, package, port, process (and its ports), service, user (goss autoadd).
    Autoadd(AutoaddArgs),
}

/// The gossfile `add` / `autoadd` write.
#[derive(Debug, Clone, ClapArgs)]
pub struct RecordArgs {
    /// The gossfile to write (merged into when it exists).
    #[arg(long, short = 'g', value_name = "FILE", default_value = "goss.yaml")]
    pub gossfile: PathBuf,
    /// Do not record this attribute; repeatable.
    #[arg(long = "exclude-attr", value_name = "ATTR")]
    pub exclude_attr: Vec<String>,
}

/// Arguments of `verify add`.
#[derive(Debug, ClapArgs)]
pub struct AddArgs {
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// The timeout recorded (and used) for addr, command, dns, http, mount.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The DNS server for `dns` (IP[:PORT]).
    #[arg(long, value_name = "SERVER")]
    pub server: Option<String>,
    /// The resource type.
    #[arg(value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(image_verify::add::ADDABLE))]
    pub kind: String,
    /// What to record: paths, package names, `tcp:22`, command lines...
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `verify autoadd`.
#[derive(Debug, ClapArgs)]
pub struct AutoaddArgs {
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// Names to look for.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// Template variables.
#[derive(Debug, Clone, ClapArgs)]
pub struct VarsArgs {
    /// A JSON or YAML file of template variables (`.Vars`); repeatable, merged in order.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars: Vec<PathBuf>,
    /// Template variables as JSON (or YAML), merged over the --vars files; repeatable.
    #[arg(long = "vars-inline", value_name = "JSON")]
    pub vars_inline: Vec<String>,
}

/// Arguments of `verify render`.
#[derive(Debug, ClapArgs)]
pub struct RenderArgs {
    #[command(flatten)]
    pub vars: VarsArgs,
    /// Print only this file's template output (no YAML parsing, no includes).
    #[arg(long)]
    pub template_only: bool,
    /// The gossfile.
    pub gossfile: PathBuf,
}

/// Arguments of `verify GOSSFILE`.
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub vars: VarsArgs,
    /// Output format.
    #[arg(long, short = 'f', default_value = "rspecish", value_parser = parse_format)]
    pub format: OutputFormat,
    /// Options of the format: perfdata, verbose (nagios, prometheus), pretty (structured), sort, exclude_raw; repeatable or comma-separated.
    #[arg(long = "format-options", short = 'o', value_name = "OPTION")]
    pub format_options: Vec<String>,
    /// Retry failing checks until this much time has passed (e.g. 30s, 2m).
    #[arg(long, short = 'r', value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub retry_timeout: Duration,
    /// Time to sleep between retries.
    #[arg(long, short = 's', value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub sleep: Duration,
    /// Resource types (and commands) checked at once.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_concurrent: usize,
    /// The gossfile.
    pub gossfile: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<OutputFormat, String> {
    s.parse()
}

/// goss's exit codes.
fn exit(code: VerifyExit) -> Exit {
    match code {
        VerifyExit::Passed => Exit::Ok,
        VerifyExit::Failed => Exit::Failed,
        // nagios's CRITICAL is 2, the code of BadInput.
        VerifyExit::Critical => Exit::BadInput,
        VerifyExit::RetryTimeout => Exit::RetryTimeout,
        VerifyExit::BadSpec => Exit::BadGossfile,
    }
}

/// Runs `verify` or `verify render`.
pub fn run(args: &Args) -> Exit {
    match &args.action {
        Some(Action::Render(r)) => render(r),
        Some(Action::Add(a)) => add(&a.host, &a.record, Some(a), &a.names),
        Some(Action::Autoadd(a)) => add(&a.host, &a.record, None, &a.names),
        None => validate(&args.run),
    }
}

/// `add` (with its arguments) or `autoadd`: observe, merge into the
/// gossfile, print what was recorded.
fn add(host: &HostArgs, record: &RecordArgs, add: Option<&AddArgs>, names: &[String]) -> Exit {
    use image_verify::add as goss_add;
    let spec = match host.target() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let cfg = goss_add::AddConfig {
        become_: host.become_as(),
        timeout: add.and_then(|a| a.timeout),
        exclude: record.exclude_attr.clone(),
        dns_server: add.and_then(|a| a.server.clone()),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    let entries = rt.block_on(async {
        let target = spec.connect().await?;
        match add {
            Some(a) => goss_add::add(target.as_ref(), &cfg, &a.kind, names).await,
            None => goss_add::autoadd(target.as_ref(), &cfg, names).await,
        }
    });
    drop(rt);
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    if let Err(e) = goss_add::write(&record.gossfile, &entries) {
        eprintln!("error: {e}");
        return Exit::Failed;
    }
    print!("{}", goss_add::to_yaml(&entries));
    Exit::Ok
}

fn render(args: &RenderArgs) -> Exit {
    let opts = VerifyOptions {
        gossfile: args.gossfile.clone(),
        vars_files: args.vars.vars.clone(),
        vars_inline: args.vars.vars_inline.clone(),
        ..Default::default()
    };
    let data = match opts.template_data() {
        Ok(d) => d,
        Err(diags) => {
            report::diagnostics(&diags);
            return exit(VerifyExit::BadSpec);
        }
    };
    if args.template_only {
        return match suite::render_file(&args.gossfile, &data) {
            Ok(r) => {
                print!("{}", r.text);
                Exit::Ok
            }
            Err(diags) => {
                report::diagnostics(&diags);
                exit(VerifyExit::BadSpec)
            }
        };
    }
    match suite::load(&args.gossfile, &data) {
        Ok(s) => {
            report::diagnostics(&s.warnings);
            print!("{}", s.to_yaml());
            Exit::Ok
        }
        Err(diags) => {
            report::diagnostics(&diags);
            exit(VerifyExit::BadSpec)
        }
    }
}

fn options(args: &RunArgs) -> Result<VerifyOptions, String> {
    let gossfile = args
        .gossfile
        .clone()
        .ok_or("missing GOSSFILE (e.g. `image-cli verify goss.yaml`)")?;
    let target = args.host.target()?;
    Ok(VerifyOptions {
        gossfile,
        target,
        become_: args.host.become_,
        vars_files: args.vars.vars.clone(),
        vars_inline: args.vars.vars_inline.clone(),
        format: args.format,
        retry_timeout: args.retry_timeout,
        sleep: args.sleep,
        max_concurrent: args.max_concurrent.max(1),
    })
}

fn validate(args: &RunArgs) -> Exit {
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            let help = if e.starts_with("missing GOSSFILE") {
                "name the gossfile to check: image-cli verify [--local | --host …] goss.yaml"
            } else if e.contains("--identity") {
                "add --identity KEY (the private key for --host), or check this machine with --local"
            } else {
                "write --host [USER@]HOST[:PORT] (port 1 to 65535)"
            };
            eprintln!("error: {e}\n  help: {help}");
            return exit(VerifyExit::BadSpec);
        }
    };
    let format_options =
        match output::FormatOptions::parse(args.format_options.iter().map(String::as_str)) {
            Ok(o) => o,
            Err(e) => {
                eprintln!(
                    "error: {e}\n  help: give --format-options a comma-separated list of those"
                );
                return exit(VerifyExit::BadSpec);
            }
        };
    // Load (and report bad specs) before connecting anywhere.
    let suite = match opts.load() {
        Ok(s) => s,
        Err(diags) => {
            report::diagnostics(&diags);
            return exit(VerifyExit::BadSpec);
        }
    };
    report::diagnostics(&suite.warnings);
    if suite.resources.is_empty() {
        // goss: "found 0 tests", exit 78.
        eprintln!(
            "error: found 0 tests in {} (and its includes)\n  help: add resources to check (e.g. `file:` then `  /etc/hosts: {{exists: true}}`), or check the `skip:` and `gossfile:` entries",
            opts.gossfile.display()
        );
        return exit(VerifyExit::BadSpec);
    }
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    let run_options = image_verify::runner::RunOptions {
        become_: args.host.become_as(),
        ..opts.run_options()
    };
    let outcome = rt.block_on(async {
        let target = opts.target.connect().await?;
        Ok::<_, String>(image_verify::runner::run(&suite, target.as_ref(), &run_options).await)
    });
    drop(rt);
    match outcome {
        Ok(report) => {
            print!(
                "{}",
                output::render_with(&report, opts.format, &format_options)
            );
            exit(output::exit_code(&report, opts.format))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failed
        }
    }
}
