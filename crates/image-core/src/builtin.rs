//! The built-in image definition (`images/kubernetes.yaml`, embedded at
//! compile time): what `image-cli` builds when no definition is named.
//!
//! Its relative paths (step lists, goss files) resolve against the source
//! tree's `images/` directory, found at compile time; a binary installed
//! elsewhere needs those files next to the same path (or a definition file
//! of its own).

use std::path::PathBuf;

use crate::diag::Diagnostics;
use crate::spec::Spec;

/// The name diagnostics use for the built-in definition.
pub const SPEC_NAME: &str = "<builtin>";

/// The built-in definition's YAML.
pub const SPEC_SOURCE: &str = include_str!("../../../images/kubernetes.yaml");

/// The directory the built-in definition's relative paths resolve against.
pub fn base_dir() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent().and_then(|p| p.parent()) {
        Some(root) => root.join("images"),
        None => manifest.join("images"),
    }
}

/// The built-in definition, parsed (it is tested to have no errors).
pub fn spec() -> Result<Spec, Diagnostics> {
    Spec::parse_in(SPEC_NAME, SPEC_SOURCE, &base_dir())
}

/// The built-in definition parsed leniently (see [`Spec::parse_lenient`]).
pub fn spec_lenient() -> Result<Spec, Diagnostics> {
    Spec::parse_lenient(SPEC_NAME, SPEC_SOURCE, &base_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{load::check_files, Selection, SourceAmi, VarInputs};

    #[test]
    fn builtin_resolves_and_its_files_exist() {
        let spec = spec().unwrap();
        assert_eq!(spec.build_names(), vec!["ubuntu-2404"]);
        let r = spec
            .resolve(&VarInputs::default(), &Selection::all(), 1_700_000_000)
            .unwrap();
        assert!(r.warnings.is_empty(), "{}", r.warnings);
        let p = &r.plans[0];
        assert_eq!(p.ami_name, "capa-ami-ubuntu-24.04-1.31.4-1700000000");
        assert_eq!(p.region, "us-east-1");
        assert!(matches!(&p.source_ami, SourceAmi::Filter(f) if f.owners == ["099720109477"]));
        assert_eq!(p.ssh_host, None);
        assert_eq!(p.ssh_port, 22);
        let d = check_files(&r.plans);
        assert!(d.is_empty(), "{d}");
    }

    #[test]
    fn builtin_follows_variables() {
        let spec = spec().unwrap();
        let inputs = VarInputs {
            files: vec![],
            cli: vec![
                "kubernetes_version=1.30.8".into(),
                "ami_regions=eu-west-1,us-west-2".into(),
                "ssh_port=2222".into(),
                "encrypted=false".into(),
            ],
        };
        let r = spec.resolve(&inputs, &Selection::all(), 0).unwrap();
        let p = &r.plans[0];
        assert_eq!(
            p.tags.get("kubernetes_version").map(String::as_str),
            Some("v1.30.8")
        );
        assert_eq!(
            p.image_regions().unwrap(),
            vec!["us-east-1", "eu-west-1", "us-west-2"]
        );
        assert_eq!(p.ssh_port, 2222);
        assert!(!p.encrypted);
        let series = r
            .variables
            .iter()
            .find(|v| v.name == "kubernetes_series")
            .unwrap();
        assert_eq!(series.value, serde_json::json!("v1.30"));
    }
}
