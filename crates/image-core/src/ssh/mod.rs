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
//!
//! The module's files, one concern each: `config` (what to connect to and
//! how: [`SshConfig`], [`SshAuth`], [`HostKeyPolicy`]), `connect` (TCP,
//! handshake, authentication, retries) with `host_key` (pinned-fingerprint
//! checks), `session` (the shared non-blocking libssh2 session and its
//! lock), `channel` (one command on one channel), `command` (process tags
//! and the kill line of timed-out commands), `shells` (become shells),
//! `transfer` (file writes and reads), `addr` ([`HostAddr`], the
//! `[user@]host[:port]` of every `--host` flag) and `target` ([`SshTarget`], the
//! [`Target`] implementation tying them together).
//!
//! [`Target`]: crate::target::Target
//! [`Target::exec`]: crate::target::Target::exec
//! [`Target::reconnect`]: crate::target::Target::reconnect
//! [`TargetError::Disconnected`]: crate::target::TargetError::Disconnected
//! [`Exec::become_`]: crate::target::Exec::become_

use std::sync::{Mutex, MutexGuard};

mod addr;
mod channel;
mod command;
mod config;
mod connect;
mod host_key;
mod session;
mod shells;
mod target;
mod transfer;

pub use addr::HostAddr;
pub use config::{HostKeyPolicy, SshAuth, SshConfig};
pub use shells::MAX_SHELLS_PER_USER;
pub use target::SshTarget;

/// Locks `m`, ignoring poisoning (the data behind these locks stays
/// consistent when a holder panics).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
