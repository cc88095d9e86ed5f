//! The main job as image-builder users run it, on demand (not CI; driven by
//! `bench/node/run.sh`): `image-cli build --only ubuntu-2404` of the
//! BUILT-IN definition (`images/kubernetes.yaml`: provisions with the node
//! recipe `images/node/node.yml`, then verifies with the goss spec
//! `images/node/goss`) against the image-builder stack: packer 1.6.6
//! `amazon-ebs` with packer's `ansible` provisioner running the same
//! `images/node/node.yml` with ansible-core, with the same variables.
//!
//! Both run on the same moto behind the same fault proxy as
//! `bench_build.rs` (per-call latency, images `pending` for N polls), with
//! the same poll interval (`AWS_POLL_DELAY_SECONDS` for both), building in
//! us-east-1 with copies to 3 regions. Each tool run gets a FRESH booted
//! target (provisioning changes it and sysprep seals it), reached through
//! `ssh_host`/`ssh_port`, whose sshd trusts only the key pairs EC2 knows
//! (image-cli's imported `image-builder-*`, packer's created `packer_*`).
//! The recipe's downloads and apt repository come from the fixtures
//! (`scripts/fixtures/build.sh`) served by this process, and both tools get
//! the var file of `tests/tests/cli_build_node.rs` (fixture URLs plus the
//! test bed's switches; `cli_support::node`).
//!
//! goss is not installable here (it is only published on GitHub), so the
//! packer side runs NO verify step; image-cli verifies the node spec and
//! image hygiene. That favours packer, as do the other things only
//! image-cli's built-in definition does (encrypted root volume and copies,
//! instance metadata options).
//!
//! After each run: the target really got provisioned (containerd, runc,
//! kubelet held, the release file, sealed), nothing temporary is left in
//! moto, and 4 AMIs were made. Prints a markdown table.
//!
//! ```text
//! cargo run -p tests --example bench_node -- --image-cli target/debug/image-cli \
//!     --ansible-playbook $IMAGE_TESTBED_DIR/ansible-venv/bin/ansible-playbook \
//!     [--packer /usr/bin/packer] [--rounds 1] [--latency-ms 50] [--pending 3] \
//!     [--poll-secs 2] [--packer-proxy] [--skip-packer] [--skip-cli] [--log-dir DIR]
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

use faultproxy::FaultProxy;

const REGION: &str = cli_support::REGION;
const COPY_REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];
/// The build of the built-in definition, and what image-cli passes the
/// recipe as `image_name` (its `build_name`).
const BUILD: &str = "ubuntu-2404";
/// AMIs a build makes: the build region's and one copy per copy region.
const AMIS_PER_BUILD: usize = 1 + COPY_REGIONS.len();

struct Opts {
    image_cli: PathBuf,
    packer: Option<PathBuf>,
    ansible_playbook: PathBuf,
    rounds: usize,
    latency_ms: u64,
    pending: usize,
    poll_secs: u64,
    packer_proxy: bool,
    skip_cli: bool,
    log_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        image_cli: PathBuf::new(),
        packer: Some(PathBuf::from("/usr/bin/packer")),
        ansible_playbook: PathBuf::new(),
        rounds: 1,
        latency_ms: 50,
        pending: 3,
        poll_secs: 2,
        packer_proxy: false,
        skip_cli: false,
        log_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--image-cli" => o.image_cli = PathBuf::from(val()?),
            "--packer" => o.packer = Some(PathBuf::from(val()?)),
            "--skip-packer" => o.packer = None,
            "--ansible-playbook" => o.ansible_playbook = PathBuf::from(val()?),
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--latency-ms" => {
                o.latency_ms = val()?.parse().map_err(|e| format!("--latency-ms: {e}"))?
            }
            "--pending" => o.pending = val()?.parse().map_err(|e| format!("--pending: {e}"))?,
            "--poll-secs" => {
                o.poll_secs = val()?.parse().map_err(|e| format!("--poll-secs: {e}"))?
            }
            "--packer-proxy" => o.packer_proxy = true,
            "--skip-cli" => o.skip_cli = true,
            "--log-dir" => o.log_dir = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.image_cli.as_os_str().is_empty() {
        return Err("--image-cli PATH is required".into());
    }
    if o.packer.is_some() && !o.ansible_playbook.is_file() {
        return Err(format!(
            "--ansible-playbook PATH is required for the packer side ({:?} is not a file; \
             bench/node/run.sh installs ansible in $IMAGE_TESTBED_DIR/ansible-venv)",
            o.ansible_playbook
        ));
    }
    if o.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(o)
}

/// The target's extra files: sshd trusting only the key pairs EC2 knows
/// (image-cli's `image-builder-*` and packer's `packer_*`), and an `ubuntu`
/// user with passwordless sudo (the built-in `ssh_username`).
fn target_files(moto_port: u16) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    let script = cli_support::ec2_keys_script(moto_port, REGION).replace(
        "name.startswith(\"image-builder-\")",
        "name.startswith((\"image-builder-\", \"packer_\"))",
    );
    if !script.contains("packer_") {
        return Err(
            "cli_support::ec2_keys_script changed shape: cannot trust packer_* keys".into(),
        );
    }
    let mut files = vec![
        (
            PathBuf::from("/etc/ssh/sshd_config.d/50-ec2.conf"),
            b"# Only the key pairs EC2 knows (bench/node)\n\
AuthorizedKeysFile none\n\
AuthorizedKeysCommand /usr/local/bin/ec2-keys %u\n\
AuthorizedKeysCommandUser nobody\n"
                .to_vec(),
            0o644,
        ),
        (
            PathBuf::from("/usr/local/bin/ec2-keys"),
            script.into_bytes(),
            0o755,
        ),
    ];
    let tb = image_testbed::Testbed::locate()
        .map_err(|e| format!("the test bed (scripts/testbed/setup.sh): {e}"))?;
    files.extend(
        cli_support::ubuntu_user_files(tb.rootfs())
            .map_err(|e| format!("reading the rootfs's user files: {e}"))?,
    );
    Ok(files)
}

/// Boots a fresh target (off the async runtime).
async fn boot_target(moto_port: u16) -> Result<image_testbed::Target, String> {
    tokio::task::spawn_blocking(move || {
        let opts = image_testbed::TargetOptions {
            extra_files: target_files(moto_port)?,
            ..Default::default()
        };
        image_testbed::Target::start(opts).map_err(|e| format!("booting a target: {e}"))
    })
    .await
    .map_err(|e| format!("booting a target: {e}"))?
}

/// The tags of the built-in definition's `ubuntu-2404` build (its defaults),
/// given to packer as `tags` and `snapshot_tags` as image-cli sets both.
fn builtin_tags() -> serde_json::Value {
    serde_json::json!({
        "build_timestamp": "{{timestamp}}",
        "build_date": "{{isotime}}",
        "kubernetes_version": "v1.31.4",
        "kubernetes_series": "v1.31",
        "containerd_version": "v1.7.27",
        "runc_version": "v1.1.15",
        "cni_version": "v1.5.1",
        "crictl_version": "v1.31.1",
        "image_builder_version": "packer",
        "distribution": "ubuntu",
        "distribution_release": "noble",
        "distribution_version": "24.04",
        "source_ami_owner": "099720109477",
        "source_ami_name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
    })
}

/// The ansible settings of the packer side: as fast as ansible gets here.
/// Through packer's SSH proxy adapter (`use_proxy`), OpenSSH must accept
/// its ssh-rsa (SHA-1) host key and client key, which it refuses by default
/// since 8.8.
fn ansible_env_vars(control_dir: &Path, use_proxy: bool) -> Vec<String> {
    // No -C (ansible's default compresses): a local link.
    let mut ssh_args = "ANSIBLE_SSH_ARGS=-o ControlMaster=auto -o ControlPersist=60s \
-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
        .to_string();
    if use_proxy {
        ssh_args.push_str(" -o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedAlgorithms=+ssh-rsa");
    }
    vec![
        "ANSIBLE_PIPELINING=True".into(),
        ssh_args,
        format!("ANSIBLE_SSH_CONTROL_PATH_DIR={}", control_dir.display()),
        // No interpreter discovery round trip.
        "ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3".into(),
        // As image-builder's packer.json does. Needed here too: the test
        // bed's /home/ubuntu is root's, and file transfers (copy, template)
        // need a temporary dir the SSH user can create.
        "ANSIBLE_REMOTE_TEMP=/tmp/.ansible/".into(),
        "ANSIBLE_RETRY_FILES_ENABLED=False".into(),
        "ANSIBLE_NOCOLOR=True".into(),
    ]
}

/// packer 1.6.6 `amazon-ebs` as `bench_build.rs` configures it, plus what
/// image-builder's `packer/ami/packer.json` sets (ami_description, the root
/// volume, tags, a manifest), provisioned by the `ansible` provisioner with
/// `images/node/node.yml` and the var file.
fn packer_json(p: &PackerParams) -> String {
    let mut ansible = serde_json::json!({
        "type": "ansible",
        "command": p.ansible_playbook,
        "playbook_file": cli_support::workspace().join("images/node/node.yml"),
        "user": "ubuntu",
        "ansible_env_vars": ansible_env_vars(&p.control_dir, p.use_proxy),
        "extra_arguments": [
            "-e", format!("@{}", p.var_file.display()),
            // What image-cli passes the recipe as image_name (build_name).
            "-e", format!("image_name={BUILD}")
        ]
    });
    if p.use_proxy {
        // The adapter runs this for ansible's file transfers (packer's
        // default path, /usr/lib/sftp-server, is not Debian's).
        ansible["use_sftp"] = serde_json::Value::Bool(true);
        ansible["sftp_command"] = "/usr/lib/openssh/sftp-server -e".into();
    } else {
        ansible["use_proxy"] = serde_json::Value::Bool(false);
    }
    let v = serde_json::json!({
        "builders": [{
            "type": "amazon-ebs",
            "region": REGION,
            "access_key": "testing",
            "secret_key": "testing",
            "custom_endpoint_ec2": p.endpoint,
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
            "ssh_username": "ubuntu",
            "ssh_host": "127.0.0.1",
            "ssh_port": p.ssh_port,
            "ssh_timeout": "10m",
            "temporary_security_group_source_cidrs": ["127.0.0.1/32"],
            "ami_name": "capa-ami-ubuntu-24.04-1.31.4-{{timestamp}}",
            "ami_description": "Cluster API node image: Ubuntu 24.04, Kubernetes v1.31.4",
            "ami_regions": COPY_REGIONS,
            "ami_users": ["111122223333"],
            "launch_block_device_mappings": [{
                "device_name": "/dev/sda1",
                "volume_size": 20,
                "volume_type": "gp2",
                "delete_on_termination": true
            }],
            "tags": builtin_tags(),
            "snapshot_tags": builtin_tags()
        }],
        "provisioners": [ansible],
        "post-processors": [{"type": "manifest", "output": "packer-manifest.json"}]
    });
    // A json! value always serializes.
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

struct PackerParams {
    endpoint: String,
    ssh_port: u16,
    ansible_playbook: PathBuf,
    var_file: PathBuf,
    control_dir: PathBuf,
    use_proxy: bool,
}

/// One run of one tool.
struct Run {
    secs: f64,
    ok: bool,
    calls: usize,
    by_action: BTreeMap<String, usize>,
    max_rss_kb: i64,
    stdout: String,
    stderr: String,
    /// The provisioning recap's `changed=N`.
    changed: Option<u64>,
    /// Seconds spent provisioning (image-cli: its `provision` step, the
    /// recipe and the verify files; packer: the ansible provisioner, to
    /// whole seconds).
    prov_secs: Option<f64>,
    /// What the target's disk says: `None` when provisioned, else why not.
    target_problem: Option<String>,
    /// (temporary, instances, key pairs, groups) left after the run.
    left: (usize, usize, usize, usize),
    amis_made: usize,
}

/// Runs `cmd` with stdout/stderr into `dir/stdout.log`/`dir/stderr.log`,
/// waiting with wait4 for its peak RSS (the largest process of its tree).
fn run_measured(mut cmd: Command, dir: &Path) -> Result<(f64, bool, i64, String, String), String> {
    let out_p = dir.join("stdout.log");
    let err_p = dir.join("stderr.log");
    let out_f =
        std::fs::File::create(&out_p).map_err(|e| format!("creating {}: {e}", out_p.display()))?;
    let err_f =
        std::fs::File::create(&err_p).map_err(|e| format!("creating {}: {e}", err_p.display()))?;
    cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {:?}: {e}", cmd.get_program()))?;
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
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let stdout = std::fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_p).unwrap_or_default();
    Ok((secs, ok, ru.ru_maxrss, stdout, stderr))
}

fn count(actions: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in actions {
        *m.entry(a.clone()).or_insert(0) += 1;
    }
    m
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
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn median_usize(v: &[usize]) -> usize {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The JSON event lines of an `image-cli build --json` run.
fn events(stdout: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
}

/// `(step, elapsed ms, message)` of an `image-cli build --json` run.
fn step_times(stdout: &str) -> Vec<(String, u64, String)> {
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

/// The number after the last `changed=` in `text` (a recap).
fn last_changed(text: &str) -> Option<u64> {
    let i = text.rfind("changed=")?;
    let digits: String = text[i + "changed=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// image-cli's provisioning recap `changed=N` (the `provision node.yml`
/// step's message).
fn cli_changed(stdout: &str) -> Option<u64> {
    step_times(stdout)
        .iter()
        .filter(|(s, _, _)| s.starts_with("provision "))
        .find_map(|(_, _, m)| last_changed(m))
}

/// Packer's step timeline, from `-machine-readable` `ui` lines with timestamps.
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
            .replace("%!(PACKER_COMMA)", ",")
            .replace("\\n", "\n");
        out.push((ts - t0, msg));
    }
    out
}

/// Seconds of image-cli's `provision` step (the recipe, then verify).
fn cli_prov_secs(stdout: &str) -> Option<f64> {
    step_times(stdout)
        .into_iter()
        .find(|(s, _, _)| s == "provision")
        .map(|(_, ms, _)| ms as f64 / 1000.0)
}

/// Seconds from packer's "Provisioning with Ansible" to the next step
/// (its timestamps are whole seconds).
fn packer_prov_secs(stdout: &str) -> Option<f64> {
    let tl = packer_timeline(stdout);
    let start = tl
        .iter()
        .position(|(_, m)| m.contains("Provisioning with Ansible"))?;
    let end = tl[start..]
        .iter()
        .find(|(_, m)| m.starts_with("==>") && m.contains("Stopping the source instance"))?;
    Some(end.0 - tl[start].0)
}

/// Ansible's `PLAY RECAP` line(s) from packer's output.
fn packer_recap(stdout: &str) -> Option<String> {
    packer_timeline(stdout)
        .into_iter()
        .map(|(_, m)| m)
        .rev()
        .find(|m| m.contains("changed=") && m.contains("unreachable="))
        .map(|m| {
            m.split_once(": ")
                .map_or(m.as_str(), |(_, r)| r)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// What the recipe must have left on the target's disk, sysprep included;
/// `None` when all is there, else what is missing.
fn check_target(root: &Path) -> Option<String> {
    let mut problems = Vec::new();
    let read = |p: &str| std::fs::read_to_string(root.join(p));
    for bin in [
        "usr/local/bin/containerd",
        "usr/local/sbin/runc",
        "usr/local/bin/crictl",
        "opt/cni/bin/bridge",
        "usr/bin/kubelet",
        "usr/bin/kubeadm",
    ] {
        if !root.join(bin).is_file() {
            problems.push(format!("no /{bin}"));
        }
    }
    match read("etc/containerd/config.toml") {
        Ok(s) if s.contains("SystemdCgroup = true") => {}
        Ok(_) => problems.push("containerd config without SystemdCgroup = true".into()),
        Err(e) => problems.push(format!("/etc/containerd/config.toml: {e}")),
    }
    match read("etc/image-cli-release") {
        Ok(s) if s.contains(BUILD) => {}
        Ok(s) => problems.push(format!("/etc/image-cli-release without {BUILD}: {s:?}")),
        Err(e) => problems.push(format!("/etc/image-cli-release: {e}")),
    }
    match read("var/lib/dpkg/status") {
        Ok(status) => {
            for pkg in ["kubelet", "kubeadm", "kubectl"] {
                let held = status.split("\n\n").any(|s| {
                    s.lines().any(|l| l == format!("Package: {pkg}"))
                        && s.contains("Status: hold ok installed")
                        && s.contains("Version: 1.31.4-1.1")
                });
                if !held {
                    problems.push(format!("{pkg} 1.31.4-1.1 not installed and held"));
                }
            }
        }
        Err(e) => problems.push(format!("/var/lib/dpkg/status: {e}")),
    }
    // Sealed by sysprep.
    match read("etc/machine-id") {
        Ok(s) if s.is_empty() => {}
        Ok(_) => problems.push("/etc/machine-id not emptied (sysprep)".into()),
        Err(e) => problems.push(format!("/etc/machine-id: {e}")),
    }
    let host_keys = std::fs::read_dir(root.join("etc/ssh"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("ssh_host_"))
                .count()
        })
        .unwrap_or(0);
    if host_keys > 0 {
        problems.push(format!("{host_keys} SSH host keys left (sysprep)"));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// What is left in moto: (temporary resources, live instances, key pairs,
/// non-default security groups, own AMIs) over the build and copy regions.
async fn leftovers(
    moto: &image_testbed::Moto,
) -> Result<(usize, usize, usize, usize, usize), String> {
    let regions: Vec<String> = std::iter::once(REGION)
        .chain(COPY_REGIONS)
        .map(String::from)
        .collect();
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Cli,
    Packer,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Cli => "image-cli",
            Tool::Packer => "packer",
        }
    }
}

struct Bench<'a> {
    o: &'a Opts,
    moto: &'a image_testbed::Moto,
    endpoint: String,
    var_file: PathBuf,
    logs: PathBuf,
    empty: PathBuf,
}

impl Bench<'_> {
    /// One build of `tool` on a fresh target; the target is checked and
    /// stopped afterwards.
    async fn run(&self, tool: Tool, round: usize) -> Result<Run, String> {
        let target = boot_target(self.moto.port()).await?;
        let port = target.ssh_port();
        let dir = self.run_dir(tool, round);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cmd = match tool {
            Tool::Cli => self.cli_cmd(&dir, port),
            Tool::Packer => self.packer_cmd(&dir, port)?,
        };
        let before = leftovers(self.moto).await?;
        let moto = self.moto;
        let measured = tokio::task::block_in_place(|| {
            moto.start_recording()
                .map_err(|e| format!("moto recording: {e}"))?;
            let r = run_measured(cmd, &dir);
            moto.stop_recording()
                .map_err(|e| format!("moto recording: {e}"))?;
            r
        });
        let actions = cli_support::build_actions(self.moto);
        let target_problem = check_target(target.root_dir());
        tokio::task::spawn_blocking(move || target.stop())
            .await
            .map_err(|e| format!("stopping the target: {e}"))?;
        let (secs, ok, max_rss_kb, stdout, stderr) = measured?;
        let after = leftovers(self.moto).await?;
        let (changed, prov_secs) = match tool {
            Tool::Cli => (cli_changed(&stdout), cli_prov_secs(&stdout)),
            Tool::Packer => (
                packer_recap(&stdout).as_deref().and_then(last_changed),
                packer_prov_secs(&stdout),
            ),
        };
        Ok(Run {
            secs,
            ok,
            calls: actions.len(),
            by_action: count(&actions),
            max_rss_kb,
            stdout,
            stderr,
            changed,
            prov_secs,
            target_problem,
            left: (after.0, after.1, after.2, after.3),
            amis_made: after.4.saturating_sub(before.4),
        })
    }

    /// Where a run's files and logs go.
    fn run_dir(&self, tool: Tool, round: usize) -> PathBuf {
        self.logs.join(format!("{}-{round}", tool.name()))
    }

    /// `image-cli build --only ubuntu-2404` of the built-in definition, as
    /// `tests/tests/cli_build_node.rs` and `scripts/demo` run it.
    fn cli_cmd(&self, dir: &Path, port: u16) -> Command {
        let mut c = Command::new(&self.o.image_cli);
        c.current_dir(dir)
            .args(["build", "--only", BUILD, "--json"])
            .args(["--var", "ssh_host=127.0.0.1"])
            .arg("--var")
            .arg(format!("ssh_port={port}"))
            .arg("--var")
            .arg(format!("build_region={REGION}"))
            .arg("--var")
            .arg(format!("ami_regions={}", COPY_REGIONS.join(",")))
            .args(["--var", "ami_users=111122223333"])
            .arg("--var-file")
            .arg(&self.var_file)
            .args(["--ssh-source-cidr", "127.0.0.1/32"])
            .arg("--manifest")
            .arg(dir.join("manifest.json"))
            // The same fixed poll interval as packer's.
            .env("AWS_POLL_DELAY_SECONDS", self.o.poll_secs.to_string());
        aws_env(&mut c, &self.endpoint, &self.empty);
        c
    }

    /// `packer build` of [`packer_json`] for a target on `port`.
    fn packer_cmd(&self, dir: &Path, port: u16) -> Result<Command, String> {
        let packer = self.o.packer.as_ref().ok_or("packer skipped")?;
        let home = dir.join("home");
        let control_dir = dir.join("cp");
        for d in [&home, &control_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let json = packer_json(&PackerParams {
            endpoint: self.endpoint.clone(),
            ssh_port: port,
            ansible_playbook: self.o.ansible_playbook.clone(),
            var_file: self.var_file.clone(),
            control_dir,
            use_proxy: self.o.packer_proxy,
        });
        let tpl = dir.join("packer.json");
        std::fs::write(&tpl, json).map_err(|e| format!("{}: {e}", tpl.display()))?;
        let mut c = Command::new(packer);
        c.current_dir(dir)
            .args(["build", "-machine-readable", "-color=false", "packer.json"])
            .env("PACKER_CHECKPOINT_DISABLE", "1")
            .env("AWS_POLL_DELAY_SECONDS", self.o.poll_secs.to_string())
            .env("HOME", &home)
            .env("PACKER_CACHE_DIR", home.join("cache"))
            .env_remove("ANSIBLE_CONFIG");
        aws_env(&mut c, &self.endpoint, &self.empty);
        Ok(c)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    let work = tempfile::Builder::new().prefix("bench-node-").tempdir()?;
    // Each run's template, manifest, stdout and stderr; kept.
    let logs = match &o.log_dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("bench-node-logs-")
            .tempdir()?
            .keep(),
    };
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    eprintln!("bench: building the download fixtures and starting moto and the fault proxy");
    let fixtures_dir = work.path().join("fixtures");
    let (moto, fx) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        std::fs::create_dir_all(&fixtures_dir)
            .map_err(|e| format!("{}: {e}", fixtures_dir.display()))?;
        let fx = cli_support::node::start_node_fixtures(&fixtures_dir)?;
        let moto = cli_support::start_moto();
        Ok((moto, fx))
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
    let empty = work.path().join("aws-empty");
    std::fs::write(&empty, "")?;
    let bench = Bench {
        o: &o,
        moto: &moto,
        endpoint: proxy.url(),
        var_file: fx.var_file.clone(),
        logs: logs.clone(),
        empty,
    };

    // Warm moto up (its first call per region loads the AMIs): not
    // measured, so neither tool's first run pays for it.
    leftovers(&moto).await?;
    let mut failures = Vec::new();
    let mut cli_runs: Vec<Run> = Vec::new();
    let mut packer_runs: Vec<Run> = Vec::new();
    for round in 1..=o.rounds {
        // Alternate who goes first.
        let order = if round % 2 == 1 {
            [Tool::Cli, Tool::Packer]
        } else {
            [Tool::Packer, Tool::Cli]
        };
        for tool in order {
            if (tool == Tool::Cli && o.skip_cli) || (tool == Tool::Packer && o.packer.is_none()) {
                continue;
            }
            eprintln!("round {round}: {} on a fresh target", tool.name());
            let r = bench.run(tool, round).await?;
            eprintln!(
                "round {round}: {} {:.1} s, ok={}, {} EC2 calls, changed={}, target {}, logs {}",
                tool.name(),
                r.secs,
                r.ok,
                r.calls,
                r.changed.map_or("?".into(), |c| c.to_string()),
                r.target_problem.as_deref().unwrap_or("provisioned"),
                bench.run_dir(tool, round).display()
            );
            let mut why = Vec::new();
            if !r.ok {
                why.push("exit status not 0".to_string());
            }
            if let Some(p) = &r.target_problem {
                why.push(format!("target: {p}"));
            }
            if r.left != (0, 0, 0, 0) {
                why.push(format!(
                    "left in moto (temporary, instances, key pairs, groups): {:?}",
                    r.left
                ));
            }
            if r.ok && r.amis_made != AMIS_PER_BUILD {
                why.push(format!(
                    "{} AMIs made, expected {AMIS_PER_BUILD}",
                    r.amis_made
                ));
            }
            if !why.is_empty() {
                let tail = |s: &str| {
                    let lines: Vec<&str> = s.lines().collect();
                    lines[lines.len().saturating_sub(40)..].join("\n")
                };
                failures.push(format!(
                    "{} round {round}: {}\n--- stdout (last 40 lines)\n{}\n--- stderr (last 40 lines)\n{}",
                    tool.name(),
                    why.join("; "),
                    tail(&r.stdout),
                    tail(&r.stderr)
                ));
            }
            match tool {
                Tool::Cli => cli_runs.push(r),
                Tool::Packer => packer_runs.push(r),
            }
            // Distinct {{timestamp}} AMI names.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }

    let ansible_version = Command::new(&o.ansible_playbook)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "ansible-playbook (version unknown)".into());
    let mut t = String::new();
    writeln!(
        t,
        "\nsetup: moto 5.2.5 behind the fault proxy ({} ms per call, images pending for {} polls), \
poll interval {} s (AWS_POLL_DELAY_SECONDS for both tools), build in {REGION} + ami_regions {}, \
ami_users 1; a fresh nspawn target (Debian bookworm standing in for Ubuntu 24.04) per run; \
the node recipe's downloads and Kubernetes apt repo from local fixtures, the base packages from \
the Debian mirror (network: its time varies run to run; more rounds for a stable median); \
the same var file for both ({}); {} round(s), alternating order\n",
        o.latency_ms,
        o.pending,
        o.poll_secs,
        COPY_REGIONS.join(","),
        fx.var_file.file_name().map_or("".into(), |n| n.to_string_lossy()),
        o.rounds
    )?;
    writeln!(t, "| tool | wall time, median (runs) | image-cli / packer+ansible | of which provisioning (+ verify), median | EC2 API calls per build, median (min–max) | provisioning changed | peak RSS | target provisioned, nothing left, {AMIS_PER_BUILD} AMIs | ok |")?;
    writeln!(t, "|---|---|---|---|---|---|---|---|---|")?;
    let secs = |v: &[Run]| median(&v.iter().map(|r| r.secs).collect::<Vec<_>>());
    let ratio = if !cli_runs.is_empty() && !packer_runs.is_empty() {
        format!("{:.2}x", secs(&cli_runs) / secs(&packer_runs))
    } else {
        "n/a".into()
    };
    let row = |t: &mut String, name: &str, runs: &[Run], ratio: &str| {
        if runs.is_empty() {
            return;
        }
        let times: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.secs)).collect();
        let calls: Vec<usize> = runs.iter().map(|r| r.calls).collect();
        let changed: Vec<String> = runs
            .iter()
            .map(|r| r.changed.map_or("?".into(), |c| c.to_string()))
            .collect();
        let clean = runs
            .iter()
            .filter(|r| {
                r.target_problem.is_none()
                    && r.left == (0, 0, 0, 0)
                    && r.amis_made == AMIS_PER_BUILD
            })
            .count();
        let rss = runs.iter().map(|r| r.max_rss_kb).max().unwrap_or(0);
        let prov: Vec<f64> = runs.iter().filter_map(|r| r.prov_secs).collect();
        let prov = if prov.is_empty() {
            "?".to_string()
        } else {
            format!("{:.1} s", median(&prov))
        };
        let _ = writeln!(
            t,
            "| {name} | {:.1} s ({}) | {ratio} | {prov} | {} ({}–{}) | {} | {:.0} MiB | {clean}/{} | {}/{} |",
            secs(runs),
            times.join(", "),
            median_usize(&calls),
            calls.iter().min().unwrap_or(&0),
            calls.iter().max().unwrap_or(&0),
            changed.join(", "),
            rss as f64 / 1024.0,
            runs.len(),
            runs.iter().filter(|r| r.ok).count(),
            runs.len()
        );
    };
    row(
        &mut t,
        "image-cli build --only ubuntu-2404 (node recipe + goss verify of the node spec and hygiene)",
        &cli_runs,
        &ratio,
    );
    let packer_name = format!(
        "packer 1.6.6 amazon-ebs + ansible provisioner ({}; no verify step)",
        ansible_version.trim()
    );
    row(&mut t, &packer_name, &packer_runs, "1.00x");
    writeln!(
        t,
        "\npacker side: ansible provisioner with {}, pipelining, ControlMaster/ControlPersist=60s, \
no SSH compression, ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3, ANSIBLE_REMOTE_TEMP=/tmp/.ansible/ (as image-builder), \
-e @<var file> -e image_name={BUILD}. NO verify step (goss is only published on GitHub, not \
installable here): this favours packer, as do encryption and metadata options, which only \
image-cli's built-in definition sets. peak RSS: wait4 ru_maxrss of the tool's process tree (for \
packer, the largest of packer, ansible-playbook and its workers).",
        if o.packer_proxy {
            "packer's default SSH proxy adapter (use_proxy unset; ssh-rsa allowed, use_sftp with Debian's sftp-server)"
        } else {
            "use_proxy: false (ansible's own OpenSSH straight to the target with packer's temporary key)"
        }
    )?;

    // Where the time goes.
    if let Some(r) = cli_runs.iter().find(|r| r.ok) {
        writeln!(t, "\nimage-cli steps (first ok run, s):")?;
        let mut line = String::new();
        for (s, ms, msg) in step_times(&r.stdout) {
            // Pipeline steps only, not every task.
            let pipeline = !s.contains(' ');
            if !pipeline && !s.starts_with("provision ") && !s.starts_with("verify ") {
                continue;
            }
            let _ = write!(line, " {s}={:.1}", ms as f64 / 1000.0);
            if s.starts_with("provision ") || s.starts_with("verify ") {
                let _ = write!(line, " [{msg}]");
            }
            let _ = write!(line, ";");
        }
        writeln!(t, "{line}")?;
        writeln!(t, "image-cli calls by action: {:?}", r.by_action)?;
    }
    if let Some(r) = packer_runs.iter().find(|r| r.ok) {
        writeln!(
            t,
            "\npacker timeline (first ok run; packer's timestamps are whole seconds):"
        )?;
        let mut last = String::new();
        for (ts, msg) in packer_timeline(&r.stdout) {
            let msg = msg.lines().next().unwrap_or("").trim().to_string();
            if !msg.starts_with("==>") || msg == last {
                continue;
            }
            writeln!(
                t,
                "  {ts:4.0} {}",
                msg.chars().take(110).collect::<String>()
            )?;
            last = msg;
        }
        if let Some(recap) = packer_recap(&r.stdout) {
            writeln!(t, "ansible recap: {recap}")?;
        }
        writeln!(t, "packer calls by action: {:?}", r.by_action)?;
    }
    writeln!(t, "\nlogs: {}", logs.display())?;
    println!("{t}");
    for f in &failures {
        eprintln!("=== FAILURE {f}");
    }

    tokio::task::spawn_blocking(move || {
        drop(proxy);
        drop(moto);
    })
    .await?;
    drop(work);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} run(s) failed", failures.len()).into())
    }
}
