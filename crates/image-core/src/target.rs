//! Reaching a host: the [`Target`] trait that the step engine, the verifier
//! and the EC2 pipeline use to run commands and move files, with an SSH
//! implementation ([`crate::ssh::SshTarget`], on ssh2) and a local one
//! ([`crate::local::LocalTarget`]).
//!
//! Commands are shell lines run by `sh -c` on the target. With
//! [`Become`] they run through `sudo -n` (never prompting: a host without
//! passwordless sudo fails fast with a clear error).
//!
//! The trait is async so it can be used from tokio code; implementations do
//! their blocking work on the blocking thread pool, never on the runtime.
//!
//! ```no_run
//! # async fn demo(t: &dyn image_core::target::Target) -> Result<(), image_core::target::TargetError> {
//! use image_core::target::{Exec, Become};
//! let out = t.exec(&Exec::new("id -u").become_root()).await?;
//! assert_eq!(out.stdout_str().trim(), "0");
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_trait::async_trait;

/// Run a command as another user through `sudo -n -u USER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Become {
    /// The user to become (`root` by default).
    pub user: String,
}

impl Default for Become {
    fn default() -> Self {
        Become {
            user: "root".to_string(),
        }
    }
}

/// A command to run on a target.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    /// The shell line, run by `sh -c`.
    pub command: String,
    /// Bytes written to the command's standard input (then closed).
    pub stdin: Option<Vec<u8>>,
    /// Environment variables set for the command.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Give up (and report [`TargetError::Timeout`]) after this long.
    pub timeout: Option<Duration>,
    /// Run through sudo as this user.
    pub become_: Option<Become>,
    /// Run on a pseudo-terminal, as `ssh -tt` does (ansible's `raw` and
    /// `script`): the terminal merges standard error into standard output
    /// and ends lines with CRLF. The local target runs the command without
    /// one (as ansible's `local` connection does: plain pipes).
    pub tty: bool,
    /// A script of this program's own that may run in a subshell of a
    /// long-lived shell (a fork, not a new `sh`; see the become shell): it
    /// needs no fresh shell (`$0`, unset variables) and does not use `$$`
    /// (the long-lived shell's there). One with a timeout, and every
    /// other path, runs it with `sh -c` as any command.
    pub subshell: bool,
}

impl Exec {
    /// A command line.
    pub fn new(command: impl Into<String>) -> Self {
        Exec {
            command: command.into(),
            ..Default::default()
        }
    }

    /// With standard input.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// With an environment variable.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// In a directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// With a timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Through sudo as `become_`, if given.
    pub fn become_opt(mut self, become_: Option<Become>) -> Self {
        self.become_ = become_;
        self
    }

    /// On a pseudo-terminal (see [`Exec::tty`]).
    pub fn tty(mut self) -> Self {
        self.tty = true;
        self
    }

    /// May run in a subshell (see [`Exec::subshell`]).
    pub fn subshell(mut self) -> Self {
        self.subshell = true;
        self
    }

    /// Through sudo as root.
    pub fn become_root(self) -> Self {
        self.become_opt(Some(Become::default()))
    }

    /// The script that `sh -c` runs: the environment exports, the `cd` and
    /// the command (no sudo).
    pub fn script(&self) -> String {
        let mut inner = String::new();
        for (k, v) in &self.env {
            inner.push_str(&format!("export {}={}; ", k, shell_quote(v)));
        }
        if let Some(dir) = &self.cwd {
            inner.push_str(&format!("cd {} && ", shell_quote(dir)));
        }
        inner.push_str(&self.command);
        inner
    }

    /// The full shell line to hand to a login shell on the target: the
    /// environment, the working directory and sudo folded in, every value
    /// quoted.
    pub fn shell_line(&self) -> String {
        let inner = self.script();
        match &self.become_ {
            None => format!("sh -c {}", shell_quote(&inner)),
            Some(b) => format!(
                "sudo -n -H -u {} -- sh -c {}",
                shell_quote(&b.user),
                shell_quote(&inner)
            ),
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status (-1 when killed by a signal).
    pub status: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// True for exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Standard output as text (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Mode and ownership of a file written with [`Target::put`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMeta {
    /// Permission bits, e.g. `0o644`.
    pub mode: Option<u32>,
    /// Owner user name.
    pub owner: Option<String>,
    /// Owner group name.
    pub group: Option<String>,
}

/// Why a target operation failed. Every variant names the host.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Could not connect at all (closed port, no route), even after retrying.
    #[error("cannot reach {host}: {detail}")]
    Unreachable {
        /// `user@host:port` or `local`.
        host: String,
        /// What went wrong.
        detail: String,
    },
    /// The server refused our key.
    #[error("{host} refused the key for user `{user}`: {detail}")]
    AuthFailed {
        /// `user@host:port`.
        host: String,
        /// The SSH user.
        user: String,
        /// Which key, and what the server said.
        detail: String,
    },
    /// The host key is not the one we were told to expect.
    #[error("host key of {host} is {found}, expected {expected}: refusing to connect")]
    HostKeyMismatch {
        /// `host:port`.
        host: String,
        /// Fingerprint found (SHA256:...).
        found: String,
        /// Fingerprint expected.
        expected: String,
    },
    /// The command ran longer than its timeout.
    #[error("command on {host} timed out after {after:?}: {command}")]
    Timeout {
        /// `user@host:port` or `local`.
        host: String,
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// sudo asked for a password (or is missing).
    #[error("sudo on {host} needs a password or is not allowed for this user: {detail}")]
    SudoRefused {
        /// `user@host:port` or `local`.
        host: String,
        /// sudo's message.
        detail: String,
    },
    /// The connection broke in the middle of an operation.
    #[error("connection to {host} lost during {during}: {detail}")]
    Disconnected {
        /// `user@host:port`.
        host: String,
        /// What we were doing.
        during: String,
        /// Details.
        detail: String,
    },
    /// A file operation failed on the target.
    #[error("{op} {path} on {host}: {detail}")]
    File {
        /// `user@host:port` or `local`.
        host: String,
        /// `write`, `read`, ...
        op: &'static str,
        /// The path on the target.
        path: String,
        /// Details (stderr of the remote command, or the OS error).
        detail: String,
    },
    /// Anything else, with context.
    #[error("{host}: {detail}")]
    Other {
        /// `user@host:port` or `local`.
        host: String,
        /// Details.
        detail: String,
    },
}

impl TargetError {
    /// True when the connection is gone, so a caller may reconnect and retry.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            TargetError::Disconnected { .. } | TargetError::Unreachable { .. }
        )
    }
}

/// A host we can run commands on and move files to and from.
#[async_trait]
pub trait Target: Send + Sync {
    /// How the host is named in messages: `builder@127.0.0.1:2222`, `local`.
    fn name(&self) -> String;

    /// Runs a command and waits for it. A non-zero exit status is not an
    /// error: look at [`Output::status`].
    async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError>;

    /// Writes `content` to `path`, replacing it atomically where the
    /// implementation can, then sets mode and ownership. With `become_`, the
    /// write happens through sudo.
    async fn put(
        &self,
        path: &str,
        content: &[u8],
        meta: &FileMeta,
        become_: Option<&Become>,
    ) -> Result<(), TargetError>;

    /// Reads `path`, through sudo with `become_`.
    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError>;

    /// Drops and re-establishes the connection (after a reboot or a lost
    /// link). The default does nothing.
    async fn reconnect(&self) -> Result<(), TargetError> {
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell: `'...'` with embedded quotes escaped.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// 128 random bits in hex: a marker a command cannot guess (it ends a
/// reply, names a temporary file).
pub fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // Each RandomState has fresh keys from the OS's randomness.
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

/// `data` as the body of a quoted here-document ending with the line
/// `delim`, for a command's standard input in a shell script: the data
/// itself when it can be (no NUL, which a shell drops; a final newline,
/// which the document adds; no line that is `delim`), else its base64 in
/// 76-column lines, for `base64 -d`. With `utf8`, the data goes as it is
/// only when it is UTF-8 too (for a script held as a `String`). Returns
/// whether it is base64, and the body with the closing `delim` line.
pub fn heredoc_body(data: &[u8], delim: &str, utf8: bool) -> (bool, Vec<u8>) {
    use base64::Engine as _;
    let as_is = data.ends_with(b"\n")
        && !data.contains(&0)
        && (!utf8 || std::str::from_utf8(data).is_ok())
        && !data
            .split(|&b| b == b'\n')
            .any(|line| line == delim.as_bytes());
    let mut body;
    if as_is {
        body = Vec::with_capacity(data.len() + delim.len() + 1);
        body.extend_from_slice(data);
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        body = Vec::with_capacity(b64.len() * 78 / 76 + delim.len() + 2);
        for line in b64.as_bytes().chunks(76) {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
    }
    body.extend_from_slice(delim.as_bytes());
    body.push(b'\n');
    (!as_is, body)
}

/// The command that [`Target::put`] runs on a shell target: reads the content
/// from standard input into a temporary file next to `path` (created 0600),
/// sets its mode and owner, then renames it over `path`, so readers never
/// see a partial file. Without a mode (or owner), an existing file's are
/// kept (GNU `--reference`), else a new file gets `0666 & ~umask`. A
/// missing parent directory fails (nothing is created).
pub fn put_exec(
    host: &str,
    path: &str,
    content: &[u8],
    meta: &FileMeta,
    become_: Option<&Become>,
) -> Result<Exec, TargetError> {
    let (dir, base) = match path.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), path),
    };
    if base.is_empty() || base == "." || base == ".." {
        return Err(TargetError::File {
            host: host.to_string(),
            op: "write",
            path: path.to_string(),
            detail: "not a file path".to_string(),
        });
    }
    let tmp = format!("{dir}.{base}.image-cli-{}", unique_suffix());
    let mut s = format!(
        "set -e; p={p}; t={t}; m=$(umask); umask 077; trap 'rm -f -- \"$t\"' EXIT; cat > \"$t\"; ",
        p = shell_quote(path),
        t = shell_quote(&tmp),
    );
    match meta.mode {
        Some(mode) => s.push_str(&format!("chmod {mode:o} -- \"$t\"; ")),
        None => s.push_str(
            "if [ -e \"$p\" ]; then chmod --reference=\"$p\" -- \"$t\"; \
             else chmod \"$(printf %o $(( 0666 & ~m )))\" -- \"$t\"; fi; ",
        ),
    }
    match (&meta.owner, &meta.group) {
        (Some(o), Some(g)) => s.push_str(&format!(
            "chown -- {} \"$t\"; ",
            shell_quote(&format!("{o}:{g}"))
        )),
        (Some(o), None) => s.push_str(&format!("chown -- {} \"$t\"; ", shell_quote(o))),
        (None, Some(g)) => s.push_str(&format!("chgrp -- {} \"$t\"; ", shell_quote(g))),
        (None, None) => s.push_str(
            "if [ -e \"$p\" ]; then chown --reference=\"$p\" -- \"$t\" 2>/dev/null || true; fi; ",
        ),
    }
    s.push_str("mv -f -- \"$t\" \"$p\"; trap - EXIT");
    Ok(Exec::new(s)
        .stdin(content.to_vec())
        .become_opt(become_.cloned()))
}

/// The command that [`Target::get`] runs on a shell target: `cat` of the
/// path (through sudo with `become_`).
pub fn get_exec(path: &str, become_: Option<&Become>) -> Exec {
    Exec::new(format!("cat -- {}", shell_quote(path))).become_opt(become_.cloned())
}

/// sudo's message when a command run through `sudo -n` failed because sudo
/// refused (a password is required, the user may not, sudo is missing);
/// `None` when the command itself ran.
pub fn sudo_refusal(out: &Output) -> Option<String> {
    let err = out.stderr_str();
    let err = err.trim();
    let refused = match out.status {
        1 => err.starts_with("sudo:"),
        // The login shell did not find sudo.
        127 => err.contains("sudo: command not found") || err.contains("sudo: not found"),
        _ => false,
    };
    refused.then(|| err.to_string())
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn shell_line_folds_env_cwd_and_sudo() {
        let e = Exec::new("echo $X")
            .env("X", "a b")
            .cwd("/tmp")
            .become_root();
        assert_eq!(
            e.shell_line(),
            r#"sudo -n -H -u root -- sh -c 'export X='\''a b'\''; cd /tmp && echo $X'"#
        );
    }

    #[test]
    fn sudo_refusals_are_recognised() {
        let out = |status, err: &str| Output {
            status,
            stdout: vec![],
            stderr: err.as_bytes().to_vec(),
        };
        assert!(sudo_refusal(&out(1, "sudo: a password is required\n")).is_some());
        assert!(sudo_refusal(&out(127, "bash: line 1: sudo: command not found\n")).is_some());
        assert!(sudo_refusal(&out(1, "grep: x: No such file\n")).is_none());
        assert!(sudo_refusal(&out(0, "sudo: warning\n")).is_none());
    }

    #[test]
    fn put_rejects_directory_paths() {
        let meta = FileMeta::default();
        assert!(put_exec("h", "/etc/", b"x", &meta, None).is_err());
        let e = put_exec("h", "/etc/x", b"x", &meta, None).expect("file path");
        assert!(e.command.contains("/etc/.x.image-cli-"), "{}", e.command);
        assert_eq!(e.stdin.as_deref(), Some(&b"x"[..]));
    }
}
