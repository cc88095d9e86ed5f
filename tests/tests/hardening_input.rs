//! Bad input never crashes or hangs `image-cli`: small crafted files — an
//! alias bomb, a few thousand levels of nesting, a second document, a file
//! over the size cap, templates asking for huge widths or endless loops —
//! in each of the three file kinds (definition, step list, goss file) give
//! exit 2 with `file:line:col`, the problem and a `help:` line. Also the
//! positions and the silently accepted things of issue 12 (a BOM, a tab,
//! an empty setting, a build defined twice). No AWS is needed: `validate`
//! reads every file `build` reads.

mod cli_support;

use std::path::Path;
use std::process::Output;

use cli_support::image_cli;

/// A definition with one build using `steps.yaml` and `goss.yaml`; `extra`
/// is added to the build's settings, `vars` to `variables:`.
fn definition(vars: &str, extra: &str) -> String {
    format!(
        "variables:
  token: {{ sensitive: true, default: tok-default-value }}
{vars}
builds:
  b:
    source_ami: ami-0123456789abcdef0
    instance_type: t3.small
    region: us-east-1
    ssh_username: ubuntu
    ami_name: hardening-test
    temporary_security_group_source_cidrs: [127.0.0.1/32]
    provision: [steps.yaml]
    verify: [goss.yaml]
{extra}"
    )
}

const STEPS: &str = "- name: a task\n  command: /bin/true\n";
const GOSS: &str = "file:\n  /etc/hostname:\n    exists: true\n";

/// Writes the files (definition, steps, goss) into `dir`.
fn write(dir: &Path, spec: &str, steps: &str, goss: &str) {
    std::fs::write(dir.join("spec.yaml"), spec).unwrap();
    std::fs::write(dir.join("steps.yaml"), steps).unwrap();
    std::fs::write(dir.join("goss.yaml"), goss).unwrap();
}

/// `image-cli args` in `dir`, with no AWS reachable.
fn run(dir: &Path, args: &[&str]) -> Output {
    let out = std::process::Command::new(image_cli())
        .current_dir(dir)
        .args(args)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("running image-cli");
    eprintln!(
        "image-cli {}: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts exit 2 and that stderr has `what` (`file:line:col: error: …`)
/// followed by a `help:` line.
fn assert_bad(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    let at = stderr
        .find(what)
        .unwrap_or_else(|| panic!("`{what}` not in:\n{stderr}"));
    let rest = &stderr[at..];
    let next = rest.lines().nth(1).unwrap_or_default();
    assert!(
        next.trim_start().starts_with("help: "),
        "no help after `{what}`:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A 9x9 alias bomb (about 500 bytes, 9^10 nodes expanded) as the mapping
/// `key`, indented by `indent` spaces.
fn alias_bomb(indent: usize, key: &str) -> String {
    let pad = " ".repeat(indent);
    let mut s = format!("{pad}{key}:\n{pad}  a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        let refs = vec![format!("*a{p}"); 9].join(", ");
        s.push_str(&format!("{pad}  a{i}: &a{i} [{refs}]\n"));
    }
    s
}

/// `depth` nested block sequences on one line.
fn deep_seq(depth: usize) -> String {
    format!("{}x\n", "- ".repeat(depth))
}

#[test]
fn alias_bombs_fail_fast_in_every_file_kind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msg = "error: YAML aliases expand to more than 100000 nodes";

    write(
        d,
        &format!("{}{}", definition("", ""), alias_bomb(0, "x_bomb")),
        STEPS,
        GOSS,
    );
    let out = run(d, &["validate", "spec.yaml"]);
    assert_bad(&out, msg);
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.yaml:"));

    let steps = format!(
        "- name: t\n  vars:\n{}  command: /bin/true\n",
        alias_bomb(4, "v")
    );
    write(d, &definition("", ""), &steps, GOSS);
    let out = run(d, &["validate", "spec.yaml"]);
    assert_bad(&out, msg);
    assert!(String::from_utf8_lossy(&out.stderr).contains("steps.yaml:"));

    write(
        d,
        &definition("", ""),
        STEPS,
        &format!("{}\n{GOSS}", alias_bomb(0, "x-bomb")),
    );
    let out = run(d, &["validate", "spec.yaml"]);
    assert_bad(&out, msg);
    assert!(String::from_utf8_lossy(&out.stderr).contains("goss.yaml:"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msg = "error: YAML nests deeper than 200 levels";
    for (spec, steps, goss, file) in [
        (
            format!("x: {}", "[".repeat(3000)),
            STEPS.to_string(),
            GOSS.to_string(),
            "spec.yaml:1:",
        ),
        (
            definition("", ""),
            deep_seq(5000),
            GOSS.to_string(),
            "steps.yaml:1:",
        ),
        (
            definition("", ""),
            STEPS.to_string(),
            (0..1000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
            "goss.yaml:",
        ),
    ] {
        write(d, &spec, &steps, &goss);
        let out = run(d, &["validate", "spec.yaml"]);
        assert_bad(&out, msg);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(file),
            "{file}"
        );
    }
}

#[test]
fn a_second_document_and_an_oversized_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let def = definition("", "");
    write(d, &format!("{def}---\nbuilds: {{}}\n"), STEPS, GOSS);
    let line = def.lines().count() + 1;
    assert_bad(
        &run(d, &["validate", "spec.yaml"]),
        &format!("spec.yaml:{line}:1: error: a second YAML document"),
    );
    write(
        d,
        &def,
        &format!("{STEPS}---\n- command: /bin/false\n"),
        GOSS,
    );
    assert_bad(
        &run(d, &["validate", "spec.yaml"]),
        "steps.yaml:3:1: error: a second YAML document",
    );

    // 5 MiB of comments: refused before it is parsed.
    let big = format!(
        "{def}{}",
        "# padding padding padding padding padding\n".repeat(130_000)
    );
    write(d, &big, STEPS, GOSS);
    let out = run(d, &["validate", "spec.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.yaml") && stderr.contains("larger than 4 MiB"),
        "{stderr}"
    );
}

#[test]
fn templates_with_huge_sizes_or_endless_loops_are_errors_at_their_string() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("    ami_name: \"{{ '%999999999999d' | format(1) }}\"\n", "format: width 999999999999 is larger than 4096"),
        ("    ami_name: \"{{ '%.999999999s' | format('x') }}\"\n", "format: precision 999999999 is larger than 4096"),
        ("    ami_name: \"{{ 'a\\nb' | indent(99999999999) }}\"\n", "indent: width 99999999999 is larger than 4096"),
        (
            "    ami_name: \"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x\"\n",
            "engine ran out of fuel",
        ),
    ];
    for (setting, msg) in cases {
        // The setting replaces the build's ami_name (line 10).
        let spec = definition("", "").replace("    ami_name: hardening-test\n", setting);
        write(d, &spec, STEPS, GOSS);
        let out = run(d, &["validate", "spec.yaml"]);
        assert_bad(&out, "spec.yaml:10:15: error: template error");
        assert!(String::from_utf8_lossy(&out.stderr).contains(msg), "{msg}");
    }
}

#[test]
fn positions_point_at_the_offending_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A byte order mark is allowed.
    write(d, &format!("\u{feff}{}", definition("", "")), STEPS, GOSS);
    let out = run(d, &["validate", "spec.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A tab is reported on its own line.
    let spec = definition("", "").replace(
        "    ssh_username: ubuntu\n",
        "    ssh_username: ubuntu\n\tami_users: []\n",
    );
    write(d, &spec, STEPS, GOSS);
    assert_bad(
        &run(d, &["validate", "spec.yaml"]),
        "spec.yaml:10:1: error: YAML syntax error",
    );

    // An empty instance_type is reported at its value.
    let spec = definition("", "").replace("instance_type: t3.small", "instance_type: ''");
    write(d, &spec, STEPS, GOSS);
    assert_bad(
        &run(d, &["validate", "spec.yaml"]),
        "spec.yaml:7:20: error: `instance_type` is empty in build `b`",
    );

    // A build defined twice is an error, not a warning.
    let spec = format!("{}  b:\n    instance_type: t3.large\n", definition("", ""));
    write(d, &spec, STEPS, GOSS);
    let out = run(d, &["validate", "spec.yaml"]);
    assert_bad(&out, "spec.yaml:14:3: error: build `b` is defined twice");

    // A region that cannot exist is an error; one this version does not
    // know is a warning (build asks the account).
    let spec = definition("", "").replace("region: us-east-1", "region: us_east_1");
    write(d, &spec, STEPS, GOSS);
    assert_bad(
        &run(d, &["validate", "spec.yaml"]),
        "spec.yaml:8:13: error: invalid region `us_east_1`",
    );
    let spec = definition("", "").replace("region: us-east-1", "region: us-east-9");
    write(d, &spec, STEPS, GOSS);
    let out = run(d, &["validate", "spec.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("spec.yaml:8:13: warning: unknown region `us-east-9` in region"));
}

#[test]
fn validate_reads_the_step_lists_and_goss_files_build_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        &definition("", ""),
        "- name: t\n  command: [not, a, string]\n  bogus_keyword: 1\n",
        GOSS,
    );
    let out = run(d, &["validate", "spec.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("steps.yaml:"), "{stderr}");
    let out = run(d, &["build", "spec.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "build accepts what validate refused"
    );

    write(
        d,
        &definition("", ""),
        STEPS,
        "file:\n  /etc/x: [not a mapping]\n",
    );
    let v = run(d, &["validate", "spec.yaml"]);
    let b = run(d, &["build", "spec.yaml"]);
    assert_eq!(v.status.code(), b.status.code());
    assert_eq!(v.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&v.stderr).contains("goss.yaml:2:"));
}

#[test]
fn sensitive_values_are_never_printed_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let vars =
        "  pw: { sensitive: true, type: number }\n  wait: { sensitive: true, default: 5m }\n";
    let extra = "    image_wait_timeout: \"{{ wait }}\"\n";
    write(d, &definition(vars, extra), STEPS, GOSS);
    std::fs::write(
        d.join("vars.yaml"),
        "pw: vf-secret-number\nwait: vf-secret-wait\n",
    )
    .unwrap();
    for args in [
        vec![
            "validate",
            "spec.yaml",
            "--var",
            "pw=cli-secret-pw",
            "--var",
            "wait=cli-secret-wait",
        ],
        vec!["validate", "spec.yaml", "--var-file", "vars.yaml"],
        vec![
            "inspect",
            "spec.yaml",
            "--var",
            "pw=12345",
            "--var",
            "wait=cli-secret-wait",
        ],
        vec![
            "build",
            "spec.yaml",
            "--var",
            "pw=cli-secret-pw",
            "--var",
            "wait=cli-secret-wait",
            "-vvv",
        ],
    ] {
        let out = run(d, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.contains("<sensitive>"),
            "{args:?}: nothing masked? {all}"
        );
        for secret in [
            "cli-secret-pw",
            "cli-secret-wait",
            "vf-secret-number",
            "vf-secret-wait",
            "12345",
        ] {
            assert!(!all.contains(secret), "{args:?} printed {secret}:\n{all}");
        }
    }
}
