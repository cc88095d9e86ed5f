//! Become shells: long-lived `sh` servers started once per user through
//! `sudo -n -H -u USER` on their own channel (see the private `become_shell`
//! module for the protocol), leased to one command at a time, replaced when
//! they die while idle, and given up for the per-command path when sudo
//! refuses them.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh2::Channel;

use super::channel::{close_channel, run_channel};
use super::lock;
use super::session::{Active, ChanError, Conn};
use crate::become_shell::{self, Ready, Reply, Sink};
use crate::target::Output;

/// Become shells started per user on one session, at most.
pub const MAX_SHELLS_PER_USER: usize = 4;

/// How long a become shell may take to start (sudo, PAM) before the
/// command takes the per-command path instead.
const SHELL_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The become shells of one user on one session.
#[derive(Default)]
pub(super) struct UserShells {
    /// Shells waiting for a command.
    pub(super) idle: Vec<Shell>,
    /// Shells that exist (idle or running a command).
    live: usize,
    /// A shell could not start (sudo refused, ...): per-command path only.
    unavailable: bool,
}

/// A running become shell: the channel of its server loop.
pub(super) struct Shell {
    ch: Channel,
    /// See [`Chan::write_pending`].
    write_pending: Option<Vec<u8>>,
}

/// A command for a become shell.
pub(super) struct ShellJob {
    pub(super) user: String,
    /// [`Exec::script`].
    pub(super) script: String,
    pub(super) stdin: Arc<Option<Vec<u8>>>,
    /// The process tag, with a timeout.
    pub(super) tag: Option<String>,
    /// [`crate::target::Exec::subshell`].
    pub(super) subshell: bool,
    /// What kills the tagged processes on timeout.
    pub(super) kill: Option<String>,
    pub(super) deadline: Option<Instant>,
}

pub(super) enum ShellOutcome {
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
pub(super) fn shell_exec(conn: &Conn, job: &ShellJob) -> ShellOutcome {
    let _active = Active::new(conn);
    let stdin = job.stdin.as_deref().unwrap_or_default();
    if stdin.len() > become_shell::MAX_STDIN {
        return ShellOutcome::Fallback;
    }
    // A shell found dead, or lost before the request was sent, did not run
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
        let request =
            become_shell::request(&job.script, stdin, &token, job.tag.as_deref(), job.subshell);
        let mut reply = Reply::new(&token);
        match shell_drive(conn, &mut sh, &[&request], &mut reply, job.deadline) {
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
                    if run_channel(conn, kill, &[], until, None, false).is_err() {
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
    let mut chan = match conn.start(&become_shell::start_line(user), Some(until), false) {
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
    let prelude = [become_shell::PRELUDE.as_bytes()];
    match shell_drive(conn, &mut sh, &prelude, &mut ready, Some(until)) {
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
