//! File transfer on an [`SshTarget`]: a file is written by one command that
//! reads its content on standard input (to a temporary name, then renamed
//! into place) and read by one that prints it, so a transfer costs one
//! channel (or one become-shell request) like any command.

use super::target::SshTarget;
use crate::target::{get_exec, put_exec, Become, FileMeta, Output, Target, TargetError};

impl SshTarget {
    /// [`Target::put`]: writes `content` to `path` with `meta`.
    pub(super) async fn write_file(
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

    /// [`Target::get`]: the content of `path`.
    pub(super) async fn read_file(
        &self,
        path: &str,
        become_: Option<&Become>,
    ) -> Result<Vec<u8>, TargetError> {
        let out = self.exec(&get_exec(path, become_)).await?;
        if !out.success() {
            return Err(file_error(&self.shared.name, "read", path, &out));
        }
        Ok(out.stdout)
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
