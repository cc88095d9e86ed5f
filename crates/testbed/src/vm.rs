//! [`Vm`]: a Debian bookworm target with its own kernel, booted by qemu.
//!
//! The systemd-nspawn [`crate::Target`] shares the host's kernel: no kernel
//! modules, no `vm.*`/`kernel.*` sysctls, no mounts of real file systems. A
//! `Vm` boots the Debian cloud kernel of the VM image
//! (`scripts/testbed/build-vm-image.sh`: the rootfs plus
//! `linux-image-cloud-amd64`, as ext4) so `modprobe`, live sysctls and mounts
//! behave as on a machine.
//!
//! Per target, under its run dir (`$TESTBED_DIR/run/vm-<pid>-<n>/`):
//! * `overlay.qcow2`: a copy-on-write overlay of the shared `root.ext4`
//!   (created in milliseconds; the base is never written).
//! * `seed.ext4`: a small ext4 disk made without mounting (`mkfs.ext4 -d`)
//!   with the target's `/etc/hostname`, `/etc/hosts`, SSH host keys generated
//!   on the host (key generation is slow in an emulated guest) and
//!   [`VmOptions::extra_files`]; the guest copies it over `/` before sshd
//!   starts (`testbed-seed.service`, `scripts/testbed/rootfs-customize-vm.sh`).
//! * `qemu-system-x86_64 -m 1024 -smp 1` with the image's kernel and initrd,
//!   `root=/dev/vda`, user networking (guest 10.0.2.100, the host's
//!   127.0.0.1 at 10.0.2.2, DNS 10.0.2.3: the nspawn targets' addresses) and
//!   a forward of a free port of 127.0.0.1 to the guest's port 22. The serial
//!   console goes to `console.log`.
//!
//! Ready when that port answers with an SSH banner. A guest reboot restarts
//! in the same qemu (same overlay, same port). Drop kills qemu and removes the
//! run dir; a killed test process leaves a run dir whose lock is free, and the
//! next [`Vm::start`] / [`crate::Target::start`] or `scripts/testbed/cleanup.sh`
//! kills the recorded qemu (`pids`) and removes it.
//!
//! Acceleration ([`Accel`]): KVM when the host has hardware virtualization
//! (the `kvm_intel` or `kvm_amd` module and `/dev/kvm`), otherwise TCG
//! (emulation, several times slower). `TESTBED_VM_ACCEL=kvm|tcg` overrides.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::free_port;
use crate::run::{self, RunDir};
use crate::{Error, IoContext, Result, Testbed, USER};

/// How qemu runs the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// KVM if the host has hardware virtualization, else TCG;
    /// `TESTBED_VM_ACCEL=kvm|tcg` overrides.
    #[default]
    Auto,
    /// `-accel kvm`.
    Kvm,
    /// `-accel tcg` (emulation).
    Tcg,
}

impl Accel {
    /// The accelerator `Auto` stands for on this host.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto => match std::env::var("TESTBED_VM_ACCEL").as_deref() {
                Ok("kvm") => Accel::Kvm,
                Ok("tcg") => Accel::Tcg,
                _ if hardware_kvm() => Accel::Kvm,
                _ => Accel::Tcg,
            },
            a => a,
        }
    }

    fn arg(self) -> &'static str {
        match self.resolve() {
            Accel::Kvm => "kvm",
            _ => "tcg",
        }
    }
}

/// `/dev/kvm` backed by VT-x or AMD-V. Other KVM flavours (such as a
/// page-table-based nested one) do not boot a stock kernel in useful time.
fn hardware_kvm() -> bool {
    Path::new("/dev/kvm").exists()
        && ["kvm_intel", "kvm_amd"]
            .iter()
            .any(|m| Path::new("/sys/module").join(m).exists())
}

/// Options of [`Vm::start`].
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// Files `(guest path, contents, mode)` (owned by root) copied into the
    /// guest's `/` at boot, before sshd starts. Existing directories keep
    /// their owner and mode; missing ones are created root-owned, 0755.
    pub extra_files: Vec<(PathBuf, Vec<u8>, u32)>,
    /// How long [`Vm::start`] waits for the SSH banner (default 300 s: TCG
    /// on a busy host).
    pub boot_timeout: Duration,
    /// Guest memory in MiB (default 1024).
    pub memory_mib: u32,
    /// Acceleration (default [`Accel::Auto`]).
    pub accel: Accel,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            extra_files: Vec::new(),
            boot_timeout: Duration::from_secs(300),
            memory_mib: 1024,
            accel: Accel::Auto,
        }
    }
}

impl VmOptions {
    /// Adds a file to [`VmOptions::extra_files`].
    pub fn file(
        mut self,
        guest_path: impl Into<PathBuf>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Self {
        self.extra_files
            .push((guest_path.into(), contents.into(), mode));
        self
    }
}

/// The VM image's boot files (`$TESTBED_DIR/vm`, symlink resolved).
#[derive(Clone, Debug)]
pub struct VmImage {
    /// The ext4 root file system (read only: targets boot overlays of it).
    pub root: PathBuf,
    /// The kernel (`vmlinuz` of the image's `/boot`).
    pub kernel: PathBuf,
    /// Its initrd.
    pub initrd: PathBuf,
}

impl Testbed {
    /// The VM image (`scripts/testbed/build-vm-image.sh`, or `setup.sh`
    /// with `TESTBED_VM=1`); the error says what to run when it is missing.
    pub fn vm_image(&self) -> Result<VmImage> {
        let link = self.dir().join("vm");
        let not_set_up = || {
            Error::NotSetUp(format!(
                "the VM image {} is missing (build it with TESTBED_VM=1 scripts/testbed/setup.sh)",
                link.display()
            ))
        };
        let dir = link.canonicalize().map_err(|_| not_set_up())?;
        let img = VmImage {
            root: dir.join("root.ext4"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
        };
        if ![&img.root, &img.kernel, &img.initrd]
            .iter()
            .all(|p| p.is_file())
        {
            return Err(not_set_up());
        }
        if which("qemu-system-x86_64").is_none() || which("qemu-img").is_none() {
            return Err(Error::NotSetUp(
                "qemu-system-x86_64 or qemu-img is not installed".into(),
            ));
        }
        Ok(img)
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

/// The comm of qemu (`/proc/<pid>/comm`, 15 bytes), as recorded in `pids`.
const QEMU_COMM: &str = "qemu-system-x86";

/// A booted VM target. Dropping it kills qemu and removes its overlay.
#[derive(Debug)]
pub struct Vm {
    testbed: Testbed,
    name: String,
    run: Option<RunDir>,
    qemu: Option<Child>,
    ssh_port: u16,
    started: Instant,
    accel: Accel,
}

/// Runs `cmd`; an error with its output if it fails.
fn run_tool(cmd: &mut Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let out = cmd.output().ctx(|| format!("running {what}"))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "{what} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Writes `contents` at `guest_path` under the seed directory `seed`.
fn write_seed_file(seed: &Path, guest_path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let plain = guest_path.is_absolute()
        && guest_path.file_name().is_some()
        && guest_path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain {
        return Err(Error::Failed(format!(
            "extra file path must be absolute without '..': {}",
            guest_path.display()
        )));
    }
    let dest = seed.join(guest_path.strip_prefix("/").expect("absolute"));
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&dest, contents).ctx(|| format!("writing {}", dest.display()))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", dest.display()))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Vm {
    /// Locates the test bed, boots a VM target and waits for its SSH banner.
    pub fn start(opts: VmOptions) -> Result<Vm> {
        Self::start_in(&Testbed::locate()?, opts)
    }

    /// [`Vm::start`] in an explicit test bed.
    pub fn start_in(testbed: &Testbed, opts: VmOptions) -> Result<Vm> {
        let image = testbed.vm_image()?;
        let _ = testbed.reap_stale();
        let (rundir, name) = RunDir::create(&testbed.run_dir(), "vm")?;
        let mut vm = Vm {
            testbed: testbed.clone(),
            name,
            run: Some(rundir),
            qemu: None,
            ssh_port: 0,
            started: Instant::now(),
            accel: opts.accel.resolve(),
        };
        // On error, dropping `vm` tears down whatever was set up.
        vm.prepare_disks(&image, &opts)?;
        vm.spawn_qemu(&image, &opts)?;
        vm.wait_ssh(opts.boot_timeout)?;
        Ok(vm)
    }

    fn dir(&self) -> &Path {
        self.run
            .as_ref()
            .expect("run dir lives as long as the target")
            .path()
    }

    fn console_log(&self) -> PathBuf {
        self.dir().join("console.log")
    }

    /// The overlay of the base image and the seed disk.
    fn prepare_disks(&self, image: &VmImage, opts: &VmOptions) -> Result<()> {
        let dir = self.dir().to_path_buf();
        // Which base this target reads (build-vm-image.sh keeps it while used).
        fs::write(dir.join("vm-base"), image.root.to_string_lossy().as_bytes())
            .ctx(|| "writing vm-base".into())?;
        run_tool(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(&image.root)
                .arg(dir.join("overlay.qcow2")),
        )?;
        let seed = dir.join("seed");
        let hosts = format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
            self.name
        );
        let own = [
            (
                PathBuf::from("/etc/hostname"),
                format!("{}\n", self.name).into_bytes(),
                0o644,
            ),
            (PathBuf::from("/etc/hosts"), hosts.into_bytes(), 0o644),
        ];
        let mut total = 0u64;
        for (path, contents, mode) in own.iter().chain(&opts.extra_files) {
            write_seed_file(&seed, path, contents, *mode)?;
            total += contents.len() as u64 + 4096;
        }
        // Own SSH host keys (the guest's `ssh-keygen -A` then has nothing to do).
        let ssh = seed.join("etc/ssh");
        fs::create_dir_all(&ssh).ctx(|| format!("creating {}", ssh.display()))?;
        for alg in ["ed25519", "ecdsa", "rsa"] {
            let key = ssh.join(format!("ssh_host_{alg}_key"));
            run_tool(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", alg, "-N", "", "-C"])
                    .arg(format!("root@{}", self.name))
                    .arg("-f")
                    .arg(&key),
            )?;
            total += 8192;
        }
        let mib = total / (1 << 20) + 8;
        run_tool(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
                .arg(&seed)
                .arg(dir.join("seed.ext4"))
                .arg(format!("{mib}M")),
        )?;
        run::remove_tree(&seed);
        Ok(())
    }

    /// Starts qemu forwarding a free port to the guest's sshd (another port
    /// if qemu could not bind it).
    fn spawn_qemu(&mut self, image: &VmImage, opts: &VmOptions) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("qemu.log"))
                .ctx(|| "opening qemu.log".into())?;
            let err = log.try_clone().ctx(|| "dup".into())?;
            let mut cmd = Command::new("qemu-system-x86_64");
            cmd.args(["-accel", self.accel.arg(), "-smp", "1", "-m"])
                .arg(opts.memory_mib.to_string())
                .args(["-display", "none", "-monitor", "none", "-serial"])
                .arg(format!("file:{}", self.console_log().display()))
                .arg("-kernel")
                .arg(&image.kernel)
                .arg("-initrd")
                .arg(&image.initrd)
                .args(["-append", "root=/dev/vda rw console=ttyS0"])
                .arg("-drive")
                .arg(format!(
                    "file={},if=virtio,format=qcow2",
                    dir.join("overlay.qcow2").display()
                ))
                .arg("-drive")
                .arg(format!(
                    "file={},if=virtio,format=raw,readonly=on",
                    dir.join("seed.ext4").display()
                ))
                .arg("-netdev")
                .arg(format!(
                    "user,id=n,hostfwd=tcp:127.0.0.1:{port}-{}:22",
                    crate::GUEST_ADDR
                ))
                .args(["-device", "virtio-net-pci,netdev=n"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err);
            self.started = Instant::now();
            let child = cmd.spawn().ctx(|| "starting qemu-system-x86_64".into())?;
            let pid = child.id();
            self.qemu = Some(child);
            let run = self.run.as_ref().expect("run dir");
            run::rewrite_record(run.path(), "pids", &[format!("{QEMU_COMM} {pid}")])?;
            // A port taken meanwhile makes qemu exit at once.
            let deadline = Instant::now() + Duration::from_millis(500);
            let mut exited = None;
            while Instant::now() < deadline && exited.is_none() {
                exited = self.qemu.as_mut().and_then(|c| c.try_wait().ok().flatten());
                std::thread::sleep(Duration::from_millis(20));
            }
            match exited {
                None => {
                    self.ssh_port = port;
                    return Ok(());
                }
                Some(st) => {
                    self.qemu = None;
                    last = format!("qemu exited with {st}: {}", tail(&dir.join("qemu.log"), 10));
                    if !last.contains("hostfwd") {
                        break;
                    }
                }
            }
        }
        Err(Error::Failed(last))
    }

    fn check_alive(&mut self) -> Result<()> {
        let exited = match self.qemu.as_mut() {
            None => return Err(Error::Failed("qemu is not running".into())),
            Some(c) => c.try_wait().ok().flatten(),
        };
        if let Some(st) = exited {
            return Err(Error::Failed(format!(
                "qemu of {} exited with {st}: {}\nconsole:\n{}",
                self.name,
                tail(&self.dir().join("qemu.log"), 10),
                tail(&self.console_log(), 30)
            )));
        }
        Ok(())
    }

    /// Waits until the forwarded port answers with an SSH banner; returns it.
    pub fn wait_ssh(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            self.check_alive()?;
            match self.read_banner(Duration::from_secs(2)) {
                Ok(b) => return Ok(b),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "no SSH banner from VM {} on 127.0.0.1:{} within {timeout:?} (last: {last}); console:\n{}",
                    self.name,
                    self.ssh_port,
                    tail(&self.console_log(), 30)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Connects once and reads the SSH identification line (qemu accepts
    /// and closes the connection while the guest's sshd is not up).
    pub fn read_banner(&self, timeout: Duration) -> Result<String> {
        crate::target::read_ssh_banner(self.ssh_port, timeout)
    }

    /// The port of 127.0.0.1 forwarded to the guest's port 22.
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The unprivileged SSH user (`builder`, passwordless sudo).
    pub fn user(&self) -> &'static str {
        USER
    }

    /// The target's name (also the guest's hostname).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test bed this target belongs to (keys etc.).
    pub fn testbed(&self) -> &Testbed {
        &self.testbed
    }

    /// The accelerator qemu runs with ([`Accel::Kvm`] or [`Accel::Tcg`]).
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// Time since qemu was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Kills qemu and removes the overlay (same as drop).
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if let Some(mut child) = self.qemu.take() {
            // The overlay is thrown away: no clean poweroff needed.
            run::signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = self.run.take() {
            r.remove();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.teardown();
    }
}
