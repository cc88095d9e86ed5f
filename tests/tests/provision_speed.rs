//! Per-task overhead of an idempotent re-run over loopback SSH (on demand:
//! `cargo nextest run -p tests --test provision_speed --run-ignored all`).
//! Prints the time per task with and without become, and of one bare exec.

mod bed_support;

use std::time::Instant;

use bed_support::{boot, connect};
use image_core::events::NoEvents;
use image_core::target::{Exec, Target};
use image_provision::{parse, Options};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "timing, on demand"]
async fn idempotent_task_overhead() {
    let bed = boot().await;
    let t = connect(&bed).await;
    let d = tempfile::tempdir().expect("tempdir");
    let mut steps = String::new();
    for i in 0..100 {
        steps.push_str(&format!(
            "- file: path=/tmp/bench-{i} state=directory mode=0755\n"
        ));
    }
    std::fs::write(d.path().join("s.yaml"), &steps).expect("write");
    let s = parse::load(&d.path().join("s.yaml"), &[]).expect("parse");
    for become_ in [false, true] {
        let o = Options {
            become_,
            ..Default::default()
        };
        let r = image_provision::run(&t, &s, &o, &NoEvents).await;
        assert_eq!(r.recap.failed, 0);
        let t0 = Instant::now();
        let r = image_provision::run(&t, &s, &o, &NoEvents).await;
        let el = t0.elapsed();
        assert_eq!(r.recap.changed, 0);
        eprintln!(
            "become={become_}: 100 idempotent tasks in {el:?} ({:?}/task)",
            el / 100
        );
    }
    for become_ in [false, true] {
        let e = Exec::new("true").become_opt(become_.then(Default::default));
        let t0 = Instant::now();
        for _ in 0..20 {
            t.exec(&e).await.expect("exec");
        }
        eprintln!("bare exec (become={become_}): {:?}", t0.elapsed() / 20);
        let big = format!("true # {}", "x".repeat(3000));
        let e = Exec::new(big).become_opt(become_.then(Default::default));
        let t0 = Instant::now();
        for _ in 0..20 {
            t.exec(&e).await.expect("exec");
        }
        eprintln!("3 KB exec (become={become_}): {:?}", t0.elapsed() / 20);
    }
    tokio::task::spawn_blocking(move || bed.stop())
        .await
        .expect("stop");
}
