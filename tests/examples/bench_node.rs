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
//! moto, and 4 AMIs were made. Prints a markdown table, then where the time
//! goes (`bench_support/phases.rs`): both runs cut into the same phases by
//! the bench's own clock on each stdout line, the provisioning split per
//! slow task, next to the floor both tools share, measured each round on a
//! fresh target (the recipe's apt commands run bare; `--no-floor` skips it)
//! plus the images' pending time at the poll interval.
//!
//! ```text
//! cargo run -p tests --example bench_node -- --image-cli target/debug/image-cli \
//!     --ansible-playbook $IMAGE_TESTBED_DIR/ansible-venv/bin/ansible-playbook \
//!     [--packer /usr/bin/packer] [--rounds 1] [--latency-ms 50] [--pending 3] \
//!     [--poll-secs 2] [--packer-proxy] [--skip-packer] [--skip-cli] [--no-floor] [--log-dir DIR]
//! ```

#[path = "../tests/aws_support/faultproxy.rs"]
mod faultproxy;

#[path = "../tests/cli_support/mod.rs"]
mod cli_support;

#[path = "bench_support/mod.rs"]
mod bench_support;

#[path = "bench_support/phases.rs"]
mod phases;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bench_support::{
    amazon_ebs, leftovers, median, median_usize, packer_timeline, recorded, step_times,
    write_packer_steps, Aws, CommonOpts, Run, COPY_REGIONS, REGION,
};

/// The build of the built-in definition, and what image-cli passes the
/// recipe as `image_name` (its `build_name`).
const BUILD: &str = "ubuntu-2404";
/// AMIs a build makes: the build region's and one copy per copy region.
const AMIS_PER_BUILD: usize = 1 + COPY_REGIONS.len();
/// The Kubernetes packages' version the var file makes the recipe install.
const K8S_DEB_VERSION: &str = "1.31.4-1.1";

struct Opts {
    common: CommonOpts,
    ansible_playbook: PathBuf,
    packer_proxy: bool,
    log_dir: Option<PathBuf>,
    /// Measure the floor (the recipe's apt work bare on a fresh target)
    /// each round; `--no-floor` skips it.
    floor: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        common: CommonOpts::new(1),
        ansible_playbook: PathBuf::new(),
        packer_proxy: false,
        log_dir: None,
        floor: true,
    };
    o.common.parse_args(|a, val| {
        match a {
            "--ansible-playbook" => o.ansible_playbook = PathBuf::from(val()?),
            "--packer-proxy" => o.packer_proxy = true,
            "--no-floor" => o.floor = false,
            "--log-dir" => o.log_dir = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown argument {other}")),
        }
        Ok(())
    })?;
    if o.common.packer.is_some() && !o.ansible_playbook.is_file() {
        return Err(format!(
            "--ansible-playbook PATH is required for the packer side ({:?} is not a file; \
             bench/node/run.sh installs ansible in $IMAGE_TESTBED_DIR/ansible-venv)",
            o.ansible_playbook
        ));
    }
    if o.common.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(o)
}

/// The target's extra files: sshd trusting only the key pairs EC2 knows
/// (image-cli's `image-builder-*` and packer's `packer_*`), and an `ubuntu`
/// user with passwordless sudo (the built-in `ssh_username`).
fn target_files(moto_port: u16) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    let mut files = bench_support::ec2_keys_files(moto_port, "bench/node", "")?;
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
    let builder = amazon_ebs(
        &p.endpoint,
        "ubuntu",
        p.ssh_port,
        "10m",
        serde_json::json!({
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
        }),
    );
    let v = serde_json::json!({
        "builders": [builder],
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

/// One run of one tool, and what was checked after it.
struct NodeRun {
    run: Run,
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
                        && s.contains(&format!("Version: {K8S_DEB_VERSION}"))
                });
                if !held {
                    problems.push(format!("{pkg} {K8S_DEB_VERSION} not installed and held"));
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
    aws: Aws,
    var_file: PathBuf,
    logs: PathBuf,
}

impl Bench<'_> {
    /// One build of `tool` on a fresh target; the target is checked and
    /// stopped afterwards.
    async fn run(&self, tool: Tool, round: usize) -> Result<NodeRun, String> {
        let target = boot_target(self.moto.port()).await?;
        let port = target.ssh_port();
        let dir = self.run_dir(tool, round);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cmd = match tool {
            Tool::Cli => self.cli_cmd(&dir, port),
            Tool::Packer => self.packer_cmd(&dir, port)?,
        };
        let before = leftovers(self.moto).await?;
        let run = tokio::task::block_in_place(|| recorded(self.moto, cmd, &dir));
        let target_problem = check_target(target.root_dir());
        tokio::task::spawn_blocking(move || target.stop())
            .await
            .map_err(|e| format!("stopping the target: {e}"))?;
        let run = run?;
        let after = leftovers(self.moto).await?;
        let (changed, prov_secs) = match tool {
            Tool::Cli => (cli_changed(&run.stdout), cli_prov_secs(&run.stdout)),
            Tool::Packer => (
                packer_recap(&run.stdout).as_deref().and_then(last_changed),
                packer_prov_secs(&run.stdout),
            ),
        };
        Ok(NodeRun {
            run,
            changed,
            prov_secs,
            target_problem,
            left: (after.0, after.1, after.2, after.3),
            amis_made: after.4.saturating_sub(before.4),
        })
    }

    /// The floor both tools share this round: the recipe's apt work
    /// (`apt-get update` + python3-apt, the base packages, the Kubernetes
    /// repository's update and packages) run bare as root in a fresh target,
    /// no SSH and no tool; and the least wait for an image pending for
    /// `--pending` polls when polling every `--poll-secs`.
    async fn floor(&self) -> Result<phases::Floor, String> {
        let defaults = cli_support::workspace().join("images/node/vars/default.yml");
        let defaults = std::fs::read_to_string(&defaults)
            .map_err(|e| format!("{}: {e}", defaults.display()))?;
        let debs = phases::setup_debs(&defaults);
        if debs.is_empty() {
            return Err("no setup_debs in images/node/vars/default.yml".into());
        }
        let vars = std::fs::read_to_string(&self.var_file)
            .map_err(|e| format!("{}: {e}", self.var_file.display()))?;
        let var = |k: &str| {
            phases::var(&vars, k).ok_or_else(|| format!("no {k} in {}", self.var_file.display()))
        };
        let script = phases::floor_script(
            &debs,
            &var("kubernetes_deb_repo")?,
            &var("kubernetes_deb_gpg_key")?,
            K8S_DEB_VERSION,
        );
        let target = boot_target(self.moto.port()).await?;
        let out = tokio::task::spawn_blocking(move || {
            let out = target.sh(&script).map_err(|e| format!("floor script: {e}"));
            target.stop();
            out
        })
        .await
        .map_err(|e| format!("floor run: {e}"))??;
        Ok(phases::Floor {
            apt: phases::floor_apt(&out)?,
            pending_wait: (self.o.common.pending as u64 * self.o.common.poll_secs) as f64,
        })
    }

    /// Where a run's files and logs go.
    fn run_dir(&self, tool: Tool, round: usize) -> PathBuf {
        self.logs.join(format!("{}-{round}", tool.name()))
    }

    /// `image-cli build --only ubuntu-2404` of the built-in definition, as
    /// `tests/tests/cli_build_node.rs` and `scripts/demo` run it.
    fn cli_cmd(&self, dir: &Path, port: u16) -> Command {
        let mut c = Command::new(&self.o.common.image_cli);
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
            .arg(dir.join("manifest.json"));
        self.aws.env(&mut c);
        c
    }

    /// `packer build` of [`packer_json`] for a target on `port`.
    fn packer_cmd(&self, dir: &Path, port: u16) -> Result<Command, String> {
        let packer = self.o.common.packer.as_ref().ok_or("packer skipped")?;
        let home = dir.join("home");
        let control_dir = dir.join("cp");
        for d in [&home, &control_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let json = packer_json(&PackerParams {
            endpoint: self.aws.endpoint.clone(),
            ssh_port: port,
            ansible_playbook: self.o.ansible_playbook.clone(),
            var_file: self.var_file.clone(),
            control_dir,
            use_proxy: self.o.packer_proxy,
        });
        let tpl = dir.join("packer.json");
        std::fs::write(&tpl, json).map_err(|e| format!("{}: {e}", tpl.display()))?;
        let mut c = self.aws.packer_command(packer, dir, &home);
        c.env_remove("ANSIBLE_CONFIG");
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
    let proxy = bench_support::start_proxy(&moto, o.common.latency_ms, o.common.pending)?;
    let aws = Aws {
        endpoint: proxy.url(),
        empty: work.path().join("aws-empty"),
        poll_secs: o.common.poll_secs,
    };
    std::fs::write(&aws.empty, "")?;
    let bench = Bench {
        o: &o,
        moto: &moto,
        aws,
        var_file: fx.var_file.clone(),
        logs: logs.clone(),
    };

    // Warm moto up (its first call per region loads the AMIs): not
    // measured, so neither tool's first run pays for it.
    leftovers(&moto).await?;
    let mut failures = Vec::new();
    let mut cli_runs: Vec<NodeRun> = Vec::new();
    let mut packer_runs: Vec<NodeRun> = Vec::new();
    let mut floors: Vec<phases::Floor> = Vec::new();
    for round in 1..=o.common.rounds {
        if o.floor {
            eprintln!("round {round}: the floor (the recipe's apt work bare) on a fresh target");
            let f = bench.floor().await?;
            eprintln!(
                "round {round}: floor {}",
                f.apt
                    .iter()
                    .map(|(n, s)| format!("{n} {s:.1} s"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            floors.push(f);
        }
        // Alternate who goes first.
        let order = if round % 2 == 1 {
            [Tool::Cli, Tool::Packer]
        } else {
            [Tool::Packer, Tool::Cli]
        };
        for tool in order {
            if (tool == Tool::Cli && o.common.skip_cli)
                || (tool == Tool::Packer && o.common.packer.is_none())
            {
                continue;
            }
            eprintln!("round {round}: {} on a fresh target", tool.name());
            let r = bench.run(tool, round).await?;
            eprintln!(
                "round {round}: {} {:.1} s, ok={}, {} EC2 calls, changed={}, target {}, logs {}",
                tool.name(),
                r.run.secs,
                r.run.ok,
                r.run.calls,
                r.changed.map_or("?".into(), |c| c.to_string()),
                r.target_problem.as_deref().unwrap_or("provisioned"),
                bench.run_dir(tool, round).display()
            );
            let mut why = Vec::new();
            if !r.run.ok {
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
            if r.run.ok && r.amis_made != AMIS_PER_BUILD {
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
                    tail(&r.run.stdout),
                    tail(&r.run.stderr)
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
        o.common.latency_ms,
        o.common.pending,
        o.common.poll_secs,
        COPY_REGIONS.join(","),
        fx.var_file.file_name().map_or("".into(), |n| n.to_string_lossy()),
        o.common.rounds
    )?;
    writeln!(t, "| tool | wall time, median (runs) | image-cli / packer+ansible | of which provisioning (+ verify), median | EC2 API calls per build, median (min–max) | provisioning changed | peak RSS | target provisioned, nothing left, {AMIS_PER_BUILD} AMIs | ok |")?;
    writeln!(t, "|---|---|---|---|---|---|---|---|---|")?;
    let secs = |v: &[NodeRun]| median(&v.iter().map(|r| r.run.secs).collect::<Vec<_>>());
    let ratio = if !cli_runs.is_empty() && !packer_runs.is_empty() {
        format!("{:.2}x", secs(&cli_runs) / secs(&packer_runs))
    } else {
        "n/a".into()
    };
    let row = |t: &mut String, name: &str, runs: &[NodeRun], ratio: &str| {
        if runs.is_empty() {
            return;
        }
        let times: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.run.secs)).collect();
        let calls: Vec<usize> = runs.iter().map(|r| r.run.calls).collect();
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
        let rss = runs.iter().map(|r| r.run.max_rss_kb).max().unwrap_or(0);
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
            runs.iter().filter(|r| r.run.ok).count(),
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

    // Where the time goes, phase by phase.
    let ok_cli: Vec<&NodeRun> = cli_runs.iter().filter(|r| r.run.ok).collect();
    let ok_packer: Vec<&NodeRun> = packer_runs.iter().filter(|r| r.run.ok).collect();
    let cli_b: Vec<phases::Breakdown> = ok_cli
        .iter()
        .map(|r| phases::cli(&r.run.stdout, &r.run.line_secs, r.run.secs))
        .collect();
    let packer_b: Vec<phases::Breakdown> = ok_packer
        .iter()
        .map(|r| phases::packer(&r.run.stdout, &r.run.line_secs, r.run.secs))
        .collect();
    let total = |v: &[&NodeRun]| median(&v.iter().map(|r| r.run.secs).collect::<Vec<_>>());
    writeln!(
        t,
        "\nwhere the time goes (ok runs; the bench's clock on each stdout line; phases cut at the \
next one's start, so each column adds up to the wall time; provisioning tasks of 0.5 s or more for \
either tool, and the apt ones, on their own rows; floor: the recipe's apt commands run bare as \
root on a fresh target (no SSH, no tool; median of {} run(s)), and the least wait for an image \
pending {} polls when polling every {} s, for the AMI and again for its copies):\n",
        floors.len(),
        o.common.pending,
        o.common.poll_secs
    )?;
    phases::write_table(
        &mut t,
        &cli_b,
        &packer_b,
        &floors,
        total(&ok_cli),
        total(&ok_packer),
        0.5,
    );
    if let Some(r) = cli_runs.iter().find(|r| r.run.ok) {
        writeln!(t, "\nimage-cli steps (first ok run, s):")?;
        let mut line = String::new();
        for (s, ms, msg) in step_times(&r.run.stdout) {
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
        writeln!(t, "image-cli calls by action: {:?}", r.run.by_action)?;
    }
    if let Some(r) = packer_runs.iter().find(|r| r.run.ok) {
        writeln!(
            t,
            "\npacker timeline (first ok run; packer's timestamps are whole seconds):"
        )?;
        write_packer_steps(&mut t, &r.run.stdout, 110);
        if let Some(recap) = packer_recap(&r.run.stdout) {
            writeln!(t, "ansible recap: {recap}")?;
        }
        writeln!(t, "packer calls by action: {:?}", r.run.by_action)?;
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
