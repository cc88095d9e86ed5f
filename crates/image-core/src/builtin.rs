//! The built-in image definition (`images/kubernetes.yaml`) and the files it
//! uses (`images/node/**`: the node playbook, roles and goss files), all
//! embedded at compile time: what `image-cli` builds when no definition is
//! named.
//!
//! Its relative paths (step lists, goss files) resolve against
//! [`base_dir`]: the source tree's `images/` when the binary runs where it
//! was built (and the files there are the embedded ones), otherwise a
//! private per-user copy of the embedded files written on first use under
//! `${XDG_CACHE_HOME:-$HOME/.cache}/image-cli/builtin-<content hash>/`.
//! [`write_files`] writes them anywhere (`image-cli init DIR`) to copy and
//! change.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::spec::Spec;

/// The name diagnostics use for the built-in definition.
pub const SPEC_NAME: &str = "<builtin>";

/// The built-in definition's YAML.
pub const SPEC_SOURCE: &str = include_str!("../../../images/kubernetes.yaml");

macro_rules! f {
    ($p:literal) => {
        ($p, include_str!(concat!("../../../images/", $p)))
    };
}

/// Every embedded file: (path relative to `images/`, content). A test
/// checks that this is exactly the content of `images/`.
pub const FILES: &[(&str, &str)] = &[
    f!("kubernetes.yaml"),
    f!("node/README.md"),
    f!("node/goss/goss-command.yaml"),
    f!("node/goss/goss-files.yaml"),
    f!("node/goss/goss-hygiene.yaml"),
    f!("node/goss/goss-kernel-params.yaml"),
    f!("node/goss/goss-package.yaml"),
    f!("node/goss/goss-service.yaml"),
    f!("node/goss/goss-vars.yaml"),
    f!("node/goss/goss.yaml"),
    f!("node/goss/os/amazon.yaml"),
    f!("node/goss/os/deb.yaml"),
    f!("node/goss/os/debian.yaml"),
    f!("node/goss/os/kernel-params-live.yaml"),
    f!("node/goss/os/ubuntu.yaml"),
    f!("node/node.yml"),
    f!("node/roles/containerd/handlers/main.yml"),
    f!("node/roles/containerd/tasks/main.yml"),
    f!("node/roles/containerd/templates/config.toml.j2"),
    f!("node/roles/containerd/templates/containerd.service.j2"),
    f!("node/roles/containerd/templates/crictl.yaml.j2"),
    f!("node/roles/containerd/templates/http-proxy.conf.j2"),
    f!("node/roles/containerd/templates/limit-nofile.conf.j2"),
    f!("node/roles/containerd/templates/max-tasks.conf.j2"),
    f!("node/roles/containerd/templates/memory-pressure.conf.j2"),
    f!("node/roles/kubernetes/tasks/debian.yml"),
    f!("node/roles/kubernetes/tasks/main.yml"),
    f!("node/roles/kubernetes/tasks/redhat.yml"),
    f!("node/roles/kubernetes/templates/kubelet-defaults.j2"),
    f!("node/roles/kubernetes/templates/kubernetes.repo.j2"),
    f!("node/roles/node/tasks/main.yml"),
    f!("node/roles/node/templates/image-release.j2"),
    f!("node/roles/node/templates/modules-load.conf.j2"),
    f!("node/roles/providers/files/boot-order.conf"),
    f!("node/roles/providers/tasks/aws.yml"),
    f!("node/roles/providers/tasks/main.yml"),
    f!("node/roles/providers/templates/image-credential-provider-config.yaml.j2"),
    f!("node/roles/setup/tasks/debian.yml"),
    f!("node/roles/setup/tasks/main.yml"),
    f!("node/roles/setup/tasks/redhat.yml"),
    f!("node/roles/setup/templates/90proxy.j2"),
    f!("node/roles/sysprep/tasks/debian.yml"),
    f!("node/roles/sysprep/tasks/main.yml"),
    f!("node/roles/sysprep/tasks/redhat.yml"),
    f!("node/vars/default.yml"),
];

/// The directory the built-in definition's relative paths resolve against
/// (see the module docs). Falls back to the source tree's path (with the
/// reason logged) when the embedded files cannot be written.
pub fn base_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source = source_dir();
        if same_as_embedded(&source) {
            return source;
        }
        match materialize() {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!(
                    "cannot write the built-in image files: {e}; using {}",
                    source.display()
                );
                source
            }
        }
    })
    .clone()
}

/// The built-in definition, parsed (it is tested to have no errors).
pub fn spec() -> Result<Spec, Diagnostics> {
    Spec::parse_in(SPEC_NAME, SPEC_SOURCE, &base_dir())
}

/// The built-in definition parsed leniently (see [`Spec::parse_lenient`]).
pub fn spec_lenient() -> Result<Spec, Diagnostics> {
    Spec::parse_lenient(SPEC_NAME, SPEC_SOURCE, &base_dir())
}

/// Writes every embedded file under `dir` (created if missing). Existing
/// files are replaced only with `force`; returns the paths written.
pub fn write_files(dir: &Path, force: bool) -> Result<Vec<PathBuf>, Diagnostics> {
    let err = |p: &Path, what: &str, e: std::io::Error| {
        Diagnostics::from(Diagnostic::error(
            Location::new(p.display().to_string(), 1, 1),
            format!("{what}: {e}"),
        ))
    };
    if !force {
        let existing: Vec<String> = FILES
            .iter()
            .map(|(rel, _)| dir.join(rel))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            let mut d = Diagnostic::error(
                Location::new(dir.display().to_string(), 1, 1),
                format!(
                    "{} file(s) already exist: {}",
                    existing.len(),
                    existing.join(", ")
                ),
            );
            d = d.with_help("pass --force to overwrite them, or choose another directory");
            return Err(d.into());
        }
    }
    let mut written = Vec::new();
    for (rel, content) in FILES {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| err(parent, "cannot create directory", e))?;
        }
        std::fs::write(&p, content).map_err(|e| err(&p, "cannot write", e))?;
        written.push(p);
    }
    Ok(written)
}

/// `images/` of the source tree this was compiled from.
fn source_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent().and_then(|p| p.parent()) {
        Some(root) => root.join("images"),
        None => manifest.join("images"),
    }
}

/// True when `dir` holds every embedded file with the embedded content.
fn same_as_embedded(dir: &Path) -> bool {
    FILES
        .iter()
        .all(|(rel, content)| std::fs::read(dir.join(rel)).is_ok_and(|c| c == content.as_bytes()))
}

/// A short hash of every embedded path and content (FNV-1a, 64 bits).
fn content_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (rel, content) in FILES {
        for b in rel.bytes().chain([0]).chain(content.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Writes the embedded files once into the per-user cache (a new directory
/// renamed into place, so a reader never sees half of it) and returns it.
fn materialize() -> Result<PathBuf, String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("image-cli");
    let dir = cache.join(format!("builtin-{}", content_hash()));
    if same_as_embedded(&dir) {
        return Ok(dir);
    }
    create_private_dir(&cache)?;
    let tmp = cache.join(format!(
        ".builtin-{}-{}",
        content_hash(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    write_files(&tmp, true).map_err(|d| d.to_string())?;
    if dir.exists() {
        // A damaged or partial copy (someone edited it): replace it.
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another process won the race, or an old copy was damaged.
        let _ = std::fs::remove_dir_all(&tmp);
        if !same_as_embedded(&dir) {
            return Err(format!("cannot move the files to {}: {e}", dir.display()));
        }
    }
    Ok(dir)
}

fn create_private_dir(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{load::check_files, Selection, SourceAmi, VarInputs};

    #[test]
    fn embedded_files_are_exactly_images_dir() {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut on_disk = Vec::new();
        walk(&source_dir(), &source_dir(), &mut on_disk);
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(
            embedded, on_disk,
            "update FILES in crates/image-core/src/builtin.rs to list every file of images/"
        );
        assert!(same_as_embedded(&source_dir()));
    }

    #[test]
    fn files_are_written_out_and_resolve_there() {
        let d = tempfile::tempdir().unwrap();
        let written = write_files(d.path(), false).unwrap();
        assert_eq!(written.len(), FILES.len());
        assert!(
            write_files(d.path(), false).is_err(),
            "refuses to overwrite"
        );
        write_files(d.path(), true).unwrap();
        assert!(same_as_embedded(d.path()));
        let spec = Spec::parse_in(SPEC_NAME, SPEC_SOURCE, d.path()).unwrap();
        let r = spec
            .resolve(&VarInputs::default(), &Selection::all(), 0)
            .unwrap();
        assert!(check_files(&r.plans).is_empty());
        assert!(r.plans[0].provision[0].path.starts_with(d.path()));
    }

    #[test]
    fn outside_the_source_tree_the_files_come_from_a_private_copy() {
        // nextest runs every test in its own process: the env is ours.
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_CACHE_HOME", d.path());
        let dir = materialize().unwrap();
        assert!(dir.starts_with(d.path().join("image-cli")));
        assert!(same_as_embedded(&dir));
        // A second call reuses it; a damaged copy is rewritten.
        assert_eq!(materialize().unwrap(), dir);
        std::fs::write(dir.join("node/node.yml"), "broken").unwrap();
        assert_eq!(materialize().unwrap(), dir);
        assert!(same_as_embedded(&dir));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("image-cli"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn builtin_resolves_and_its_files_exist() {
        let spec = spec().unwrap();
        assert_eq!(
            spec.build_names(),
            vec![
                "ubuntu-2204",
                "ubuntu-2404",
                "al2023",
                "ubuntu-2404-arm64",
                "al2023-arm64"
            ]
        );
        let r = spec
            .resolve(&VarInputs::default(), &Selection::all(), 1_700_000_000)
            .unwrap();
        assert!(r.warnings.is_empty(), "{}", r.warnings);
        let d = check_files(&r.plans);
        assert!(d.is_empty(), "{d}");
        let by = |n: &str| r.plans.iter().find(|p| p.name == n).unwrap();

        let u = by("ubuntu-2404");
        assert_eq!(u.ami_name, "capa-ami-ubuntu-24.04-1.31.4-1700000000");
        assert_eq!(u.region, "us-east-1");
        assert_eq!(u.instance_type, "t3.small");
        assert_eq!(u.ssh_username, "ubuntu");
        assert_eq!(u.root_device.device_name.as_deref(), Some("/dev/sda1"));
        assert!(matches!(&u.source_ami, SourceAmi::Filter(f)
            if f.owners == ["099720109477"] && f.name == "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"));
        assert_eq!(u.ssh_host, None);
        assert_eq!(u.ssh_port, 22);
        assert!(u.encrypted);
        assert_eq!(u.tags["kubernetes_version"], "v1.31.4");
        assert_eq!(u.tags["containerd_version"], "v1.7.27");
        assert_eq!(u.tags["cni_version"], "v1.5.1");
        assert!(u.tags.contains_key("build_date"));
        assert_eq!(u.tags["source_ami_owner"], "099720109477");
        assert!(u.provision[0].path.ends_with("node/node.yml"));
        assert!(u.verify[0].path.ends_with("node/goss/goss.yaml"));
        assert_eq!(u.verify_vars["OS"], "ubuntu");
        assert_eq!(u.verify_vars["PROVIDER"], "amazon");
        assert_eq!(u.provision_vars["kubernetes_version"], "1.31.4");
        assert_eq!(u.provision_vars["prepull_images"], true);
        assert!(u.provision_vars["containerd_url"]
            .as_str()
            .unwrap()
            .ends_with("containerd-1.7.27-linux-amd64.tar.gz"));

        let j = by("ubuntu-2204");
        assert!(matches!(&j.source_ami, SourceAmi::Filter(f)
            if f.name == "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*"));
        assert_eq!(j.ami_name, "capa-ami-ubuntu-22.04-1.31.4-1700000000");

        for (n, arch, itype) in [
            ("al2023", "x86_64", "t3.small"),
            ("al2023-arm64", "arm64", "t4g.small"),
        ] {
            let a = by(n);
            assert_eq!(a.ssh_username, "ec2-user");
            assert_eq!(a.instance_type, itype);
            assert_eq!(a.root_device.device_name.as_deref(), Some("/dev/xvda"));
            assert!(matches!(&a.source_ami, SourceAmi::Filter(f)
                if f.owners == ["137112412989"] && f.name == format!("al2023-ami-minimal-2023.*-kernel-6.1-{arch}")));
            assert_eq!(a.verify_vars["OS"], "amazon");
        }
        let arm = by("ubuntu-2404-arm64");
        assert_eq!(arm.instance_type, "t4g.small");
        assert!(matches!(&arm.source_ami, SourceAmi::Filter(f)
            if f.name == "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*"));
        assert!(arm.provision_vars["containerd_url"]
            .as_str()
            .unwrap()
            .ends_with("linux-arm64.tar.gz"));
        assert_eq!(arm.verify_vars["ARCH"], "arm64");
        for p in &r.plans {
            assert_eq!(p.root_device.volume_type, crate::spec::VolumeType::Gp3);
        }
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
                "containerd_url=http://mirror.example/containerd.tgz".into(),
                "extra_packages=htop,strace".into(),
                "http_proxy=http://proxy:3128".into(),
            ],
        };
        let r = spec.resolve(&inputs, &Selection::all(), 0).unwrap();
        let p = &r.plans[1];
        assert_eq!(p.name, "ubuntu-2404");
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
        assert_eq!(
            p.provision_vars["containerd_url"],
            "http://mirror.example/containerd.tgz"
        );
        assert_eq!(
            p.provision_vars["extra_packages"],
            serde_json::json!(["htop", "strace"])
        );
        assert_eq!(p.provision_vars["http_proxy"], "http://proxy:3128");
        assert_eq!(p.provision_vars["kubernetes_deb_version"], "1.30.8-1.1");
        assert_eq!(
            p.provision_vars["kubernetes_deb_repo"],
            "https://pkgs.k8s.io/core:/stable:/v1.30/deb/"
        );
        assert_eq!(p.verify_vars["kubernetes_version"], "1.30.8");
        let series = r
            .variables
            .iter()
            .find(|v| v.name == "kubernetes_series")
            .unwrap();
        assert_eq!(series.value, serde_json::json!("v1.30"));
    }

    #[test]
    fn every_variable_is_described() {
        let spec = spec().unwrap();
        let r = spec
            .resolve(&VarInputs::default(), &Selection::all(), 0)
            .unwrap();
        for v in &r.variables {
            assert!(
                v.description.as_deref().is_some_and(|d| !d.is_empty()),
                "variable `{}` has no description",
                v.name
            );
        }
    }
}
