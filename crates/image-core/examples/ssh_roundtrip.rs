//! Measures the exec round trip of [`SshTarget`]: connect once, run `true`
//! N times on the one session (sequentially, then N at once), print means.
//!
//! ```text
//! cargo run -p image-core --example ssh_roundtrip -- \
//!     --host 127.0.0.1 --port 2222 --user builder --key ~/.ssh/id_ed25519 [--count 100]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use image_core::ssh::{SshAuth, SshConfig, SshTarget};
use image_core::target::{Exec, Target};

struct Args {
    host: String,
    port: u16,
    user: String,
    key: String,
    count: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 22,
        user: "builder".into(),
        key: String::new(),
        count: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => a.host = val()?,
            "--port" => a.port = val()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--user" => a.user = val()?,
            "--key" => a.key = val()?,
            "--count" => a.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.key.is_empty() {
        return Err("--key is required".into());
    }
    Ok(a)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse().map_err(|e| {
        format!("{e}\nusage: ssh_roundtrip --host H --port P --user U --key FILE [--count N]")
    })?;
    let cfg = SshConfig::new(&a.host, a.port, &a.user, SshAuth::key_file(&a.key));
    let t0 = Instant::now();
    let t = Arc::new(SshTarget::connect(cfg).await?);
    println!(
        "connect: {:.1} ms ({})",
        ms(t0.elapsed()),
        t.host_key_fingerprint()
    );

    let t0 = Instant::now();
    for i in 0..a.count {
        let out = t.exec(&Exec::new("true")).await?;
        if !out.success() {
            return Err(format!("command {i} exited {}", out.status).into());
        }
    }
    let seq = t0.elapsed();
    println!(
        "sequential: {} commands in {:.1} ms, mean {:.2} ms",
        a.count,
        ms(seq),
        ms(seq) / a.count as f64
    );

    let t0 = Instant::now();
    let tasks: Vec<_> = (0..a.count)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.exec(&Exec::new("true")).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let par = t0.elapsed();
    println!(
        "concurrent: {} commands in {:.1} ms, {:.2} ms per command",
        a.count,
        ms(par),
        ms(par) / a.count as f64
    );
    Ok(())
}
