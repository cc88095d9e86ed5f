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
use image_core::ssh::{SshAuth, SshConfig, SshTarget};
use image_core::target::Target;
use image_provision::{parse, Options};
use serde_json::{Map, Value as Json};

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
struct Printer {
    host: String,
    json: bool,
}

impl EventSink for Printer {
    fn emit(&self, event: &Event) {
        let mut out = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(out, "{}", serde_json::to_string(event).unwrap_or_default());
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

fn extra_vars(items: &[String]) -> Result<Map<String, Json>, Diagnostic> {
    let mut m = Map::new();
    for it in items {
        if let Some(file) = it.strip_prefix('@') {
            let text = image_core::yaml::read_file(std::path::Path::new(file)).map_err(|e| {
                Diagnostic::error(None, format!("-e @{file}: {e}"))
                    .with_help("check the path of the variables file")
            })?;
            let doc = image_core::yaml::parse(file, &text)?;
            match doc.to_json() {
                Json::Object(o) => m.extend(o),
                Json::Null => {}
                _ => {
                    return Err(doc
                        .error(format!(
                            "-e @{file} must hold a mapping, found {}",
                            doc.kind()
                        ))
                        .with_help("write `name: value` lines"))
                }
            }
        } else if it.trim_start().starts_with('{') {
            match serde_json::from_str::<Json>(it) {
                Ok(Json::Object(o)) => m.extend(o),
                _ => {
                    return Err(
                        Diagnostic::error(None, format!("-e {it}: not a JSON object"))
                            .with_help(r#"quote the whole value: -e '{"name": "value"}'"#),
                    )
                }
            }
        } else {
            for word in it.split_whitespace() {
                let (k, v) = word.split_once('=').ok_or_else(|| {
                    Diagnostic::error(
                        None,
                        format!("-e {word}: expected key=value, @FILE or JSON"),
                    )
                    .with_help("e.g. -e version=1.30, -e @vars.yml or -e '{\"version\": \"1.30\"}'")
                })?;
                m.insert(k.to_string(), Json::String(v.to_string()));
            }
        }
    }
    Ok(m)
}

fn parse_host(s: &str) -> Result<(String, String, u16), String> {
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (u.to_string(), r),
        _ => ("root".to_string(), s),
    };
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((
            user,
            h.to_string(),
            p.parse().map_err(|_| format!("bad port in `{s}`"))?,
        )),
        _ => Ok((user, rest.trim_matches(['[', ']']).to_string(), 22)),
    }
}

/// Runs `provision`.
pub fn run(args: &Args) -> Exit {
    let fail = || {
        let _ = std::io::stdout().flush();
        std::process::exit(2)
    };
    let extra = match extra_vars(&args.extra_vars) {
        Ok(m) => m,
        Err(d) => {
            report::diagnostics(&Diagnostics::from(d));
            return Exit::BadInput;
        }
    };
    if let Some(h) = &args.host {
        let problem = match parse_host(h) {
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
                let (user, host, port) = parse_host(h)?;
                let key = args.identity.clone().ok_or("--host needs --identity KEY")?;
                let mut cfg = SshConfig::new(host, port, user, SshAuth::key_file(key));
                cfg.retry_until = Duration::from_secs(30);
                Box::new(SshTarget::connect(cfg).await.map_err(|e| e.to_string())?)
            }
        };
        let printer = Printer {
            host: target.name(),
            json,
        };
        Ok::<_, String>(image_provision::run(target.as_ref(), &steps, &opts, &printer).await)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_vars_forms() {
        let m = extra_vars(&["a=1 b=x".into(), r#"{"c": [1]}"#.into()]).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x");
        assert_eq!(m["c"][0], 1);
        assert_eq!(
            parse_host("u@h:2222").unwrap(),
            ("u".into(), "h".into(), 2222)
        );
        assert_eq!(parse_host("h").unwrap(), ("root".into(), "h".into(), 22));
    }
}
