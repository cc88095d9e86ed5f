//! goss files run unmodified, through the `image-cli verify` binary on this
//! machine (`--local`): the semantics image-builder's own goss files rely on
//! (`tests/fixtures/verify/goss-compat`) and goss's output formats and exit
//! codes.
//!
//! - top-level keys that are not resource types hold YAML anchors and are
//!   ignored; merge keys bring their attributes into resources;
//! - RE2 regexes (`\Q…\E`, POSIX classes), and RE2's refusals with
//!   file:line and exit 78;
//! - `timeout: 0` is goss's default, `stdout: []` checks nothing (warned);
//! - includes by glob and by `file:`, a skipped include is never read;
//! - vars files deep-merged (an empty later value does not replace), inline
//!   vars over them; `define` / `template`;
//! - `--format nagios` (exit 2 on failure, `--format-options perfdata`),
//!   `prometheus`, `structured` (exit 0 on failure), `found 0 tests` (78).

mod cli_support;

use std::path::PathBuf;
use std::process::{Command, Output};

fn dir() -> PathBuf {
    cli_support::fixture("verify/goss-compat")
}

fn bash_version() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "bash"])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `image-cli verify --local` with the fixture's vars and `extra` args.
fn verify(gossfile: &str, shell_version: &str, extra: &[&str]) -> Output {
    let d = dir();
    let inline = format!(r#"{{"shell_version": "{shell_version}"}}"#);
    Command::new(cli_support::image_cli())
        .arg("verify")
        .arg("--local")
        .arg("--vars")
        .arg(d.join("vars.yaml"))
        .arg("--vars")
        .arg(d.join("vars-override.yaml"))
        .args(["--vars-inline", &inline])
        .args(extra)
        .arg(d.join(gossfile))
        .output()
        .expect("running image-cli")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn image_builder_style_goss_file_passes_unmodified() {
    let out = verify("goss.yaml", &bash_version(), &["--format", "documentation"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "Package: bash: version: matches expectation:",
        "File: /etc/passwd: exists: matches expectation: true",
        "File: /etc/group: filetype: matches expectation: \"file\"",
        "Command: bash -c 'echo a.b*c': stdout: matches expectation:",
        "Command: echo hello: stderr: matches expectation: \"\"",
        "KernelParam: kernel.ostype: value: matches expectation: \"Linux\"",
        "User: superuser: root: uid: matches expectation: 0",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    // `stdout: []` asserts nothing: no check, and goss's warning.
    assert!(!stdout.contains("echo hello: stdout"), "{stdout}");
    assert!(
        stderr.contains("goss.yaml:36:5: warning: echo hello: command.stdout is an empty list"),
        "{stderr}"
    );
    // The anchor holder is silent; the skipped include was never read
    // (never-read.yaml does not exist).
    assert!(!stderr.contains("shell_version"), "{stderr}");
    assert!(!stderr.contains("never-read"), "{stderr}");
    assert!(
        stdout.contains("Count: 13, Failed: 0, Skipped: 0"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_version_fails_through_the_quoted_regex() {
    // `\Q1.0+x\E` is a literal: `+` is not a quantifier, `.` no wildcard.
    let out = verify("goss.yaml", "5x2+b", &["--format", "nagios"]);
    let stdout = text(&out.stdout);
    // The second alternative (`^[[:digit:]]+\.`) still passes for bash.
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let out = verify("goss.yaml", "5x2+b", &["--format", "tap"]);
    assert!(
        text(&out.stdout).starts_with("1..13\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn nagios_prometheus_structured_and_exit_codes() {
    let d = dir();
    let failing = d.join("failing.yaml");
    std::fs::write(
        &failing,
        "command:\n  echo one:\n    exit-status: 0\n    stdout: [two]\n",
    )
    .unwrap();
    let out = verify(
        "failing.yaml",
        "",
        &["--format", "nagios", "--format-options", "perfdata,verbose"],
    );
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "nagios CRITICAL: {s}");
    assert!(
        s.starts_with("GOSS CRITICAL - Count: 2, Failed: 1, Skipped: 0, Duration: "),
        "{s}"
    );
    assert!(s.contains("|total=2 failed=1 skipped=0 duration="), "{s}");
    assert!(
        s.contains("\nFail 1 - Command: echo one: stdout: Expected"),
        "{s}"
    );

    let out = verify("failing.yaml", "", &["--format", "structured"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "goss's structured output exits 0"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("structured JSON");
    assert_eq!(v["summary"]["failed-count"], 1);
    assert_eq!(
        v["summary-line"]
            .as_str()
            .map(|s| s.starts_with("Count: 2, Failed: 1")),
        Some(true)
    );

    let out = verify("failing.yaml", "", &["--format", "prometheus"]);
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains("goss_tests_outcomes_total{outcome=\"fail\",type=\"command\"} 1\n"),
        "{s}"
    );
    assert!(
        s.contains("goss_tests_run_outcomes_total{outcome=\"fail\"} 1\n"),
        "{s}"
    );

    let out = verify(
        "failing.yaml",
        "",
        &["--format", "json", "--format-options", "colour"],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("unknown format option `colour`"));
    let _ = std::fs::remove_file(&failing);
}

#[test]
fn refusals_and_goss_leniency() {
    // RE2 refuses look-ahead: a load error naming the line, exit 78.
    let out = verify("re2-refused.yaml", "", &[]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{e}");
    assert!(
        e.contains("re2-refused.yaml:5:9: error:") && e.contains("look-around"),
        "{e}"
    );
    // Only anchors, no resource: goss's "found 0 tests", exit 78.
    let out = verify("empty.yaml", "", &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("found 0 tests"),
        "{}",
        text(&out.stderr)
    );
    // goss ignores an unknown type and unknown attributes: warnings, and
    // the rest runs.
    let out = verify("not-a-resource-type.yaml", "", &["--format", "silent"]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(
        e.contains("not-a-resource-type.yaml:4:1: warning: `packages` is not a resource type; it is ignored"),
        "{e}"
    );
    let out = verify("unknown-attribute.yaml", "", &["--format", "silent"]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(
        e.contains("unknown-attribute.yaml:5:5: warning: unknown attribute `hom`"),
        "{e}"
    );
    assert!(e.contains("did you mean `home`?"), "{e}");
}
