//! [`SshTarget`]: the [`Target`] trait over SSH, on the `ssh2` crate
//! (libssh2, bundled).
//!
//! One SSH session per target carries every command: opening a channel on a
//! live session costs one round trip (~3 ms on loopback with `TCP_NODELAY`),
//! a new connection costs ~70–100 ms. The session runs in libssh2's
//! non-blocking mode so that several commands can be in flight on it at once
//! (several tokio tasks calling [`Target::exec`] concurrently): each command
//! drives its own channel on the blocking thread pool and waits on the socket
//! with `poll(2)`.
//!
//! libssh2 is not built for several threads on one session, so every libssh2
//! call is made under one lock, channel opens and `exec` requests are
//! serialised (libssh2 keeps one channel-open state per session, and while it
//! waits for the reply to a request it takes any channel's reply for its
//! own), and channels are closed and freed under that lock too (`ssh2` frees
//! them without its own lock).
//!
//! Connecting retries (exponential backoff, 100 ms → 2 s, jittered) until
//! [`SshConfig::retry_until`]: a fresh instance refuses connections, then
//! answers without a banner, then may refuse the key until cloud-init has
//! installed it. A host key that does not match the pinned fingerprint is
//! never retried.
//!
//! A command that outlives its timeout is killed on the host (its processes
//! carry an `IMAGE_CLI_EXEC_ID` environment tag; a second command, as the
//! same user, kills every process with it) before its channel is closed, so
//! the session stays clean and usable. A session that breaks is replaced on
//! the next command: transparently when the command had not been sent yet,
//! else the command fails with [`TargetError::Disconnected`] (and
//! [`Target::reconnect`] is the explicit way, e.g. after a reboot). With
//! keepalives on, `TCP_USER_TIMEOUT` lets a vanished peer (no FIN) fail the
//! session within ~30 s.
//!
//! Commands with [`Exec::become_`] run, by default
//! ([`SshConfig::become_shell`]), in a become shell (see the private
//! `become_shell` module): a long-lived `sh` started once through
//! `sudo -n -H -u USER` on its own channel, which runs each command in a
//! child `sh` and sends back its status and outputs, framed. That saves the
//! sudo start (PAM, ~5 ms) and the channel with its login shell (~4 ms) of
//! every command. Up to [`MAX_SHELLS_PER_USER`] shells per user and session
//! are started on demand; a command that finds them all busy, or a user for
//! whom a shell cannot start (sudo refuses: that is then reported exactly as
//! without shells), takes the per-command path. A command with a timeout runs
//! in a shell too, its process tree tagged; on timeout it is killed as above
//! and its shell dropped. A shell that died while idle is replaced
//! transparently; one that dies while running a command makes that command
//! fail with [`TargetError::Disconnected`] (it may have run). Shells belong
//! to their session: a reconnect starts new ones.
//!
//! ```no_run
//! # async fn demo() -> Result<(), image_core::target::TargetError> {
//! use image_core::ssh::{SshAuth, SshConfig, SshTarget};
//! use image_core::target::{Exec, Target};
//! let cfg = SshConfig::new("127.0.0.1", 2222, "builder", SshAuth::key_file("/tmp/id_ed25519"));
//! let target = SshTarget::connect(cfg).await?;
//! let out = target.exec(&Exec::new("uname -r")).await?;
//! println!("{}", out.stdout_str());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use ssh2::{BlockDirections, Channel, ErrorCode, HashType, HostKeyType, MethodType, Session};
use zeroize::Zeroizing;

use crate::become_shell::{self, Ready, Reply, Sink};
use crate::target::{
    get_exec, put_exec, shell_quote, sudo_refusal, Become, Exec, FileMeta, Output, Target,
    TargetError,
};

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
    /// Timeout of commands whose [`Exec::timeout`] is not set.
    pub command_timeout: Option<Duration>,
    /// Run commands with [`Exec::become_`] in long-lived become shells
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

/// A host reached over one SSH session. Cheap to share (`Arc` it); every
/// method may be called from several tasks at once.
pub struct SshTarget {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: SshConfig,
    name: String,
    conn: Mutex<Arc<Conn>>,
    /// One reconnect at a time.
    reconnecting: tokio::sync::Mutex<()>,
    /// The host key algorithm that matched the pinned fingerprint, reused on
    /// reconnects.
    hostkey_pref: Mutex<Option<&'static str>>,
}

impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTarget")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SshTarget {
    /// Connects (retrying until [`SshConfig::retry_until`]) and
    /// authenticates.
    pub async fn connect(cfg: SshConfig) -> Result<SshTarget, TargetError> {
        let name = cfg.name();
        let (conn, pref) = establish(&cfg, &name, None).await?;
        let shared = Arc::new(Shared {
            cfg,
            name,
            conn: Mutex::new(Arc::new(conn)),
            reconnecting: tokio::sync::Mutex::new(()),
            hostkey_pref: Mutex::new(pref),
        });
        spawn_keepalive(Arc::downgrade(&shared));
        Ok(SshTarget { shared })
    }

    /// The configuration this target was connected with.
    pub fn config(&self) -> &SshConfig {
        &self.shared.cfg
    }

    /// SHA256 fingerprint of the host key of the current session, OpenSSH
    /// style (`SHA256:` + unpadded base64), for logs and pinning.
    pub fn host_key_fingerprint(&self) -> String {
        lock(&self.shared.conn).fingerprint.clone()
    }

    /// The live connection; a connection known to be broken (lost socket, or
    /// a channel that could not be closed) is replaced first.
    async fn conn(&self) -> Result<Arc<Conn>, TargetError> {
        let conn = lock(&self.shared.conn).clone();
        if !conn.broken.load(Ordering::Acquire) {
            return Ok(conn);
        }
        tracing::debug!(host = %self.shared.name, "session is broken: reconnecting");
        self.reconnect_inner(Some(conn)).await?;
        Ok(lock(&self.shared.conn).clone())
    }

    /// Replaces the session (unless another task replaced `seen` already).
    async fn reconnect_inner(&self, seen: Option<Arc<Conn>>) -> Result<(), TargetError> {
        let _one = self.shared.reconnecting.lock().await;
        if let Some(seen) = seen {
            if !Arc::ptr_eq(&seen, &lock(&self.shared.conn)) {
                return Ok(());
            }
        }
        let pref = *lock(&self.shared.hostkey_pref);
        let (conn, pref) = establish(&self.shared.cfg, &self.shared.name, pref).await?;
        *lock(&self.shared.hostkey_pref) = pref;
        let old = std::mem::replace(&mut *lock(&self.shared.conn), Arc::new(conn));
        // Commands still running on the old session finish there; the old
        // session says goodbye on drop: keep that off the runtime.
        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
        Ok(())
    }

    /// Runs `cmd` with `stdin` (instead of `cmd.stdin`, saving a copy of
    /// large file contents), mapping transport failures and sudo refusals.
    async fn run(&self, cmd: &Exec, stdin: Option<Vec<u8>>) -> Result<Output, TargetError> {
        let stdin = Arc::new(stdin);
        if let (true, Some(b)) = (self.shared.cfg.become_shell, &cmd.become_) {
            // sudo has let the shell start: its output is the command's own,
            // never a sudo refusal.
            if let Some(res) = self.run_in_shell(cmd, &b.user, stdin.clone()).await {
                return res;
            }
        }
        let out = self.run_unchecked(cmd, stdin).await?;
        if cmd.become_.is_some() {
            if let Some(detail) = sudo_refusal(&out) {
                return Err(TargetError::SudoRefused {
                    host: self.shared.name.clone(),
                    detail,
                });
            }
        }
        Ok(out)
    }

    async fn run_unchecked(
        &self,
        cmd: &Exec,
        stdin: Arc<Option<Vec<u8>>>,
    ) -> Result<Output, TargetError> {
        let host = self.shared.name.clone();
        let timeout = cmd.timeout.or(self.shared.cfg.command_timeout);
        // Tag the process tree so a command that times out can be killed.
        let (line, kill) = match timeout.map(|_| exec_tag()) {
            Some(tag) => (
                tagged_line(cmd, &tag),
                Some(kill_line(&tag, cmd.become_.clone())),
            ),
            None => (cmd.shell_line(), None),
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        let line = Arc::new(line);
        let mut retried = false;
        let res = loop {
            let conn = self.conn().await?;
            let (line, stdin, kill) = (line.clone(), stdin.clone(), kill.clone());
            let res = tokio::task::spawn_blocking(move || {
                let stdin = stdin.as_deref().unwrap_or_default();
                run_channel(&conn, &line, stdin, deadline, kill.as_deref())
            })
            .await
            .map_err(|e| TargetError::Other {
                host: host.clone(),
                detail: format!("command task failed: {e}"),
            })?;
            match res {
                // The session died while idle (e.g. dropped by the peer): the
                // command never reached the host, so it is safe to reconnect
                // and run it once more.
                Err(ChanError::NotStarted(d)) if !retried => {
                    tracing::debug!(host = %host, error = %d, "session lost before the command started; reconnecting");
                    retried = true;
                }
                Err(ChanError::NotStarted(d)) => break Err(ChanError::Lost(d)),
                other => break other,
            }
        };
        res.map_err(|e| self.chan_error(cmd, timeout, e))
    }

    /// Runs `cmd` in a become shell of `user`; `None` when it should take
    /// the per-command path (all shells busy, none can start).
    async fn run_in_shell(
        &self,
        cmd: &Exec,
        user: &str,
        stdin: Arc<Option<Vec<u8>>>,
    ) -> Option<Result<Output, TargetError>> {
        let timeout = cmd.timeout.or(self.shared.cfg.command_timeout);
        let tag = timeout.map(|_| exec_tag());
        let job = Arc::new(ShellJob {
            user: user.to_string(),
            script: cmd.script(),
            stdin,
            kill: tag.as_ref().map(|t| kill_line(t, cmd.become_.clone())),
            tag,
            deadline: timeout.map(|t| Instant::now() + t),
        });
        let mut retried = false;
        let err = loop {
            let conn = match self.conn().await {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let job = job.clone();
            let res = match tokio::task::spawn_blocking(move || shell_exec(&conn, &job)).await {
                Ok(r) => r,
                Err(e) => {
                    return Some(Err(TargetError::Other {
                        host: self.shared.name.clone(),
                        detail: format!("command task failed: {e}"),
                    }))
                }
            };
            match res {
                ShellOutcome::Done(out) => return Some(Ok(out)),
                ShellOutcome::Fallback => return None,
                // The session died before the command was sent.
                ShellOutcome::Failed(ChanError::NotStarted(d)) if !retried => {
                    tracing::debug!(host = %self.shared.name, error = %d, "session lost before the command started; reconnecting");
                    retried = true;
                }
                ShellOutcome::Failed(ChanError::NotStarted(d)) => break ChanError::Lost(d),
                ShellOutcome::Failed(e) => break e,
            }
        };
        Some(Err(self.chan_error(cmd, timeout, err)))
    }

    /// The error to report for a command that failed on the transport.
    fn chan_error(&self, cmd: &Exec, timeout: Option<Duration>, e: ChanError) -> TargetError {
        let host = self.shared.name.clone();
        match e {
            ChanError::Timeout => TargetError::Timeout {
                host,
                command: cmd.command.clone(),
                after: timeout.unwrap_or_default(),
            },
            ChanError::Lost(detail) | ChanError::NotStarted(detail) => TargetError::Disconnected {
                host,
                during: format!("`{}`", short(&cmd.command)),
                detail,
            },
            ChanError::Other(detail) => TargetError::Other {
                host,
                detail: format!("running `{}`: {detail}", short(&cmd.command)),
            },
        }
    }
}

/// [`Exec::shell_line`] with the tag in the environment `sh` starts with
/// (an `export` in the script would not show in its `/proc/PID/environ`).
fn tagged_line(cmd: &Exec, tag: &str) -> String {
    let sh = format!(
        "env {TAG_VAR}={} sh -c {}",
        shell_quote(tag),
        shell_quote(&cmd.script())
    );
    match &cmd.become_ {
        None => sh,
        Some(b) => format!("sudo -n -H -u {} -- {sh}", shell_quote(&b.user)),
    }
}

/// The command that kills what is left of a timed-out command: every
/// process whose environment carries its tag, as the same user.
fn kill_line(tag: &str, become_: Option<Become>) -> String {
    // Passes until none is left: a process may fork while a pass runs.
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do \
           found=; \
           for e in /proc/[0-9]*/environ; do \
             if grep -qzx -- {pat} \"$e\" 2>/dev/null; then \
               p=${{e#/proc/}}; kill -9 \"${{p%/environ}}\" 2>/dev/null && found=1; \
             fi; \
           done; \
           [ -n \"$found\" ] || break; \
         done; true",
        pat = shell_quote(&format!("{TAG_VAR}={tag}")),
    );
    Exec::new(script).become_opt(become_).shell_line()
}

#[async_trait]
impl Target for SshTarget {
    fn name(&self) -> String {
        self.shared.name.clone()
    }

    async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError> {
        self.run(cmd, cmd.stdin.clone()).await
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        meta: &FileMeta,
        become_: Option<&Become>,
    ) -> Result<(), TargetError> {
        let mut cmd = put_exec(&self.shared.name, path, content, meta, become_)?;
        let stdin = cmd.stdin.take();
        let out = self.run(&cmd, stdin).await?;
        if !out.success() {
            return Err(file_error(&self.shared.name, "write", path, &out));
        }
        Ok(())
    }

    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        let out = self.exec(&get_exec(path, become_)).await?;
        if !out.success() {
            return Err(file_error(&self.shared.name, "read", path, &out));
        }
        Ok(out.stdout)
    }

    async fn reconnect(&self) -> Result<(), TargetError> {
        self.reconnect_inner(None).await
    }
}

fn file_error(host: &str, op: &'static str, path: &str, out: &Output) -> TargetError {
    let stderr = out.stderr_str();
    let detail = if stderr.trim().is_empty() {
        format!("exit status {}", out.status)
    } else {
        stderr.trim().to_string()
    };
    TargetError::File {
        host: host.to_string(),
        op,
        path: path.to_string(),
        detail,
    }
}

/// At most the first line, 80 characters, of a command (for messages).
fn short(cmd: &str) -> String {
    let line = cmd.lines().next().unwrap_or("");
    let mut s: String = line.chars().take(80).collect();
    if s.len() < cmd.len() {
        s.push('…');
    }
    s
}

/// Environment variable that tags the processes of a command with a timeout.
const TAG_VAR: &str = "IMAGE_CLI_EXEC_ID";

fn exec_tag() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

// ---------------------------------------------------------------------------
// Connecting

/// Why one connection attempt failed.
enum AttemptError {
    /// Worth retrying (refused, reset, no banner, timeout).
    Transient(String),
    /// The server refused the key (retried until the deadline: a fresh host
    /// may not have installed it yet).
    Auth(String),
    /// The host key does not match the pinned one: never retried.
    HostKey { found: String, expected: String },
    /// Our side is wrong (unreadable key, ...): not retried.
    Fatal(String),
}

/// Connects with retries until `cfg.retry_until`.
async fn establish(
    cfg: &SshConfig,
    name: &str,
    pref: Option<&'static str>,
) -> Result<(Conn, Option<&'static str>), TargetError> {
    let start = Instant::now();
    let deadline = start + cfg.retry_until;
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u32;
    // The config is cloned into each blocking attempt; the clone's key
    // material is wiped on drop like the original's.
    loop {
        attempts += 1;
        let c = cfg.clone();
        let res = tokio::task::spawn_blocking(move || attempt(&c, pref))
            .await
            .map_err(|e| TargetError::Other {
                host: name.to_string(),
                detail: format!("connection task failed: {e}"),
            })?;
        let (last, auth) = match res {
            Ok(ok) => {
                tracing::debug!(host = name, attempts, elapsed = ?start.elapsed(), "connected");
                return Ok(ok);
            }
            Err(AttemptError::HostKey { found, expected }) => {
                return Err(TargetError::HostKeyMismatch {
                    host: format!("{}:{}", cfg.host, cfg.port),
                    found,
                    expected,
                })
            }
            Err(AttemptError::Fatal(detail)) => {
                return Err(TargetError::Other {
                    host: name.to_string(),
                    detail,
                })
            }
            Err(AttemptError::Auth(d)) => (d, true),
            Err(AttemptError::Transient(d)) => (d, false),
        };
        let now = Instant::now();
        if now >= deadline {
            let tried = format!(
                "tried {attempts} time{} over {:.1}s",
                if attempts == 1 { "" } else { "s" },
                start.elapsed().as_secs_f64()
            );
            return Err(if auth {
                TargetError::AuthFailed {
                    host: name.to_string(),
                    user: cfg.user.clone(),
                    detail: format!("{}: {last} ({tried})", cfg.auth.describe()),
                }
            } else {
                TargetError::Unreachable {
                    host: name.to_string(),
                    detail: format!("{last} ({tried})"),
                }
            });
        }
        tracing::debug!(host = name, attempts, error = %last, "connect attempt failed; retrying");
        let pause = (backoff + jitter(backoff / 5)).min(deadline - now);
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn check_key_file(p: &Path) -> Result<(), String> {
    match std::fs::File::open(p) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("cannot read private key {}: {e}", p.display())),
    }
}

/// Up to `max` of pseudo-random delay (spreads reconnect storms).
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let max_ms = max.as_millis().max(1) as u32;
    Duration::from_millis(u64::from(nanos % max_ms))
}

/// Host key algorithm families, for finding the key a pin names.
const HOSTKEY_ALGS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512,rsa-sha2-256",
];

fn alg_of(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Ed25519 => HOSTKEY_ALGS[0],
        HostKeyType::Ecdsa256 => HOSTKEY_ALGS[1],
        HostKeyType::Ecdsa384 => HOSTKEY_ALGS[2],
        HostKeyType::Ecdsa521 => HOSTKEY_ALGS[3],
        HostKeyType::Rsa => HOSTKEY_ALGS[4],
        _ => return None,
    })
}

/// Compares fingerprints, tolerating base64 padding and a missing prefix.
fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim();
        let s = s.strip_prefix("SHA256:").unwrap_or(s);
        s.trim_end_matches('=').to_string()
    };
    norm(a) == norm(b)
}

/// One connection attempt: TCP, handshake, host key check, authentication.
fn attempt(
    cfg: &SshConfig,
    pref: Option<&'static str>,
) -> Result<(Conn, Option<&'static str>), AttemptError> {
    if let SshAuth::KeyFile(p) = &cfg.auth {
        check_key_file(p).map_err(AttemptError::Fatal)?;
    }
    let (sess, sock, fp, kind) = handshake(cfg, pref)?;
    let (sess, sock, fp, pref) = match &cfg.host_key {
        HostKeyPolicy::AcceptAny => (sess, sock, fp, pref),
        HostKeyPolicy::Fingerprint(want) if same_fingerprint(&fp, want) => (sess, sock, fp, pref),
        HostKeyPolicy::Fingerprint(want) => {
            // The pin may name another of the host's keys: ask for each type.
            let mut found = None;
            for alg in HOSTKEY_ALGS {
                if Some(*alg) == kind.and_then(alg_of) || Some(*alg) == pref {
                    continue;
                }
                match handshake(cfg, Some(alg)) {
                    Ok((s, so, f, _)) if same_fingerprint(&f, want) => {
                        found = Some((s, so, f, Some(*alg)));
                        break;
                    }
                    Ok(_) => {}
                    Err(AttemptError::Transient(_)) => {} // host lacks that type
                    Err(e) => return Err(e),
                }
            }
            match found {
                Some(f) => f,
                None => {
                    return Err(AttemptError::HostKey {
                        found: fp,
                        expected: want.clone(),
                    })
                }
            }
        }
    };
    authenticate(cfg, &sess)?;
    sess.set_timeout(0);
    if !cfg.keepalive_interval.is_zero() {
        sess.set_keepalive(false, cfg.keepalive_interval.as_secs().max(1) as u32);
    }
    sess.set_blocking(false);
    Ok((
        Conn {
            sess,
            sock,
            io: Mutex::new(()),
            open: Mutex::new(()),
            broken: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            fingerprint: fp,
            shells: Mutex::new(HashMap::new()),
        },
        pref,
    ))
}

type Handshaken = (Session, TcpStream, String, Option<HostKeyType>);

fn handshake(cfg: &SshConfig, hostkey_alg: Option<&str>) -> Result<Handshaken, AttemptError> {
    let addrs: Vec<SocketAddr> = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| AttemptError::Transient(format!("resolving {}: {e}", cfg.host)))?
        .collect();
    let mut last = format!("{} resolves to no address", cfg.host);
    let mut tcp = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, cfg.connect_timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {a}: {e}"),
        }
    }
    let tcp = tcp.ok_or(AttemptError::Transient(last))?;
    // Without TCP_NODELAY each channel round trip waits for delayed ACKs.
    tcp.set_nodelay(true)
        .map_err(|e| AttemptError::Transient(format!("setting TCP_NODELAY: {e}")))?;
    if !cfg.keepalive_interval.is_zero() {
        // With keepalives going out, a peer that vanished (instance gone, no
        // FIN) leaves them unacknowledged: let the kernel drop the connection
        // then, so that commands fail with Disconnected instead of hanging.
        let ms = (cfg.keepalive_interval * 4)
            .max(Duration::from_secs(30))
            .as_millis()
            .min(u32::MAX as u128) as libc::c_uint;
        // SAFETY: a valid socket and a c_uint option value of the given size.
        unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                &ms as *const libc::c_uint as *const libc::c_void,
                std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
            );
        }
    }
    let sock = tcp
        .try_clone()
        .map_err(|e| AttemptError::Fatal(format!("duplicating the socket: {e}")))?;
    let mut sess =
        Session::new().map_err(|e| AttemptError::Fatal(format!("creating a session: {e}")))?;
    sess.set_tcp_stream(tcp);
    sess.set_timeout(cfg.connect_timeout.as_millis().min(u32::MAX as u128) as u32);
    if let Some(alg) = hostkey_alg {
        sess.method_pref(MethodType::HostKey, alg)
            .map_err(|e| AttemptError::Fatal(format!("host key preference {alg}: {e}")))?;
    }
    sess.handshake()
        .map_err(|e| AttemptError::Transient(format!("SSH handshake: {}", e.message())))?;
    let hash = sess
        .host_key_hash(HashType::Sha256)
        .ok_or_else(|| AttemptError::Transient("the server sent no host key".to_string()))?;
    let fp = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
    );
    let kind = sess.host_key().map(|(_, t)| t);
    Ok((sess, sock, fp, kind))
}

fn authenticate(cfg: &SshConfig, sess: &Session) -> Result<(), AttemptError> {
    let res = match &cfg.auth {
        SshAuth::KeyFile(p) => sess.userauth_pubkey_file(&cfg.user, None, p, None),
        SshAuth::KeyMemory {
            private_pem,
            passphrase,
        } => sess.userauth_pubkey_memory(
            &cfg.user,
            None,
            private_pem.as_str(),
            passphrase.as_ref().map(|p| p.as_str()),
        ),
    };
    match res {
        Ok(()) if sess.authenticated() => Ok(()),
        Ok(()) => Err(AttemptError::Auth("not authenticated".to_string())),
        Err(e) => Err(match e.code() {
            // AUTHENTICATION_FAILED, PUBLICKEY_UNVERIFIED
            ErrorCode::Session(-18) | ErrorCode::Session(-19) => {
                AttemptError::Auth(e.message().to_string())
            }
            // FILE (unreadable/unparsable key), METHOD_NOT_SUPPORTED
            ErrorCode::Session(-16) | ErrorCode::Session(-33) => AttemptError::Fatal(format!(
                "cannot use the {}: {}",
                cfg.auth.describe(),
                e.message()
            )),
            // Socket errors and timeouts: the server went away meanwhile.
            ErrorCode::Session(-7 | -9 | -13 | -30 | -43) => {
                AttemptError::Transient(format!("during authentication: {}", e.message()))
            }
            _ => AttemptError::Auth(e.message().to_string()),
        }),
    }
}

/// Sends keepalives while the target lives and the session is idle.
fn spawn_keepalive(shared: Weak<Shared>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(s) = shared.upgrade() else { return };
    let interval = s.cfg.keepalive_interval;
    drop(s);
    if interval.is_zero() {
        return;
    }
    rt.spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(s) = shared.upgrade() else { break };
            let conn = lock(&s.conn).clone();
            drop(s);
            if conn.broken.load(Ordering::Acquire) {
                continue;
            }
            let _ = tokio::task::spawn_blocking(move || conn.keepalive(0)).await;
        }
    });
}

// ---------------------------------------------------------------------------
// The session and its channels

/// One authenticated SSH session in non-blocking mode.
struct Conn {
    sess: Session,
    /// A duplicate of the session's socket: for `poll(2)` and `shutdown`.
    sock: TcpStream,
    /// Held around every libssh2 call on this session.
    io: Mutex<()>,
    /// Held for a whole channel open (libssh2 keeps its state per session).
    open: Mutex<()>,
    /// The socket failed or a channel could not be closed: reconnect.
    broken: AtomicBool,
    /// Channels in use (commands in flight).
    active: AtomicUsize,
    /// SHA256 fingerprint of the host key.
    fingerprint: String,
    /// Become shells by user.
    shells: Mutex<HashMap<String, UserShells>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The shells end with the session (their servers see EOF); their
        // channels are freed under the lock like any other.
        let idle: Vec<Shell> = std::mem::take(&mut *lock(&self.shells))
            .into_values()
            .flat_map(|u| u.idle)
            .collect();
        let _io = lock(&self.io);
        drop(idle);
        if self.broken.load(Ordering::Acquire) {
            let _ = self.sock.shutdown(std::net::Shutdown::Both);
        } else {
            // Non-blocking: one try, never waits.
            let _ = self.sess.disconnect(None, "bye", None);
        }
    }
}

/// What went wrong on a channel.
enum ChanError {
    Timeout,
    /// The session broke while the command ran (or may have run).
    Lost(String),
    /// The session broke before the command was sent: safe to retry.
    NotStarted(String),
    Other(String),
}

fn would_block(e: &ssh2::Error) -> bool {
    matches!(e.code(), ErrorCode::Session(-37))
}

/// Marks the session in use for the life of the guard.
struct Active<'a>(&'a Conn);

impl<'a> Active<'a> {
    fn new(c: &'a Conn) -> Self {
        c.active.fetch_add(1, Ordering::AcqRel);
        Active(c)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Conn {
    fn io(&self) -> MutexGuard<'_, ()> {
        lock(&self.io)
    }

    fn lost(&self, what: &str, e: impl fmt::Display) -> ChanError {
        self.broken.store(true, Ordering::Release);
        ChanError::Lost(format!("{what}: {e}"))
    }

    /// Sends a keepalive if due, only when at most `busy` commands (the
    /// caller's own) are in flight and nothing is waiting to be sent: a
    /// keepalive packet left half-sent would wedge libssh2's send queue.
    fn keepalive(&self, busy: usize) {
        if self.active.load(Ordering::Acquire) > busy {
            return;
        }
        let _io = self.io();
        if matches!(
            self.sess.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            return;
        }
        let _ = self.sess.keepalive_send();
    }

    /// Waits until the socket may let us progress, or `deadline`. With other
    /// commands in flight another thread may consume our packets, so the wait
    /// is kept short.
    fn wait(&self, deadline: Option<Instant>) {
        let mut events = libc::POLLIN;
        if matches!(
            self.sess.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            events |= libc::POLLOUT;
        }
        let mut wait = if self.active.load(Ordering::Acquire) > 1 {
            Duration::from_millis(2)
        } else {
            Duration::from_millis(100)
        };
        if let Some(d) = deadline {
            wait = wait.min(d.saturating_duration_since(Instant::now()));
        }
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int);
        }
    }

    /// Retries a non-blocking libssh2 call until it stops saying "would
    /// block" or `deadline` passes (`None` from the closure = would block).
    fn retry<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut() -> Result<Option<T>, ChanError>,
    ) -> Result<T, ChanError> {
        loop {
            let r = {
                let _io = self.io();
                f()?
            };
            if let Some(v) = r {
                return Ok(v);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ChanError::Timeout);
            }
            self.wait(deadline);
        }
    }

    /// Opens a channel and starts `line` on it. Both steps hold [`Conn::open`]:
    /// libssh2 keeps one channel-open state per session, and while waiting
    /// for the reply to `exec` it takes any channel's reply for its own.
    fn start<'a>(
        &'a self,
        line: &str,
        deadline: Option<Instant>,
    ) -> Result<Chan<'a>, (ChanError, Option<Chan<'a>>)> {
        let _one = lock(&self.open);
        let ch = self
            .retry(deadline, || match self.sess.channel_session() {
                Ok(c) => Ok(Some(c)),
                Err(e) if would_block(&e) => Ok(None),
                Err(e) => Err(self.classify("opening a channel", &e)),
            })
            .map_err(|e| (e, None))?;
        let mut chan = Chan {
            conn: self,
            ch: Some(ch),
            write_pending: None,
        };
        // Once the request is out the command may run, even if we give up
        // waiting for the reply: the channel comes back with the error.
        match self.retry(deadline, || match chan.ch().exec(line) {
            Ok(()) => Ok(Some(())),
            Err(e) if would_block(&e) => Ok(None),
            Err(e) => Err(self.classify("starting the command", &e)),
        }) {
            Ok(()) => Ok(chan),
            Err(e) => Err((e, Some(chan))),
        }
    }

    /// Socket errors, disconnects and timeouts mean the session is lost.
    fn classify(&self, what: &str, e: &ssh2::Error) -> ChanError {
        match e.code() {
            ErrorCode::Session(-7 | -9 | -13 | -30 | -43) => self.lost(what, e.message()),
            _ => ChanError::Other(format!("{what}: {}", e.message())),
        }
    }
}

/// A channel that is closed and freed under the session lock when dropped.
struct Chan<'a> {
    conn: &'a Conn,
    ch: Option<Channel>,
    /// A write returned "would block": libssh2 may hold a half-sent packet
    /// that only a retry of that same write may finish.
    write_pending: Option<Vec<u8>>,
}

impl Chan<'_> {
    fn ch(&mut self) -> &mut Channel {
        self.ch.as_mut().expect("channel present until drop")
    }
}

impl Drop for Chan<'_> {
    fn drop(&mut self) {
        let Some(ch) = self.ch.take() else { return };
        close_channel(self.conn, ch, self.write_pending.take());
    }
}

/// Closes and frees a channel under the session lock, first finishing a
/// half-sent packet (`pending`); marks the session broken if it cannot.
fn close_channel(conn: &Conn, mut ch: Channel, pending: Option<Vec<u8>>) {
    let grace = Instant::now() + Duration::from_secs(3);
    // Finish a half-sent packet, else the whole session is stuck.
    if let Some(buf) = pending {
        loop {
            let outbound = matches!(
                conn.sess.block_directions(),
                BlockDirections::Outbound | BlockDirections::Both
            );
            if !outbound {
                break;
            }
            let r = {
                let _io = conn.io();
                ch.write(&buf)
            };
            match r {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                _ => break,
            }
            if Instant::now() >= grace {
                conn.broken.store(true, Ordering::Release);
                break;
            }
            conn.wait(Some(grace));
        }
    }
    let closed = conn.retry(Some(grace), || match ch.close() {
        Ok(()) => Ok(Some(())),
        Err(e) if would_block(&e) => Ok(None),
        Err(_) => Ok(Some(())), // the session is gone: nothing to close
    });
    if closed.is_err() {
        // libssh2 would retry the close when freeing, and could not.
        conn.broken.store(true, Ordering::Release);
    }
    let _io = conn.io();
    drop(ch);
}

/// Runs one command line on a new channel of `conn`: writes `stdin` (then
/// EOF), reads stdout and stderr interleaved (a full stderr window must not
/// stall stdout), and returns the exit status.
fn run_channel(
    conn: &Conn,
    line: &str,
    stdin: &[u8],
    deadline: Option<Instant>,
    on_timeout: Option<&str>,
) -> Result<Output, ChanError> {
    let _active = Active::new(conn);
    let (e, chan) = match conn.start(line, deadline) {
        Ok(mut chan) => match drive(conn, &mut chan, stdin, deadline) {
            Ok(out) => return Ok(out),
            Err(e) => (e, Some(chan)),
        },
        Err((ChanError::Lost(d), None)) => return Err(ChanError::NotStarted(d)),
        Err(failed) => failed,
    };
    if let (ChanError::Timeout, Some(kill), Some(_)) = (&e, on_timeout, &chan) {
        // Kill the command while its channel is still open: then the server
        // closes the channel at once and the session stays clean (else
        // closing it waits for the command to end).
        let until = Some(Instant::now() + Duration::from_secs(10));
        if run_channel(conn, kill, &[], until, None).is_err() {
            tracing::debug!("could not kill a timed-out command");
        }
    }
    drop(chan);
    Err(e)
}

/// Feeds standard input, collects both outputs and the exit status of the
/// command started on `chan`.
fn drive(
    conn: &Conn,
    chan: &mut Chan<'_>,
    stdin: &[u8],
    deadline: Option<Instant>,
) -> Result<Output, ChanError> {
    const CHUNK: usize = 64 * 1024;
    let mut written = 0usize;
    let mut eof_sent = false;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut progress = false;
        let at_eof;
        {
            let _io = conn.io();
            let ch = chan.ch.as_mut().expect("channel present");
            // Standard input, then EOF.
            while written < stdin.len() {
                let end = (written + CHUNK).min(stdin.len());
                match ch.write(&stdin[written..end]) {
                    Ok(n) => {
                        chan.write_pending = None;
                        written += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        chan.write_pending = Some(stdin[written..end].to_vec());
                        break;
                    }
                    Err(_) => {
                        // The command stopped reading (or the channel is
                        // closing): like EPIPE, not an error of ours.
                        chan.write_pending = None;
                        written = stdin.len();
                    }
                }
            }
            if written >= stdin.len() && !eof_sent {
                match ch.send_eof() {
                    Ok(()) => eof_sent = true,
                    Err(e) if would_block(&e) => {}
                    Err(_) => eof_sent = true,
                }
            }
            // Both output streams, a bounded amount per turn.
            for (stream_id, sink) in [(0, &mut out), (1, &mut err)] {
                let mut s = ch.stream(stream_id);
                for _ in 0..16 {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            sink.extend_from_slice(&buf[..n]);
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(conn.lost("reading output", e)),
                    }
                }
            }
            at_eof = ch.eof();
            if at_eof && !eof_sent {
                // The command closed its output with standard input unsent:
                // once it is gone, stop feeding it.
                if ch.wait_close().is_ok() {
                    break;
                }
            }
        }
        if at_eof && eof_sent {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ChanError::Timeout);
        }
        if !progress {
            if written >= stdin.len() {
                conn.keepalive(1);
            }
            conn.wait(deadline);
        }
    }
    // The exit status comes before the server's CLOSE.
    conn.retry(deadline, || match chan.ch().wait_close() {
        Ok(()) => Ok(Some(())),
        Err(e) if would_block(&e) => Ok(None),
        Err(e) => Err(conn.lost("waiting for the command to end", e.message())),
    })?;
    let status = {
        let _io = conn.io();
        let ch = chan.ch();
        let signal = ch.exit_signal().ok().and_then(|s| s.exit_signal);
        match signal {
            Some(_) => -1,
            None => ch
                .exit_status()
                .map_err(|e| ChanError::Other(format!("exit status: {}", e.message())))?,
        }
    };
    Ok(Output {
        status,
        stdout: out,
        stderr: err,
    })
}

// ---------------------------------------------------------------------------
// Become shells

/// Become shells started per user on one session, at most.
pub const MAX_SHELLS_PER_USER: usize = 4;

/// How long a become shell may take to start (sudo, PAM) before the
/// command takes the per-command path instead.
const SHELL_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The become shells of one user on one session.
#[derive(Default)]
struct UserShells {
    /// Shells waiting for a command.
    idle: Vec<Shell>,
    /// Shells that exist (idle or running a command).
    live: usize,
    /// A shell could not start (sudo refused, ...): per-command path only.
    unavailable: bool,
}

/// A running become shell: the channel of its server loop.
struct Shell {
    ch: Channel,
    /// See [`Chan::write_pending`].
    write_pending: Option<Vec<u8>>,
}

/// A command for a become shell.
struct ShellJob {
    user: String,
    /// [`Exec::script`].
    script: String,
    stdin: Arc<Option<Vec<u8>>>,
    /// The process tag, with a timeout.
    tag: Option<String>,
    /// What kills the tagged processes on timeout.
    kill: Option<String>,
    deadline: Option<Instant>,
}

enum ShellOutcome {
    Done(Output),
    /// Use the per-command path.
    Fallback,
    Failed(ChanError),
}

/// How a shell exchange failed.
enum ShellFail {
    /// Before the whole request was written: the command did not run.
    NotSent(String),
    Timeout,
    /// After: the command may have run.
    Lost(String),
}

enum Lease {
    Idle(Shell),
    /// Start a new shell (counted as live already).
    New,
    /// None free, no more allowed, or shells unavailable.
    None,
}

impl Conn {
    fn lease_shell(&self, user: &str) -> Lease {
        let mut pools = lock(&self.shells);
        let u = pools.entry(user.to_string()).or_default();
        if u.unavailable {
            return Lease::None;
        }
        if let Some(sh) = u.idle.pop() {
            return Lease::Idle(sh);
        }
        if u.live < MAX_SHELLS_PER_USER {
            u.live += 1;
            return Lease::New;
        }
        Lease::None
    }

    fn return_shell(&self, user: &str, sh: Shell) {
        lock(&self.shells)
            .entry(user.to_string())
            .or_default()
            .idle
            .push(sh);
    }

    /// Forgets a shell (closing its channel) or a failed start; with
    /// `disable`, no more shells are started for `user` on this session.
    fn drop_shell(&self, user: &str, sh: Option<Shell>, disable: bool) {
        {
            let mut pools = lock(&self.shells);
            let u = pools.entry(user.to_string()).or_default();
            u.live = u.live.saturating_sub(1);
            u.unavailable |= disable;
        }
        if let Some(sh) = sh {
            close_channel(self, sh.ch, sh.write_pending);
        }
    }
}

/// Runs `job` in a become shell of `conn` (blocking).
fn shell_exec(conn: &Conn, job: &ShellJob) -> ShellOutcome {
    let _active = Active::new(conn);
    let stdin = job.stdin.as_deref().unwrap_or_default();
    // A shell found dead, or refusing (its directory vanished), did not run
    // the command: try another, a few times.
    for _ in 0..3 {
        let mut sh = match conn.lease_shell(&job.user) {
            Lease::None => return ShellOutcome::Fallback,
            Lease::Idle(mut sh) => {
                if !idle_shell_alive(conn, &mut sh) {
                    tracing::debug!(user = %job.user, "become shell ended while idle; replacing it");
                    conn.drop_shell(&job.user, Some(sh), false);
                    continue;
                }
                sh
            }
            Lease::New => match start_shell(conn, &job.user, job.deadline) {
                Ok(sh) => sh,
                Err(e @ (ChanError::NotStarted(_) | ChanError::Timeout)) => {
                    conn.drop_shell(&job.user, None, false);
                    return ShellOutcome::Failed(e);
                }
                Err(ChanError::Lost(d) | ChanError::Other(d)) => {
                    tracing::debug!(user = %job.user, error = %d, "no become shell; running commands through sudo one by one");
                    conn.drop_shell(&job.user, None, true);
                    return ShellOutcome::Fallback;
                }
            },
        };
        let token = become_shell::token();
        let header =
            become_shell::request_header(job.script.len(), stdin.len(), &token, job.tag.as_deref());
        let parts: [&[u8]; 4] = [&header, job.script.as_bytes(), stdin, become_shell::RUN];
        let mut reply = Reply::new(&token);
        match shell_drive(conn, &mut sh, &parts, &mut reply, job.deadline) {
            Ok(()) if reply.refused() => {
                tracing::debug!(user = %job.user, "become shell refused a request; replacing it");
                conn.drop_shell(&job.user, Some(sh), false);
            }
            Ok(()) => {
                if reply.stray {
                    // Output arrived after the reply: a leftover process of
                    // some command writes to it. Not a shell to reuse.
                    tracing::warn!(user = %job.user, "a background process still writes to a become shell's output; dropping the shell");
                    conn.drop_shell(&job.user, Some(sh), false);
                } else {
                    conn.return_shell(&job.user, sh);
                }
                let status = reply.status();
                return ShellOutcome::Done(Output {
                    status,
                    stdout: reply.out,
                    stderr: reply.err,
                });
            }
            Err(ShellFail::NotSent(d)) => {
                conn.drop_shell(&job.user, Some(sh), false);
                if conn.broken.load(Ordering::Acquire) {
                    return ShellOutcome::Failed(ChanError::NotStarted(d));
                }
                tracing::debug!(user = %job.user, error = %d, "become shell lost before the command was sent; replacing it");
            }
            Err(ShellFail::Timeout) => {
                if let Some(kill) = &job.kill {
                    // Killed while the shell's channel is open: the server
                    // then replies at once and ends when its channel closes.
                    let until = Some(Instant::now() + Duration::from_secs(10));
                    if run_channel(conn, kill, &[], until, None).is_err() {
                        tracing::debug!("could not kill a timed-out command");
                    }
                }
                conn.drop_shell(&job.user, Some(sh), false);
                return ShellOutcome::Failed(ChanError::Timeout);
            }
            Err(ShellFail::Lost(d)) => {
                conn.drop_shell(&job.user, Some(sh), false);
                return ShellOutcome::Failed(ChanError::Lost(d));
            }
        }
    }
    ShellOutcome::Fallback
}

/// Starts a become shell as `user` and waits for its ready line.
fn start_shell(conn: &Conn, user: &str, deadline: Option<Instant>) -> Result<Shell, ChanError> {
    let limit = Instant::now() + SHELL_START_TIMEOUT;
    let until = deadline.map_or(limit, |d| d.min(limit));
    let mut chan = match conn.start(&become_shell::start_line(user), Some(until)) {
        Ok(chan) => chan,
        // No user command was sent: always safe to retry.
        Err((ChanError::Lost(d), _)) => return Err(ChanError::NotStarted(d)),
        Err((e, _)) => return Err(e),
    };
    let Some(ch) = chan.ch.take() else {
        return Err(ChanError::Other("become shell channel missing".to_string()));
    };
    let mut sh = Shell {
        ch,
        write_pending: chan.write_pending.take(),
    };
    drop(chan);
    let mut ready = Ready::default();
    match shell_drive(conn, &mut sh, &[], &mut ready, Some(until)) {
        Ok(()) => Ok(sh),
        Err(f) => {
            let stderr = String::from_utf8_lossy(&ready.stderr);
            let why = |d: String| match stderr.trim() {
                "" => d,
                e => format!("{d}: {e}"),
            };
            close_channel(conn, sh.ch, sh.write_pending);
            Err(match f {
                _ if conn.broken.load(Ordering::Acquire) => {
                    ChanError::NotStarted("session lost while starting a become shell".into())
                }
                ShellFail::Timeout if deadline.is_some_and(|d| Instant::now() >= d) => {
                    ChanError::Timeout
                }
                ShellFail::Timeout => ChanError::Other(format!(
                    "the become shell did not start within {SHELL_START_TIMEOUT:?}"
                )),
                ShellFail::NotSent(d) | ShellFail::Lost(d) => ChanError::Other(why(d)),
            })
        }
    }
}

/// Whether an idle shell is still there and quiet: reads what arrived for it
/// (nothing, unless it ended).
fn idle_shell_alive(conn: &Conn, sh: &mut Shell) -> bool {
    let _io = conn.io();
    let mut buf = [0u8; 1024];
    for stream_id in [0, 1] {
        match sh.ch.stream(stream_id).read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            // Output between replies (a leftover process of an earlier
            // command), an end, an error: not a shell to use.
            _ => return false,
        }
    }
    !sh.ch.eof()
}

/// The piece of `parts` (concatenated) at `offset`, at most `max` bytes and
/// within one part; the same for the same offset (retried writes).
fn piece_at<'a>(parts: &[&'a [u8]], mut offset: usize, max: usize) -> &'a [u8] {
    for p in parts {
        if offset < p.len() {
            return &p[offset..(offset + max).min(p.len())];
        }
        offset -= p.len();
    }
    &[]
}

/// Writes `parts` to a shell and feeds its standard output to `sink` until
/// the sink is done.
fn shell_drive(
    conn: &Conn,
    sh: &mut Shell,
    parts: &[&[u8]],
    sink: &mut dyn Sink,
    deadline: Option<Instant>,
) -> Result<(), ShellFail> {
    const CHUNK: usize = 64 * 1024;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut written = 0usize;
    let mut buf = vec![0u8; CHUNK];
    let ended = |written: usize, what: String| {
        let d = format!("become shell: {what}");
        if written < total {
            ShellFail::NotSent(d)
        } else {
            ShellFail::Lost(d)
        }
    };
    loop {
        let mut progress = false;
        let at_eof;
        {
            let _io = conn.io();
            while written < total {
                let piece = piece_at(parts, written, CHUNK);
                match sh.ch.write(piece) {
                    Ok(n) => {
                        sh.write_pending = None;
                        written += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        sh.write_pending = Some(piece.to_vec());
                        break;
                    }
                    Err(e) => {
                        sh.write_pending = None;
                        return Err(ended(written, format!("writing: {e}")));
                    }
                }
            }
            for stream_id in [0, 1] {
                let mut s = sh.ch.stream(stream_id);
                for _ in 0..16 {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            progress = true;
                            if let Err(e) = sink.feed(stream_id, &buf[..n]) {
                                return Err(ended(written, e));
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            conn.broken.store(true, Ordering::Release);
                            return Err(ended(written, format!("reading output: {e}")));
                        }
                    }
                }
            }
            at_eof = sh.ch.eof();
        }
        if sink.done() {
            return Ok(());
        }
        if at_eof {
            return Err(ended(written, "ended".to_string()));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ShellFail::Timeout);
        }
        if !progress {
            if written >= total {
                conn.keepalive(1);
            }
            conn.wait(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_without_padding() {
        assert!(same_fingerprint("SHA256:abc", "SHA256:abc="));
        assert!(same_fingerprint("abc", "SHA256:abc"));
        assert!(!same_fingerprint("SHA256:abc", "SHA256:abd"));
    }

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

    #[test]
    fn timed_commands_carry_their_tag_from_the_start() {
        let e = Exec::new("sleep 1").env("A", "b");
        assert_eq!(
            tagged_line(&e, "1-2-3"),
            "env IMAGE_CLI_EXEC_ID=1-2-3 sh -c 'export A=b; sleep 1'"
        );
        assert_eq!(
            tagged_line(&e.become_root(), "1-2-3"),
            "sudo -n -H -u root -- env IMAGE_CLI_EXEC_ID=1-2-3 sh -c 'export A=b; sleep 1'"
        );
    }

    #[test]
    fn short_command_for_messages() {
        assert_eq!(short("echo hi"), "echo hi");
        assert_eq!(short("a\nb"), "a…");
    }

    #[tokio::test]
    async fn closed_port_is_unreachable_after_retrying() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k");
        std::fs::write(&key, "not a key").expect("write");
        let mut cfg = SshConfig::new("127.0.0.1", port, "u", SshAuth::key_file(&key));
        cfg.retry_until = Duration::from_millis(500);
        let t0 = Instant::now();
        let e = SshTarget::connect(cfg).await.expect_err("closed port");
        assert!(matches!(e, TargetError::Unreachable { .. }), "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(500), "{e}");
        assert!(e.to_string().contains("refused"), "{e}");
    }

    #[tokio::test]
    async fn missing_key_file_fails_at_once() {
        let cfg = SshConfig::new("127.0.0.1", 1, "u", SshAuth::key_file("/nonexistent/key"));
        let e = SshTarget::connect(cfg).await.expect_err("no key");
        assert!(matches!(e, TargetError::Other { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/key"), "{e}");
    }
}
