//! Many concurrent module runs, one SSH exec (issue #16).
//!
//! [`Coalesce`] is a target that holds the commands of concurrent runs
//! (the check-mode runs of a loop's items, or of the tasks ahead, see
//! `batch` and `lookahead`) until every run still going waits on one,
//! then sends them in as few execs as they allow: one `sh` script per
//! privilege (`become`), which runs each command as `sh -c` would alone
//! and hands each run its own status and output. Uploads and downloads
//! pass through.
//!
//! The script starts no process per command beyond the command's own
//! `sh`: outputs go to files in a temporary directory, and one `wc -c`
//! and one `cat` at the end report them all.

use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use image_core::target::{Become, Exec, FileMeta, Output, Target, TargetError};
use tokio::sync::oneshot;

/// At most this many bytes of standard input travel in one batched script
/// (a bigger input runs in a command of its own).
const MAX_STDIN: usize = 1 << 20;

/// The commands run this many at a time: every batched command is a
/// check-mode probe that changes nothing (see `batch` and `lookahead`),
/// so their order does not matter, and most of their time is starting
/// processes, which a second core halves.
const PARALLEL: usize = 4;

/// The line that opens a batched script's output (then the statuses).
const MARK: &str = "@@batch";

/// The line between the sizes and the outputs.
const DATA: &str = "@@data";

type Reply = oneshot::Sender<Result<Output, TargetError>>;

struct Pending {
    /// Runs not finished yet.
    alive: usize,
    /// Commands waiting to be sent.
    queue: Vec<(Exec, Reply)>,
}

/// A target that holds the commands of concurrent runs until every run
/// still going waits on one, then sends them together.
pub(super) struct Coalesce<'a> {
    inner: &'a dyn Target,
    pending: Mutex<Pending>,
}

impl<'a> Coalesce<'a> {
    /// For `runs` concurrent runs, each of which calls [`Coalesce::done`]
    /// when it ends.
    pub(super) fn new(inner: &'a dyn Target, runs: usize) -> Self {
        Coalesce {
            inner,
            pending: Mutex::new(Pending {
                alive: runs,
                queue: Vec::new(),
            }),
        }
    }

    /// One run ended.
    pub(super) async fn done(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.alive = p.alive.saturating_sub(1);
        }
        self.flush().await;
    }

    /// Sends the queue when every live run waits on it.
    async fn flush(&self) {
        let queue = match self.pending.lock() {
            Ok(mut p) if !p.queue.is_empty() && p.queue.len() >= p.alive => {
                std::mem::take(&mut p.queue)
            }
            _ => return,
        };
        let (cmds, replies): (Vec<Exec>, Vec<Reply>) = queue.into_iter().unzip();
        let outs = self.send(&cmds).await;
        for (reply, out) in replies.into_iter().zip(outs) {
            let _ = reply.send(out);
        }
    }

    /// Runs `cmds` (probes: their order does not matter) in as few
    /// execs as they allow: one script per privilege; a command with a
    /// timeout or a big input alone.
    async fn send(&self, cmds: &[Exec]) -> Vec<Result<Output, TargetError>> {
        let mut outs: Vec<Option<Result<Output, TargetError>>> =
            (0..cmds.len()).map(|_| None).collect();
        let mut groups: Vec<(Option<Become>, Vec<usize>)> = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            let alone = c.timeout.is_some() || c.stdin.as_ref().map_or(0, Vec::len) > MAX_STDIN;
            if alone {
                outs[i] = Some(self.inner.exec(c).await);
                continue;
            }
            match groups.iter_mut().find(|(b, _)| *b == c.become_) {
                Some((_, g)) => g.push(i),
                None => groups.push((c.become_.clone(), vec![i])),
            }
        }
        for (become_, idx) in groups {
            if let [i] = idx[..] {
                outs[i] = Some(self.inner.exec(&cmds[i]).await);
                continue;
            }
            let group: Vec<&Exec> = idx.iter().map(|&i| &cmds[i]).collect();
            for (i, out) in idx.into_iter().zip(self.send_group(&group, become_).await) {
                outs[i] = Some(out);
            }
        }
        outs.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(TargetError::Other {
                        host: self.inner.name(),
                        detail: "a batched command got no result".into(),
                    })
                })
            })
            .collect()
    }

    /// `cmds`, all with privilege `become_`, in one exec.
    async fn send_group(
        &self,
        cmds: &[&Exec],
        become_: Option<Become>,
    ) -> Vec<Result<Output, TargetError>> {
        // The script goes on standard input: no limit on a command line's
        // length applies to it.
        let all = Exec::new("sh")
            .stdin(script(cmds).into_bytes())
            .become_opt(become_);
        let split = match self.inner.exec(&all).await {
            Ok(o) => split(&o.stdout, cmds.len()).ok_or_else(|| {
                format!(
                    "unexpected output of a batched check (status {}): {}",
                    o.status,
                    o.stderr_str().trim()
                )
            }),
            Err(e) => Err(e.to_string()),
        };
        match split {
            Ok(outs) => outs.into_iter().map(Ok).collect(),
            Err(detail) => cmds
                .iter()
                .map(|_| {
                    Err(TargetError::Other {
                        host: self.inner.name(),
                        detail: detail.clone(),
                    })
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Target for Coalesce<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError> {
        let (tx, rx) = oneshot::channel();
        let queued = match self.pending.lock() {
            Ok(mut p) => {
                p.queue.push((cmd.clone(), tx));
                true
            }
            Err(_) => false,
        };
        if !queued {
            return self.inner.exec(cmd).await;
        }
        self.flush().await;
        rx.await.unwrap_or_else(|_| {
            Err(TargetError::Other {
                host: self.inner.name(),
                detail: "a batched command was dropped".into(),
            })
        })
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        meta: &FileMeta,
        become_: Option<&Become>,
    ) -> Result<(), TargetError> {
        self.inner.put(path, content, meta, become_).await
    }

    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        self.inner.get(path, become_).await
    }

    async fn reconnect(&self) -> Result<(), TargetError> {
        self.inner.reconnect().await
    }
}

/// One `sh` script that runs each command as `sh -c` would alone (its
/// environment, directory and standard input; no input is an empty one),
/// [`PARALLEL`] at a time, its outputs to files `No` and `Ne` in a temporary directory; then
/// prints `@@batch S0 S1 ...` (the statuses), the files' sizes (`wc -c`),
/// `@@data`, and the files' contents in order.
fn script(cmds: &[&Exec]) -> String {
    let mut s = String::from(
        "_bt=$(mktemp -d 2>/dev/null) || { echo 'cannot make a temporary directory' >&2; exit 97; }\n\
         trap 'rm -rf \"$_bt\"' EXIT\n_s=\n",
    );
    let mut files = String::new();
    for (i, c) in cmds.iter().enumerate() {
        let input = match &c.stdin {
            Some(data) if !data.is_empty() => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(data);
                // A here-document: no `printf` process for a pipe.
                s.push_str(&format!(
                    "base64 -d > \"$_bt/{i}i\" <<'@@B64' || exit 97\n{b64}\n@@B64\n"
                ));
                format!("\"$_bt/{i}i\"")
            }
            _ => "/dev/null".to_string(),
        };
        s.push_str(&format!(
            "sh -c {} < {input} > \"$_bt/{i}o\" 2> \"$_bt/{i}e\" & _p{}=$!\n",
            crate::script::q(&c.script()),
            i % PARALLEL
        ));
        files.push_str(&format!(" {i}o {i}e"));
        if i % PARALLEL == PARALLEL - 1 || i + 1 == cmds.len() {
            for j in 0..=i % PARALLEL {
                s.push_str(&format!("wait $_p{j}; _s=\"$_s $?\"\n"));
            }
        }
    }
    s.push_str(&format!(
        "echo \"{MARK}$_s\"\ncd \"$_bt\" || exit 97\nwc -c{files} || exit 97\necho {DATA}\ncat{files}\n"
    ));
    s
}

/// The outputs of [`script`] for `n` commands, or `None` when they are
/// not all there.
fn split(out: &[u8], n: usize) -> Option<Vec<Output>> {
    let data_at = find(out, format!("\n{DATA}\n").as_bytes())?;
    let head = std::str::from_utf8(&out[..data_at]).ok()?;
    let mut body = &out[data_at + DATA.len() + 2..];
    let mut lines = head.lines();
    let statuses: Vec<i32> = lines
        .next()?
        .strip_prefix(MARK)?
        .split_whitespace()
        .map(str::parse::<i32>)
        .collect::<Result<_, _>>()
        .ok()?;
    if statuses.len() != n {
        return None;
    }
    // `wc -c` lines: "SIZE NAME" for each file, then the total.
    let mut sizes = Vec::with_capacity(2 * n);
    for (i, line) in lines.take(2 * n).enumerate() {
        let mut f = line.split_whitespace();
        let size = f.next()?.parse::<usize>().ok()?;
        let want = format!("{}{}", i / 2, if i % 2 == 0 { 'o' } else { 'e' });
        if f.next()? != want {
            return None;
        }
        sizes.push(size);
    }
    if sizes.len() != 2 * n || body.len() != sizes.iter().sum::<usize>() {
        return None;
    }
    let mut outs = Vec::with_capacity(n);
    for (status, pair) in statuses.into_iter().zip(sizes.chunks(2)) {
        let (o, e) = (pair[0], pair[1]);
        outs.push(Output {
            status,
            stdout: body[..o].to_vec(),
            stderr: body[o..o + e].to_vec(),
        });
        body = &body[o + e..];
    }
    Some(outs)
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_core::local::LocalTarget;

    #[tokio::test]
    async fn one_script_gives_each_command_its_own_output() {
        let cmds = [
            Exec::new("echo out; echo err >&2; exit 3"),
            Exec::new("cat; printf 'no newline'").stdin(b"in\0put\n@@data\n".to_vec()),
            Exec::new("echo \"$X\" \"$(pwd)\"")
                .env("X", "a 'b'")
                .cwd("/"),
            Exec::new("cat"),
        ];
        let refs: Vec<&Exec> = cmds.iter().collect();
        let t = LocalTarget::new();
        let out = t
            .exec(&Exec::new("sh").stdin(script(&refs).into_bytes()))
            .await
            .unwrap();
        let outs = split(&out.stdout, cmds.len()).expect("all outputs");
        assert_eq!(outs[0].status, 3);
        assert_eq!(outs[0].stdout, b"out\n");
        assert_eq!(outs[0].stderr, b"err\n");
        assert_eq!(outs[1].stdout, b"in\0put\n@@data\nno newline");
        assert_eq!(outs[2].stdout_str(), "a 'b' /\n");
        assert_eq!(outs[3].stdout, b"");
        assert!(split(&out.stdout, cmds.len() + 1).is_none());
    }

    #[tokio::test]
    async fn concurrent_runs_share_one_exec() {
        let t = crate::round_trips::Counting::new(Box::new(LocalTarget::new()));
        let n = t.counter();
        let co = Coalesce::new(&t, 3);
        let runs = (0..3).map(|i| {
            let co = &co;
            async move {
                let a = co.exec(&Exec::new(format!("echo {i}"))).await.unwrap();
                // A second command for some runs only: sent when the
                // others have ended.
                let b = if i == 1 {
                    Some(co.exec(&Exec::new("echo again")).await.unwrap())
                } else {
                    None
                };
                co.done().await;
                (a.stdout_str(), b.map(|o| o.stdout_str()))
            }
        });
        let outs = futures::future::join_all(runs).await;
        assert_eq!(outs[0].0, "0\n");
        assert_eq!(outs[2].0, "2\n");
        assert_eq!(outs[1].1.as_deref(), Some("again\n"));
        assert_eq!(n.get(), 2);
    }
}
