//! Puts the version `image-cli --version` prints into `IMAGE_CLI_VERSION`:
//! the package version and, when built from a git checkout, the commit
//! (`0.1.0 (1fe2a33)`). `IMAGE_CLI_GIT_COMMIT` in the build environment
//! overrides the commit (packagers building from a tarball); without either
//! the version alone is printed.
//!
//! The script reruns when HEAD moves (a commit, a checkout), not on every
//! build: cargo watches HEAD and the branch file HEAD points at.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IMAGE_CLI_GIT_COMMIT");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = std::env::var("IMAGE_CLI_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit);
    let full = match commit {
        Some(c) => format!("{version} ({})", c.trim()),
        None => version,
    };
    println!("cargo:rustc-env=IMAGE_CLI_VERSION={full}");
}

/// `git rev-parse --short HEAD`, or `None` outside a checkout or without git.
fn git_commit() -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)?;
    let commit = git(&dir, &["rev-parse", "--short", "HEAD"])?;
    watch_head(&dir);
    Some(commit)
}

/// Reruns the script when HEAD, the branch it names or the packed refs
/// change (only files that exist: a missing one would rerun it every build).
fn watch_head(dir: &Path) {
    let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) else {
        return;
    };
    let common = git(dir, &["rev-parse", "--git-common-dir"])
        .map(|c| dir.join(c))
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    for p in watched.iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// The trimmed stdout of a successful `git ARGS` in `dir`.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
