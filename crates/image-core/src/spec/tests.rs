//! Unit tests of definition resolution: merging, templating into typed
//! settings, error collection. Single-value checks, templates, variables and
//! selection have their own tests next to their code.

use std::path::Path;

use super::*;

const BASE: &str = "\
variables:
  k8s: 1.31.4
  regions: [eu-west-1]
  secret: {default: hunter22, sensitive: true}
defaults:
  source_ami: ami-0123456789abcdef0
  instance_type: t3.small
  region: us-east-1
  ssh_username: ubuntu
  ami_name: \"{{ build_name }}-{{ k8s }}-{{ isotime('%Y') }}\"
  ami_regions: \"{{ regions }}\"
  tags: {a: '1', b: '2'}
  provision: [steps/one.yaml]
  provision_vars: {token: \"t-{{ secret }}\"}
builds:
  x:
    tags: {b: '3'}
    provision: [/abs/two.yaml]
  y:
    ssh_host: ''
    ami_regions: all
";

fn resolve(src: &str, cli: &[&str]) -> Result<Resolved, Diagnostics> {
    let spec = Spec::parse_lenient("d/spec.yaml", src, Path::new("/base"))?;
    let inputs = VarInputs {
        files: Vec::new(),
        cli: cli.iter().map(|s| s.to_string()).collect(),
    };
    spec.resolve(&inputs, &Selection::all(), 1_700_000_000)
}

#[test]
fn builds_merge_defaults_and_render() {
    let r = resolve(BASE, &[]).unwrap();
    assert!(r.warnings.is_empty(), "{}", r.warnings);
    let [x, y] = &r.plans[..] else {
        panic!("two plans expected")
    };
    assert_eq!(x.ami_name, "x-1.31.4-2023");
    assert_eq!(x.tags.get("a").map(String::as_str), Some("1"));
    assert_eq!(x.tags.get("b").map(String::as_str), Some("3"));
    assert_eq!(x.provision.len(), 1, "lists replace");
    assert_eq!(x.provision[0].path, Path::new("/abs/two.yaml"));
    assert_eq!(y.provision[0].path, Path::new("/base/steps/one.yaml"));
    assert_eq!(y.provision[0].given, "steps/one.yaml");
    assert_eq!(x.ami_regions, AmiRegions::List(vec!["eu-west-1".into()]));
    assert_eq!(y.ami_regions, AmiRegions::All);
    assert_eq!(y.ssh_host, None, "empty = unset");
    assert_eq!(x.ssh_port, 22);
    assert!(x.encrypted);
    assert_eq!(x.root_device.volume_type, VolumeType::Gp3);
    assert_eq!(x.metadata_options.http_tokens, "required");
    assert_eq!(x.spec, "d/spec.yaml");
}

#[test]
fn cli_values_flow_into_typed_settings() {
    let r = resolve(BASE, &["regions=us-west-2, eu-central-1", "k8s=1.30.0"]).unwrap();
    let x = &r.plans[0];
    assert_eq!(x.ami_name, "x-1.30.0-2023");
    assert_eq!(
        x.image_regions().unwrap(),
        vec!["us-east-1", "us-west-2", "eu-central-1"]
    );
}

#[test]
fn sensitive_values_are_masked() {
    let r = resolve(BASE, &[]).unwrap();
    assert_eq!(r.plans[0].provision_vars["token"], "t-hunter22");
    let json = r.plans_json_masked().to_string();
    assert!(
        !json.contains("hunter22") && json.contains("t-<sensitive>"),
        "{json}"
    );
    let vars = r.variables_json(true).to_string();
    assert!(!vars.contains("hunter22"), "{vars}");
}

#[test]
fn every_known_key_is_accepted() {
    let mut src = String::from("builds:\n  x:\n");
    for k in build::keys() {
        src.push_str(&format!("    {k}:\n"));
    }
    let e = resolve(&src, &[]).unwrap_err().to_string();
    assert!(!e.contains("unknown key"), "{e}");
    assert!(e.contains("has no `source_ami`"), "{e}");
}

#[test]
fn all_errors_come_together_sorted_and_once() {
    let src = "\
variables:
  need: {required: true}
defaults:
  region: nowhere
  ami_name: \"n-{{ need }}\"
builds:
  a: {source_ami: ami-1, instance_type: t3.small, ssh_username: u, bogus: 1}
  b: {source_ami: ami-1, instance_type: t3.small, ssh_username: u}
";
    let spec = Spec::parse_lenient("s.yaml", src, Path::new("/")).unwrap();
    let inputs = VarInputs {
        files: Vec::new(),
        cli: vec!["nope=1".into()],
    };
    let sel = Selection::from_lists(&["a,b,c".into()], &[]);
    let e = spec.resolve(&inputs, &sel, 0).unwrap_err();
    let lines: Vec<String> =
        e.0.iter()
            .map(|d| {
                format!(
                    "{}: {}",
                    d.location.as_ref().map_or("-".into(), |l| l.to_string()),
                    d.message
                )
            })
            .collect();
    assert_eq!(
        lines,
        vec![
            "-: --only `c` matches no build",
            "-: unknown variable `nope` in --var",
            "s.yaml:2:3: required variable `need` has no value",
            "s.yaml:4:11: invalid region `nowhere` in region",
            "s.yaml:7:68: unknown key `bogus` in build `a`",
        ],
        "the template using `need` stays quiet; the region error shows once"
    );
}

#[test]
fn duplicate_keys_warn_and_strict_parse_fails_on_errors() {
    let src = "builds:\n  x: {source_ami: ami-1, instance_type: t3.small, region: us-east-1, ssh_username: u, ami_name: abc, ami_name: abcd}\nextra: 1\n";
    let e = Spec::parse("s.yaml", src).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    assert!(e
        .0
        .iter()
        .any(|d| !d.is_error() && d.message.contains("`ami_name` is given twice")));
    let ok = src.replace("extra: 1\n", "");
    let spec = Spec::parse("s.yaml", &ok).unwrap();
    let r = spec
        .resolve(&VarInputs::default(), &Selection::all(), 0)
        .unwrap();
    assert_eq!(r.warnings.0.len(), 1);
    assert_eq!(r.plans[0].ami_name, "abcd");
}

#[test]
fn sensitive_values_never_appear_in_errors() {
    let src = "\
variables:
  pw: {sensitive: true, type: number}
  tok: {sensitive: true, default: hunter2-token}
defaults:
  source_ami: ami-0123456789abcdef0
  instance_type: t3.small
  region: us-east-1
  ssh_username: ubuntu
  ami_name: x
  image_wait_timeout: \"{{ tok }}\"
  root_volume_size: \"{{ tok }}\"
builds:
  x: {}
";
    let e = resolve(src, &["pw=s3cr3t-pw,x"]).unwrap_err().to_string();
    assert!(e.contains("<sensitive>"), "{e}");
    for secret in ["s3cr3t-pw", "hunter2-token"] {
        assert!(!e.contains(secret), "{secret} printed:\n{e}");
    }
    let spec = Spec::parse_lenient("d/spec.yaml", src, Path::new("/base")).unwrap();
    let inputs = VarInputs {
        files: vec![("v.yaml".into(), "pw: not-a-number-secret\n".into())],
        cli: Vec::new(),
    };
    let e = spec
        .resolve(&inputs, &Selection::all(), 0)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("not-a-number-secret"), "{e}");
}

#[test]
fn a_build_defined_twice_is_an_error() {
    let src = BASE.replace("  y:\n", "  x:\n    ami_name: other\n  y:\n");
    let e = resolve(&src, &[]).unwrap_err().to_string();
    assert!(
        e.contains(
            "d/spec.yaml:19:3: error: build `x` is defined twice\n  help: first defined at line 16"
        ),
        "{e}"
    );
    assert!(!e.contains("warning"), "{e}");
}

#[test]
fn an_empty_setting_is_reported_at_its_value_and_unknown_regions_warn() {
    let src = BASE.replace(
        "    ssh_host: ''\n",
        "    ssh_host: ''\n    instance_type: ''\n",
    );
    let e = resolve(&src, &[]).unwrap_err().to_string();
    assert!(
        e.contains("d/spec.yaml:21:20: error: `instance_type` is empty in build `y`"),
        "{e}"
    );
    let src = BASE.replace("region: us-east-1", "region: us-east-9");
    let r = resolve(&src, &[]).unwrap();
    let w = r.warnings.to_string();
    assert!(
        w.contains("d/spec.yaml:8:11: warning: unknown region `us-east-9` in region"),
        "{w}"
    );
    assert_eq!(
        r.plans[0].region_locs["us-east-9"].to_string(),
        "d/spec.yaml:8:11"
    );
}
