//! [`SshTarget`]: the [`Target`] implementation. It owns the configuration
//! and the current session, replaces a broken session, sends keepalives, and
//! runs each command in a become shell or on its own channel, turning
//! transport failures into [`TargetError`]s that name the host and command.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::channel::run_channel;
use super::command::{exec_tag, guarded_script, kill_line, tagged_line};
use super::config::SshConfig;
use super::connect::establish;
use super::lock;
use super::session::{ChanError, Conn};
use super::shells::{shell_exec, ShellJob, ShellOutcome};
use crate::target::{sudo_refusal, Become, Exec, FileMeta, Output, Target, TargetError};

/// A host reached over one SSH session. Cheap to share (`Arc` it); every
/// method may be called from several tasks at once.
pub struct SshTarget {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) cfg: SshConfig,
    pub(super) name: String,
    pub(super) conn: Mutex<Arc<Conn>>,
    /// One reconnect at a time.
    pub(super) reconnecting: tokio::sync::Mutex<()>,
    /// The host key algorithm that matched the pinned fingerprint, reused on
    /// reconnects.
    pub(super) hostkey_pref: Mutex<Option<&'static str>>,
}

impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTarget")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
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
    pub(super) async fn run(
        &self,
        cmd: &Exec,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TargetError> {
        let stdin = Arc::new(stdin);
        // A become shell has no terminal: a `tty` command takes its own channel.
        if let (true, false, Some(b)) = (self.shared.cfg.become_shell, cmd.tty, &cmd.become_) {
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
            let (line, stdin, kill, tty) = (line.clone(), stdin.clone(), kill.clone(), cmd.tty);
            let res = tokio::task::spawn_blocking(move || {
                let stdin = stdin.as_deref().unwrap_or_default();
                run_channel(&conn, &line, stdin, deadline, kill.as_deref(), tty)
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
            script: match &tag {
                Some(t) => guarded_script(&cmd.script(), t),
                None => cmd.script(),
            },
            stdin,
            kill: tag.as_ref().map(|t| kill_line(t, cmd.become_.clone())),
            tag,
            subshell: cmd.subshell,
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
        self.write_file(path, content, meta, become_).await
    }

    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        self.read_file(path, become_).await
    }

    async fn reconnect(&self) -> Result<(), TargetError> {
        self.reconnect_inner(None).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::SshAuth;

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
