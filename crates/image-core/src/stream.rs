//! Output while a command runs: [`stream_exec`] runs a command on any
//! [`Target`] and hands its output over line by line as it comes (the
//! [`Target`] trait returns output only at the end, so the command writes to
//! a file in a private temporary directory that is followed).
//!
//! ```no_run
//! # async fn demo(t: &dyn image_core::target::Target) -> Result<(), image_core::target::TargetError> {
//! use std::time::Duration;
//! let on_line = |l: &str| println!("| {l}");
//! let status = image_core::stream::stream_exec(t, "apt-get update", None, Duration::from_millis(500), &on_line).await?;
//! assert_eq!(status, 0);
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::target::{shell_quote, Become, Exec, Target, TargetError};

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8], on_line: &(dyn Fn(&str) + Send + Sync)) {
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            on_line(text.trim_end_matches('\r'));
        }
    }

    fn flush(&mut self, on_line: &(dyn Fn(&str) + Send + Sync)) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            on_line(&text);
        }
    }
}

/// Runs `command` on `t` (through sudo with `become_`), handing its output
/// (stdout and stderr merged) to `on_line` line by line while it runs, and
/// returns its exit status. The output goes to a file in a private
/// temporary directory that is read every `interval` and removed at the end.
pub async fn stream_exec(
    t: &dyn Target,
    command: &str,
    become_: Option<&Become>,
    interval: Duration,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<i32, TargetError> {
    let mk = t
        .exec(&Exec::new("mktemp -d /tmp/image-cli-output.XXXXXXXX"))
        .await?;
    if !mk.success() {
        return Err(TargetError::Other {
            host: t.name(),
            detail: format!("mktemp -d: {}", mk.stderr_str().trim()),
        });
    }
    let dir = mk.stdout_str().trim().to_string();
    let log = shell_quote(&format!("{dir}/output"));
    let run =
        Exec::new(format!("( {command}\n) >{log} 2>&1 </dev/null")).become_opt(become_.cloned());
    let mut lines = Lines::default();
    let mut offset: u64 = 0;
    let fut = t.exec(&run);
    tokio::pin!(fut);
    let result = loop {
        tokio::select! {
            r = &mut fut => break r,
            _ = tokio::time::sleep(interval) => {
                offset += follow(t, &log, offset, &mut lines, on_line).await;
            }
        }
    };
    follow(t, &log, offset, &mut lines, on_line).await;
    lines.flush(on_line);
    let _ = t
        .exec(&Exec::new(format!("rm -rf {}", shell_quote(&dir))).become_opt(become_.cloned()))
        .await;
    Ok(result?.status)
}

/// Hands over what `log` gained after `offset` bytes; returns how many.
async fn follow(
    t: &dyn Target,
    log: &str,
    offset: u64,
    lines: &mut Lines,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> u64 {
    let cmd = Exec::new(format!(
        "if [ -f {log} ]; then tail -c +{} {log}; fi",
        offset + 1
    ));
    match t.exec(&cmd).await {
        Ok(out) if out.success() => {
            lines.push(&out.stdout, on_line);
            out.stdout.len() as u64
        }
        Ok(_) | Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks() {
        let got = std::sync::Mutex::new(Vec::new());
        let f = |l: &str| got.lock().unwrap().push(l.to_string());
        let mut lines = Lines::default();
        lines.push(b"one\r\ntw", &f);
        lines.push(b"o\nthree", &f);
        lines.flush(&f);
        assert_eq!(*got.lock().unwrap(), ["one", "two", "three"]);
    }

    #[tokio::test]
    async fn output_comes_line_by_line_with_the_status() {
        let t = crate::local::LocalTarget::new();
        let got = std::sync::Mutex::new(Vec::new());
        let f = |l: &str| got.lock().unwrap().push(l.to_string());
        let status = stream_exec(
            &t,
            "echo one; sleep 0.3; echo two >&2; printf three; exit 3",
            None,
            Duration::from_millis(50),
            &f,
        )
        .await
        .expect("runs");
        assert_eq!(status, 3);
        assert_eq!(*got.lock().unwrap(), ["one", "two", "three"]);
    }
}
