//! The image-builder style suite of `tests/fixtures/verify/image-builder`
//! (an entry gossfile including command, files, kernel-params, service and
//! package files, vars nested OS -> provider with YAML anchors, rendered
//! with `--vars-inline`), every output format, and broken gossfiles
//! (file:line, exit code 78). Runs on this machine (`PROVIDER=local`); the
//! same suite runs on a booted target in `verify_ssh.rs`.

use std::path::PathBuf;

use image_core::local::LocalTarget;
use image_verify::report::ExitCode;
use image_verify::{output, OutputFormat, VerifyOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/verify")
}

fn image_builder(provider: &str) -> VerifyOptions {
    let dir = fixtures().join("image-builder");
    VerifyOptions {
        gossfile: dir.join("goss.yaml"),
        vars_files: vec![dir.join("goss-vars.yaml")],
        vars_inline: vec![format!(
            r#"{{"OS": "debian", "ARCH": "amd64", "PROVIDER": "{provider}", "kubernetes_version": "1.30.2", "containerd_version": "1.7.13"}}"#
        )],
        ..Default::default()
    }
}

#[test]
fn image_builder_suite_renders_with_nested_vars() {
    let suite = image_builder("local")
        .load()
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(suite.warnings.is_empty(), "{}", suite.warnings);
    assert_eq!(suite.files.len(), 6);
    let ids: Vec<String> = suite
        .resources
        .iter()
        .map(|r| format!("{}:{}", r.kind.key(), r.id))
        .collect();
    for want in [
        "package:bash",
        "package:coreutils",
        "package:dpkg",
        "package:no-such-package-amd64",
        "file:/etc/passwd",
        "file:/etc/os-release",
        "kernel-param:kernel.ostype",
        "command:uname -s",
        "command:dpkg --print-architecture",
        "matching:kubernetes version is supported",
    ] {
        assert!(
            ids.contains(&want.to_string()),
            "{want} missing from {ids:?}"
        );
    }
    // `range $name, $vers := index .Vars .Vars.OS .Vars.PROVIDER "package"`
    // with the anchor merged in: versions become semver constraints.
    let bash = suite.resources.iter().find(|r| r.id == "bash").unwrap();
    assert_eq!(
        bash.checks[1].matcher.to_json(),
        serde_json::json!({"semver-constraint": ">=5.0"})
    );
    let yaml = suite.to_yaml();
    assert!(yaml.contains("title: architecture is AMD64"), "{yaml}");
    // The other provider renders other resources from the same files.
    let nspawn = image_builder("nspawn").load().unwrap();
    assert!(nspawn
        .resources
        .iter()
        .any(|r| r.kind.key() == "service" && r.id == "ssh"));
}

#[tokio::test]
async fn image_builder_suite_passes_here_in_every_format() {
    let opts = image_builder("local");
    let report = image_verify::verify(&opts, &LocalTarget::new())
        .await
        .unwrap();
    assert!(
        report.passed(),
        "{}",
        output::render(&report, OutputFormat::Documentation)
    );
    assert!(report.test_count() >= 25);
    assert_eq!(report.exit_code(), ExitCode::Passed);

    let json: serde_json::Value =
        serde_json::from_str(&output::render(&report, OutputFormat::Json)).unwrap();
    assert_eq!(json["summary"]["failed-count"], 0);
    assert_eq!(json["summary"]["test-count"], report.test_count());
    let first = &json["results"][0];
    for field in [
        "resource-type",
        "resource-id",
        "property",
        "expected",
        "found",
        "successful",
        "duration",
        "summary-line",
    ] {
        assert!(
            first.get(field).is_some(),
            "json result lacks {field}: {first}"
        );
    }

    let tap = output::render(&report, OutputFormat::Tap);
    let mut lines = tap.lines();
    assert_eq!(
        lines.next(),
        Some(format!("1..{}", report.test_count()).as_str())
    );
    for (i, l) in lines.enumerate() {
        assert!(l.starts_with(&format!("ok {} - ", i + 1)), "{l}");
    }

    let junit = output::render(&report, OutputFormat::Junit);
    assert!(junit.starts_with("<?xml"));
    assert_eq!(junit.matches("<testcase ").count(), report.test_count());
    assert_eq!(junit.matches("</testcase>").count(), report.test_count());
    assert!(!junit.contains("<failure"));

    let doc = output::render(&report, OutputFormat::Documentation);
    assert!(doc.contains(&format!(
        "Count: {}, Failed: 0, Skipped: 0",
        report.test_count()
    )));
    assert!(output::render(&report, OutputFormat::Rspecish)
        .starts_with(&".".repeat(report.test_count())));
}

#[tokio::test]
async fn a_wrong_var_fails_the_suite() {
    let mut opts = image_builder("local");
    opts.vars_inline
        .push(r#"{"ARCH": "arm64", "kubernetes_version": "1.27.0"}"#.into());
    let report = image_verify::verify(&opts, &LocalTarget::new())
        .await
        .unwrap();
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.successful())
        .map(|r| format!("{}: {}", r.resource_id, r.property))
        .collect();
    assert_eq!(
        failed,
        vec![
            "dpkg --print-architecture: stdout",
            "kubernetes version is supported: matches"
        ]
    );
    assert_eq!(report.exit_code().code(), 1);
    let junit = output::render(&report, OutputFormat::Junit);
    assert_eq!(junit.matches("<failure").count(), 2);
}

fn broken(name: &str, vars: &str) -> String {
    let opts = VerifyOptions {
        gossfile: fixtures().join("broken").join(name),
        vars_inline: vec![vars.to_string()],
        ..Default::default()
    };
    match opts.load() {
        Ok(s) => panic!("{name} loaded {} resources", s.resources.len()),
        Err(d) => d.to_string(),
    }
}

#[test]
fn broken_gossfiles_name_file_and_line() {
    let v = r#"{"packages": {"a": 1, "b": 2}}"#;
    let cases = [
        ("yaml-error.yaml", "yaml-error.yaml:4:", "YAML syntax error"),
        (
            "unknown-function.yaml",
            "unknown-function.yaml:4:1:",
            "function \"frobnicate\" not defined",
        ),
        (
            "template-then-yaml-error.yaml",
            "template-then-yaml-error.yaml:9:",
            "YAML syntax error",
        ),
        (
            "bad-matcher.yaml",
            "bad-matcher.yaml:4:7:",
            "unknown matcher `have-prefx`",
        ),
    ];
    for (file, loc, msg) in cases {
        let e = broken(file, v);
        assert!(e.contains(loc) && e.contains(msg), "{file}: {e}");
    }
    assert_eq!(ExitCode::BadSpec.code(), 78);
}

#[test]
fn duplicate_keys_are_warnings_naming_both_lines() {
    let opts = VerifyOptions {
        gossfile: fixtures().join("broken/duplicate-keys.yaml"),
        ..Default::default()
    };
    let s = opts.load().unwrap();
    let w = s.warnings.to_string();
    assert!(w.contains("duplicate-keys.yaml:7:1: warning: resource type `file` is given twice, at lines 1 and 7"), "{w}");
    assert!(w.contains("duplicate-keys.yaml:11:5: warning: attribute of file `/etc/group` `mode` is given twice, at lines 10 and 11"), "{w}");
}
