//! `image-cli provision`: runs an ansible step list (tasks or plays, roles,
//! handlers) on a host over SSH or on this machine, like
//! `ansible-playbook`, without Python on the target.
//!
//! ```text
//! image-cli provision (--host [user@]HOST[:PORT] --identity KEY | --local) [--become]
//!                     [-e k=v | -e @vars.yml | -e '{"json": 1}']... [--check] [--diff]
//!                     [--tags T,..] [--skip-tags T,..] [--start-at-task NAME]
//!                     [--roles-path DIR]... [--syntax-check] STEPS.yaml
//! ```
//!
//! Output: one line per task (ok / changed / skipping / failed, with the
//! loop item), diffs with `--diff`, then the recap
//! `ok=N changed=N unreachable=N failed=N skipped=N rescued=N ignored=N`.
//! Exit status: 0 success, 2 a task failed, the host was unreachable or the
//! step list is broken (every problem printed with `file:line:col`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use image_core::diag::{Diagnostic, Diagnostics};
use image_core::events::{Event, EventSink, Outcome};
use image_core::local::LocalTarget;
use image_core::ssh::{HostAddr, SshAuth, SshTarget};
use image_core::target::Target;
use image_provision::{parse, Options};
use serde_json::Value as Json;

use crate::exit::Exit;
use crate::report;

/// Shown after `provision --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (as ansible-playbook):
  0    every task succeeded
  2    a task failed, the host was unreachable, or the step list is broken";

/// Arguments of `provision`.
#[derive(Debug, ClapArgs)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct Args {
    /// Provision this host over SSH: [user@]HOST[:PORT] (user defaults to root).
    #[arg(
        long,
        value_name = "[USER@]HOST[:PORT]",
        conflicts_with = "local",
        required_unless_present_any = ["local", "syntax_check"]
    )]
    pub host: Option<String>,
    /// Private key for --host.
    #[arg(long, short = 'i', value_name = "KEY", requires = "host")]
    pub identity: Option<PathBuf>,
    /// Provision this machine instead of a remote host.
    #[arg(long)]
    pub local: bool,
    /// Run tasks through sudo unless a play or task says otherwise.
    #[arg(long = "become", short = 'b')]
    pub become_: bool,
    /// The user to become (default root).
    #[arg(long, value_name = "USER")]
    pub become_user: Option<String>,
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

/// Prints task lines as they finish.
/// With `--json`, every finished task (or loop item) carries its SSH
/// round trips (`round_trips`: commands, uploads and downloads) and its
/// time in microseconds (`elapsed_us`), both since the previous task event.
struct Printer {
    host: String,
    json: bool,
    trips: image_provision::round_trips::RoundTrips,
    seen: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<std::time::Instant>,
}

impl EventSink for Printer {
    fn emit(&self, event: &Event) {
        let mut out = std::io::stdout().lock();
        if self.json {
            use std::sync::atomic::Ordering;
            let now = self.trips.get();
            let before = self.seen.swap(now, Ordering::Relaxed);
            let us = match self.last.lock() {
                Ok(mut t) => {
                    let us = t.elapsed().as_micros();
                    *t = std::time::Instant::now();
                    us
                }
                Err(_) => 0,
            };
            let mut v = serde_json::to_value(event).unwrap_or_default();
            if let (Event::StepFinished { .. }, Json::Object(m)) = (event, &mut v) {
                m.insert("round_trips".into(), Json::from(now.saturating_sub(before)));
                m.insert(
                    "elapsed_us".into(),
                    Json::from(u64::try_from(us).unwrap_or(u64::MAX)),
                );
            }
            let _ = writeln!(out, "{v}");
            return;
        }
        match event {
            Event::StepStarted { .. } => {}
            Event::StepFinished {
                step,
                outcome,
                elapsed_ms,
                message,
                ..
            } => {
                let word = match outcome {
                    Outcome::Ok => "ok",
                    Outcome::Changed => "changed",
                    Outcome::Skipped => "skipping",
                    Outcome::Failed => "failed",
                };
                let (item, rest) = match message.strip_prefix("item=") {
                    Some(m) => match m.split_once(": ") {
                        Some((i, r)) => (format!(" (item={i})"), r.to_string()),
                        None => (format!(" (item={m})"), String::new()),
                    },
                    None => (String::new(), message.clone()),
                };
                let rest = if rest.is_empty() || (*outcome == Outcome::Skipped) {
                    String::new()
                } else {
                    format!(": {rest}")
                };
                let _ = writeln!(
                    out,
                    "{word}: [{}] {step}{item} ({elapsed_ms} ms){rest}",
                    self.host
                );
            }
            Event::Message { text, .. } => {
                let _ = writeln!(out, "{}", text.trim_end());
            }
        }
    }
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
    if let Some(h) = &args.host {
        let problem = match HostAddr::parse(h) {
            Err(e) => Some(e),
            Ok(_) if args.identity.is_none() => Some("--host needs --identity KEY".to_string()),
            Ok(_) => None,
        };
        if let Some(e) = problem {
            report::diagnostics(&Diagnostics::from(
                Diagnostic::error(None, e)
                    .with_help("write --host [USER@]HOST[:PORT] (port 1 to 65535) with --identity KEY, or use --local"),
            ));
            return Exit::BadInput;
        }
    }
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
        become_: args.become_,
        become_user: args.become_user.clone(),
        build: String::new(),
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(exit) => return exit,
    };
    let json = args.json;
    let outcome = rt.block_on(async {
        let target: Box<dyn Target> = match &args.host {
            None => Box::new(LocalTarget::new()),
            Some(h) => {
                let addr = HostAddr::parse(h)?;
                let key = args.identity.clone().ok_or("--host needs --identity KEY")?;
                let mut cfg = addr.ssh_config("root", SshAuth::key_file(key));
                cfg.retry_until = Duration::from_secs(30);
                Box::new(SshTarget::connect(cfg).await.map_err(|e| e.to_string())?)
            }
        };
        let target = image_provision::round_trips::Counting::new(target);
        let printer = Printer {
            host: target.name(),
            json,
            trips: target.counter(),
            seen: Default::default(),
            last: std::sync::Mutex::new(std::time::Instant::now()),
        };
        Ok::<_, String>(image_provision::run(&target, &steps, &opts, &printer).await)
    });
    drop(rt);
    match outcome {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"event": "recap", "host": report.host, "recap": report.recap})
                );
            } else {
                println!("\nRECAP {} : {}", report.host, report.recap);
            }
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
