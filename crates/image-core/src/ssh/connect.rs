//! Connecting: TCP (with `TCP_NODELAY` and, with keepalives,
//! `TCP_USER_TIMEOUT`), the SSH handshake, the host key check and
//! authentication, retried with jittered exponential backoff until
//! [`SshConfig::retry_until`].

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use ssh2::{ErrorCode, HashType, HostKeyType, MethodType, Session};

use super::config::{HostKeyPolicy, SshAuth, SshConfig};
use super::host_key::{alg_of, same_fingerprint, HOSTKEY_ALGS};
use super::session::Conn;
use crate::target::TargetError;

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
pub(super) async fn establish(
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
