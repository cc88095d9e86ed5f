//! Shared by the benchmarks `bench_build.rs` and `bench_node.rs`, which
//! include it with `#[path]` next to `cli_support` and `faultproxy` (both
//! used here): moto behind the fault proxy, the environment both tools get,
//! the target's sshd trusting image-cli's and packer's key pairs, packer's
//! `amazon-ebs` builder, a tool run measured (wall time, peak RSS, the EC2
//! calls moto recorded), both tools' output read back, what is left in moto,
//! medians.
//!
//! (A directory with a `mod.rs` and no `main.rs` is not an example of its
//! own to cargo.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli_support;
use crate::faultproxy::FaultProxy;

/// Where both tools build.
pub const REGION: &str = cli_support::REGION;
/// Where both tools copy the image to.
pub const COPY_REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];

/// The options both benchmarks take.
pub struct CommonOpts {
    /// `--image-cli PATH` (required).
    pub image_cli: PathBuf,
    /// `--packer PATH` (default /usr/bin/packer); `None` with `--skip-packer`.
    pub packer: Option<PathBuf>,
    /// `--rounds N`.
    pub rounds: usize,
    /// `--latency-ms MS` (default 50): the proxy's delay per call.
    pub latency_ms: u64,
    /// `--pending N` (default 3): polls a new image stays `pending` (the
    /// fault proxy's poll count mode).
    pub pending: usize,
    /// `--poll-secs S` (default 2): `AWS_POLL_DELAY_SECONDS` for both tools
    /// (0: not set, each tool polls as it likes).
    pub poll_secs: u64,
    /// `--skip-cli`.
    pub skip_cli: bool,
}

impl CommonOpts {
    /// The defaults, with `rounds` rounds.
    pub fn new(rounds: usize) -> CommonOpts {
        CommonOpts {
            image_cli: PathBuf::new(),
            packer: Some(PathBuf::from("/usr/bin/packer")),
            rounds,
            latency_ms: 50,
            pending: 3,
            poll_secs: 2,
            skip_cli: false,
        }
    }

    /// Reads the command line: these options into `self`, any other
    /// argument to `own` (with a function giving its value), which errs on
    /// one it does not know.
    pub fn parse_args(
        &mut self,
        mut own: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
            if !self.take(&a, &mut val)? {
                own(&a, &mut val)?;
            }
        }
        if self.image_cli.as_os_str().is_empty() {
            return Err("--image-cli PATH is required".into());
        }
        Ok(())
    }

    /// Takes `arg` when it is one of these options (`val` gives its value):
    /// false when it is not.
    fn take(
        &mut self,
        arg: &str,
        val: impl FnOnce() -> Result<String, String>,
    ) -> Result<bool, String> {
        match arg {
            "--image-cli" => self.image_cli = PathBuf::from(val()?),
            "--packer" => self.packer = Some(PathBuf::from(val()?)),
            "--skip-packer" => self.packer = None,
            "--rounds" => self.rounds = number(arg, val()?)?,
            "--latency-ms" => self.latency_ms = number(arg, val()?)?,
            "--pending" => self.pending = number(arg, val()?)?,
            "--poll-secs" => self.poll_secs = number(arg, val()?)?,
            "--skip-cli" => self.skip_cli = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The value `v` of option `arg`, a number.
pub fn number<T: std::str::FromStr>(arg: &str, v: String) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{arg}: {e}"))
}

/// The fault proxy in front of `moto`: `latency_ms` per call, new images
/// `pending` for that many polls.
pub fn start_proxy(
    moto: &image_testbed::Moto,
    latency_ms: u64,
    pending: usize,
) -> Result<FaultProxy, String> {
    let upstream: std::net::SocketAddr = moto
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("moto's address {}: {e}", moto.url()))?;
    let proxy = FaultProxy::start(upstream);
    proxy.set_latency(Duration::from_millis(latency_ms));
    proxy.pending_polls(pending);
    Ok(proxy)
}

/// What both tools are pointed at.
pub struct Aws {
    /// The fault proxy's URL.
    pub endpoint: String,
    /// An empty file, as AWS config and credentials: nothing of this
    /// machine's leaks in.
    pub empty: PathBuf,
    /// `AWS_POLL_DELAY_SECONDS`, the same for both; 0: not set (each tool
    /// polls as it likes, packer with its defaults).
    pub poll_secs: u64,
}

impl Aws {
    /// Points `cmd` at the proxy ([`cli_support::aws_env`]) with the fixed
    /// poll interval, if any.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env_remove("AWS_POLL_DELAY_SECONDS")
            .env_remove("AWS_MAX_ATTEMPTS");
        if self.poll_secs > 0 {
            cmd.env("AWS_POLL_DELAY_SECONDS", self.poll_secs.to_string());
        }
        cli_support::aws_env(cmd, &self.endpoint, &self.empty);
    }

    /// `packer build packer.json` in `dir`, with `home` as its `HOME` (and
    /// cache).
    pub fn packer_command(&self, packer: &Path, dir: &Path, home: &Path) -> Command {
        let mut c = Command::new(packer);
        c.current_dir(dir)
            .args(["build", "-machine-readable", "-color=false", "packer.json"])
            .env("PACKER_CHECKPOINT_DISABLE", "1")
            .env("HOME", home)
            .env("PACKER_CACHE_DIR", home.join("cache"));
        self.env(&mut c);
        c
    }
}

/// The target's extra files: an sshd drop-in (commented with `bench`,
/// `sshd_extra` appended) trusting only the key pairs EC2 knows, both
/// image-cli's imported `image-builder-*` and packer's created `packer_*`
/// ones (an `AuthorizedKeysCommand` asking moto directly, not through the
/// proxy).
pub fn ec2_keys_files(
    moto_port: u16,
    bench: &str,
    sshd_extra: &str,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    let script = cli_support::ec2_keys_script(moto_port, REGION).replace(
        "name.startswith(\"image-builder-\")",
        "name.startswith((\"image-builder-\", \"packer_\"))",
    );
    if !script.contains("packer_") {
        return Err(
            "cli_support::ec2_keys_script changed shape: cannot trust packer_* keys".into(),
        );
    }
    let sshd = format!(
        "# Only the key pairs EC2 knows ({bench})\n\
AuthorizedKeysFile none\n\
AuthorizedKeysCommand /usr/local/bin/ec2-keys %u\n\
AuthorizedKeysCommandUser nobody\n\
{sshd_extra}"
    );
    Ok(vec![
        (
            PathBuf::from("/etc/ssh/sshd_config.d/50-ec2.conf"),
            sshd.into_bytes(),
            0o644,
        ),
        (
            PathBuf::from("/usr/local/bin/ec2-keys"),
            script.into_bytes(),
            0o755,
        ),
    ])
}

/// Packer 1.6.6's `amazon-ebs` builder on `endpoint` for the target on
/// 127.0.0.1:`ssh_port`, building Ubuntu 24.04 in [`REGION`]; `rest` (an
/// object: the AMI's name, copies, tags, …) is appended.
pub fn amazon_ebs(
    endpoint: &str,
    ssh_username: &str,
    ssh_port: u16,
    ssh_timeout: &str,
    rest: serde_json::Value,
) -> serde_json::Value {
    let mut b = serde_json::json!({
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
        "ssh_username": ssh_username,
        "ssh_host": "127.0.0.1",
        "ssh_port": ssh_port,
        "ssh_timeout": ssh_timeout,
        "temporary_security_group_source_cidrs": ["127.0.0.1/32"]
    });
    if let (Some(b), serde_json::Value::Object(rest)) = (b.as_object_mut(), rest) {
        b.extend(rest);
    }
    b
}

/// One measured run of one tool.
pub struct Run {
    pub secs: f64,
    pub ok: bool,
    /// EC2 calls reaching moto (the target's key lookups left out).
    pub calls: usize,
    pub by_action: BTreeMap<String, usize>,
    /// Peak RSS in KiB: wait4's `ru_maxrss`, the largest process of the
    /// tool's tree.
    pub max_rss_kb: i64,
    pub stdout: String,
    /// When each line of `stdout` arrived, in seconds since the start (one
    /// per `stdout.lines()` item): the bench's own clock, in ms, for both
    /// tools (packer's own timestamps are whole seconds). Read by
    /// `bench_node` only (`bench_build` shares this module).
    #[allow(dead_code)]
    pub line_secs: Vec<f64>,
    pub stderr: String,
}

/// Runs `cmd` while moto records the EC2 calls, its stdout and stderr into
/// `dir/stdout.log` and `dir/stderr.log`.
pub fn recorded(moto: &image_testbed::Moto, cmd: Command, dir: &Path) -> Result<Run, String> {
    moto.start_recording()
        .map_err(|e| format!("moto recording: {e}"))?;
    let measured = run_measured(cmd, dir);
    moto.stop_recording()
        .map_err(|e| format!("moto recording: {e}"))?;
    let m = measured?;
    let actions = cli_support::build_actions(moto);
    Ok(Run {
        secs: m.secs,
        ok: m.ok,
        calls: actions.len(),
        by_action: count(&actions),
        max_rss_kb: m.max_rss_kb,
        stdout: m.stdout,
        line_secs: m.line_secs,
        stderr: m.stderr,
    })
}

/// What [`run_measured`] saw.
struct Measured {
    secs: f64,
    ok: bool,
    max_rss_kb: i64,
    stdout: String,
    line_secs: Vec<f64>,
    stderr: String,
}

/// Runs `cmd` with stdout/stderr into `dir/stdout.log`/`dir/stderr.log`,
/// waiting with wait4 for its peak RSS; stdout goes through a pipe read by a
/// thread that notes when each line arrived.
fn run_measured(mut cmd: Command, dir: &Path) -> Result<Measured, String> {
    let out_p = dir.join("stdout.log");
    let err_p = dir.join("stderr.log");
    let mut out_f =
        std::fs::File::create(&out_p).map_err(|e| format!("creating {}: {e}", out_p.display()))?;
    let err_f =
        std::fs::File::create(&err_p).map_err(|e| format!("creating {}: {e}", err_p.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err_f);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
    let pipe = child.stdout.take().ok_or("no stdout pipe")?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let line_secs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let line_secs = line_secs.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let at = t0.elapsed().as_secs_f64();
                        if let Ok(mut v) = line_secs.lock() {
                            v.push(at);
                        }
                        let _ = out_f.write_all(&line);
                    }
                }
            }
            let _ = done_tx.send(());
        })
    };
    let pid = i32::try_from(child.id()).map_err(|e| format!("pid: {e}"))?;
    let mut status = 0i32;
    // SAFETY: rusage is plain data; we wait for our own child (and never
    // call Child::wait on it afterwards).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let secs = t0.elapsed().as_secs_f64();
    std::mem::forget(child);
    if r != pid {
        return Err(format!(
            "wait4 for {:?}: {}",
            cmd.get_program(),
            std::io::Error::last_os_error()
        ));
    }
    // A grandchild still holding the pipe must not hang the bench.
    if done_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
        let _ = reader.join();
    }
    let line_secs = line_secs.lock().map(|v| v.clone()).unwrap_or_default();
    // Kept next to stdout.log: when each of its lines arrived.
    let times: String = line_secs.iter().map(|t| format!("{t:.3}\n")).collect();
    let times_p = dir.join("stdout.times");
    std::fs::write(&times_p, times).map_err(|e| format!("{}: {e}", times_p.display()))?;
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let stdout = std::fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_p).unwrap_or_default();
    Ok(Measured {
        secs,
        ok,
        max_rss_kb: ru.ru_maxrss,
        stdout,
        line_secs,
        stderr,
    })
}

fn count(actions: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in actions {
        *m.entry(a.clone()).or_insert(0) += 1;
    }
    m
}

/// The JSON event lines of an `image-cli build --json` run.
pub fn events(stdout: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
}

/// `(step, elapsed ms, message)` of an `image-cli build --json` run.
pub fn step_times(stdout: &str) -> Vec<(String, u64, String)> {
    events(stdout)
        .filter(|v| v["event"] == "step_finished")
        .filter_map(|v| {
            Some((
                v["step"].as_str()?.to_string(),
                v["elapsed_ms"].as_u64()?,
                v["message"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// Packer's timeline, from `-machine-readable` `ui` lines with timestamps:
/// seconds since the first, and the message (newlines unescaped).
pub fn packer_timeline(stdout: &str) -> Vec<(f64, String)> {
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
            .replace("%!(PACKER_COMMA)", ",")
            .replace("\\n", "\n");
        out.push((ts - t0, msg));
    }
    out
}

/// Packer's steps (its `==>` lines, first line of each, repeats left out, cut
/// to `width` characters) with their seconds, a line each, into `t`.
pub fn write_packer_steps(t: &mut String, stdout: &str, width: usize) {
    let mut last = String::new();
    for (ts, msg) in packer_timeline(stdout) {
        let msg = msg.lines().next().unwrap_or("").trim().to_string();
        if !msg.starts_with("==>") || msg == last {
            continue;
        }
        let _ = writeln!(
            t,
            "  {ts:4.0} {}",
            msg.chars().take(width).collect::<String>()
        );
        last = msg;
    }
}

/// What is left in moto: (temporary resources, live instances, key pairs,
/// non-default security groups, own AMIs) over the build and copy regions.
pub async fn leftovers(
    moto: &image_testbed::Moto,
) -> Result<(usize, usize, usize, usize, usize), String> {
    let regions = cli_support::regions(&COPY_REGIONS);
    let ec2 = cli_support::direct(moto).await;
    let temp = image_aws::cleanup::find_leftovers(&ec2, &regions, None)
        .await
        .map_err(|e| format!("find_leftovers: {e}"))?
        .len();
    let q = |r: &str, body: &str| {
        moto.ec2_query(r, body)
            .map_err(|e| format!("{r}: {body}: {e}"))
    };
    let (mut inst, mut keys, mut groups, mut amis) = (0, 0, 0, 0);
    for r in &regions {
        let x = q(
            r,
            "Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=pending&Filter.1.Value.2=running&Filter.1.Value.3=stopping&Filter.1.Value.4=stopped",
        )?;
        inst += x.matches("<instanceId>").count();
        keys += q(r, "Action=DescribeKeyPairs")?
            .matches("<keyName>")
            .count();
        let x = q(r, "Action=DescribeSecurityGroups")?;
        groups +=
            x.matches("<groupName>").count() - x.matches("<groupName>default</groupName>").count();
        amis += q(r, "Action=DescribeImages&Owner.1=self")?
            .matches("<imageId>")
            .count();
    }
    Ok((temp, inst, keys, groups, amis))
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The upper median of `v` (0 when empty).
pub fn median_usize(v: &[usize]) -> usize {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}
