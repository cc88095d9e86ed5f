//! Test bed of real parts for `image-cli` tests.
//!
//! * [`Moto`]: a `moto_server` (EC2 API stand-in) on a free port of 127.0.0.1.
//! * [`Target`]: a Debian bookworm "instance": the cached rootfs booted with
//!   `systemd-nspawn` on a fresh overlayfs, networked by `slirp4netns` (guest
//!   10.0.2.100, host loopback reachable at 10.0.2.2), its sshd forwarded to a
//!   free port of 127.0.0.1.
//! * [`Rootfs::Rpm`]: the RPM-managed flavour of the target (rpm and dnf, an
//!   rpm database, an Amazon Linux 2023 look-alike os-release, no apt), with
//!   a local signed RPM repository of our own packages ([`Testbed::rpm_repo`]).
//! * [`Vm`]: a target with its own Debian kernel booted by qemu (modules,
//!   live sysctls, mounts), on a qcow2 overlay of the VM image
//!   ([`Testbed::vm_image`], built only when asked: `TESTBED_VM=1
//!   scripts/testbed/setup.sh`).
//!
//! Everything is prepared once per machine by `scripts/testbed/setup.sh`
//! (host packages, a moto venv, the rootfs, test SSH keys) under the test bed
//! directory ([`testbed_dir`]). [`Testbed::locate`] finds it and says what to
//! run when something is missing.
//!
//! The API is synchronous: async tests wrap it (e.g. `spawn_blocking`). Every
//! process, mount and cgroup a [`Moto`] or [`Target`] creates is recorded under
//! `$TESTBED_DIR/run/<name>/`, whose `lock` file the owner keeps `flock`ed. Drop
//! tears everything down (also on panic unwind); whatever a killed test process
//! left behind is reaped by the next [`Moto::start`] / [`Target::start`] (the
//! owner's lock is gone) or by `scripts/testbed/cleanup.sh`.
//!
//! Requires root (overlayfs, systemd-nspawn).

mod http;
mod moto;
mod run;
mod target;
mod vm;

use std::path::{Path, PathBuf};

pub use moto::Moto;
pub use target::{Target, TargetOptions, GUEST_ADDR, HOST_ADDR_FROM_GUEST};
pub use vm::{Accel, Vm, VmImage, VmOptions};

/// Which cached rootfs a [`Target`] boots ([`TargetOptions::rootfs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rootfs {
    /// Debian bookworm: `$TESTBED_DIR/rootfs` (`scripts/testbed/build-rootfs.sh`).
    #[default]
    Debian,
    /// The same plus rpm and dnf, an rpm database in `/var/lib/rpm`, an
    /// Amazon Linux 2023 look-alike `/etc/os-release` and no apt:
    /// `$TESTBED_DIR/rootfs-rpm` (`scripts/testbed/build-rootfs.sh rpm`).
    Rpm,
}

/// The unprivileged user of the target rootfs (passwordless sudo, test keys).
pub const USER: &str = "builder";

/// Errors of the test bed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Something `scripts/testbed/setup.sh` installs is missing.
    #[error("test bed not set up: {0}; run scripts/testbed/setup.sh (as root)")]
    NotSetUp(String),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Something did not become ready in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Anything else (a process exited, an API answered an error, ...).
    #[error("{0}")]
    Failed(String),
}

/// Result with the test bed's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

/// The test bed directory: `$IMAGE_TESTBED_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/image-builder-rs/testbed` (same rule as
/// `scripts/testbed/common.sh`).
pub fn testbed_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IMAGE_TESTBED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache")
        });
    cache.join("image-builder-rs").join("testbed")
}

/// A located, set-up test bed directory.
#[derive(Clone, Debug)]
pub struct Testbed {
    dir: PathBuf,
    rootfs: PathBuf,
    venv: PathBuf,
    ed25519_key: PathBuf,
    ed25519_public_key: PathBuf,
    rsa_key: PathBuf,
    rsa_public_key: PathBuf,
}

impl Testbed {
    /// Finds the test bed directory and checks that the venv, the rootfs and
    /// the keys exist; the error says to run `scripts/testbed/setup.sh`.
    pub fn locate() -> Result<Testbed> {
        Self::at(testbed_dir())
    }

    /// Like [`Testbed::locate`], for an explicit directory.
    pub fn at(dir: impl Into<PathBuf>) -> Result<Testbed> {
        let dir = dir.into();
        let missing =
            |what: &str, p: &Path| Error::NotSetUp(format!("{what} {} is missing", p.display()));
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::NotSetUp(
                "the test bed needs root (overlayfs, systemd-nspawn)".into(),
            ));
        }
        let venv = dir.join("venv");
        if !venv.join("bin/moto_server").is_file() {
            return Err(missing("moto_server in", &venv));
        }
        let link = dir.join("rootfs");
        let rootfs = link.canonicalize().map_err(|_| missing("rootfs", &link))?;
        if !rootfs.join("etc/os-release").is_file() || !rootfs.join("usr/bin/systemctl").exists() {
            return Err(missing("a complete rootfs at", &rootfs));
        }
        let keys = dir.join("keys");
        let tb = Testbed {
            ed25519_key: keys.join("id_ed25519"),
            ed25519_public_key: keys.join("id_ed25519.pub"),
            rsa_key: keys.join("id_rsa"),
            rsa_public_key: keys.join("id_rsa.pub"),
            dir,
            rootfs,
            venv,
        };
        for k in [
            &tb.ed25519_key,
            &tb.ed25519_public_key,
            &tb.rsa_key,
            &tb.rsa_public_key,
        ] {
            if !k.is_file() {
                return Err(missing("test key", k));
            }
        }
        for tool in ["systemd-nspawn", "slirp4netns", "nsenter"] {
            if !["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(tool).exists())
            {
                return Err(Error::NotSetUp(format!("{tool} is not installed")));
            }
        }
        Ok(tb)
    }

    /// The test bed directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached rootfs (symlink resolved: `rootfs-<hash>`).
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The cached rootfs of `kind` (symlink resolved); the error says what
    /// to run when the RPM flavour is not built.
    pub fn rootfs_of(&self, kind: Rootfs) -> Result<PathBuf> {
        match kind {
            Rootfs::Debian => Ok(self.rootfs.clone()),
            Rootfs::Rpm => {
                let link = self.dir.join("rootfs-rpm");
                match link.canonicalize() {
                    Ok(p) if p.join("var/lib/rpm").is_dir() && p.join("usr/bin/dnf").exists() => {
                        Ok(p)
                    }
                    _ => Err(Error::NotSetUp(format!(
                        "the RPM target rootfs {} is missing or incomplete",
                        link.display()
                    ))),
                }
            }
        }
    }

    /// The local RPM repositories (`scripts/testbed/build-rpm-repo.sh`):
    /// `main/`, `extra/`, `release/` (createrepo_c metadata) and the signing
    /// key `RPM-GPG-KEY-testbed`, plus `RPM-GPG-KEY-other` (signs nothing).
    pub fn rpm_repo(&self) -> Result<PathBuf> {
        let link = self.dir.join("rpm-repo");
        match link.canonicalize() {
            Ok(p) if p.join("main/repodata/repomd.xml").is_file() => Ok(p),
            _ => Err(Error::NotSetUp(format!(
                "the local RPM repository {} is missing",
                link.display()
            ))),
        }
    }

    /// The Python venv holding moto.
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// `$venv/bin/moto_server`.
    pub fn moto_server_bin(&self) -> PathBuf {
        self.venv.join("bin/moto_server")
    }

    /// Where running instances record their state: `$TESTBED_DIR/run`.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// Private ed25519 test key (0600), authorized for `builder` and `root`.
    pub fn ed25519_key(&self) -> &Path {
        &self.ed25519_key
    }

    /// Public half of [`Testbed::ed25519_key`].
    pub fn ed25519_public_key(&self) -> &Path {
        &self.ed25519_public_key
    }

    /// Private RSA (3072) test key (0600), authorized for `builder` and `root`.
    pub fn rsa_key(&self) -> &Path {
        &self.rsa_key
    }

    /// Public half of [`Testbed::rsa_key`].
    pub fn rsa_public_key(&self) -> &Path {
        &self.rsa_public_key
    }

    /// The unprivileged user of the targets ([`USER`]).
    pub fn user(&self) -> &'static str {
        USER
    }

    /// Tears down what crashed test processes left behind (run dirs whose
    /// owner no longer holds the lock). Returns how many were reaped.
    pub fn reap_stale(&self) -> Result<usize> {
        run::reap_stale(&self.run_dir())
    }
}
