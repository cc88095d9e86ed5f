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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultproxy::{Fault, FaultProxy};

const REGION: &str = cli_support::REGION;
const COPY_REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];
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
    image_cli: PathBuf,
    packer: Option<PathBuf>,
    rounds: usize,
    latency_ms: u64,
    pending: usize,
    poll_secs: u64,
    parallel: usize,
    baseline: bool,
    skip_cli: bool,
    throttle_n: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        image_cli: PathBuf::new(),
        packer: Some(PathBuf::from("/usr/bin/packer")),
        rounds: 3,
        latency_ms: 50,
        pending: 3,
        poll_secs: 2,
        parallel: 50,
        baseline: true,
        skip_cli: false,
        throttle_n: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--image-cli" => o.image_cli = PathBuf::from(val()?),
            "--packer" => o.packer = Some(PathBuf::from(val()?)),
            "--skip-packer" => o.packer = None,
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--latency-ms" => {
                o.latency_ms = val()?.parse().map_err(|e| format!("--latency-ms: {e}"))?
            }
            "--pending" => o.pending = val()?.parse().map_err(|e| format!("--pending: {e}"))?,
            "--poll-secs" => {
                o.poll_secs = val()?.parse().map_err(|e| format!("--poll-secs: {e}"))?
            }
            "--parallel" => o.parallel = val()?.parse().map_err(|e| format!("--parallel: {e}"))?,
            "--skip-parallel" => o.parallel = 0,
            "--no-baseline" => o.baseline = false,
            "--skip-cli" => o.skip_cli = true,
            "--throttle-n" => {
                o.throttle_n = val()?.parse().map_err(|e| format!("--throttle-n: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.image_cli.as_os_str().is_empty() {
        return Err("--image-cli PATH is required".into());
    }
    Ok(o)
}

/// sshd drop-in and key lookup: EC2's key pairs only (image-cli's imported
/// `image-builder-*` and packer's created `packer_*` ones). 50 builds log
/// in at once: raise MaxStartups. (Packer 1.6.6's RSA key from moto's
/// CreateKeyPair authenticates against OpenSSH 9.2 as is.)
fn target_files(moto_port: u16) -> Vec<(PathBuf, Vec<u8>, u32)> {
    let script = cli_support::ec2_keys_script(moto_port, REGION).replace(
        "name.startswith(\"image-builder-\")",
        "name.startswith((\"image-builder-\", \"packer_\"))",
    );
    assert!(script.contains("packer_"), "ec2-keys script changed shape");
    vec![
        (
            PathBuf::from("/etc/ssh/sshd_config.d/50-ec2.conf"),
            b"# Only the key pairs EC2 knows (bench/build)\n\
AuthorizedKeysFile none\n\
AuthorizedKeysCommand /usr/local/bin/ec2-keys %u\n\
AuthorizedKeysCommandUser nobody\n\
MaxStartups 200:30:400\n"
                .to_vec(),
            0o644,
        ),
        (
            PathBuf::from("/usr/local/bin/ec2-keys"),
            script.into_bytes(),
            0o755,
        ),
    ]
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
    serde_json::to_string_pretty(&serde_json::json!({
        "builders": [{
            "type": "amazon-ebs",
            "region": REGION,
            "access_key": "testing",
            "secret_key": "testing",
            "custom_endpoint_ec2": endpoint,
            "skip_region_validation": true,
            "skip_credential_validation": true,
            "source_ami_filter": {
                "filters": {
                    "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
                    "architecture": "x86_64",
                    "virtualization-type": "hvm",
                    "root-device-type": "ebs"
                },
                "owners": ["099720109477"],
                "most_recent": true
            },
            "instance_type": "t3.small",
            "communicator": "ssh",
            "ssh_username": user,
            "ssh_host": "127.0.0.1",
            "ssh_port": port,
            "ssh_timeout": "120s",
            "temporary_security_group_source_cidrs": ["127.0.0.1/32"],
            "ami_name": "bench-packer-{{timestamp}}",
            "ami_regions": COPY_REGIONS,
            "ami_users": ["111122223333"],
            "tags": {"purpose": "bench"}
        }],
        "provisioners": [{"type": "shell", "inline": [PACKER_INLINE]}]
    }))
    .expect("json")
}

struct Run {
    secs: f64,
    ok: bool,
    calls: usize,
    by_action: BTreeMap<String, usize>,
    max_rss_kb: i64,
    stdout: String,
    stderr: String,
}

/// Runs `cmd`, waiting with wait4 for its peak RSS.
fn run_measured(mut cmd: Command) -> (f64, bool, i64, String, String) {
    let out_f = tempfile::NamedTempFile::new().expect("tmp");
    let err_f = tempfile::NamedTempFile::new().expect("tmp");
    cmd.stdin(Stdio::null())
        .stdout(out_f.reopen().expect("reopen"))
        .stderr(err_f.reopen().expect("reopen"));
    let t0 = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0i32;
    // SAFETY: rusage is plain data; we wait for our own child (and never
    // call Child::wait on it afterwards).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4");
    std::mem::forget(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let stdout = std::fs::read_to_string(out_f.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err_f.path()).unwrap_or_default();
    (secs, ok, ru.ru_maxrss, stdout, stderr)
}

fn count(actions: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in actions {
        *m.entry(a.clone()).or_insert(0) += 1;
    }
    m
}

fn recorded(moto: &image_testbed::Moto, cmd: Command) -> Run {
    moto.start_recording().expect("start recording");
    let (secs, ok, max_rss_kb, stdout, stderr) = run_measured(cmd);
    moto.stop_recording().expect("stop recording");
    let actions = cli_support::build_actions(moto);
    Run {
        secs,
        ok,
        calls: actions.len(),
        by_action: count(&actions),
        max_rss_kb,
        stdout,
        stderr,
    }
}

fn aws_env(cmd: &mut Command, endpoint: &str, empty: &Path) {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", empty);
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_usize(v: &[usize]) -> usize {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Step durations (ms) of an `image-cli build --json` run.
fn step_times(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "step_finished")
        .filter_map(|v| Some((v["step"].as_str()?.to_string(), v["elapsed_ms"].as_u64()?)))
        .collect()
}

/// Packer's step timeline, from `-machine-readable` `ui,say` lines with timestamps.
fn packer_timeline(stdout: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut t0 = None;
    for l in stdout.lines() {
        let f: Vec<&str> = l.splitn(4, ',').collect();
        if f.len() < 4 || f[2] != "ui" {
            continue;
        }
        let Ok(ts) = f[0].parse::<f64>() else {
            continue;
        };
        let t0 = *t0.get_or_insert(ts);
        let msg = f[3]
            .split_once(',')
            .map_or("", |(_, m)| m)
            .replace("%!(PACKER_COMMA)", ",");
        out.push((ts - t0, msg));
    }
    out
}

/// What is left in moto: (temporary resources, live instances, key pairs,
/// non-default security groups, own AMIs) over the build and copy regions.
async fn leftovers(moto: &image_testbed::Moto) -> (usize, usize, usize, usize, usize) {
    let regions: Vec<String> = std::iter::once(REGION)
        .chain(COPY_REGIONS)
        .map(String::from)
        .collect();
    let ec2 = cli_support::direct(moto).await;
    let temp = image_aws::cleanup::find_leftovers(&ec2, &regions, None)
        .await
        .expect("find_leftovers")
        .len();
    let (mut inst, mut keys, mut groups, mut amis) = (0, 0, 0, 0);
    for r in &regions {
        let x = moto
            .ec2_query(
                r,
                "Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=pending&Filter.1.Value.2=running&Filter.1.Value.3=stopping&Filter.1.Value.4=stopped",
            )
            .expect("DescribeInstances");
        inst += x.matches("<instanceId>").count();
        let x = moto.ec2_query(r, "Action=DescribeKeyPairs").expect("keys");
        keys += x.matches("<keyName>").count();
        let x = moto
            .ec2_query(r, "Action=DescribeSecurityGroups")
            .expect("groups");
        groups +=
            x.matches("<groupName>").count() - x.matches("<groupName>default</groupName>").count();
        let x = moto
            .ec2_query(r, "Action=DescribeImages&Owner.1=self")
            .expect("images");
        amis += x.matches("<imageId>").count();
    }
    (temp, inst, keys, groups, amis)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    eprintln!("bench: starting moto, the fault proxy and a target");
    let (moto, target) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let moto = cli_support::start_moto();
        let opts = image_testbed::TargetOptions {
            extra_files: target_files(moto.port()),
            ..Default::default()
        };
        let target =
            image_testbed::Target::start(opts).map_err(|e| format!("booting the target: {e}"))?;
        Ok((moto, target))
    })
    .await??;
    let upstream: std::net::SocketAddr = moto
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let proxy = FaultProxy::start(upstream);
    proxy.set_latency(Duration::from_millis(o.latency_ms));
    proxy.pending_polls(o.pending);
    let port = target.ssh_port();
    let user = target.user();

    let work = tempfile::tempdir()?;
    let dir = work.path();
    let empty = dir.join("aws-empty");
    std::fs::write(&empty, "")?;
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
        let mut c = Command::new(&o.image_cli);
        c.current_dir(dir)
            .args(["build", spec, "--json", "--manifest"])
            .arg(dir.join("manifest.json"))
            .args(extra)
            // The same fixed poll interval as packer's.
            .env("AWS_POLL_DELAY_SECONDS", o.poll_secs.to_string());
        aws_env(&mut c, &proxy.url(), &empty);
        c
    };
    let packer_cmd = |packer: &Path| {
        let mut c = Command::new(packer);
        c.current_dir(dir)
            .args(["build", "-machine-readable", "-color=false", "packer.json"])
            .env("PACKER_CHECKPOINT_DISABLE", "1")
            .env("AWS_POLL_DELAY_SECONDS", o.poll_secs.to_string())
            .env("HOME", dir.join("packer-home"))
            .env("PACKER_CACHE_DIR", dir.join("packer-home/cache"));
        aws_env(&mut c, &proxy.url(), &empty);
        c
    };

    // Warm moto up (its first call per region loads ~1300 AMIs): not
    // measured, so neither tool's first run pays for it.
    let _ = leftovers(&moto).await;
    let mut failures = Vec::new();
    // The main scenario, then (unless --no-baseline) the same with images
    // available at once: what is left is each tool's own overhead.
    let mut scenarios = vec![o.pending];
    if o.baseline && o.pending != 0 {
        scenarios.push(0);
    }
    let mut results: Vec<(usize, Vec<Run>, Vec<Run>)> = Vec::new();
    for &pending in &scenarios {
        proxy.pending_polls(pending);
        let mut cli_runs: Vec<Run> = Vec::new();
        let mut packer_runs: Vec<Run> = Vec::new();
        for round in 0..o.rounds {
            // Alternate who goes first.
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_cli in order {
                let (name, cmd) = if is_cli {
                    if o.skip_cli {
                        continue;
                    }
                    ("image-cli", cli_cmd("spec.yaml", &[]))
                } else if let Some(p) = &o.packer {
                    ("packer", packer_cmd(p))
                } else {
                    continue;
                };
                let r = tokio::task::block_in_place(|| recorded(&moto, cmd));
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
    proxy.pending_polls(o.pending);
    let marker = std::fs::read_to_string(target.root_dir().join("etc/bench-marker")).ok();
    let single_left = leftovers(&moto).await;

    // 50 builds at once, throttled.
    let mut par = None;
    if o.parallel > 0 {
        let names: Vec<String> = (0..o.parallel).map(|i| format!("p{i:02}")).collect();
        std::fs::write(dir.join("spec-par.yaml"), spec_yaml(port, user, &names))?;
        let before = leftovers(&moto).await;
        let injected_before: usize = THROTTLED.iter().map(|a| proxy.injected(a)).sum();
        for a in THROTTLED {
            proxy.fail(a, o.throttle_n, Fault::Throttle);
        }
        let n = o.parallel.to_string();
        let cmd = cli_cmd("spec-par.yaml", &["--parallel-builds", &n]);
        let r = tokio::task::block_in_place(|| recorded(&moto, cmd));
        let injected: usize =
            THROTTLED.iter().map(|a| proxy.injected(a)).sum::<usize>() - injected_before;
        let results = r
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "build_result")
            .count();
        let after = leftovers(&moto).await;
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
        o.latency_ms,
        o.poll_secs,
        o.poll_secs,
        COPY_REGIONS.join(","),
        o.rounds
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
        for (step, ms) in step_times(&r.stdout) {
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
            for (s, ms) in step_times(&r.stdout) {
                let _ = write!(line, " {s}={ms}");
            }
            writeln!(t, "{line}")?;
            writeln!(t, "image-cli calls by action: {:?}", r.by_action)?;
        }
        if let Some(r) = packer_runs.iter().find(|r| r.ok) {
            writeln!(t, "\npacker timeline, images pending {pending} polls (first ok run; packer's timestamps are whole seconds):")?;
            let mut last = String::new();
            for (ts, msg) in packer_timeline(&r.stdout) {
                let msg = msg.lines().next().unwrap_or("").trim().to_string();
                if !msg.starts_with("==>") || msg == last {
                    continue;
                }
                writeln!(
                    t,
                    "  {ts:4.0} {}",
                    msg.chars().take(100).collect::<String>()
                )?;
                last = msg;
            }
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
