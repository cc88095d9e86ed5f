//! One command on one channel: the channel is opened and the command started
//! on the shared session, standard input fed and both outputs read
//! interleaved, the command killed on timeout, and the channel closed and
//! freed under the session lock.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ssh2::{BlockDirections, Channel};

use super::session::{would_block, Active, ChanError, Conn};
use crate::target::Output;

/// A channel that is closed and freed under the session lock when dropped.
pub(super) struct Chan<'a> {
    pub(super) conn: &'a Conn,
    pub(super) ch: Option<Channel>,
    /// A write returned "would block": libssh2 may hold a half-sent packet
    /// that only a retry of that same write may finish.
    pub(super) write_pending: Option<Vec<u8>>,
}

impl Chan<'_> {
    pub(super) fn ch(&mut self) -> &mut Channel {
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
pub(super) fn close_channel(conn: &Conn, mut ch: Channel, pending: Option<Vec<u8>>) {
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
/// stall stdout), and returns the exit status. With `tty`, on a
/// pseudo-terminal (both outputs then arrive as standard output).
pub(super) fn run_channel(
    conn: &Conn,
    line: &str,
    stdin: &[u8],
    deadline: Option<Instant>,
    on_timeout: Option<&str>,
    tty: bool,
) -> Result<Output, ChanError> {
    let _active = Active::new(conn);
    let (e, chan) = match conn.start(line, deadline, tty) {
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
        if run_channel(conn, kill, &[], until, None, false).is_err() {
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
