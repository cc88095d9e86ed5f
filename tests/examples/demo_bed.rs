//! The demo's stand-in for AWS (scripts/demo): a moto server with the fixture
//! AMIs (ubuntu-noble ones matching the built-in definition's source filter)
//! and a booted Debian target whose sshd trusts only the key pairs a build
//! imports into EC2, with an `ubuntu` user (the built-in `ssh_username`).
//!
//! It also builds the node recipe's download and apt fixtures
//! (`scripts/fixtures/build.sh`) and serves them on 127.0.0.1 (10.0.2.2 from
//! the target), and writes the `--var-file` of the build: their URLs plus
//! the built-in definition's test-bed switches (`cli_support::node`, the same
//! as `tests/tests/cli_build_node.rs`).
//!
//! Prints `MOTO_URL=…`, `SSH_PORT=…`, `TARGET_ROOT=…` and `VAR_FILE=…`, then
//! `READY`, and keeps everything up until SIGINT/SIGTERM, when it tears it
//! down.
//!
//! ```text
//! cargo run -p tests --example demo_bed
//! ```

#[path = "../tests/cli_support/mod.rs"]
mod cli_support;

use std::io::Write;

use tokio::signal::unix::{signal, SignalKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let fixtures = tempfile::tempdir()?;
    let fixtures_dir = fixtures.path().to_path_buf();
    let (moto, target, fx) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let fx = cli_support::node::start_node_fixtures(&fixtures_dir)?;
        let tb = image_testbed::Testbed::locate().map_err(|e| e.to_string())?;
        let amis = cli_support::fixture("aws/amis.json");
        let amis = amis.to_str().ok_or("non-UTF-8 fixture path")?.to_string();
        let moto = image_testbed::Moto::start_with(&tb, &[("MOTO_AMIS_PATH", &amis)])
            .map_err(|e| format!("starting moto: {e}"))?;
        let mut extra_files = cli_support::ec2_keys_files(moto.port(), cli_support::REGION);
        extra_files.extend(
            cli_support::ubuntu_user_files(tb.rootfs())
                .map_err(|e| format!("reading the rootfs's user files: {e}"))?,
        );
        let opts = image_testbed::TargetOptions {
            extra_files,
            ..Default::default()
        };
        let target =
            image_testbed::Target::start(opts).map_err(|e| format!("booting the target: {e}"))?;
        Ok((moto, target, fx))
    })
    .await??;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "MOTO_URL={}", moto.url())?;
        writeln!(out, "SSH_PORT={}", target.ssh_port())?;
        writeln!(out, "TARGET_ROOT={}", target.root_dir().display())?;
        writeln!(out, "VAR_FILE={}", fx.var_file.display())?;
        writeln!(out, "READY")?;
        out.flush()?;
    }
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("demo_bed: stopping the target and moto");
    tokio::task::spawn_blocking(move || {
        target.stop();
        drop(moto);
    })
    .await?;
    drop(fixtures);
    Ok(())
}
