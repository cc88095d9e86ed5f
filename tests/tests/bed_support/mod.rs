//! Shared by the tests on a booted test-bed target (`node_recipe`,
//! `provision_node_role`, `provision_speed`, `provision_reboot`,
//! `verify_ssh`, ...): boot it, connect with the test bed's key, stop it,
//! serve fixtures.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use image_core::ssh::{SshAuth, SshConfig, SshTarget};
use image_testbed::{Target as Bed, TargetOptions, Vm, VmOptions};

/// A target with the default options, booted off the async runtime.
pub async fn boot() -> Bed {
    boot_with(TargetOptions::default()).await
}

/// A target with `opts`, booted off the async runtime.
pub async fn boot_with(opts: TargetOptions) -> Bed {
    tokio::task::spawn_blocking(move || Bed::start(opts))
        .await
        .expect("boot task")
        .expect("test bed target (run scripts/testbed/setup.sh)")
}

/// Stops `bed` off the async runtime.
pub async fn stop(bed: Bed) {
    tokio::task::spawn_blocking(move || bed.stop())
        .await
        .expect("stop task");
}

/// SSH to `bed` as its user with the test bed's key, retrying for 30 s.
pub async fn connect(bed: &Bed) -> SshTarget {
    let mut cfg = SshConfig::new(
        bed.host(),
        bed.ssh_port(),
        bed.user(),
        SshAuth::key_file(bed.testbed().ed25519_key()),
    );
    cfg.retry_until = Duration::from_secs(30);
    SshTarget::connect(cfg).await.expect("connect")
}

/// A VM target (own kernel, qemu) with `opts`, booted off the async runtime.
pub async fn boot_vm(opts: VmOptions) -> Vm {
    tokio::task::spawn_blocking(move || Vm::start(opts))
        .await
        .expect("boot task")
        .expect("VM target (run TESTBED_VM=1 scripts/testbed/setup.sh)")
}

/// Stops `vm` off the async runtime.
pub async fn stop_vm(vm: Vm) {
    tokio::task::spawn_blocking(move || vm.stop())
        .await
        .expect("stop task");
}

/// SSH to `vm` as its user with the test bed's key, retrying for 60 s.
pub async fn connect_vm(vm: &Vm) -> SshTarget {
    let mut cfg = SshConfig::new(
        vm.host(),
        vm.ssh_port(),
        vm.user(),
        SshAuth::key_file(vm.testbed().ed25519_key()),
    );
    cfg.retry_until = Duration::from_secs(60);
    SshTarget::connect(cfg).await.expect("connect")
}

/// Serves `body` for every GET on 127.0.0.1:<free port>; returns the port.
pub fn serve(body: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(&s);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let mut w = &s;
            let _ = write!(
                w,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = w.write_all(&body);
        }
    });
    port
}

/// Serves the files under `dir` on 127.0.0.1:<free port> (`GET /NAME`,
/// `GET /SUB/NAME`), and
/// at `/` an HTML page linking to each of them (what pip's `--find-links`
/// reads); returns the port.
pub fn serve_dir(dir: &std::path::Path) -> u16 {
    let dir = dir.to_path_buf();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(&s);
                let mut first = String::new();
                if r.read_line(&mut first).is_err() {
                    return;
                }
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let mut parts = first.split_whitespace();
                let head = parts.next() == Some("HEAD");
                let path = parts.next().unwrap_or("/").trim_start_matches('/');
                let path = path.split('?').next().unwrap_or("");
                let (status, kind, body) = if path.is_empty() {
                    let mut names: Vec<String> = std::fs::read_dir(&dir)
                        .map(|rd| {
                            rd.flatten()
                                .map(|d| d.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    names.sort();
                    let links: String = names
                        .iter()
                        .map(|n| format!("<a href=\"{n}\">{n}</a><br>\n"))
                        .collect();
                    let page = format!("<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n");
                    ("200 OK", "text/html", page.into_bytes())
                } else {
                    // Names under `dir` (subdirectories too: an RPM
                    // repository's repodata/), none hidden, no `..`.
                    let plain = path
                        .split('/')
                        .all(|c| !c.is_empty() && !c.starts_with('.'));
                    let file = plain.then(|| std::fs::read(dir.join(path)).ok()).flatten();
                    match file {
                        Some(b) => ("200 OK", "application/octet-stream", b),
                        None => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
                    }
                };
                let mut w = &s;
                let _ = write!(
                    w,
                    "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if !head {
                    let _ = w.write_all(&body);
                }
            });
        }
    });
    port
}
