//! A loop's items checked in one round trip (issue #16).
//!
//! Before the items of a loop run one by one, every item whose module says
//! its check-mode run is a pure probe for these arguments
//! ([`Module::check_is_probe`]) runs in check mode, all items at once,
//! through [`Coalesce`]: a target that folds the commands the items send
//! into one `sh` script (one SSH exec) and hands each item its own output.
//! An item whose check reports no change and no failure needs no real run:
//! the real run would find the same state and do nothing, so the check's
//! result is its result.
//!
//! The items still run in order with their conditions, labels and
//! registered results, as without the batch. Only a prefix is taken from
//! the batch: the first item that runs its module for real (its check saw
//! a change, a failure, or it could not be checked) may change what the
//! later items' checks saw, so every item after it runs its module as it
//! would without the batch. Loops with `until`, `loop_control.pause`
//! (time passes between items) or fewer than two items are not batched;
//! neither are items delegated to the controller.

use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use image_core::target::{Exec, FileMeta, Output, Target, TargetError};
use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::attempt::Prepared;
use super::loops::loop_vars;
use super::scope::{Scope, Settings};
use super::Runner;
use crate::modules::{Module, ModuleCtx, ModuleError, ModuleResult};
use crate::task::{Action, LoopSpec, Task};
use crate::template::Ctx;

/// At most this many bytes of standard input travel in one batched script
/// (a bigger input runs in a command of its own).
const MAX_STDIN: usize = 1 << 20;

/// At most this many items are checked in one exec.
const MAX_BATCH: usize = 256;

/// The line that opens each command's output in a batched script.
const MARK: &str = "@@batch ";

impl Runner<'_> {
    /// The check-mode results of the items that can be checked in one
    /// batch (`None` for the others), index by index.
    pub(super) async fn probe_loop(
        &self,
        t: &Task,
        conds: &[String],
        l: &LoopSpec,
        items: &[Json],
        st: &Settings,
        scope: &Scope,
    ) -> Vec<Option<ModuleResult>> {
        let mut out: Vec<Option<ModuleResult>> = vec![None; items.len()];
        let Action::Module { module, args } = &t.action else {
            return out;
        };
        if items.len() < 2 || t.until.is_some() || l.pause.is_some() {
            return out;
        }
        let mut preps = Vec::new();
        for i in 0..items.len() {
            let lv = loop_vars(l, i, items);
            let vars = self.vars_for(scope, t, Some(&lv));
            let ctx = self.tmpl.context(vars);
            if self.check_when(conds, &ctx).is_some() {
                continue;
            }
            let Ok(p) = self.prepare(t, *module, args, &ctx, scope, st) else {
                continue;
            };
            if p.local || !module.check_is_probe(&p.args, &self.module_facts) {
                continue;
            }
            preps.push((i, ctx, p));
        }
        if preps.len() < 2 {
            return out;
        }
        for chunk in preps.chunks(MAX_BATCH) {
            let results = self.probe_chunk(*module, chunk, st).await;
            for ((i, _, _), r) in chunk.iter().zip(results) {
                if let Ok(r) = r {
                    if !r.changed && !r.failed && !r.skipped && !r.not_a_probe {
                        out[*i] = Some(r);
                    }
                }
            }
        }
        out
    }

    /// Check-mode runs of `chunk`'s items through one [`Coalesce`].
    async fn probe_chunk(
        &self,
        module: &'static dyn Module,
        chunk: &[(usize, Ctx, Prepared<'_>)],
        st: &Settings,
    ) -> Vec<Result<ModuleResult, ModuleError>> {
        let co = Coalesce::new(self.target, chunk.len());
        let runs = chunk.iter().map(|(_, ctx, p)| {
            let co = &co;
            async move {
                let mctx = ModuleCtx {
                    target: co,
                    become_: st.become_.clone(),
                    env: p.env.clone(),
                    check: true,
                    diff: st.diff,
                    templates: &self.tmpl,
                    vars: ctx,
                    search: &p.search,
                    facts: &self.module_facts,
                };
                let r = module.run(&mctx, &p.args).await;
                co.done().await;
                r
            }
        });
        futures::future::join_all(runs).await
    }
}

type Reply = oneshot::Sender<Result<Output, TargetError>>;

struct Pending {
    /// Item runs not finished yet.
    alive: usize,
    /// Commands waiting to be sent.
    queue: Vec<(Exec, Reply)>,
}

/// A target that holds the commands of concurrent runs until every run
/// still going waits on one, then sends them all in one exec. Uploads
/// and downloads pass through.
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

    /// Runs `cmds`, in order, in as few execs as they allow.
    async fn send(&self, cmds: &[Exec]) -> Vec<Result<Output, TargetError>> {
        let first = &cmds[0];
        let together = cmds.len() > 1
            && cmds.iter().all(|c| {
                c.become_ == first.become_
                    && c.timeout.is_none()
                    && c.stdin.as_ref().map_or(0, Vec::len) <= MAX_STDIN
            });
        if !together {
            let mut outs = Vec::new();
            for c in cmds {
                outs.push(self.inner.exec(c).await);
            }
            return outs;
        }
        // The script goes on standard input: no limit on a command line's
        // length applies to it.
        let all = Exec::new("sh")
            .stdin(script(cmds).into_bytes())
            .become_opt(first.become_.clone());
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
        become_: Option<&image_core::target::Become>,
    ) -> Result<(), TargetError> {
        self.inner.put(path, content, meta, become_).await
    }

    async fn get(
        &self,
        path: &str,
        become_: Option<&image_core::target::Become>,
    ) -> Result<Vec<u8>, TargetError> {
        self.inner.get(path, become_).await
    }

    async fn reconnect(&self) -> Result<(), TargetError> {
        self.inner.reconnect().await
    }
}

/// One `sh` script that runs each command as `sh -c` would alone (its
/// environment, directory and standard input; no input is an empty one)
/// and prints, for each, `@@batch STATUS OUT_BYTES ERR_BYTES`, then its
/// standard output and standard error.
fn script(cmds: &[Exec]) -> String {
    let mut s = String::from(
        "_bt=$(mktemp -d 2>/dev/null) || { echo 'cannot make a temporary directory' >&2; exit 97; }\n\
         trap 'rm -rf \"$_bt\"' EXIT\n\
         _bo() { printf '@@batch %s %s %s\\n' \"$1\" \"$(wc -c < \"$_bt/o\" | tr -d ' ')\" \"$(wc -c < \"$_bt/e\" | tr -d ' ')\"; cat \"$_bt/o\" \"$_bt/e\"; }\n",
    );
    for c in cmds {
        let input = match &c.stdin {
            Some(data) if !data.is_empty() => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(data);
                s.push_str(&format!(
                    "printf '%s' '{b64}' | base64 -d > \"$_bt/i\" || exit 97\n"
                ));
                "\"$_bt/i\""
            }
            _ => "/dev/null",
        };
        s.push_str(&format!(
            "sh -c {} < {input} > \"$_bt/o\" 2> \"$_bt/e\"; _bo $?\n",
            crate::script::q(&c.script())
        ));
    }
    s
}

/// The outputs of [`script`], or `None` when they are not all there.
fn split(mut out: &[u8], n: usize) -> Option<Vec<Output>> {
    let mut outs = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = out.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&out[..nl]).ok()?.strip_prefix(MARK)?;
        let mut f = head.split(' ').map(str::parse::<usize>);
        let status = f.next()?.ok()?;
        let (o, e) = (f.next()?.ok()?, f.next()?.ok()?);
        out = &out[nl + 1..];
        if out.len() < o + e {
            return None;
        }
        outs.push(Output {
            status: status as i32,
            stdout: out[..o].to_vec(),
            stderr: out[o..o + e].to_vec(),
        });
        out = &out[o + e..];
    }
    Some(outs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_core::local::LocalTarget;

    #[tokio::test]
    async fn one_script_gives_each_command_its_own_output() {
        let cmds = vec![
            Exec::new("echo out; echo err >&2; exit 3"),
            Exec::new("cat; printf 'no newline'").stdin(b"in\0put\n".to_vec()),
            Exec::new("echo \"$X\" \"$(pwd)\"")
                .env("X", "a 'b'")
                .cwd("/"),
            Exec::new("cat"),
        ];
        let t = LocalTarget::new();
        let out = t
            .exec(&Exec::new("sh").stdin(script(&cmds).into_bytes()))
            .await
            .unwrap();
        let outs = split(&out.stdout, cmds.len()).expect("all outputs");
        assert_eq!(outs[0].status, 3);
        assert_eq!(outs[0].stdout, b"out\n");
        assert_eq!(outs[0].stderr, b"err\n");
        assert_eq!(outs[1].stdout, b"in\0put\nno newline");
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
