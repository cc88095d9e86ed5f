//! [`LocalTarget`]: the [`Target`] trait on this machine (`image-cli` run on
//! the instance itself, and tests).
//!
//! Commands run as `sh -c` with tokio's process support, each in its own
//! process group so that a timeout kills the whole tree. With [`Become`]:
//! nothing changes when we already are that user; as root, `runuser -u USER`
//! switches (no sudo needed); otherwise `sudo -n`. Files are written to a
//! temporary file next to the destination and renamed over it; when a user
//! switch is needed the write goes through the same shell command as on SSH
//! targets ([`crate::target::put_exec`]).

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::target::{
    get_exec, put_exec, sudo_refusal, Become, Exec, FileMeta, Output, Target, TargetError,
};

const HOST: &str = "local";

/// This machine as a target.
#[derive(Debug, Clone, Default)]
pub struct LocalTarget {
    /// Timeout of commands whose [`Exec::timeout`] is not set.
    pub command_timeout: Option<Duration>,
}

impl LocalTarget {
    /// A local target without a default command timeout.
    pub fn new() -> Self {
        LocalTarget::default()
    }

    /// How a command must switch user for `become_`.
    fn switch(&self, become_: Option<&Become>) -> Switch {
        let Some(b) = become_ else {
            return Switch::None;
        };
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if user_id(&b.user) == Some(euid) {
            return Switch::None;
        }
        if euid == 0 && find_tool("runuser").is_some() {
            return Switch::Runuser(b.user.clone());
        }
        Switch::Sudo
    }
}

enum Switch {
    /// Run as we are.
    None,
    /// `runuser -u USER --` (we are root).
    Runuser(String),
    /// `sudo -n -H -u USER --`.
    Sudo,
}

fn find_tool(name: &str) -> Option<String> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
}

#[async_trait]
impl Target for LocalTarget {
    fn name(&self) -> String {
        HOST.to_string()
    }

    async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError> {
        let switch = self.switch(cmd.become_.as_ref());
        let script = cmd.script();
        let mut command = match &switch {
            Switch::None => tokio::process::Command::new("sh"),
            Switch::Runuser(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", user, "--", "sh"]);
                c
            }
            Switch::Sudo => {
                let user = cmd
                    .become_
                    .as_ref()
                    .map(|b| b.user.as_str())
                    .unwrap_or("root");
                let mut c = tokio::process::Command::new("sudo");
                c.args(["-n", "-H", "-u", user, "--", "sh"]);
                c
            }
        };
        command.arg("-c").arg(&script);
        command
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| match switch {
            Switch::Sudo if e.kind() == std::io::ErrorKind::NotFound => TargetError::SudoRefused {
                host: HOST.to_string(),
                detail: "sudo: command not found".to_string(),
            },
            _ => TargetError::Other {
                host: HOST.to_string(),
                detail: format!("starting `{}`: {e}", cmd.command),
            },
        })?;
        let pid = child.id();
        if let (Some(data), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
            // Written concurrently with reading the output (no pipe deadlock);
            // a command that does not read it all is not an error (EPIPE).
            tokio::spawn(async move {
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
        }
        let timeout = cmd.timeout.or(self.command_timeout);
        let (mut out_pipe, mut err_pipe) = (child.stdout.take(), child.stderr.take());
        let run = async {
            let (status, stdout, stderr) = tokio::try_join!(
                child.wait(),
                read_all(&mut out_pipe),
                read_all(&mut err_pipe)
            )?;
            Ok::<_, std::io::Error>((status, stdout, stderr))
        };
        let waited = match timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => {
                    if let Some(pid) = pid {
                        kill_group(&mut child, pid).await;
                    }
                    return Err(TargetError::Timeout {
                        host: HOST.to_string(),
                        command: cmd.command.clone(),
                        after: t,
                    });
                }
            },
            None => run.await,
        };
        let (status, stdout, stderr) = waited.map_err(|e| TargetError::Other {
            host: HOST.to_string(),
            detail: format!("waiting for `{}`: {e}", cmd.command),
        })?;
        let output = Output {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
        };
        if matches!(switch, Switch::Sudo) {
            if let Some(detail) = sudo_refusal(&output) {
                return Err(TargetError::SudoRefused {
                    host: HOST.to_string(),
                    detail,
                });
            }
        }
        Ok(output)
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        meta: &FileMeta,
        become_: Option<&Become>,
    ) -> Result<(), TargetError> {
        if !matches!(self.switch(become_), Switch::None) {
            let out = self
                .exec(&put_exec(HOST, path, content, meta, become_)?)
                .await?;
            if !out.success() {
                return Err(file_error("write", path, out.stderr_str().trim()));
            }
            return Ok(());
        }
        let path_owned = path.to_string();
        let content = content.to_vec();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path_owned, &content, &meta))
            .await
            .map_err(|e| file_error("write", path, &format!("write task failed: {e}")))?
    }

    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        if !matches!(self.switch(become_), Switch::None) {
            let out = self.exec(&get_exec(path, become_)).await?;
            if !out.success() {
                return Err(file_error("read", path, out.stderr_str().trim()));
            }
            return Ok(out.stdout);
        }
        tokio::fs::read(path)
            .await
            .map_err(|e| file_error("read", path, &e.to_string()))
    }
}

fn file_error(op: &'static str, path: &str, detail: &str) -> TargetError {
    TargetError::File {
        host: HOST.to_string(),
        op,
        path: path.to_string(),
        detail: detail.to_string(),
    }
}

/// Writes through a temporary file in the same directory, then renames it.
fn write_atomic(path: &str, content: &[u8], meta: &FileMeta) -> Result<(), TargetError> {
    use std::io::Write;
    let err =
        |what: &str, e: &dyn std::fmt::Display| file_error("write", path, &format!("{what}: {e}"));
    let p = Path::new(path);
    let (Some(dir), Some(base)) = (p.parent(), p.file_name()) else {
        return Err(file_error("write", path, "not a file path"));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let existing = std::fs::metadata(p).ok();
    let tmp = dir.join(format!(
        ".{}.image-cli-{}-{}",
        base.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(&format!("creating {}", tmp.display()), &e))?;
    let result = (|| {
        f.write_all(content)
            .map_err(|e| err(&format!("writing {}", tmp.display()), &e))?;
        f.sync_all()
            .map_err(|e| err(&format!("syncing {}", tmp.display()), &e))?;
        let mode = match (meta.mode, &existing) {
            (Some(m), _) => m,
            (None, Some(md)) => md.mode() & 0o7777,
            (None, None) => 0o666 & !current_umask(),
        };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err(&format!("chmod {mode:o}"), &e))?;
        let uid = match &meta.owner {
            Some(o) => Some(user_id(o).ok_or_else(|| err("chown", &format!("no user `{o}`")))?),
            None => existing.as_ref().map(|m| m.uid()),
        };
        let gid = match &meta.group {
            Some(g) => Some(group_id(g).ok_or_else(|| err("chgrp", &format!("no group `{g}`")))?),
            None => existing.as_ref().map(|m| m.gid()),
        };
        if uid.is_some() || gid.is_some() {
            let explicit = meta.owner.is_some() || meta.group.is_some();
            if let Err(e) = std::os::unix::fs::chown(&tmp, uid, gid) {
                // Keeping an existing file's owner is best effort (as non-root).
                if explicit {
                    return Err(err("chown", &e));
                }
            }
        }
        std::fs::rename(&tmp, p).map_err(|e| err(&format!("renaming {}", tmp.display()), &e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The process umask (from /proc; 022 when unknown).
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// The uid of a user name (or a numeric uid).
pub(crate) fn user_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives its use.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pw,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut res,
        )
    };
    (rc == 0 && !res.is_null()).then_some(pw.pw_uid)
}

/// The gid of a group name (or a numeric gid).
pub(crate) fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero group is a valid out-parameter.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives its use.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut gr,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut res,
        )
    };
    (rc == 0 && !res.is_null()).then_some(gr.gr_gid)
}

/// Everything a child's pipe yields (nothing when the pipe was not captured).
async fn read_all<R: AsyncRead + Unpin>(pipe: &mut Option<R>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(p) = pipe.as_mut() {
        p.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Kills a timed-out command's whole process group and waits, bounded, until
/// it is gone: the group's leader is reaped first, then the rest (reaped by
/// whoever adopted them) is polled for until no member is alive. A killed
/// member that nobody has reaped yet is a zombie: it runs nothing, so it
/// counts as gone.
async fn kill_group(child: &mut tokio::process::Child, pid: u32) {
    let group = pid as libc::pid_t;
    // SAFETY: plain syscall; the group is the child's own.
    unsafe {
        libc::killpg(group, libc::SIGKILL);
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    for _ in 0..200 {
        if !group_has_live_member(group) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether any process of `group` is alive (not a zombie), read from `/proc`.
/// Without `/proc` it answers with `killpg(group, 0)`.
fn group_has_live_member(group: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // SAFETY: signal 0 only checks whether any member of the group exists.
        return unsafe { libc::killpg(group, 0) } == 0;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            return false;
        };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<libc::pid_t>().ok());
        pgrp == Some(group) && !matches!(state, Some("Z") | Some("X"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves() {
        assert_eq!(user_id("root"), Some(0));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(user_id("no-such-user-xyz"), None);
        assert_eq!(user_id("1234"), Some(1234));
    }

    #[tokio::test]
    async fn exec_and_files() {
        let t = LocalTarget::new();
        let out = t
            .exec(&Exec::new("echo out; echo err >&2; exit 3"))
            .await
            .expect("exec");
        assert_eq!(
            (out.status, out.stdout_str(), out.stderr_str()),
            (3, "out\n".into(), "err\n".into())
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f").to_string_lossy().into_owned();
        let meta = FileMeta {
            mode: Some(0o640),
            ..Default::default()
        };
        t.put(&p, b"hello", &meta, None).await.expect("put");
        assert_eq!(t.get(&p, None).await.expect("get"), b"hello");
        let md = std::fs::metadata(&p).expect("stat");
        assert_eq!(md.mode() & 0o7777, 0o640);
    }
}
