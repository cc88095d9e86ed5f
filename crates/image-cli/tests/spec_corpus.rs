//! The broken-definition corpus: every `tests/corpus/spec/<case>.yaml` that
//! has a `<case>.expected` is run as `image-cli validate <case>.yaml` (plus
//! `--var-file <case>.vars.yaml` / `<case>.vars.json` when present, plus the
//! arguments in `<case>.args`, one per line) from the corpus directory, and
//! must exit 2 with exactly the expected stderr and nothing on stdout.
//!
//! The test lives in the binary's package because only there does Cargo
//! provide `CARGO_BIN_EXE_image-cli`. To (re)write the expected files after
//! an intended change of messages: `IMAGE_CLI_BLESS=1 cargo test -p
//! image-cli --test spec_corpus`, then review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/spec")
}

/// The broken cases: `*.yaml` that are neither var files nor `good-*`.
fn cases() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(corpus())
        .expect("corpus directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && !n.ends_with(".vars.yaml") && !n.starts_with("good-"))
        .map(|n| n.trim_end_matches(".yaml").to_string())
        .collect();
    out.sort();
    out
}

fn args(case: &str) -> Vec<String> {
    let dir = corpus();
    let mut args = vec!["validate".to_string(), format!("{case}.yaml")];
    for ext in ["vars.yaml", "vars.json"] {
        let f = format!("{case}.{ext}");
        if dir.join(&f).exists() {
            args.extend(["--var-file".to_string(), f]);
        }
    }
    if let Ok(extra) = std::fs::read_to_string(dir.join(format!("{case}.args"))) {
        args.extend(extra.lines().filter(|l| !l.is_empty()).map(String::from));
    }
    args
}

#[test]
fn broken_definitions_report_exactly_the_expected_errors() {
    let bless = std::env::var_os("IMAGE_CLI_BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 22, "only {} broken cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let args = args(case);
        let out = Command::new(env!("CARGO_BIN_EXE_image-cli"))
            .args(&args)
            .current_dir(corpus())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env_remove("RUST_LOG")
            .output()
            .expect("run image-cli");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected_path = corpus().join(format!("{case}.expected"));
        if bless {
            std::fs::write(&expected_path, stderr.as_bytes()).expect("write expected");
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| format!("<missing {case}.expected>"));
        let code = out.status.code();
        if code != Some(2) || stderr != expected || !out.stdout.is_empty() {
            failures.push(format!(
                "== {case}: image-cli {}\nexit: {code:?} (want 2)\nstdout: {}\n-- expected stderr:\n{expected}-- actual stderr:\n{stderr}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
