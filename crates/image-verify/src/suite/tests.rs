//! Tests of gossfile loading: resources, attributes, includes, templates,
//! and diagnostics with file:line.

use super::*;
use serde_json::json;

fn data(vars: Value) -> TemplateData {
    TemplateData {
        vars,
        env: Default::default(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn errors(r: Result<Suite, Diagnostics>) -> String {
    match r {
        Ok(s) => panic!("expected errors, loaded {} resources", s.resources.len()),
        Err(d) => d.to_string(),
    }
}

#[test]
fn reads_resources_checks_and_settings() {
    let src = "file:\n  /etc/passwd:\n    title: passwd\n    meta: {team: x}\n    exists: true\n    mode: \"0644\"\n    contains: [root]\n\
               command:\n  echo hi:\n    exit-status: 0\n    stdout: [hi]\n    timeout: 500\n    skip: true\n";
    let s = load_str("g.yaml", src, Path::new("."), &data(json!({}))).unwrap();
    assert_eq!(s.resources.len(), 2);
    let f = &s.resources[0];
    assert_eq!(
        (f.kind.key(), f.id.as_str(), f.title.as_str()),
        ("file", "/etc/passwd", "passwd")
    );
    assert_eq!(f.meta, json!({"team": "x"}));
    let props: Vec<&str> = f.checks.iter().map(|c| c.property).collect();
    assert_eq!(props, vec!["exists", "mode", "contents"]);
    assert_eq!(f.checks[1].loc.to_string(), "g.yaml:6:5");
    // `contains` is goss's old name of `contents`.
    assert!(s.warnings.to_string().contains("`contains` is deprecated"));
    let c = &s.resources[1];
    assert!(c.skip);
    assert_eq!(c.timeout(10_000).as_millis(), 500);
    assert_eq!(s.check_count(), 5);
}

#[test]
fn unknown_types_and_attributes_are_ignored_as_goss_with_warnings() {
    // goss ignores top-level keys that are not resource types (image-builder
    // keeps YAML anchors there) and unknown attributes; a near miss warns.
    let src = "anchors: &v\n  versions: [\"1.0\"]\npackages:\n  curl: {installed: true}\n\
               package:\n  jq:\n    installed: true\n    <<: *v\nuser:\n  root:\n    exists: true\n    hom: /root\n";
    let s = load_str("g.yaml", src, Path::new("."), &data(json!({}))).unwrap();
    let ids: Vec<String> = s
        .resources
        .iter()
        .map(|r| format!("{}:{}", r.kind.key(), r.id))
        .collect();
    assert_eq!(ids, vec!["package:jq", "user:root"]);
    assert_eq!(
        s.resources[0].checks.len(),
        2,
        "the merged anchor is a check"
    );
    let w = s.warnings.to_string();
    assert!(!w.contains("anchors"), "{w}");
    assert!(
        w.contains("g.yaml:3:1: warning: `packages` is not a resource type; it is ignored"),
        "{w}"
    );
    assert!(w.contains("did you mean `package`?"), "{w}");
    assert!(
        w.contains("g.yaml:12:5: warning: unknown attribute `hom` for user `root` is ignored"),
        "{w}"
    );
    assert!(w.contains("did you mean `home`?"), "{w}");
    let e = errors(load_str(
        "g.yaml",
        "port:\n  sctp:9: {listening: true}\n",
        Path::new("."),
        &data(json!({})),
    ));
    assert!(e.contains("g.yaml:2:3: error: bad port `sctp:9`"), "{e}");
}

#[test]
fn empty_pattern_lists_check_nothing_and_name_attributes_override_the_key() {
    let src =
        "command:\n  true:\n    exit-status: 0\n    stdout: []\n    stderr: \"\"\n    timeout: 0\n\
               package:\n  k8s:\n    name: kubeadm\n    versions: null\n    installed: true\n\
               file:\n  f:\n    mode: \"0644\"\n    exists: true\n";
    let s = load_str("g.yaml", src, Path::new("."), &data(json!({}))).unwrap();
    let c = &s.resources[0];
    let props: Vec<&str> = c.checks.iter().map(|c| c.property).collect();
    assert_eq!(props, vec!["exit-status", "stderr"]);
    assert!(s.warnings.to_string().contains(
        "g.yaml:4:5: warning: true: command.stdout is an empty list, which asserts nothing"
    ));
    // goss: a timeout of 0 is the default (10 s for commands).
    assert_eq!(c.timeout(10_000).as_millis(), 10_000);
    let p = &s.resources[1];
    assert_eq!(
        (p.id.as_str(), p.report_id()),
        ("kubeadm", "k8s: kubeadm".to_string())
    );
    assert_eq!(p.checks.len(), 1, "versions: null is unset");
    // The gate property (`exists`) comes first: the runner skips the rest
    // when it fails.
    let f = &s.resources[2];
    assert_eq!(f.checks[0].property, "exists");
}

#[test]
fn duplicate_keys_warn_with_both_lines() {
    let src = "file:\n  /etc/passwd:\n    mode: \"0644\"\n    mode: \"0600\"\nservice:\n  ssh: {running: true}\nfile:\n  /etc/group: {exists: true}\n";
    let s = load_str("g.yaml", src, Path::new("."), &data(json!({}))).unwrap();
    let w = s.warnings.to_string();
    assert!(
        w.contains("g.yaml:7:1: warning: resource type `file` is given twice, at lines 1 and 7"),
        "{w}"
    );
    // The type given twice keeps only its last mapping, as goss.
    let ids: Vec<&str> = s.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["ssh", "/etc/group"]);
    let s = load_str(
        "g.yaml",
        "file:\n  /a:\n    mode: \"1\"\n    mode: \"2\"\n",
        Path::new("."),
        &data(json!({})),
    )
    .unwrap();
    assert!(
        s.warnings.to_string().contains("at lines 3 and 4"),
        "{}",
        s.warnings
    );
    assert_eq!(s.resources[0].checks.len(), 1);
}

#[test]
fn yaml_errors_after_rendering_name_the_template_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "g.yaml",
        "package:\n{{- range $n, $v := .Vars.p }}\n  {{ $n }}:\n    installed: true\n{{- end }}\nservice:\n  ssh:\n   enabled: true\n    running: true\n",
    );
    let e = errors(load(&p, &data(json!({"p": {"a": 1, "b": 2, "c": 3}}))));
    // Line 9 of the template is line 11 of the rendered text.
    assert!(e.contains("g.yaml:9:"), "{e}");
    assert!(e.contains("YAML syntax error"), "{e}");
    assert!(e.contains("rendered template"), "{e}");
}

#[test]
fn template_errors_name_the_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "inc.yaml",
        "file:\n  /x:\n    exists: {{ frobnicate 1 }}\n",
    );
    let main = write(d.path(), "goss.yaml", "gossfile:\n  inc.yaml: {}\n");
    let e = errors(load(&main, &data(json!({}))));
    assert!(
        e.contains(&format!(
            "{}:3:1: error: template: function \"frobnicate\" not defined",
            p.display()
        )),
        "{e}"
    );
}

#[test]
fn includes_globs_skip_and_cycles() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "main.yaml", "gossfile:\n  skipped.yaml: {skip: true}\n  parts/*.yaml: {}\n  other:\n    file: extra.yaml\nfile:\n  /etc/passwd: {exists: true}\n");
    write(
        d.path(),
        "parts/a.yaml",
        "package:\n  {{ .Vars.pkg }}: {installed: true}\n",
    );
    write(
        d.path(),
        "parts/b.yaml",
        "gossfile:\n  ../nested/c.yaml: {}\n",
    );
    write(
        d.path(),
        "nested/c.yaml",
        "group:\n  root: {exists: true}\n",
    );
    write(
        d.path(),
        "extra.yaml",
        "file:\n  /etc/passwd: {exists: false}\n",
    );
    write(d.path(), "skipped.yaml", "user:\n  root: {exists: true}\n");
    let s = load(&d.path().join("main.yaml"), &data(json!({"pkg": "bash"}))).unwrap();
    let got: Vec<(String, String, bool)> = s
        .resources
        .iter()
        .map(|r| (r.kind.key().to_string(), r.id.clone(), r.skip))
        .collect();
    // goss: the file's own resources, then includes sorted by key
    // (`other` -> extra.yaml replaces /etc/passwd, then parts/*); a skipped
    // include is not read at all.
    assert_eq!(
        got,
        vec![
            ("file".into(), "/etc/passwd".into(), false),
            ("package".into(), "bash".into(), false),
            ("group".into(), "root".into(), false),
        ]
    );
    assert_eq!(s.resources[0].checks[0].matcher.to_json(), json!(false));
    assert!(s
        .warnings
        .to_string()
        .contains("this later-loaded one replaces it"));
    assert_eq!(s.files.len(), 5);
    let yaml = s.to_yaml();
    assert!(
        yaml.contains("package:\n  bash:\n    installed: true"),
        "{yaml}"
    );
    assert!(!yaml.contains("user:"), "{yaml}");

    write(d.path(), "loop.yaml", "gossfile:\n  loop.yaml: {}\n");
    assert!(errors(load(&d.path().join("loop.yaml"), &data(json!({})))).contains("includes itself"));
    write(
        d.path(),
        "missing.yaml",
        "gossfile:\n  nope.yaml: {}\n  none-*.yaml: {}\n",
    );
    let e = errors(load(&d.path().join("missing.yaml"), &data(json!({}))));
    assert!(
        e.contains("missing.yaml:2:3: error: cannot read gossfile"),
        "{e}"
    );
    assert!(
        e.contains("missing.yaml:3:3: error: no file matches `none-*.yaml`"),
        "{e}"
    );
}

#[test]
fn later_definitions_replace_earlier_ones() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.yaml", "file:\n  /x: {exists: true}\n");
    write(d.path(), "b.yaml", "file:\n  /x: {exists: false}\n");
    let main = write(
        d.path(),
        "m.yaml",
        "gossfile:\n  a.yaml: {}\n  b.yaml: {}\n",
    );
    let s = load(&main, &data(json!({}))).unwrap();
    assert_eq!(s.resources.len(), 1);
    assert_eq!(s.resources[0].checks[0].matcher.to_json(), json!(false));
}

#[test]
fn vars_merge_files_then_inline() {
    let d = tempfile::tempdir().unwrap();
    let a = write(
        d.path(),
        "a.yaml",
        "base: &b {x: 1}\nOS: ubuntu\nnested: *b\n",
    );
    let b = write(
        d.path(),
        "b.json",
        "{\"OS\": \"amazon\", \"k\": 2, \"nested\": {\"y\": 2, \"x\": \"\"}, \"deep\": {\"a\": 1}}",
    );
    let v = load_vars(
        &[a, b],
        &["{\"PROVIDER\": \"aws\", \"k\": 3, \"deep\": {\"b\": 2}}".into()],
    )
    .unwrap();
    assert_eq!(v["OS"], "amazon");
    assert_eq!(v["k"], 3);
    // Vars files deep-merge (mergo WithOverride): nested maps merge and an
    // empty later value does not replace.
    assert_eq!(v["nested"], json!({"x": 1, "y": 2}));
    // Inline vars replace whole top-level keys.
    assert_eq!(v["deep"], json!({"b": 2}));
    assert_eq!(v["PROVIDER"], "aws");
    let e = load_vars(&[], &["{not json".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("<--vars-inline>:"), "{e}");
    assert!(load_vars(&[d.path().join("nope.yaml")], &[]).is_err());
}

#[test]
fn empty_and_non_mapping_documents() {
    assert!(load_str("g.yaml", "", Path::new("."), &data(json!({})))
        .unwrap()
        .resources
        .is_empty());
    let e = errors(load_str(
        "g.yaml",
        "- a\n",
        Path::new("."),
        &data(json!({})),
    ));
    assert!(e.contains("g.yaml:1:1"), "{e}");
    let e = errors(load_str(
        "g.yaml",
        "file:\n  /x: [1]\n",
        Path::new("."),
        &data(json!({})),
    ));
    assert!(e.contains("g.yaml:2:7"), "{e}");
}
