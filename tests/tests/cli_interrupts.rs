//! The second and third Ctrl-C of `image-cli build`, end to end: the real
//! binary against moto, reached through the fault proxy so that the cleanup
//! after the first interrupt is slow enough for more signals to land in it.
//! The build's SSH points at a closed port (1): its instance runs and
//! connect is retried until the first interrupt, so no target is needed.
//!
//! The test follows the build on its stderr as it is written and sends each
//! signal once the previous one was answered: a second interrupt must be
//! answered without stopping the cleanup, a third must quit at once.

mod cli_support;
#[path = "aws_support/faultproxy.rs"]
mod faultproxy;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cli_support::*;
use faultproxy::FaultProxy;
use image_aws::cleanup::{self, Resource};

/// The first interrupt's answer (without `--on-error=abort`).
const CANCELLING: &str = "cancelling the builds and deleting what they made";
/// The second interrupt's answer.
const STILL_CLEANING: &str = "still cleaning up; press again to quit now";
/// The third interrupt's answer.
const QUITTING: &str = "quitting without finishing the cleanup";
/// What the third interrupt tells the user to run.
const RUN_CLEANUP: &str = "run `image-cli cleanup --yes`";
/// The progress line of the build's cleanup step, printed once it is over.
const CLEANUP_DONE: &str = "[node] cleanup: ";

/// What the cleanup after a cancel calls, in order: the instance terminated
/// while the key pair goes, the instance awaited, then its security group.
const CLEANUP_ACTIONS: [&str; 4] = [
    "TerminateInstances",
    "DeleteKeyPair",
    "DescribeInstances",
    "DeleteSecurityGroup",
];

fn all_regions() -> Vec<String> {
    regions(&COPY_REGIONS)
}

/// `--region R` for each of [`all_regions`].
fn region_args() -> Vec<String> {
    all_regions()
        .into_iter()
        .flat_map(|r| ["--region".to_string(), r])
        .collect()
}

/// Moto, and the fault proxy in front of it.
async fn moto_behind_proxy() -> (image_testbed::Moto, FaultProxy) {
    let moto = tokio::task::spawn_blocking(start_moto).await.unwrap();
    let upstream: SocketAddr = format!("127.0.0.1:{}", moto.port()).parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    (moto, proxy)
}

/// A child's output stream as far as it has been written.
#[derive(Default)]
struct Stream {
    state: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Stream {
    /// Reads `from` to its end on a thread of its own.
    fn follow(from: impl Read + Send + 'static) -> Arc<Stream> {
        let s = Arc::new(Stream::default());
        let me = s.clone();
        std::thread::spawn(move || {
            let mut from = from;
            let mut buf = [0u8; 4096];
            loop {
                let n = from.read(&mut buf).unwrap_or(0);
                let mut st = me.state.lock().unwrap();
                if n == 0 {
                    st.1 = true;
                } else {
                    st.0.extend_from_slice(&buf[..n]);
                }
                me.grew.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        s
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.state.lock().unwrap().0).into_owned()
    }

    /// Waits until `text` was written; false when the stream ended or
    /// `within` passed first.
    fn wait_for(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut st = self.state.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&st.0).contains(text) {
                return true;
            }
            let now = Instant::now();
            if st.1 || now >= deadline {
                return false;
            }
            st = self.grew.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Waits (at most `within`) for the end, then returns everything.
    fn finish(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut st = self.state.lock().unwrap();
        while !st.1 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self.grew.wait_timeout(st, deadline - now).unwrap().0;
        }
        String::from_utf8_lossy(&st.0).into_owned()
    }
}

/// A running `image-cli build` whose SSH never comes up (port 1), talking
/// to EC2 through the fault proxy. Killed if dropped while running.
struct LiveBuild {
    child: Child,
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
}

/// How a [`LiveBuild`] ended.
struct Ended {
    status: ExitStatus,
    /// When its exit was seen (polled every 10 ms).
    at: Instant,
    stderr: String,
}

impl LiveBuild {
    fn start(moto: &image_testbed::Moto, proxy: &FaultProxy, cwd: &Path) -> LiveBuild {
        let spec = fixture("cli_build/spec.yaml");
        let mut child = cli_command(moto, cwd)
            .env("AWS_ENDPOINT_URL", proxy.url())
            .args(["build", spec.to_str().unwrap(), "--var", "ssh_port=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting image-cli build");
        let stdout = Stream::follow(child.stdout.take().unwrap());
        let stderr = Stream::follow(child.stderr.take().unwrap());
        LiveBuild {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits until stderr shows `text`; panics with stderr if it does not
    /// within `within` (or the build ended without it).
    fn wait_for(&self, text: &str, within: Duration) {
        assert!(
            self.stderr.wait_for(text, within),
            "`{text}` not on stderr within {within:?}:\n{}",
            self.stderr.text()
        );
    }

    /// Sends SIGINT.
    fn interrupt(&self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child, not yet reaped (`finish` takes
        // `self`).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "kill");
    }

    /// Waits for the exit; panics with stderr if it takes longer than
    /// `within`.
    fn finish(mut self, within: Duration) -> Ended {
        let deadline = Instant::now() + within;
        let (status, at) = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break (st, Instant::now());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "image-cli still running after {within:?}:\n{}",
                    self.stderr.finish(Duration::from_secs(5))
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.finish(Duration::from_secs(5));
        let stderr = self.stderr.finish(Duration::from_secs(5));
        eprintln!("image-cli build: {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
        Ended { status, at, stderr }
    }
}

impl Drop for LiveBuild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the build and returns it once its instance runs (connect is then
/// being retried against the closed port).
fn build_until_connecting(moto: &image_testbed::Moto, proxy: &FaultProxy, cwd: &Path) -> LiveBuild {
    let b = LiveBuild::start(moto, proxy, cwd);
    b.wait_for("[node] instance: ", Duration::from_secs(120));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_ctrl_c_is_answered_and_the_cleanup_still_finishes() {
    let (moto, proxy) = moto_behind_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let (ended, after_second, calls_before) = tokio::task::block_in_place(|| {
        let b = build_until_connecting(&moto, &proxy, dir.path());
        // Every cleanup call now takes 1.5 s: the cleanup lasts >= 4.5 s
        // (terminate and key pair, instance gone, group), while the second
        // signal follows the first's answer within milliseconds.
        for a in CLEANUP_ACTIONS {
            proxy.set_action_latency(a, Duration::from_millis(1500));
        }
        let before = CLEANUP_ACTIONS.map(|a| proxy.calls(a));
        b.interrupt();
        b.wait_for(CANCELLING, Duration::from_secs(10));
        b.interrupt();
        let second = Instant::now();
        b.wait_for(STILL_CLEANING, Duration::from_secs(10));
        let ended = b.finish(Duration::from_secs(120));
        let after = ended.at - second;
        (ended, after, before)
    });
    assert_eq!(ended.status.code(), Some(130), "{}", ended.stderr);
    let stderr = &ended.stderr;
    // The answer came while the cleanup ran, and the cleanup went on to
    // its end: its step finished after the answer, then the summary.
    let answered = stderr.find(STILL_CLEANING).expect("answered");
    let cleaned = stderr
        .find(CLEANUP_DONE)
        .unwrap_or_else(|| panic!("the cleanup step never finished:\n{stderr}"));
    assert!(answered < cleaned, "answered after the cleanup:\n{stderr}");
    assert!(
        stderr.contains("[node] cleanup: done"),
        "the cleanup failed:\n{stderr}"
    );
    assert!(stderr.contains("cancelled at step"), "{stderr}");
    assert!(!stderr.contains(QUITTING), "{stderr}");
    assert!(
        after_second >= Duration::from_secs(1),
        "exited {after_second:?} after the second interrupt: the cleanup was not slow"
    );
    // The cleanup went through the slowed proxy.
    for (a, before) in CLEANUP_ACTIONS.iter().zip(calls_before) {
        assert!(proxy.calls(a) > before, "no {a} through the proxy");
    }
    let ec2 = direct(&moto).await;
    assert!(own_images(&ec2, &all_regions()).await.is_empty());
    assert_nothing_left(&ec2, &all_regions()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_ctrl_c_quits_at_once_and_cleanup_deletes_the_rest() {
    let (moto, proxy) = moto_behind_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    // Waiting for the terminated instance takes 30 s a poll. Only that
    // read is slowed: the proxy still forwards a slowed call once its
    // caller is gone, and a late deletion would race the leftovers below.
    let slow = Duration::from_secs(30);
    let (ended, after_third) = tokio::task::block_in_place(|| {
        let b = build_until_connecting(&moto, &proxy, dir.path());
        proxy.set_action_latency("DescribeInstances", slow);
        b.interrupt();
        b.wait_for(CANCELLING, Duration::from_secs(10));
        b.interrupt();
        b.wait_for(STILL_CLEANING, Duration::from_secs(10));
        b.interrupt();
        let third = Instant::now();
        let ended = b.finish(Duration::from_secs(60));
        let after = ended.at - third;
        (ended, after)
    });
    assert_eq!(ended.status.code(), Some(130), "{}", ended.stderr);
    assert!(
        after_third < Duration::from_secs(5),
        "exited {after_third:?} after the third interrupt (the cleanup needs >= {slow:?})"
    );
    let stderr = &ended.stderr;
    assert!(stderr.contains(QUITTING), "{stderr}");
    assert!(stderr.contains(RUN_CLEANUP), "{stderr}");
    // Quit in the middle: the cleanup step and the summary never came.
    assert!(!stderr.contains(CLEANUP_DONE), "{stderr}");
    assert!(!stderr.contains("cancelled at step"), "{stderr}");
    assert_eq!(
        proxy.calls("DeleteSecurityGroup"),
        0,
        "the cleanup got past the instance"
    );

    // The group, held by the instance until it is gone, is left; so may be
    // the instance and the key pair. All tagged, all found.
    let ec2 = direct(&moto).await;
    let left = cleanup::find_leftovers(&ec2, &all_regions(), None)
        .await
        .unwrap();
    assert!(
        left.iter()
            .any(|l| matches!(l.resource, Resource::SecurityGroup { .. })),
        "no security group left: {left:?}"
    );

    let regions = region_args();
    let mut args = vec!["cleanup"];
    args.extend(regions.iter().map(String::as_str));
    args.push("--yes");
    let out = run_cli_in_place(&moto, dir.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (deleted, of) = deleted_of(&stdout).unwrap_or_else(|| panic!("{stdout}"));
    assert!(of >= 1 && deleted == of, "{stdout}");
    assert!(own_images(&ec2, &all_regions()).await.is_empty());
    assert_nothing_left(&ec2, &all_regions()).await;
}

/// `N` and `M` of cleanup's "deleted N of M resource(s)".
fn deleted_of(stdout: &str) -> Option<(usize, usize)> {
    let rest = &stdout[stdout.find("deleted ")? + "deleted ".len()..];
    let mut words = rest.split_whitespace();
    let n = words.next()?.parse().ok()?;
    (words.next()? == "of").then_some(())?;
    let m = words.next()?.parse().ok()?;
    Some((n, m))
}
