//! Boots test bed targets (Debian bookworm systemd-nspawn, see
//! `crates/testbed`) for manual runs and the provisioning benchmark
//! (`bench/provision/run.sh`), and keeps them up until standard input is
//! closed.
//!
//! ```text
//! cargo run -p image-provision --example testbed_targets -- [N]
//! ```
//!
//! Prints one line per target, `PORT ROOT_DIR`, then `key KEY_FILE` and
//! `user USER`, then `ready`. SSH to `USER@127.0.0.1:PORT` with `KEY_FILE`;
//! the guest reaches the host's 127.0.0.1 at 10.0.2.2. Close stdin (or send
//! SIGTERM/SIGINT to this process) to power the targets off.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use image_testbed::{Target, TargetOptions};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let n: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: testbed_targets [N]  (N >= 1 targets)");
            std::process::exit(2);
        }
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let mut targets = Vec::new();
    for i in 0..n {
        match Target::start(TargetOptions::default()) {
            Ok(t) => targets.push(t),
            Err(e) => {
                eprintln!(
                    "testbed_targets: target {} of {n} did not start: {e}",
                    i + 1
                );
                std::process::exit(1);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    for t in &targets {
        let _ = writeln!(out, "{} {}", t.ssh_port(), t.root_dir().display());
    }
    let _ = writeln!(out, "key {}", targets[0].testbed().ed25519_key().display());
    let _ = writeln!(out, "user {}", targets[0].user());
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    // Stdin EOF stops us too; it is read on a thread so signals are seen.
    let eof = Arc::new(AtomicBool::new(false));
    let e2 = eof.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        e2.store(true, Ordering::SeqCst);
    });
    while !STOP.load(Ordering::SeqCst) && !eof.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in targets {
        t.stop();
    }
}
