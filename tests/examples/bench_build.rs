//! Issue #5 benchmark (on demand, not CI; driven by `bench/build/run.sh`):
//! `image-cli build` vs packer 1.6.6 `amazon-ebs` on the same moto, behind
//! the same fault proxy (per-call latency, images `pending` for N polls),
//! the same poll interval (`AWS_POLL_DELAY_SECONDS` for both), the same
//! booted SSH target, a one-command
//! provisioning step, copies to 3 regions. Then 50 builds at once in one
//! `image-cli build --parallel-builds 50` through a throttling proxy.
//!
//! The target's sshd trusts only the key pairs EC2 knows (an
//! `AuthorizedKeysCommand` asking moto directly, not through the proxy),
//! both image-cli's imported `image-builder-*` keys and packer's
//! `packer_*` key pairs (CreateKeyPair).
//!
//! ```text
//! cargo run -p tests --example bench_build -- --image-cli target/debug/image-cli \
//!     [--packer /usr/bin/packer] [--rounds 3] [--latency-ms 50] [--pending 3] \
//!     [--poll-secs 2] [--parallel 50] [--skip-packer] [--skip-parallel]
//! ```

#[path = "../tests/aws_support/faultproxy.rs"]
mod faultproxy;

#[path = "../tests/cli_support/mod.rs"]
mod cli_support;

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bench_support::{
    amazon_ebs, events, leftovers, median, median_usize, number, recorded, step_times,
    write_packer_steps, Aws, CommonOpts, Run, COPY_REGIONS, REGION,
};
use faultproxy::Fault;

/// Actions throttled (RequestLimitExceeded) in the parallel run,
/// `--throttle-n` times each (default 5). The proxy answers the next n calls
/// of the action, whoever makes them: n >= the SDK's 8 attempts can fail one
/// unlucky call outright.
const THROTTLED: [&str; 7] = [
    "DescribeImages",
    "ImportKeyPair",
    "CreateSecurityGroup",
    "RunInstances",
    "CreateImage",
    "CopyImage",
    "TerminateInstances",
];

struct Opts {
    common: CommonOpts,
    parallel: usize,
    baseline: bool,
    throttle_n: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        common: CommonOpts::new(3),
        parallel: 50,
        baseline: true,
        throttle_n: 5,
    };
    o.common.parse_args(|a, val| {
        match a {
            "--parallel" => o.parallel = number(a, val()?)?,
            "--skip-parallel" => o.parallel = 0,
            "--no-baseline" => o.baseline = false,
            "--throttle-n" => o.throttle_n = number(a, val()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
        Ok(())
    })?;
    Ok(o)
}

const STEPS: &str = "- name: mark the image\n  shell: echo bench > /etc/bench-marker\n";
const PACKER_INLINE: &str = "echo bench | sudo tee /etc/bench-marker >/dev/null";

fn yaml_list(v: &[&str]) -> String {
    format!("[{}]", v.join(", "))
}

fn build_yaml(name: &str, user: &str) -> String {
    format!(
        "  {name}:\n    source_ami:\n      owners: [\"099720109477\"]\n      name: ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*\n      architecture: x86_64\n    ssh_username: {user}\n    ami_name: \"bench-{name}-{{{{ timestamp }}}}\"\n"
    )
}

/// The image-cli definition: `builds` named as given.
fn spec_yaml(port: u16, user: &str, builds: &[String]) -> String {
    let mut s = [
        "description: bench/build".to_string(),
        "defaults:".into(),
        format!("  region: {REGION}"),
        "  instance_type: t3.small".into(),
        "  ssh_host: 127.0.0.1".into(),
        format!("  ssh_port: \"{port}\""),
        "  ssh_timeout: 120s".into(),
        "  temporary_security_group_source_cidrs: [\"127.0.0.1/32\"]".into(),
        format!("  ami_regions: {}", yaml_list(&COPY_REGIONS)),
        "  ami_users: [\"111122223333\"]".into(),
        "  tags:".into(),
        "    purpose: bench".into(),
        "  provision:".into(),
        "    - steps.yaml".into(),
        "builds:".into(),
        String::new(),
    ]
    .join("\n");
    for b in builds {
        s.push_str(&build_yaml(b, user));
    }
    s
}

fn packer_json(endpoint: &str, port: u16, user: &str) -> String {
    let builder = amazon_ebs(
        endpoint,
        user,
        port,
        "120s",
        serde_json::json!({
            "ami_name": "bench-packer-{{timestamp}}",
            "ami_regions": COPY_REGIONS,
            "ami_users": ["111122223333"],
            "tags": {"purpose": "bench"}
        }),
    );
    serde_json::to_string_pretty(&serde_json::json!({
        "builders": [builder],
        "provisioners": [{"type": "shell", "inline": [PACKER_INLINE]}]
    }))
    .expect("json")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    eprintln!("bench: starting moto, the fault proxy and a target");
    let (moto, target) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let moto = cli_support::start_moto();
        // 50 builds log in at once: raise MaxStartups. (Packer 1.6.6's RSA
        // key from moto's CreateKeyPair authenticates against OpenSSH 9.2 as
        // is.)
        let extra_files =
            bench_support::ec2_keys_files(moto.port(), "bench/build", "MaxStartups 200:30:400\n")?;
        let opts = image_testbed::TargetOptions {
            extra_files,
            ..Default::default()
        };
        let target =
            image_testbed::Target::start(opts).map_err(|e| format!("booting the target: {e}"))?;
        Ok((moto, target))
    })
    .await??;
    let proxy = bench_support::start_proxy(&moto, o.common.latency_ms, o.common.pending)?;
    let port = target.ssh_port();
    let user = target.user();

    let work = tempfile::tempdir()?;
    let dir = work.path();
    let aws = Aws {
        endpoint: proxy.url(),
        empty: dir.join("aws-empty"),
        poll_secs: o.common.poll_secs,
    };
    std::fs::write(&aws.empty, "")?;
    std::fs::write(dir.join("steps.yaml"), STEPS)?;
    std::fs::write(
        dir.join("spec.yaml"),
        spec_yaml(port, user, &["one".into()]),
    )?;
    std::fs::write(
        dir.join("packer.json"),
        packer_json(&proxy.url(), port, user),
    )?;
    std::fs::create_dir_all(dir.join("packer-home"))?;

    let cli_cmd = |spec: &str, extra: &[&str]| {
        let mut c = Command::new(&o.common.image_cli);
        c.current_dir(dir)
            .args(["build", spec, "--json", "--manifest"])
            .arg(dir.join("manifest.json"))
            .args(extra);
        aws.env(&mut c);
        c
    };
    let packer_cmd = |packer: &Path| aws.packer_command(packer, dir, &dir.join("packer-home"));
    // Each run's stdout and stderr.
    let run_dir = |name: &str| -> std::io::Result<PathBuf> {
        let d = dir.join("runs").join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };

    // Warm moto up (its first call per region loads ~1300 AMIs): not
    // measured, so neither tool's first run pays for it.
    leftovers(&moto).await?;
    let mut failures = Vec::new();
    // The main scenario, then (unless --no-baseline) the same with images
    // available at once: what is left is each tool's own overhead.
    let mut scenarios = vec![o.common.pending];
    if o.baseline && o.common.pending != 0 {
        scenarios.push(0);
    }
    let mut results: Vec<(usize, Vec<Run>, Vec<Run>)> = Vec::new();
    for &pending in &scenarios {
        proxy.pending_polls(pending);
        let mut cli_runs: Vec<Run> = Vec::new();
        let mut packer_runs: Vec<Run> = Vec::new();
        for round in 0..o.common.rounds {
            // Alternate who goes first.
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_cli in order {
                let (name, cmd) = if is_cli {
                    if o.common.skip_cli {
                        continue;
                    }
                    ("image-cli", cli_cmd("spec.yaml", &[]))
                } else if let Some(p) = &o.common.packer {
                    ("packer", packer_cmd(p))
                } else {
                    continue;
                };
                let logs = run_dir(&format!("{name}-pending{pending}-{}", round + 1))?;
                let r = tokio::task::block_in_place(|| recorded(&moto, cmd, &logs))?;
                eprintln!(
                    "pending {pending}, round {}: {name} {:.2} s, {} calls, ok={}",
                    round + 1,
                    r.secs,
                    r.calls,
                    r.ok
                );
                if !r.ok {
                    failures.push(format!(
                        "{name} (pending {pending}) round {}:\n{}\n{}",
                        round + 1,
                        r.stdout,
                        r.stderr
                    ));
                }
                if is_cli {
                    cli_runs.push(r);
                } else {
                    packer_runs.push(r);
                }
                // Distinct {{timestamp}} AMI names.
                std::thread::sleep(Duration::from_millis(1100));
            }
        }
        results.push((pending, cli_runs, packer_runs));
    }
    proxy.pending_polls(o.common.pending);
    let marker = std::fs::read_to_string(target.root_dir().join("etc/bench-marker")).ok();
    let single_left = leftovers(&moto).await?;

    // 50 builds at once, throttled.
    let mut par = None;
    if o.parallel > 0 {
        let names: Vec<String> = (0..o.parallel).map(|i| format!("p{i:02}")).collect();
        std::fs::write(dir.join("spec-par.yaml"), spec_yaml(port, user, &names))?;
        let before = leftovers(&moto).await?;
        let injected_before: usize = THROTTLED.iter().map(|a| proxy.injected(a)).sum();
        for a in THROTTLED {
            proxy.fail(a, o.throttle_n, Fault::Throttle);
        }
        let n = o.parallel.to_string();
        let cmd = cli_cmd("spec-par.yaml", &["--parallel-builds", &n]);
        let logs = run_dir("parallel")?;
        let r = tokio::task::block_in_place(|| recorded(&moto, cmd, &logs))?;
        let injected: usize =
            THROTTLED.iter().map(|a| proxy.injected(a)).sum::<usize>() - injected_before;
        let results = events(&r.stdout)
            .filter(|v| v["event"] == "build_result")
            .count();
        let after = leftovers(&moto).await?;
        eprintln!(
            "parallel: {:.2} s, ok={}, {results} build results, {} calls, {injected} throttled, max RSS {} KiB",
            r.secs, r.ok, r.calls, r.max_rss_kb
        );
        if !r.ok {
            failures.push(format!(
                "parallel run:\n{}\n{}",
                r.stdout
                    .lines()
                    .filter(|l| l.contains("build_failed") || l.contains("\"outcome\":\"failed\""))
                    .collect::<Vec<_>>()
                    .join("\n"),
                r.stderr
            ));
        }
        par = Some((r, results, injected, before, after));
    }

    // The table.
    let mut t = String::new();
    writeln!(
        t,
        "\nsetup: moto 5.2.5 behind the fault proxy ({} ms per call), poll interval {} s \
(AWS_POLL_DELAY_SECONDS={} for both tools), \
build in {REGION} + ami_regions {}, ami_users 1, 1 tag, one-command provisioning over SSH to one nspawn target; \
{} round(s) each, alternating order\n",
        o.common.latency_ms,
        o.common.poll_secs,
        o.common.poll_secs,
        COPY_REGIONS.join(","),
        o.common.rounds
    )?;
    writeln!(t, "| images pending for | tool | wall time, median (runs) | EC2 API calls per build (median; min–max) | peak RSS | ok |")?;
    writeln!(t, "|---|---|---|---|---|---|")?;
    let row = |t: &mut String, pending: usize, name: &str, runs: &[Run]| {
        if runs.is_empty() {
            return;
        }
        let secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
        let calls: Vec<usize> = runs.iter().map(|r| r.calls).collect();
        let runs_s: Vec<String> = secs.iter().map(|s| format!("{s:.2}")).collect();
        let rss = runs.iter().map(|r| r.max_rss_kb).max().unwrap_or(0);
        let _ = writeln!(
            t,
            "| {pending} polls | {name} | {:.2} s ({}) | {} ({}–{}) | {:.0} MiB | {}/{} |",
            median(&secs),
            runs_s.join(", "),
            median_usize(&calls),
            calls.iter().min().unwrap_or(&0),
            calls.iter().max().unwrap_or(&0),
            rss as f64 / 1024.0,
            runs.iter().filter(|r| r.ok).count(),
            runs.len()
        );
    };
    for (pending, cli_runs, packer_runs) in &results {
        row(&mut t, *pending, "image-cli build", cli_runs);
        row(&mut t, *pending, "packer 1.6.6 build", packer_runs);
        if !cli_runs.is_empty() && !packer_runs.is_empty() {
            let m = |v: &[Run]| median(&v.iter().map(|r| r.secs).collect::<Vec<_>>());
            let c = |v: &[Run]| median_usize(&v.iter().map(|r| r.calls).collect::<Vec<_>>());
            let ratio = m(cli_runs) / m(packer_runs);
            writeln!(
                t,
                "| {pending} polls | image-cli / packer | {:.2}x (goal <= 0.50: {}) | {} vs {} (goal fewer: {}) | | |",
                ratio,
                if ratio <= 0.5 { "met" } else { "NOT met" },
                c(cli_runs),
                c(packer_runs),
                if c(cli_runs) < c(packer_runs) { "met" } else { "NOT met" }
            )?;
        }
    }
    writeln!(
        t,
        "\nafter the single builds: temporary leftovers {}, live instances {}, key pairs {}, extra security groups {}, own AMIs {}; marker on target: {:?}",
        single_left.0, single_left.1, single_left.2, single_left.3, single_left.4, marker
    )?;
    if let Some((r, results, injected, before, after)) = &par {
        let amis_made = after.4 - before.4;
        writeln!(
            t,
            "\n| {} builds at once (`image-cli build --parallel-builds {}`) | value | goal |",
            o.parallel, o.parallel
        )?;
        writeln!(t, "|---|---|---|")?;
        writeln!(
            t,
            "| exit status ok / build results | {} / {results} of {} | all succeed |",
            r.ok, o.parallel
        )?;
        writeln!(t, "| wall time | {:.2} s | |", r.secs)?;
        writeln!(
            t,
            "| RequestLimitExceeded injected | {injected} ({}) | |",
            THROTTLED
                .iter()
                .map(|a| format!("{a}×{}", o.throttle_n))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            t,
            "| EC2 calls reaching moto | {} ({:.1} per build) | |",
            r.calls,
            r.calls as f64 / o.parallel as f64
        )?;
        writeln!(
            t,
            "| AMIs made | {amis_made} (expected {}) | |",
            o.parallel * 4
        )?;
        writeln!(
            t,
            "| leftovers (temporary / instances / key pairs / groups) | {} / {} / {} / {} | 0 |",
            after.0, after.1, after.2, after.3
        )?;
        writeln!(
            t,
            "| peak RSS (wait4 ru_maxrss) | {:.1} MiB | < 200 MB |",
            r.max_rss_kb as f64 / 1024.0
        )?;
        let mut by_step: Vec<(String, Vec<u64>)> = Vec::new();
        for (step, ms, _) in step_times(&r.stdout) {
            match by_step.iter_mut().find(|(s, _)| *s == step) {
                Some((_, v)) => v.push(ms),
                None => by_step.push((step, vec![ms])),
            }
        }
        writeln!(t, "\nparallel run, step time per build (median / max, s):")?;
        let mut line = String::new();
        for (step, mut v) in by_step {
            v.sort();
            let _ = write!(
                line,
                " {step}={:.1}/{:.1}",
                v[v.len() / 2] as f64 / 1000.0,
                v[v.len() - 1] as f64 / 1000.0
            );
        }
        writeln!(t, "{line}")?;
    }

    // Where the time goes.
    for (pending, cli_runs, packer_runs) in &results {
        if let Some(r) = cli_runs.iter().find(|r| r.ok) {
            writeln!(
                t,
                "\nimage-cli steps, images pending {pending} polls (first ok run, ms):"
            )?;
            let mut line = String::new();
            for (s, ms, _) in step_times(&r.stdout) {
                let _ = write!(line, " {s}={ms}");
            }
            writeln!(t, "{line}")?;
            writeln!(t, "image-cli calls by action: {:?}", r.by_action)?;
        }
        if let Some(r) = packer_runs.iter().find(|r| r.ok) {
            writeln!(t, "\npacker timeline, images pending {pending} polls (first ok run; packer's timestamps are whole seconds):")?;
            write_packer_steps(&mut t, &r.stdout, 100);
            writeln!(t, "packer calls by action: {:?}", r.by_action)?;
        }
    }
    println!("{t}");
    for f in &failures {
        eprintln!("=== FAILURE {f}");
    }

    tokio::task::spawn_blocking(move || {
        drop(proxy);
        target.stop();
        drop(moto);
    })
    .await?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} run(s) failed", failures.len()).into())
    }
}
