//! [`TargetSpec`]: where a command works, as its `--host`/`--identity`/
//! `--local` flags name it — this machine, or a host over SSH — and the one
//! way to connect to it. `--host` is parsed by [`crate::ssh::HostAddr`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use image_core::target_spec::TargetSpec;
//! let spec = TargetSpec::from_flags(Some("builder@[fd00::7]:2222"), Some("id_ed25519".into()))?;
//! let target = spec.connect().await?; // retried for 30 s while the host comes up
//! println!("{}", target.name());
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::ssh::HostAddr;

/// Where to work.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TargetSpec {
    /// This machine.
    #[default]
    Local,
    /// A host over SSH.
    Ssh {
        /// The login user (`None`: the caller's default).
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// Port (22 by default).
        port: u16,
        /// Private key file.
        identity: Option<PathBuf>,
    },
}

impl TargetSpec {
    /// How long [`TargetSpec::connect`] retries while an SSH host comes up.
    pub const CONNECT_RETRY: Duration = Duration::from_secs(30);

    /// Connects: this machine, or the SSH host (as `root` without a user;
    /// retried for [`TargetSpec::CONNECT_RETRY`] while the host comes up).
    pub async fn connect(&self) -> Result<Box<dyn crate::target::Target>, String> {
        use crate::ssh::{SshAuth, SshConfig, SshTarget};
        match self {
            TargetSpec::Local => Ok(Box::new(crate::local::LocalTarget::new())),
            TargetSpec::Ssh {
                user,
                host,
                port,
                identity,
            } => {
                let user = user.clone().unwrap_or_else(|| "root".to_string());
                let key = identity.clone().ok_or("--host needs --identity KEY")?;
                let mut cfg = SshConfig::new(host.clone(), *port, user, SshAuth::key_file(key));
                cfg.retry_until = Self::CONNECT_RETRY;
                let t = SshTarget::connect(cfg).await.map_err(|e| e.to_string())?;
                Ok(Box::new(t))
            }
        }
    }

    /// From `--host` / `--identity` (no host: this machine). A host needs a
    /// key; errors name the flag and what is wrong.
    pub fn from_flags(host: Option<&str>, identity: Option<PathBuf>) -> Result<Self, String> {
        match host {
            None => Ok(TargetSpec::Local),
            Some(h) => {
                let HostAddr { user, host, port } = HostAddr::parse(h)?;
                if identity.is_none() {
                    return Err("--host needs --identity KEY".into());
                }
                Ok(TargetSpec::Ssh {
                    user,
                    host,
                    port,
                    identity,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(TargetSpec::from_flags(None, None), Ok(TargetSpec::Local));
        assert_eq!(
            TargetSpec::from_flags(Some("u@[::1]:2222"), Some("k".into())),
            Ok(TargetSpec::Ssh {
                user: Some("u".into()),
                host: "::1".into(),
                port: 2222,
                identity: Some("k".into()),
            })
        );
        assert_eq!(
            TargetSpec::from_flags(Some("h"), None),
            Err("--host needs --identity KEY".to_string())
        );
        assert!(TargetSpec::from_flags(Some("h:0"), Some("k".into()))
            .unwrap_err()
            .starts_with("bad port in `h:0`"));
    }
}
