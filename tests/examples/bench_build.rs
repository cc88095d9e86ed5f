//! Issues #5 and #16 benchmark (on demand, not CI; driven by
//! `bench/build/run.sh`): `image-cli build` vs packer 1.6.6 `amazon-ebs` on
//! the same moto, behind the same fault proxy (per-call latency; every new
//! image `pending` for a fixed time after the CreateImage / CopyImage call
//! that made it, as on EC2), each tool polling as it likes (no
//! `AWS_POLL_DELAY_SECONDS`: packer with its defaults, image-cli with its
//! own), the same booted SSH target, a one-command provisioning step,
//! copies to 3 regions. The floor is what the AWS side imposes on the
//! critical path: the AMI's pending time, then its copies' (in parallel);
//! each tool's overhead is its wall time above it. Then 50 builds at once
//! in one `image-cli build --parallel-builds 50` through a throttling proxy.
//!
//! `--pending-secs 0` selects the old definition instead: images pending
//! for `--pending` polls, both tools polling every `--poll-secs`
//! (`AWS_POLL_DELAY_SECONDS`), which measures the poll interval more than
//! the tools.
//!
//! The target's sshd trusts only the key pairs EC2 knows (an
//! `AuthorizedKeysCommand` asking moto directly, not through the proxy),
//! both image-cli's imported `image-builder-*` keys and packer's
//! `packer_*` key pairs (CreateKeyPair).
//!
//! ```text
//! cargo run -p tests --example bench_build -- --image-cli target/debug/image-cli \
//!     [--packer /usr/bin/packer] [--rounds 3] [--latency-ms 50] [--pending-secs 20] \
//!     [--parallel 50] [--skip-packer] [--skip-parallel] [--no-baseline]
//!     [--pending-secs 0 --pending 3 --poll-secs 2]
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
use std::time::{Duration, Instant};

use bench_support::{
    amazon_ebs, events, leftovers, median, median_usize, number, recorded, step_times,
    write_packer_steps, Aws, CommonOpts, Run, COPY_REGIONS, REGION,
};
use faultproxy::{Fault, FaultProxy};

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
    /// `--pending-secs S` (default 20): images pending for S seconds after
    /// the call that made them, each tool polling as it likes; 0: the poll
    /// count mode (`--pending`, `--poll-secs`).
    pending_secs: u64,
    parallel: usize,
    baseline: bool,
    throttle_n: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        common: CommonOpts::new(3),
        pending_secs: 20,
        parallel: 50,
        baseline: true,
        throttle_n: 5,
    };
    o.common.parse_args(|a, val| {
        match a {
            "--pending-secs" => o.pending_secs = number(a, val()?)?,
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

/// How long new images stay `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// For this many seconds after the call that made them (0: available
    /// at once).
    Secs(u64),
    /// For this many `DescribeImages` polls by id.
    Polls(usize),
}

impl Pending {
    fn apply(self, proxy: &FaultProxy) {
        let (secs, polls) = match self {
            Pending::Secs(s) => (s, 0),
            Pending::Polls(n) => (0, n),
        };
        proxy.pending_for(Duration::from_secs(secs));
        proxy.pending_polls(polls);
    }

    /// What the AWS side imposes on a build's critical path: the AMI's
    /// pending time, then its copies' (in parallel). `None` in the poll
    /// count mode, where the tools' poll interval sets it.
    fn floor_secs(self) -> Option<f64> {
        match self {
            Pending::Secs(s) => Some(s as f64 * if COPY_REGIONS.is_empty() { 1.0 } else { 2.0 }),
            Pending::Polls(0) => Some(0.0),
            Pending::Polls(_) => None,
        }
    }

    fn label(self) -> String {
        match self {
            Pending::Secs(0) | Pending::Polls(0) => "available at once".into(),
            Pending::Secs(s) => format!("{s} s"),
            Pending::Polls(n) => format!("{n} polls"),
        }
    }

    fn slug(self) -> String {
        match self {
            Pending::Secs(s) => format!("pending{s}s"),
            Pending::Polls(n) => format!("pending{n}polls"),
        }
    }
}

/// One measured run, with how late (beyond its pending time) the proxy
/// first showed the run's AMI, and its slowest copy, `available`.
struct Measured {
    run: Run,
    ami_late: Option<f64>,
    copies_late: Option<f64>,
}

impl Measured {
    fn describe_images(&self) -> usize {
        self.run
            .by_action
            .get("DescribeImages")
            .copied()
            .unwrap_or(0)
    }
}

/// (AMI, slowest copy): seconds between the end of each image's pending
/// time and the first answer showing it available, over the images made
/// since `since`.
fn lateness(proxy: &FaultProxy, since: Instant, pending: Pending) -> (Option<f64>, Option<f64>) {
    let Pending::Secs(secs) = pending else {
        return (None, None);
    };
    let pending = Duration::from_secs(secs);
    let (mut ami, mut copies) = (None, None::<f64>);
    for (_, t) in proxy
        .images()
        .into_iter()
        .filter(|(_, t)| t.created >= since)
    {
        let Some(seen) = t.available_seen else {
            continue;
        };
        let late = (seen - t.created).saturating_sub(pending).as_secs_f64();
        if t.copy {
            copies = Some(copies.map_or(late, |c| c.max(late)));
        } else {
            ami = Some(late);
        }
    }
    (ami, copies)
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
    let proxy = bench_support::start_proxy(&moto, o.common.latency_ms, 0)?;
    // The main scenario, then (unless --no-baseline) the same with images
    // available at once: what is left is each tool's own overhead.
    let main_pending = if o.pending_secs > 0 {
        Pending::Secs(o.pending_secs)
    } else {
        Pending::Polls(o.common.pending)
    };
    let time_mode = matches!(main_pending, Pending::Secs(_));
    let mut scenarios = vec![main_pending];
    if o.baseline && main_pending.floor_secs() != Some(0.0) {
        scenarios.push(Pending::Secs(0));
    }
    let port = target.ssh_port();
    let user = target.user();

    let work = tempfile::tempdir()?;
    let dir = work.path();
    let aws = Aws {
        endpoint: proxy.url(),
        empty: dir.join("aws-empty"),
        // The time mode: each tool polls as it likes.
        poll_secs: if time_mode { 0 } else { o.common.poll_secs },
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
    let mut results: Vec<(Pending, Vec<Measured>, Vec<Measured>)> = Vec::new();
    for &pending in &scenarios {
        pending.apply(&proxy);
        let mut cli_runs: Vec<Measured> = Vec::new();
        let mut packer_runs: Vec<Measured> = Vec::new();
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
                let logs = run_dir(&format!("{name}-{}-{}", pending.slug(), round + 1))?;
                let since = Instant::now();
                let run = tokio::task::block_in_place(|| recorded(&moto, cmd, &logs))?;
                let (ami_late, copies_late) = lateness(&proxy, since, pending);
                let r = Measured {
                    run,
                    ami_late,
                    copies_late,
                };
                eprintln!(
                    "pending {}, round {}: {name} {:.2} s, {} calls ({} DescribeImages), ok={}",
                    pending.label(),
                    round + 1,
                    r.run.secs,
                    r.run.calls,
                    r.describe_images(),
                    r.run.ok
                );
                if !r.run.ok {
                    failures.push(format!(
                        "{name} (pending {}) round {}:\n{}\n{}",
                        pending.label(),
                        round + 1,
                        r.run.stdout,
                        r.run.stderr
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
    main_pending.apply(&proxy);
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
    let polling = if time_mode {
        format!(
            "new images pending {} s after the CreateImage / CopyImage call that made them, \
each tool polling as it likes (no AWS_POLL_DELAY_SECONDS: packer's defaults, image-cli's defaults)",
            o.pending_secs
        )
    } else {
        format!(
            "new images pending for {} polls, poll interval {} s (AWS_POLL_DELAY_SECONDS={} for both tools)",
            o.common.pending, o.common.poll_secs, o.common.poll_secs
        )
    };
    writeln!(
        t,
        "\nsetup: moto 5.2.5 behind the fault proxy ({} ms per call), {polling}, \
build in {REGION} + ami_regions {}, ami_users 1, 1 tag, one-command provisioning over SSH to one nspawn target; \
{} round(s) each, alternating order. Floor: the pending times on the critical path (the AMI, then its copies in parallel). \
Late: from the end of an image's pending time to the first answer showing it available (the AMI / the slowest copy).\n",
        o.common.latency_ms,
        COPY_REGIONS.join(","),
        o.common.rounds
    )?;
    writeln!(t, "| images pending | tool | wall time, median (runs) | floor | overhead above floor | EC2 calls per build, median (min–max) | DescribeImages | late: AMI / copies | peak RSS | ok |")?;
    writeln!(t, "|---|---|---|---|---|---|---|---|---|---|")?;
    let secs_of = |v: &[Measured]| median(&v.iter().map(|r| r.run.secs).collect::<Vec<_>>());
    let calls_of =
        |v: &[Measured]| median_usize(&v.iter().map(|r| r.run.calls).collect::<Vec<_>>());
    let images_of =
        |v: &[Measured]| median_usize(&v.iter().map(|r| r.describe_images()).collect::<Vec<_>>());
    let late_of = |v: &[Measured], f: fn(&Measured) -> Option<f64>| {
        let l: Vec<f64> = v.iter().filter_map(f).collect();
        if l.is_empty() {
            "–".to_string()
        } else {
            format!("{:.1} s", median(&l))
        }
    };
    let row = |t: &mut String, pending: Pending, name: &str, runs: &[Measured]| {
        if runs.is_empty() {
            return;
        }
        let calls: Vec<usize> = runs.iter().map(|r| r.run.calls).collect();
        let runs_s: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.run.secs)).collect();
        let rss = runs.iter().map(|r| r.run.max_rss_kb).max().unwrap_or(0);
        let wall = secs_of(runs);
        let (floor, over) = match pending.floor_secs() {
            Some(f) => (format!("{f:.0} s"), format!("{:.2} s", wall - f)),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            t,
            "| {} | {name} | {wall:.2} s ({}) | {floor} | {over} | {} ({}–{}) | {} | {} / {} | {:.0} MiB | {}/{} |",
            pending.label(),
            runs_s.join(", "),
            median_usize(&calls),
            calls.iter().min().unwrap_or(&0),
            calls.iter().max().unwrap_or(&0),
            images_of(runs),
            late_of(runs, |r| r.ami_late),
            late_of(runs, |r| r.copies_late),
            rss as f64 / 1024.0,
            runs.iter().filter(|r| r.run.ok).count(),
            runs.len()
        );
    };
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    for (pending, cli_runs, packer_runs) in &results {
        row(&mut t, *pending, "image-cli build", cli_runs);
        row(&mut t, *pending, "packer 1.6.6 build", packer_runs);
        if cli_runs.is_empty() || packer_runs.is_empty() {
            continue;
        }
        let (cli_calls, packer_calls) = (calls_of(cli_runs), calls_of(packer_runs));
        let calls_ratio = cli_calls as f64 / packer_calls.max(1) as f64;
        // The goals (issue #16) are about images pending for a time.
        let goals = matches!(pending, Pending::Secs(s) if *s > 0);
        let goal = |limit: &str, ok: bool| {
            if goals {
                format!(" (goal <= {limit}: {})", met(ok))
            } else {
                String::new()
            }
        };
        let over = pending.floor_secs().map(|f| {
            let r = (secs_of(cli_runs) - f) / (secs_of(packer_runs) - f);
            format!("{r:.2}x{}", goal("0.33", r <= 1.0 / 3.0))
        });
        writeln!(
            t,
            "| {} | image-cli / packer | {:.2}x | | {} | {:.2}x{} | {} vs {} | | | |",
            pending.label(),
            secs_of(cli_runs) / secs_of(packer_runs),
            over.unwrap_or_else(|| "–".into()),
            calls_ratio,
            goal("0.50", calls_ratio <= 0.5),
            images_of(cli_runs),
            images_of(packer_runs),
        )?;
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
        let floor = main_pending
            .floor_secs()
            .map_or(String::new(), |f| format!(" (floor {f:.0} s)"));
        writeln!(t, "| wall time | {:.2} s{floor} | |", r.secs)?;
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
        let pending = pending.label();
        if let Some(r) = cli_runs.iter().map(|m| &m.run).find(|r| r.ok) {
            writeln!(
                t,
                "\nimage-cli steps, images pending {pending} (first ok run, ms):"
            )?;
            let mut line = String::new();
            for (s, ms, _) in step_times(&r.stdout) {
                let _ = write!(line, " {s}={ms}");
            }
            writeln!(t, "{line}")?;
            writeln!(t, "image-cli calls by action: {:?}", r.by_action)?;
        }
        if let Some(r) = packer_runs.iter().map(|m| &m.run).find(|r| r.ok) {
            writeln!(t, "\npacker timeline, images pending {pending} (first ok run; packer's timestamps are whole seconds):")?;
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
