//! One authenticated SSH session in libssh2's non-blocking mode, shared by
//! every command in flight: the lock every libssh2 call is made under, the
//! `poll(2)` wait on its socket, keepalives, and opening a channel with a
//! command started on it.

use std::collections::HashMap;
use std::fmt;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, ErrorCode, Session};

use super::channel::Chan;
use super::lock;
use super::shells::{Shell, UserShells};

/// One authenticated SSH session in non-blocking mode.
pub(super) struct Conn {
    pub(super) sess: Session,
    /// A duplicate of the session's socket: for `poll(2)` and `shutdown`.
    pub(super) sock: TcpStream,
    /// Held around every libssh2 call on this session.
    pub(super) io: Mutex<()>,
    /// Held for a whole channel open (libssh2 keeps its state per session).
    pub(super) open: Mutex<()>,
    /// The socket failed or a channel could not be closed: reconnect.
    pub(super) broken: AtomicBool,
    /// Channels in use (commands in flight).
    pub(super) active: AtomicUsize,
    /// SHA256 fingerprint of the host key.
    pub(super) fingerprint: String,
    /// Become shells by user.
    pub(super) shells: Mutex<HashMap<String, UserShells>>,
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
pub(super) enum ChanError {
    Timeout,
    /// The session broke while the command ran (or may have run).
    Lost(String),
    /// The session broke before the command was sent: safe to retry.
    NotStarted(String),
    Other(String),
}

/// libssh2's "would block" (`LIBSSH2_ERROR_EAGAIN`).
pub(super) fn would_block(e: &ssh2::Error) -> bool {
    matches!(e.code(), ErrorCode::Session(-37))
}

/// Marks the session in use for the life of the guard.
pub(super) struct Active<'a>(&'a Conn);

impl<'a> Active<'a> {
    pub(super) fn new(c: &'a Conn) -> Self {
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
    pub(super) fn io(&self) -> MutexGuard<'_, ()> {
        lock(&self.io)
    }

    pub(super) fn lost(&self, what: &str, e: impl fmt::Display) -> ChanError {
        self.broken.store(true, Ordering::Release);
        ChanError::Lost(format!("{what}: {e}"))
    }

    /// Sends a keepalive if due, only when at most `busy` commands (the
    /// caller's own) are in flight and nothing is waiting to be sent: a
    /// keepalive packet left half-sent would wedge libssh2's send queue.
    pub(super) fn keepalive(&self, busy: usize) {
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
    pub(super) fn wait(&self, deadline: Option<Instant>) {
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
    pub(super) fn retry<T>(
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
    /// With `tty`, a pseudo-terminal is asked for first (as `ssh -tt`).
    pub(super) fn start<'a>(
        &'a self,
        line: &str,
        deadline: Option<Instant>,
        tty: bool,
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
        // A terminal as `ssh -tt` asks for one (default modes: CRLF output,
        // standard error on the terminal too).
        if tty {
            if let Err(e) = self.retry(deadline, || {
                match chan.ch().request_pty("xterm", None, None) {
                    Ok(()) => Ok(Some(())),
                    Err(e) if would_block(&e) => Ok(None),
                    Err(e) => Err(self.classify("asking for a terminal", &e)),
                }
            }) {
                return Err((e, Some(chan)));
            }
        }
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
    pub(super) fn classify(&self, what: &str, e: &ssh2::Error) -> ChanError {
        match e.code() {
            ErrorCode::Session(-7 | -9 | -13 | -30 | -43) => self.lost(what, e.message()),
            _ => ChanError::Other(format!("{what}: {}", e.message())),
        }
    }
}
