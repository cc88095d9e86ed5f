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
//! One run may lead (see `fuse`): its command runs first, alone, and the
//! others' commands start when it has ended; a run that touches the host
//! after them taints their results ([`Coalesce::tainted`]).
//!
//! The script starts no process per command beyond the command's own
//! `sh` (and a `base64 -d` for an input that is not text): outputs go to
//! files, and one `cat` at the end reports them all.

use std::sync::Mutex;

use async_trait::async_trait;
use image_core::target::{
    heredoc_body, random_token, Become, Exec, FileMeta, Output, Target, TargetError,
};
use tokio::sync::oneshot;

/// At most this many bytes of standard input travel in one batched script
/// (a bigger input runs in a command of its own).
const MAX_STDIN: usize = 1 << 20;

/// The commands run this many at a time: every batched command is a
/// check-mode probe that changes nothing (see `batch` and `lookahead`),
/// so their order does not matter, and most of their time is starting
/// processes, which a second core halves.
const PARALLEL: usize = 4;

/// A batched script up to this long is the command line itself.
const MAX_ARG: usize = 120 * 1024;

/// How a batched script of ours runs in a subshell (a fork, no new `sh`),
/// without the batch's own variables.
const IN_SUBSHELL: &str = "unset _b _f _s _x _p0 _p1 _p2 _p3; eval";

/// The line that opens a batched script's output (then the statuses).
const MARK: &str = "@@batch";

type Reply = oneshot::Sender<Result<Output, TargetError>>;

struct Pending {
    /// Runs not finished yet.
    alive: usize,
    /// Commands waiting to be sent, each with whether the lead run sent it.
    queue: Vec<(Exec, Reply, bool)>,
    /// Commands of runs other than the lead were sent.
    others_sent: bool,
    /// The lead run touched the target after that (see [`Coalesce::tainted`]).
    tainted: bool,
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
                others_sent: false,
                tainted: false,
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

    /// True when the lead run (see `fuse`) sent a command, or moved a
    /// file, after commands of the other runs had run: those may have
    /// seen the target before it, so their results are not to be used.
    pub(super) fn tainted(&self) -> bool {
        self.pending.lock().map_or(true, |p| p.tainted)
    }

    /// The lead run moves a file (not batched): see [`Coalesce::tainted`].
    pub(super) fn lead_acts(&self) {
        if let Ok(mut p) = self.pending.lock() {
            p.tainted |= p.others_sent;
        }
    }

    /// `cmd` for the next batch; `lead`: the lead run's (see `fuse`).
    pub(super) async fn exec_as(&self, cmd: &Exec, lead: bool) -> Result<Output, TargetError> {
        let (tx, rx) = oneshot::channel();
        let queued = match self.pending.lock() {
            Ok(mut p) => {
                p.tainted |= lead && p.others_sent;
                p.queue.push((cmd.clone(), tx, lead));
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

    /// The target the commands go to.
    pub(super) fn inner(&self) -> &'a dyn Target {
        self.inner
    }

    /// Sends the queue when every live run waits on it; the lead run's
    /// command first, alone, before the others start.
    async fn flush(&self) {
        let mut queue = match self.pending.lock() {
            Ok(mut p) if !p.queue.is_empty() && p.queue.len() >= p.alive => {
                let q = std::mem::take(&mut p.queue);
                p.others_sent |= q.iter().any(|(_, _, lead)| !lead);
                q
            }
            _ => return,
        };
        queue.sort_by_key(|(_, _, lead)| !lead);
        let lead = queue.first().is_some_and(|(_, _, lead)| *lead);
        let (cmds, replies): (Vec<Exec>, Vec<Reply>) =
            queue.into_iter().map(|(c, r, _)| (c, r)).unzip();
        let outs = self.send(&cmds, lead).await;
        for (reply, out) in replies.into_iter().zip(outs) {
            let _ = reply.send(out);
        }
    }

    /// Runs `cmds` in as few execs as they allow: one script per
    /// privilege; a command with a timeout, a big input or a terminal
    /// alone. The probes' order does not matter; with `lead`, `cmds[0]`
    /// (the lead run's) runs first, before any other starts.
    async fn send(&self, cmds: &[Exec], lead: bool) -> Vec<Result<Output, TargetError>> {
        let mut outs: Vec<Option<Result<Output, TargetError>>> =
            (0..cmds.len()).map(|_| None).collect();
        let alone = |c: &Exec| {
            c.tty || c.timeout.is_some() || c.stdin.as_ref().map_or(0, Vec::len) > MAX_STDIN
        };
        // The lead command alone first, unless a group of its privilege
        // can start with it.
        let mut first = 0;
        if lead
            && (alone(&cmds[0])
                || !cmds[1..]
                    .iter()
                    .any(|c| !alone(c) && c.become_ == cmds[0].become_))
        {
            outs[0] = Some(self.inner.exec(&cmds[0]).await);
            first = 1;
        }
        let mut groups: Vec<(Option<Become>, Vec<usize>)> = Vec::new();
        let mut single = Vec::new();
        for (i, c) in cmds.iter().enumerate().skip(first) {
            if alone(c) {
                single.push(i);
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
            let first_alone = lead && idx[0] == 0;
            let group: Vec<&Exec> = idx.iter().map(|&i| &cmds[i]).collect();
            for (i, out) in idx
                .into_iter()
                .zip(self.send_group(&group, become_, first_alone).await)
            {
                outs[i] = Some(out);
            }
        }
        for i in single {
            outs[i] = Some(self.inner.exec(&cmds[i]).await);
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

    /// `cmds`, all with privilege `become_`, in one exec (`first_alone`:
    /// see [`script`]).
    async fn send_group(
        &self,
        cmds: &[&Exec],
        become_: Option<Become>,
        first_alone: bool,
    ) -> Vec<Result<Output, TargetError>> {
        let token = random_token();
        let script = script(cmds, &token, first_alone);
        // The script as the command itself (no second `sh`), unless it is
        // too long for one argument (Linux `MAX_ARG_STRLEN`, 128 KiB): then
        // on standard input.
        let all = if script.len() <= MAX_ARG {
            Exec::new(script).subshell()
        } else {
            Exec::new("sh").stdin(script.into_bytes())
        }
        .become_opt(become_);
        let split = match self.inner.exec(&all).await {
            Ok(o) => split(&o.stdout, cmds.len(), &token).ok_or_else(|| {
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
        self.exec_as(cmd, false).await
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
/// environment, directory and standard input; no input is an empty one;
/// in a subshell, where its variables and traps start afresh too),
/// [`PARALLEL`] at a time, its outputs to files `$_b.No` and `$_b.Ne`
/// (`$_b` a name with `token` in `/dev/shm`, else `$TMPDIR` or `/tmp`,
/// each file made new, so not one planted there); then prints `@@batch S0
/// S1 ...` (the statuses) and, with one `cat`, the files in order, each
/// ended by the line `@@<token>`. An input travels in the script as a
/// here-document (see [`heredoc_body`]). Processes beyond the commands'
/// own: the `cat`, the `rm` of the files, and a `base64 -d` for an input
/// that is not text. Once the files are printed the `rm` runs in the
/// background, holding none of the reply's pipes (fd 7 is the become
/// shell's sentinel), so the reply does not wait for it; a script cut
/// short removes them on exit.
fn script(cmds: &[&Exec], token: &str, first_alone: bool) -> String {
    let mark = format!("@@{token}");
    let files: String = (0..cmds.len())
        .map(|i| format!(" \"$_b.{i}o\" \"$_b.{i}e\""))
        .collect();
    let mut s = format!(
        "_b=/dev/shm; {{ [ -d \"$_b\" ] && [ -w \"$_b\" ]; }} || _b=${{TMPDIR:-/tmp}}\n\
         _b=$_b/.image-cli-batch-{token}\n\
         trap 'rm -f --{files}' EXIT\ntrap 'exit 97' HUP INT TERM\nset -C\n\
         for _f in{files}; do : > \"$_f\" || exit 97; done\nset +C\n_s=\n_NODRAIN=1\n"
    );
    let scripts: Vec<String> = cmds.iter().map(|c| c.script()).collect();
    let skip = usize::from(first_alone);
    if first_alone {
        s.push_str(&lead_line(cmds[0], &scripts[0], &mark));
    }
    // What the checks read is gathered after the lead command ran.
    s.push_str(&super::prefetch::prologue(
        scripts[skip..].iter().map(String::as_str),
    ));
    let mut slot = 0;
    for (i, c) in cmds.iter().enumerate().skip(skip) {
        // A subshell, not a new `sh`: a fork instead of a fork and an
        // exec. A script that uses `$$` (a temporary name, say) gets its
        // own `sh`, whose `$$` no other command shares.
        let script = &scripts[i];
        let shell = if script.contains("$$") {
            "sh -c"
        } else {
            IN_SUBSHELL
        };
        let run = format!(
            "( {shell} {} ) >|\"$_b.{i}o\" 2>|\"$_b.{i}e\"",
            crate::script::q(script)
        );
        let bg = format!("& _p{slot}=$!\n");
        s.push_str(&with_input(c, &run, &bg, &mark));
        slot += 1;
        if slot == PARALLEL || i + 1 == cmds.len() {
            for j in 0..slot {
                s.push_str(&format!("wait $_p{j}; _s=\"$_s $?\"\n"));
            }
            slot = 0;
        }
    }
    s.push_str(&format!(
        "for _f in{files}; do echo '{mark}' >> \"$_f\" || exit 97; done\necho \"{MARK}$_s\"\ncat{files}\n\
         trap - EXIT\nrm -f --{files} </dev/null >/dev/null 2>&1 7>&- &\n"
    ));
    s
}

/// `run` (a command with its outputs redirected) with `c`'s input, then
/// `after` (the rest of the line, then the input's here-document).
fn with_input(c: &Exec, run: &str, after: &str, mark: &str) -> String {
    match &c.stdin {
        Some(data) if !data.is_empty() => {
            let (b64, body) = heredoc_body(data, mark, true);
            // UTF-8 (asked of `heredoc_body`): nothing is replaced.
            let body = String::from_utf8_lossy(&body);
            if b64 {
                format!("base64 -d <<'{mark}' | {run} {after}{body}")
            } else {
                format!("{run} <<'{mark}' {after}{body}")
            }
        }
        _ => format!("{run} </dev/null {after}"),
    }
}

/// The lead run's command (see `fuse`), alone, before the checks: as the
/// become shell runs a command (`sh -c`, unless it is a script of ours
/// that may run in a subshell), waiting, as sshd does, until every
/// process holding its output is gone (fd 7 into a command substitution
/// that ends when the last holder closes it).
fn lead_line(c: &Exec, script: &str, mark: &str) -> String {
    let shell = if c.subshell && !script.contains("$$") {
        IN_SUBSHELL
    } else {
        "sh -c"
    };
    let run = format!(
        "( {shell} {} ) 7>&1 >|\"$_b.0o\" 2>|\"$_b.0e\"",
        crate::script::q(script)
    );
    // `$( (`, not `$((`: a subshell, not arithmetic. The here-document
    // ends before the `)` that closes the substitution.
    let line = with_input(c, &run, "\n", mark);
    format!("_x=$( {line}); _s=\"$_s $?\"\n")
}

/// The outputs of [`script`] for `n` commands, or `None` when they are
/// not all there.
fn split(out: &[u8], n: usize, token: &str) -> Option<Vec<Output>> {
    let nl = out.iter().position(|&b| b == b'\n')?;
    let statuses: Vec<i32> = std::str::from_utf8(&out[..nl])
        .ok()?
        .strip_prefix(MARK)?
        .split_whitespace()
        .map(str::parse::<i32>)
        .collect::<Result<_, _>>()
        .ok()?;
    if statuses.len() != n {
        return None;
    }
    let end = format!("@@{token}\n");
    let mut body = &out[nl + 1..];
    let mut next = || {
        let at = find(body, end.as_bytes())?;
        let part = body[..at].to_vec();
        body = &body[at + end.len()..];
        Some(part)
    };
    let mut outs = Vec::with_capacity(n);
    for status in statuses {
        let stdout = next()?;
        let stderr = next()?;
        outs.push(Output {
            status,
            stdout,
            stderr,
        });
    }
    body.is_empty().then_some(outs)
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_core::local::LocalTarget;
    use std::time::Duration;

    #[tokio::test]
    async fn one_script_gives_each_command_its_own_output() {
        let cmds = [
            Exec::new("echo out; echo err >&2; exit 3"),
            Exec::new("cat; printf 'no newline'").stdin(b"in\0put\n@@data\n".to_vec()),
            Exec::new("echo \"$X\" \"$(pwd)\"")
                .env("X", "a 'b'")
                .cwd("/"),
            Exec::new("cat"),
            Exec::new("cat").stdin(b"text 'q' $HOME `x`\n".to_vec()),
            // Text that is not UTF-8 (Latin-1) arrives byte for byte.
            Exec::new("cat").stdin(b"caf\xe9\n".to_vec()),
            // A fresh shell's view: no batch variables, its own trap.
            Exec::new("echo \"${_b-u}${_s-n}$# $0\"; trap 'echo trap' EXIT; exit 4"),
            // A script with `$$` has a shell of its own.
            Exec::new("read -r p _ </proc/self/stat; [ \"$p\" = $$ ] && echo own"),
        ];
        let refs: Vec<&Exec> = cmds.iter().collect();
        let t = LocalTarget::new();
        let tok = random_token();
        let out = t
            .exec(&Exec::new(script(&refs, &tok, false)))
            .await
            .unwrap();
        let outs = split(&out.stdout, cmds.len(), &tok).expect("all outputs");
        assert_eq!(outs[0].status, 3);
        assert_eq!(outs[0].stdout, b"out\n");
        assert_eq!(outs[0].stderr, b"err\n");
        assert_eq!(outs[1].stdout, b"in\0put\n@@data\nno newline");
        assert_eq!(outs[2].stdout_str(), "a 'b' /\n");
        assert_eq!(outs[3].stdout, b"");
        assert_eq!(outs[4].stdout, b"text 'q' $HOME `x`\n");
        assert_eq!(outs[5].stdout, b"caf\xe9\n");
        assert_eq!(
            (outs[6].status, &outs[6].stdout[..]),
            (4, &b"un0 sh\ntrap\n"[..])
        );
        assert_eq!(outs[7].stdout, b"own\n");
        // Its files are gone (removed in the background once printed).
        let left = || {
            ["/dev/shm", "/tmp"]
                .iter()
                .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
                .filter(|e| e.file_name().to_string_lossy().contains(&tok))
                .count()
        };
        for _ in 0..100 {
            if left() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(left(), 0, "files left");
        assert!(split(&out.stdout, cmds.len() + 1, &tok).is_none());
        assert!(split(&out.stdout, cmds.len(), "x").is_none());
    }

    /// The lead command (see `fuse`) runs alone before the others, which
    /// see what it did, and its output is waited for until every process
    /// holding it is gone, as sshd and the become shell wait.
    #[tokio::test]
    async fn the_lead_command_runs_first_and_is_waited_for() {
        let dir = std::env::temp_dir().join(format!("coalesce-lead-{}", random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f").display().to_string();
        let cmds = [
            Exec::new(format!(
                "sleep 0.2; echo lead > {f}; (sleep 0.3; echo late) & echo now; exit 5"
            ))
            .stdin(b"ignored\n".to_vec()),
            Exec::new(format!("cat {f}")),
            Exec::new(format!("cat {f}")),
        ];
        let refs: Vec<&Exec> = cmds.iter().collect();
        let tok = random_token();
        let t = LocalTarget::new();
        let out = t.exec(&Exec::new(script(&refs, &tok, true))).await.unwrap();
        let outs = split(&out.stdout, cmds.len(), &tok).expect("all outputs");
        assert_eq!(outs[0].status, 5);
        assert_eq!(outs[0].stdout_str(), "now\nlate\n");
        assert_eq!(outs[1].stdout_str(), "lead\n");
        assert_eq!(outs[2].stdout_str(), "lead\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Inputs bigger than a pipe that nothing reads (a check's `drain`
    /// reads nothing in a batch): the batch still ends, with each output.
    #[tokio::test]
    async fn unread_inputs_bigger_than_a_pipe_do_not_stop_a_batch() {
        let cmds = [
            Exec::new("echo big").stdin([vec![b'a'; 300_000], b"\n".to_vec()].concat()),
            Exec::new("echo bin").stdin(vec![0u8; 300_000]),
            Exec::new("head -c 3").stdin(vec![b'z'; 300_000]),
        ];
        let refs: Vec<&Exec> = cmds.iter().collect();
        let tok = random_token();
        let all = Exec::new("sh").stdin(script(&refs, &tok, false).into_bytes());
        let t = LocalTarget::new();
        let run = tokio::time::timeout(Duration::from_secs(60), t.exec(&all));
        let out = run.await.expect("the batch ends").expect("runs");
        let outs = split(&out.stdout, cmds.len(), &tok).expect("all outputs");
        assert_eq!(outs[0].stdout_str(), "big\n");
        assert_eq!(outs[1].stdout_str(), "bin\n");
        assert_eq!(outs[2].stdout_str(), "zzz");
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
