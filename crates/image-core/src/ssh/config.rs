//! What to connect to and how: host, user, key ([`SshAuth`]), host key
//! check ([`HostKeyPolicy`]), timeouts and retries ([`SshConfig`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// The private key to log in with.
#[derive(Clone)]
pub enum SshAuth {
    /// An unencrypted private key file (OpenSSH or PEM format, ed25519, RSA
    /// or ECDSA), as written by `ssh-keygen`. For an encrypted file, read it
    /// into [`SshAuth::KeyMemory`] with its passphrase.
    KeyFile(PathBuf),
    /// A private key held in memory (OpenSSH `-----BEGIN OPENSSH PRIVATE
    /// KEY-----` or PEM), e.g. the one EC2 `CreateKeyPair` returned. Wiped
    /// from our memory on drop (libssh2 briefly holds its own copy while
    /// authenticating).
    KeyMemory {
        /// The private key text.
        private_pem: Zeroizing<String>,
        /// Its passphrase, if it is encrypted.
        passphrase: Option<Zeroizing<String>>,
    },
}

impl SshAuth {
    /// A key file.
    pub fn key_file(path: impl Into<PathBuf>) -> Self {
        SshAuth::KeyFile(path.into())
    }

    /// An unencrypted key held in memory.
    pub fn key_memory(private_pem: impl Into<String>) -> Self {
        SshAuth::KeyMemory {
            private_pem: Zeroizing::new(private_pem.into()),
            passphrase: None,
        }
    }

    /// How the key is named in messages (never its content).
    pub fn describe(&self) -> String {
        match self {
            SshAuth::KeyFile(p) => format!("key file {}", p.display()),
            SshAuth::KeyMemory { .. } => "in-memory key".to_string(),
        }
    }
}

impl fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshAuth::KeyFile(p) => f.debug_tuple("KeyFile").field(p).finish(),
            SshAuth::KeyMemory { passphrase, .. } => f
                .debug_struct("KeyMemory")
                .field("private_pem", &"<redacted>")
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// Which host keys to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Any host key (a fresh instance has a key nobody knows yet).
    AcceptAny,
    /// Only a host key with this OpenSSH-style SHA256 fingerprint
    /// (`SHA256:` + unpadded base64, as `ssh-keygen -lf` prints). Any of the
    /// host's key types may match: when the key negotiated first does not,
    /// the other types are tried before giving up.
    Fingerprint(String),
}

/// How to reach a host over SSH.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key.
    pub auth: SshAuth,
    /// Host key check.
    pub host_key: HostKeyPolicy,
    /// Time allowed for one connection attempt (TCP connect, then the SSH
    /// handshake and authentication each).
    pub connect_timeout: Duration,
    /// Keep retrying to connect (refused, no banner, timeouts, key not yet
    /// authorised) for this long. Zero: one attempt.
    pub retry_until: Duration,
    /// Send an SSH keepalive after this much silence (zero: never).
    pub keepalive_interval: Duration,
    /// Timeout of commands whose [`Exec::timeout`](crate::target::Exec::timeout) is not set.
    pub command_timeout: Option<Duration>,
    /// Run commands with [`Exec::become_`](crate::target::Exec::become_) in long-lived become shells
    /// (one sudo per shell, not per command; see the module docs). Off:
    /// every such command starts its own `sudo -n` on a new channel.
    pub become_shell: bool,
}

impl SshConfig {
    /// A configuration with the defaults: any host key, 10 s per connection
    /// attempt, retrying for 5 minutes (packer's `ssh_timeout`), keepalive
    /// every 5 s, no command timeout, become shells on.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>, auth: SshAuth) -> Self {
        SshConfig {
            host: host.into(),
            port,
            user: user.into(),
            auth,
            host_key: HostKeyPolicy::AcceptAny,
            connect_timeout: Duration::from_secs(10),
            retry_until: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(5),
            command_timeout: None,
            become_shell: true,
        }
    }

    /// `user@host:port`, how the target is named in messages.
    pub fn name(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_debug_hides_the_key() {
        let a = SshAuth::KeyMemory {
            private_pem: Zeroizing::new("-----BEGIN SECRET".to_string()),
            passphrase: Some(Zeroizing::new("hunter2".to_string())),
        };
        let s = format!("{a:?}");
        assert!(!s.contains("SECRET") && !s.contains("hunter2"), "{s}");
        assert_eq!(a.describe(), "in-memory key");
    }
}
