//! The bad-input corpus: every case under `tests/corpus/bad/<kind>/` is one
//! broken input — a definition, a step list, a goss file or a command line —
//! run through `image-cli` from its directory, which must refuse it fast,
//! with the expected exit code, the expected `file:line:col: error: …` line
//! and the `help:` line right after it, and without a panic.
//!
//! A case is a file whose first lines are `# key: value` headers (YAML
//! comments, so the file stays what it tests):
//!
//! - `# args:` the command line, `{file}` standing for the case file
//!   (default: `validate {file}` for `definition/`, `provision
//!   --syntax-check {file}` for `steps/`, `verify {file}` for `goss/`);
//! - `# exit:` the exit code (default 2; 78, goss's, for `goss/`);
//! - `# error:` a line stderr must have (it starts that line), then
//!   `# help:` the text of the `  help: ` line that must follow it. Several
//!   pairs may be given.
//!
//! `error` lines name `file:line:col` except in `flags/` (bad flags belong
//! to no file). Files in subdirectories (`files/`, `roles/`) are what the
//! cases refer to, not cases. `definition/` holds the `.yaml` cases,
//! `flags/` `.case` files with headers only.
//!
//! To (re)write the `error`/`help` headers from what image-cli prints now:
//! `HARDENING_CORPUS_BLESS=1 cargo nextest run -p tests -E
//! 'binary(hardening_corpus)'`, then review the diff.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cli_support::{image_cli, workspace};

/// How long one case may take (debug build, two cores shared with other
/// tests; a case takes well under a second alone).
const CASE_LIMIT: Duration = Duration::from_secs(5);

/// The kinds of input, with their default command line and exit code.
const KINDS: &[(&str, &str, i32)] = &[
    ("definition", "validate {file}", 2),
    ("steps", "provision --syntax-check {file}", 2),
    ("goss", "verify {file}", 78),
    ("flags", "", 2),
];

struct Case {
    path: PathBuf,
    kind: &'static str,
    args: Vec<String>,
    exit: i32,
    expect: Vec<(String, String)>,
}

fn corpus() -> PathBuf {
    workspace().join("tests/corpus/bad")
}

/// The header keys.
const KEYS: &[&str] = &["args", "exit", "error", "help"];

/// The `# key: value` lines at the top of a case (a BOM skipped).
fn header(text: &str) -> Vec<(String, String)> {
    text.trim_start_matches('\u{feff}')
        .lines()
        .map_while(header_line)
        .collect()
}

fn header_line(line: &str) -> Option<(String, String)> {
    let (k, v) = line.strip_prefix("# ")?.split_once(':')?;
    KEYS.contains(&k)
        .then(|| (k.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()))
}

fn load(kind: &'static str, default_args: &str, default_exit: i32) -> Vec<Case> {
    let dir = corpus().join(kind);
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut args = default_args.to_string();
        let mut exit = default_exit;
        let mut expect: Vec<(String, String)> = Vec::new();
        for (k, v) in header(&text) {
            match k.as_str() {
                "args" => args = v,
                "exit" => exit = v.parse().unwrap_or_else(|_| panic!("{name}: bad exit")),
                "error" => expect.push((v, String::new())),
                "help" => match expect.last_mut() {
                    Some(last) if last.1.is_empty() => last.1 = v,
                    _ => panic!("{name}: `help` without `error` before it"),
                },
                other => panic!("{name}: unknown header `{other}`"),
            }
        }
        let args = args
            .split_whitespace()
            .map(|a| a.replace("{file}", &name))
            .collect();
        out.push(Case {
            path,
            kind,
            args,
            exit,
            expect,
        });
    }
    out
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

fn run(case: &Case) -> Outcome {
    let dir = case.path.parent().unwrap();
    let started = Instant::now();
    let out = Command::new(image_cli())
        .current_dir(dir)
        .args(&case.args)
        .env_remove("RUST_LOG")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("running image-cli");
    // Files the definition names are reported by absolute path: the case
    // headers name them relative to the case's directory.
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", dir.display()), "");
    Outcome {
        code: out.status.code(),
        stderr,
        took: started.elapsed(),
    }
}

/// `file:line:col: error: ` at the start of `line`.
fn has_position(line: &str) -> bool {
    let Some((head, _)) = line.split_once(": error: ") else {
        return false;
    };
    let mut parts = head.rsplitn(3, ':');
    let col = parts.next().unwrap_or_default();
    let ln = parts.next().unwrap_or_default();
    let file = parts.next().unwrap_or_default();
    !file.is_empty()
        && !col.is_empty()
        && col.bytes().all(|b| b.is_ascii_digit())
        && !ln.is_empty()
        && ln.bytes().all(|b| b.is_ascii_digit())
}

/// The problems of one case's outcome (empty: it passed).
fn check(case: &Case, o: &Outcome) -> Vec<String> {
    let mut bad = Vec::new();
    if o.code != Some(case.exit) {
        bad.push(format!("exit {:?}, want {}", o.code, case.exit));
    }
    if o.stderr.contains("panicked") {
        bad.push("panicked".into());
    }
    if o.took > CASE_LIMIT {
        bad.push(format!("took {:?} (limit {CASE_LIMIT:?})", o.took));
    }
    if case.expect.is_empty() {
        bad.push("no `# error:` header".into());
    }
    let lines: Vec<&str> = o.stderr.lines().collect();
    for (error, help) in &case.expect {
        if case.kind != "flags" && !has_position(error) {
            bad.push(format!("expected error has no file:line:col: {error}"));
        }
        if help.is_empty() {
            bad.push(format!("no `# help:` after `# error: {error}`"));
        }
        match lines.iter().position(|l| l.starts_with(error.as_str())) {
            None => bad.push(format!("no stderr line starts with `{error}`")),
            Some(i) => {
                let next = lines.get(i + 1).copied().unwrap_or_default();
                if !next.starts_with(&format!("  help: {help}")) {
                    bad.push(format!("after `{error}`: `{next}`, want `  help: {help}`"));
                }
            }
        }
    }
    bad
}

/// Rewrites the first `error`/`help` headers of `case` in place (same
/// number of lines, so positions do not move) from `o`: the first error
/// line and the help after it.
fn bless(case: &Case, o: &Outcome) {
    let text = std::fs::read_to_string(&case.path).unwrap();
    let lines: Vec<&str> = o.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(": error: ") || l.starts_with("error: "));
    let error = at.map(|i| lines[i]).unwrap_or_default();
    let help = at
        .and_then(|i| lines.get(i + 1))
        .and_then(|l| l.strip_prefix("  help: "))
        .unwrap_or_default();
    let mut out = String::new();
    let (mut in_head, mut done_e, mut done_h) = (true, false, false);
    for l in text.split_inclusive('\n') {
        let key = header_line(l.trim_start_matches('\u{feff}').trim_end()).map(|(k, _)| k);
        in_head &= key.is_some();
        let bom = if l.starts_with('\u{feff}') {
            "\u{feff}"
        } else {
            ""
        };
        match key.as_deref() {
            Some("error") if in_head && !done_e => {
                done_e = true;
                out.push_str(&format!("{bom}# error: {error}\n"));
            }
            Some("help") if in_head && !done_h => {
                done_h = true;
                out.push_str(&format!("{bom}# help: {help}\n"));
            }
            _ => out.push_str(l),
        }
    }
    std::fs::write(&case.path, out).unwrap();
}

#[test]
fn bad_input_is_refused_with_position_and_help() {
    let bless_mode = std::env::var_os("HARDENING_CORPUS_BLESS").is_some();
    let mut cases = Vec::new();
    for (kind, args, exit) in KINDS {
        cases.extend(load(kind, args, *exit));
    }
    let count = |k: &str| cases.iter().filter(|c| c.kind == k).count();
    let summary: Vec<String> = KINDS
        .iter()
        .map(|(k, ..)| format!("{k}: {}", count(k)))
        .collect();
    eprintln!("{} cases ({})", cases.len(), summary.join(", "));
    // Two workers: the machine has two cores.
    let results: Vec<(usize, Outcome)> = std::thread::scope(|s| {
        let chunks: Vec<Vec<usize>> = (0..2)
            .map(|w| (0..cases.len()).filter(|i| i % 2 == w).collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|idx| {
                let cases = &cases;
                s.spawn(move || {
                    idx.into_iter()
                        .map(|i| (i, run(&cases[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for (i, o) in &results {
        let case = &cases[*i];
        slowest = slowest.max(o.took);
        if bless_mode {
            bless(case, o);
            continue;
        }
        let bad = check(case, o);
        if !bad.is_empty() {
            failures.push(format!(
                "== {} (image-cli {}):\n  {}\n-- stderr:\n{}",
                rel(&case.path),
                case.args.join(" "),
                bad.join("\n  "),
                o.stderr
            ));
        }
    }
    eprintln!("slowest case: {slowest:?}");
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    for (k, min) in [
        ("definition", 40),
        ("steps", 50),
        ("goss", 40),
        ("flags", 25),
    ] {
        assert!(count(k) >= min, "only {} {k} cases", count(k));
    }
    assert!(cases.len() >= 200, "only {} cases", cases.len());
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace())
        .unwrap_or(p)
        .display()
        .to_string()
}
