//! [`Target`]: a Debian bookworm "instance" booted with `systemd-nspawn`.
//!
//! Per target (see `/work/shared/notes/test-bed.md` for why each flag):
//! * overlayfs: lowerdir = the cached rootfs, fresh upperdir/workdir under the
//!   run dir; [`TargetOptions::extra_files`] are written into the upperdir
//!   before boot; [`Target::root_dir`] is the merged tree, readable from the
//!   host while the guest runs.
//! * own cgroup dirs (`image-testbed/<name>` in every mounted hierarchy that
//!   systemd uses: `systemd` + `unified` on the hybrid layout, or the cgroup2
//!   root) which `systemd-nspawn` joins before exec, because without a systemd
//!   PID 1 on the host it must run with `--register=no --keep-unit`.
//! * `systemd-nspawn -b --private-network ...`; the leader (guest PID 1) is the
//!   nspawn child in another pid namespace.
//! * `slirp4netns --configure` on the leader's netns (guest 10.0.2.100, DNS
//!   10.0.2.3, host loopback at 10.0.2.2 unless disabled) and an API
//!   `add_hostfwd` of a free port of 127.0.0.1 to guest port 22.
//! * the SSH banner (`SSH-2.0-...`) on that port means sshd is up (each
//!   target generates its own host keys at boot).
//!
//! A guest that reboots makes `systemd-nspawn` exit with status 133. By
//! default that is the end of the target. With
//! [`TargetOptions::survive_reboot`], a supervisor thread watches nspawn and,
//! on 133, boots the guest again like a machine coming back: the same overlay
//! (upperdir kept, so files written before the reboot are still there), the
//! same cgroup dirs (emptied and recreated), a new `slirp4netns` on the new
//! leader with the same host port forwarded, so SSH clients reconnect to the
//! same `127.0.0.1:port`. The run dir's `pids` record is replaced with the
//! new processes, so a reaper finds them. Any other exit ends the target
//! ([`Target::wait_ssh`] then fails with it). [`Target::boots`] counts boots.
//!
//! Drop: the supervisor (if any) is stopped first, so a target being stopped
//! is never booted again; then SIGTERM to nspawn (clean poweroff, ~2 s),
//! repeated every second (a guest still starting may miss it), SIGKILL after
//! a deadline, then slirp4netns, the overlay mount, cgroups and the run dir
//! go.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::moto::free_port;
use crate::run::{self, RunDir};
use crate::{Error, IoContext, Result, Rootfs, Testbed, USER};

/// The guest's address on its slirp4netns network.
pub const GUEST_ADDR: &str = "10.0.2.100";
/// The host's 127.0.0.1 as seen from the guest (when
/// [`TargetOptions::host_loopback`] is on).
pub const HOST_ADDR_FROM_GUEST: &str = "10.0.2.2";

const STOP_GRACE: Duration = Duration::from_secs(10);
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `systemd-nspawn`'s exit status when the guest rebooted.
const REBOOT_EXIT_STATUS: i32 = 133;
/// How often the supervisor looks at nspawn.
const SUPERVISE_POLL: Duration = Duration::from_millis(50);
/// How long a boot may take to show its leader, and its network to come up.
const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
const SLIRP_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of [`Target::start`].
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// Files `(guest path, contents, mode)` written (owned by root) into the
    /// overlay upperdir before boot. Missing parent directories get the
    /// owner and mode of the rootfs's, symlinks in the rootfs are followed.
    pub extra_files: Vec<(PathBuf, Vec<u8>, u32)>,
    /// Let the guest reach the host's 127.0.0.1 at 10.0.2.2 (default true).
    pub host_loopback: bool,
    /// How long [`Target::start`] waits for the SSH banner (default 60 s).
    pub boot_timeout: Duration,
    /// Boot the guest again when it reboots, on the same overlay and SSH
    /// port (default false: a reboot ends the target). See the module doc.
    pub survive_reboot: bool,
    /// The rootfs to boot (default [`Rootfs::Debian`]).
    pub rootfs: Rootfs,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            extra_files: Vec::new(),
            host_loopback: true,
            boot_timeout: Duration::from_secs(60),
            survive_reboot: false,
            rootfs: Rootfs::Debian,
        }
    }
}

impl TargetOptions {
    /// Adds a file to [`TargetOptions::extra_files`].
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

    /// Sets [`TargetOptions::host_loopback`].
    pub fn host_loopback(mut self, on: bool) -> Self {
        self.host_loopback = on;
        self
    }

    /// Sets [`TargetOptions::survive_reboot`].
    pub fn survive_reboot(mut self, on: bool) -> Self {
        self.survive_reboot = on;
        self
    }

    /// Sets [`TargetOptions::rootfs`].
    pub fn rootfs(mut self, kind: Rootfs) -> Self {
        self.rootfs = kind;
        self
    }
}

/// A booted (or booting) target. Dropping it powers it off and removes
/// everything it used.
#[derive(Debug)]
pub struct Target {
    testbed: Testbed,
    machine: Arc<Machine>,
    run: Option<RunDir>,
    mounted: bool,
    procs: Arc<Mutex<Procs>>,
    supervisor: Option<Supervisor>,
    ssh_port: u16,
    boot_timeout: Duration,
}

/// What every boot of a target uses; shared with its supervisor thread.
#[derive(Debug)]
struct Machine {
    name: String,
    /// The run dir.
    dir: PathBuf,
    /// The merged overlay: the guest's root.
    merged: PathBuf,
    /// Own cgroup dirs, one per hierarchy (created at each boot).
    cgroups: Vec<PathBuf>,
    host_loopback: bool,
}

/// The processes of the current boot.
#[derive(Debug)]
struct Procs {
    nspawn: Option<Child>,
    /// The guest's PID 1 as seen from the host; `None` while (re)booting.
    leader: Option<u32>,
    slirp: Option<Child>,
    /// When the current nspawn was started.
    started: Instant,
    /// How many times nspawn was started.
    boots: u32,
    /// Why the supervisor gave up: the target is down for good.
    failed: Option<String>,
}

/// The thread that boots the guest again after a reboot.
#[derive(Debug)]
struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn lock(m: &Mutex<Procs>) -> MutexGuard<'_, Procs> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cgroup hierarchies nspawn needs its own directory in.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()]; // pure cgroup2
    }
    ["unified", "systemd"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

fn ns_of(pid: u32, ns: &str) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok()
}

/// Children of `pid` (all its threads).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Resolves a guest directory path inside `root` following symlinks the way
/// the guest would (absolute links are relative to `root`). Returns the
/// guest-absolute resolved path.
fn resolve_in_root(root: &Path, guest: &Path) -> Result<PathBuf> {
    let mut todo: Vec<PathBuf> = guest
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c.as_os_str() == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let host = root.join(next.strip_prefix("/").expect("absolute"));
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::Failed(format!(
                        "too many symlinks resolving {}",
                        guest.display()
                    )));
                }
                let dest = fs::read_link(&host).ctx(|| format!("readlink {}", host.display()))?;
                if dest.is_absolute() {
                    cur = PathBuf::from("/");
                }
                todo.extend(dest.components().rev().filter_map(|c| match c {
                    Component::Normal(n) => Some(PathBuf::from(n)),
                    Component::ParentDir => Some(PathBuf::from("..")),
                    _ => None,
                }));
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

/// Writes `contents` at `guest_path` into the upperdir, creating parent dirs
/// with the lowerdir's owner and mode.
fn write_extra_file(
    lower: &Path,
    upper: &Path,
    guest_path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<()> {
    if !guest_path.is_absolute() || guest_path.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Failed(format!(
            "extra file path must be absolute without '..': {}",
            guest_path.display()
        )));
    }
    let file_name = guest_path.file_name().ok_or_else(|| {
        Error::Failed(format!(
            "extra file path has no file name: {}",
            guest_path.display()
        ))
    })?;
    let parent = resolve_in_root(lower, guest_path.parent().unwrap_or(Path::new("/")))?;
    let mut guest_dir = PathBuf::from("/");
    for c in parent.components().skip(1) {
        guest_dir.push(c);
        let rel = guest_dir.strip_prefix("/").expect("absolute");
        let up = upper.join(rel);
        if up.is_dir() {
            continue;
        }
        fs::create_dir(&up).ctx(|| format!("creating {}", up.display()))?;
        let (uid, gid, m) = match fs::metadata(lower.join(rel)) {
            Ok(md) => (md.uid(), md.gid(), md.mode() & 0o7777),
            Err(_) => (0, 0, 0o755),
        };
        std::os::unix::fs::chown(&up, Some(uid), Some(gid))
            .ctx(|| format!("chown {}", up.display()))?;
        fs::set_permissions(&up, fs::Permissions::from_mode(m))
            .ctx(|| format!("chmod {}", up.display()))?;
    }
    let dest = upper
        .join(parent.strip_prefix("/").expect("absolute"))
        .join(file_name);
    fs::write(&dest, contents).ctx(|| format!("writing {}", dest.display()))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", dest.display()))?;
    Ok(())
}

fn mount_overlay(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Result<()> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let c = |s: &str| CString::new(s).map_err(|_| Error::Failed(format!("NUL in {s:?}")));
    let src = c("overlay")?;
    let target = c(&merged.to_string_lossy())?;
    let opts_c = c(&opts)?;
    // SAFETY: valid C strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            opts_c.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("mount -t overlay -o {opts} {}", merged.display()));
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// SIGTERM, up to 2 s, SIGKILL; reaps it.
fn stop_slirp(slirp: &mut Child) {
    if slirp.try_wait().ok().flatten().is_none() {
        run::signal(slirp.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && slirp.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = slirp.kill();
    }
    let _ = slirp.wait();
}

impl Machine {
    fn log(&self) -> PathBuf {
        self.dir.join("nspawn.log")
    }

    fn stopping(stop: &AtomicBool) -> Result<()> {
        if stop.load(Ordering::Acquire) {
            return Err(Error::Failed("target is being stopped".into()));
        }
        Ok(())
    }

    /// One boot: nspawn in the (re)created cgroups, its leader, slirp4netns
    /// forwarding `port` (a free one if `None`). Every process is in `procs`
    /// as soon as it is started, so a failed boot is torn down with the
    /// target. Returns the forwarded port.
    fn boot(&self, procs: &Mutex<Procs>, port: Option<u16>, stop: &AtomicBool) -> Result<u16> {
        let nspawn_pid = self.spawn_nspawn(procs)?;
        let leader = self.find_leader(procs, nspawn_pid, stop)?;
        self.spawn_slirp(procs, leader, port, stop)
    }

    /// After a reboot (nspawn exited with 133 and was reaped): the old
    /// network goes, the cgroups are emptied, and the guest boots again on
    /// the same overlay with the same port.
    fn reboot(&self, procs: &Mutex<Procs>, port: u16, stop: &AtomicBool) -> Result<()> {
        let old = {
            let mut p = lock(procs);
            p.leader = None;
            p.slirp.take()
        };
        if let Some(mut slirp) = old {
            stop_slirp(&mut slirp);
        }
        run::kill_and_remove_cgroups(&self.cgroups, Duration::from_secs(5));
        let sock = self.dir.join("slirp.sock");
        if let Err(e) = fs::remove_file(&sock) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e).ctx(|| format!("removing {}", sock.display()));
            }
        }
        Self::stopping(stop)?;
        self.boot(procs, Some(port), stop).map(|_| ())
    }

    /// Records the live processes in the run dir's `pids` (replacing those
    /// of an earlier boot).
    fn record_pids(&self, procs: &Mutex<Procs>) -> Result<()> {
        let lines: Vec<String> = {
            let p = lock(procs);
            let nspawn = p
                .nspawn
                .as_ref()
                .map(|c| format!("systemd-nspawn {}", c.id()));
            let slirp = p.slirp.as_ref().map(|c| format!("slirp4netns {}", c.id()));
            nspawn.into_iter().chain(slirp).collect()
        };
        run::rewrite_record(&self.dir, "pids", &lines)
    }

    /// Creates the cgroup dirs and starts nspawn in them; returns its pid.
    fn spawn_nspawn(&self, procs: &Mutex<Procs>) -> Result<u32> {
        // Own cgroups, joined by nspawn between fork and exec.
        let mut cgroup_procs = Vec::new();
        for cg in &self.cgroups {
            fs::create_dir_all(cg).ctx(|| format!("creating cgroup {}", cg.display()))?;
            cgroup_procs.push(
                CString::new(cg.join("cgroup.procs").to_string_lossy().as_bytes())
                    .map_err(|_| Error::Failed("NUL in cgroup path".into()))?,
            );
        }
        // Appended: the log of every boot, in order.
        let log = self.log();
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .ctx(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().ctx(|| "dup".into())?;
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("-b")
            .arg("-D")
            .arg(&self.merged)
            .arg(format!("--machine={}", self.name))
            .args([
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
                "--console=passive",
            ])
            .env("SYSTEMD_LOG_COLOR", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: only async-signal-safe calls (open/write/close) between
        // fork and exec, on C strings prepared before.
        unsafe {
            cmd.pre_exec(move || {
                for p in &cgroup_procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let ok = libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1) == 1;
                    let e = std::io::Error::last_os_error();
                    libc::close(fd);
                    if !ok {
                        return Err(e);
                    }
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let child = cmd.spawn().ctx(|| "starting systemd-nspawn".into())?;
        let pid = child.id();
        {
            let mut p = lock(procs);
            p.nspawn = Some(child);
            p.leader = None;
            p.started = started;
            p.boots += 1;
        }
        self.record_pids(procs)?;
        Ok(pid)
    }

    /// Waits for the leader: nspawn's child in its own pid and net
    /// namespaces.
    fn find_leader(&self, procs: &Mutex<Procs>, nspawn_pid: u32, stop: &AtomicBool) -> Result<u32> {
        let my_pid_ns = ns_of(std::process::id(), "pid");
        let my_net_ns = ns_of(std::process::id(), "net");
        let deadline = Instant::now() + LEADER_TIMEOUT;
        let log = self.log();
        loop {
            Self::stopping(stop)?;
            if run::live_comm(nspawn_pid).is_none() {
                return Err(Error::Failed(format!(
                    "systemd-nspawn exited; log {}:\n{}",
                    log.display(),
                    tail(&log, 30)
                )));
            }
            let found = children_of(nspawn_pid).into_iter().find(|&c| {
                let (p, n) = (ns_of(c, "pid"), ns_of(c, "net"));
                p.is_some() && n.is_some() && p != my_pid_ns && n != my_net_ns
            });
            if let Some(l) = found {
                lock(procs).leader = Some(l);
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "no container leader under systemd-nspawn {nspawn_pid}; log {}:\n{}",
                    log.display(),
                    tail(&log, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts slirp4netns on the leader's netns and forwards `port` (a free
    /// one if `None`: then retried with another one if taken meanwhile).
    fn spawn_slirp(
        &self,
        procs: &Mutex<Procs>,
        leader: u32,
        port: Option<u16>,
        stop: &AtomicBool,
    ) -> Result<u16> {
        let sock = self.dir.join("slirp.sock");
        let slirp_log = self.dir.join("slirp4netns.log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slirp_log)
            .ctx(|| format!("opening {}", slirp_log.display()))?;
        let err = out.try_clone().ctx(|| "dup".into())?;
        let mut cmd = Command::new("slirp4netns");
        cmd.args(["--configure", "--mtu=65520", "--api-socket"])
            .arg(&sock);
        if !self.host_loopback {
            cmd.arg("--disable-host-loopback");
        }
        cmd.arg(leader.to_string())
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let slirp = cmd.spawn().ctx(|| "starting slirp4netns".into())?;
        lock(procs).slirp = Some(slirp);
        self.record_pids(procs)?;
        let deadline = Instant::now() + SLIRP_TIMEOUT;
        let mut last = String::new();
        loop {
            Self::stopping(stop)?;
            let exited = lock(procs)
                .slirp
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(st) = exited {
                return Err(Error::Failed(format!(
                    "slirp4netns exited with {st}: {}",
                    tail(&slirp_log, 20)
                )));
            }
            if sock.exists() {
                let p = match port {
                    Some(p) => p,
                    None => free_port()?,
                };
                match add_hostfwd(&sock, p) {
                    Ok(()) => return Ok(p),
                    Err(e) => last = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "slirp4netns port forward not set up: {last}; log: {}",
                    tail(&slirp_log, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The supervisor thread of a target that survives reboots: on nspawn's exit
/// with 133, boots the guest again; on any other exit, or a failed boot,
/// records why in `procs.failed` and ends. Ends when `stop` is set (the
/// owner unparks it).
fn supervise(machine: Arc<Machine>, procs: Arc<Mutex<Procs>>, stop: Arc<AtomicBool>, port: u16) {
    loop {
        std::thread::park_timeout(SUPERVISE_POLL);
        if stop.load(Ordering::Acquire) {
            return;
        }
        let exited = {
            let mut p = lock(&procs);
            match p.nspawn.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => {
                    p.nspawn = None;
                    p.leader = None;
                    Some(status)
                }
                _ => None,
            }
        };
        let Some(status) = exited else {
            continue;
        };
        if status.code() != Some(REBOOT_EXIT_STATUS) {
            let log = machine.log();
            let why = format!(
                "systemd-nspawn exited with {status}; log {}:\n{}",
                log.display(),
                tail(&log, 30)
            );
            eprintln!("image-testbed: {}: {why}", machine.name);
            lock(&procs).failed = Some(why);
            return;
        }
        let t0 = Instant::now();
        match machine.reboot(&procs, port, &stop) {
            Ok(()) => eprintln!(
                "image-testbed: {} rebooted; booted again (network up in {:?})",
                machine.name,
                t0.elapsed()
            ),
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(e) => {
                let why = format!("booting again after a reboot: {e}");
                eprintln!("image-testbed: {}: {why}", machine.name);
                lock(&procs).failed = Some(why);
                return;
            }
        }
    }
}

impl Target {
    /// Locates the test bed, boots a target and waits for its SSH banner.
    pub fn start(opts: TargetOptions) -> Result<Target> {
        let t = Self::start_without_waiting(opts)?;
        let timeout = t.boot_timeout;
        t.wait_ssh(timeout)?;
        Ok(t)
    }

    /// Like [`Target::start`] but returns as soon as the guest is booting and
    /// its port forwarded: sshd may not answer yet (see [`Target::wait_ssh`]).
    pub fn start_without_waiting(opts: TargetOptions) -> Result<Target> {
        Self::start_without_waiting_in(&Testbed::locate()?, opts)
    }

    /// [`Target::start_without_waiting`] in an explicit test bed.
    pub fn start_without_waiting_in(testbed: &Testbed, opts: TargetOptions) -> Result<Target> {
        let _ = testbed.reap_stale();
        let (rundir, name) = RunDir::create(&testbed.run_dir(), "tb")?;
        let dir = rundir.path().to_path_buf();
        let cgroups = cgroup_roots()
            .into_iter()
            .map(|root| root.join("image-testbed").join(&name))
            .collect();
        let machine = Machine {
            merged: dir.join("root"),
            dir,
            cgroups,
            host_loopback: opts.host_loopback,
            name,
        };
        let mut t = Target {
            testbed: testbed.clone(),
            machine: Arc::new(machine),
            run: Some(rundir),
            mounted: false,
            procs: Arc::new(Mutex::new(Procs {
                nspawn: None,
                leader: None,
                slirp: None,
                started: Instant::now(),
                boots: 0,
                failed: None,
            })),
            supervisor: None,
            ssh_port: 0,
            boot_timeout: opts.boot_timeout,
        };
        // On error, dropping `t` tears down whatever was set up.
        t.first_boot(&opts)?;
        if opts.survive_reboot {
            let stop = Arc::new(AtomicBool::new(false));
            let (machine, procs, stop2, port) =
                (t.machine.clone(), t.procs.clone(), stop.clone(), t.ssh_port);
            let thread = std::thread::Builder::new()
                .name(format!("supervise-{}", t.machine.name))
                .spawn(move || supervise(machine, procs, stop2, port))
                .ctx(|| "starting the supervisor thread".into())?;
            t.supervisor = Some(Supervisor { stop, thread });
        }
        Ok(t)
    }

    fn run(&self) -> &RunDir {
        self.run
            .as_ref()
            .expect("run dir lives as long as the target")
    }

    /// Prepares the overlay (with the extra files) and the records, then
    /// boots.
    fn first_boot(&mut self, opts: &TargetOptions) -> Result<()> {
        let m = self.machine.clone();
        let (upper, work) = (m.dir.join("upper"), m.dir.join("work"));
        for d in [&upper, &work, &m.merged] {
            fs::create_dir(d).ctx(|| format!("creating {}", d.display()))?;
        }
        // The upperdir's root is the merged root's attributes.
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))
            .ctx(|| "chmod upper".into())?;
        let lower = self.testbed.rootfs_of(opts.rootfs)?;
        // The machine name as hostname, resolvable without DNS (sudo).
        let hostname = format!("{}\n", m.name);
        let hosts = format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
            m.name
        );
        let own = [
            (PathBuf::from("/etc/hostname"), hostname.into_bytes(), 0o644),
            (PathBuf::from("/etc/hosts"), hosts.into_bytes(), 0o644),
        ];
        for (path, contents, mode) in own.iter().chain(&opts.extra_files) {
            write_extra_file(&lower, &upper, path, contents, *mode)?;
        }
        self.run().record("mounts", &m.merged.to_string_lossy())?;
        mount_overlay(&lower, &upper, &work, &m.merged)?;
        self.mounted = true;
        for cg in &m.cgroups {
            self.run().record("cgroups", &cg.to_string_lossy())?;
        }
        self.ssh_port = m.boot(&self.procs, None, &AtomicBool::new(false))?;
        Ok(())
    }

    /// Fails if the target is down for good: nspawn exited (with a
    /// supervisor: other than for a reboot, or booting again failed).
    fn check_nspawn_alive(&self) -> Result<()> {
        let p = lock(&self.procs);
        if let Some(why) = &p.failed {
            return Err(Error::Failed(format!(
                "target {}: {why}",
                self.machine.name
            )));
        }
        if self.supervisor.is_some() {
            // Down while rebooting is alive; the supervisor reports the rest.
            return Ok(());
        }
        let Some(child) = &p.nspawn else {
            return Err(Error::Failed("systemd-nspawn is not running".into()));
        };
        if run::live_comm(child.id()).is_none() {
            let log = self.machine.log();
            return Err(Error::Failed(format!(
                "systemd-nspawn exited; log {}:\n{}",
                log.display(),
                tail(&log, 30)
            )));
        }
        Ok(())
    }

    /// Waits until the forwarded port answers with an SSH banner; returns it
    /// (e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6`). With
    /// [`TargetOptions::survive_reboot`], a guest that is rebooting is waited
    /// for.
    pub fn wait_ssh(&self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            self.check_nspawn_alive()?;
            match self.read_banner(Duration::from_secs(2)) {
                Ok(b) => return Ok(b),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "no SSH banner from target {} on 127.0.0.1:{} within {timeout:?} (last: {last}); nspawn log:\n{}",
                    self.machine.name,
                    self.ssh_port,
                    tail(&self.machine.log(), 30)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the guest has been booted `n` times in all (see
    /// [`Target::boots`]), then for its SSH banner, within `timeout` in all.
    /// After rebooting a target with [`TargetOptions::survive_reboot`], pass
    /// [`Target::boots`] + 1 as read before the reboot: unlike
    /// [`Target::wait_ssh`] this cannot be answered by the old boot's sshd.
    pub fn wait_boot(&self, n: u32, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        while self.boots() < n {
            self.check_nspawn_alive()?;
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "target {} not booted {n} times within {timeout:?} (booted {})",
                    self.machine.name,
                    self.boots()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_ssh(deadline.saturating_duration_since(Instant::now()))
    }

    /// Connects once and reads the SSH identification line. Fails if sshd is
    /// not up (slirp accepts, then closes the connection).
    pub fn read_banner(&self, timeout: Duration) -> Result<String> {
        read_ssh_banner(self.ssh_port, timeout)
    }

    /// The port of 127.0.0.1 forwarded to the guest's port 22 (the same
    /// across reboots).
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

    /// The machine name (also the guest's hostname).
    pub fn name(&self) -> &str {
        &self.machine.name
    }

    /// The guest's root as seen from the host (the merged overlay).
    pub fn root_dir(&self) -> &Path {
        &self.machine.merged
    }

    /// The test bed this target belongs to (keys etc.).
    pub fn testbed(&self) -> &Testbed {
        &self.testbed
    }

    /// The guest's PID 1 as seen from the host (`None` while it reboots).
    pub fn leader_pid(&self) -> Option<u32> {
        lock(&self.procs).leader
    }

    /// How many times the guest was booted: 1, plus one per reboot survived
    /// (see [`TargetOptions::survive_reboot`]).
    pub fn boots(&self) -> u32 {
        lock(&self.procs).boots
    }

    /// Time since systemd-nspawn was (last) started.
    pub fn uptime(&self) -> Duration {
        lock(&self.procs).started.elapsed()
    }

    /// The guest's public host key of type `alg` (`ed25519`, `rsa`, `ecdsa`),
    /// as in `/etc/ssh/ssh_host_<alg>_key.pub` (exists once sshd started).
    pub fn host_public_key(&self, alg: &str) -> Result<String> {
        let p = self
            .machine
            .merged
            .join(format!("etc/ssh/ssh_host_{alg}_key.pub"));
        Ok(fs::read_to_string(&p)
            .ctx(|| format!("reading {}", p.display()))?
            .trim_end()
            .to_string())
    }

    /// Runs a command inside the guest without SSH (`nsenter -t <leader> -a`),
    /// as root with a minimal environment. Returns its output whatever the
    /// exit status.
    pub fn exec_host_side<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let leader = self
            .leader_pid()
            .ok_or_else(|| Error::Failed("target has no leader process".into()))?;
        Command::new("nsenter")
            .args(["-t", &leader.to_string(), "-a", "--"])
            .args(args)
            .env_clear()
            .env("PATH", GUEST_PATH)
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .output()
            .ctx(|| "running nsenter".into())
    }

    /// Runs `sh -c script` in the guest (see [`Target::exec_host_side`]);
    /// returns stdout, or an error with stderr if it exits non-zero.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.exec_host_side(["/bin/sh", "-c", script])?;
        if !out.status.success() {
            return Err(Error::Failed(format!(
                "guest command {script:?} failed with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Powers the guest off and removes everything (same as drop).
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        // The supervisor first: it must not boot a target being stopped.
        if let Some(s) = self.supervisor.take() {
            s.stop.store(true, Ordering::Release);
            s.thread.thread().unpark();
            if s.thread.join().is_err() {
                eprintln!(
                    "image-testbed: the supervisor of {} panicked",
                    self.machine.name
                );
            }
        }
        let (nspawn, leader, slirp) = {
            let mut p = lock(&self.procs);
            (p.nspawn.take(), p.leader.take(), p.slirp.take())
        };
        if let Some(mut child) = nspawn {
            if child.try_wait().ok().flatten().is_none() {
                // SIGTERM: nspawn asks the guest's systemd to power off. A
                // guest still starting (e.g. booting again after a reboot)
                // may not handle that request yet: ask again every second.
                let start = Instant::now();
                let mut asked = 0;
                let mut exited = false;
                while start.elapsed() < STOP_GRACE {
                    if start.elapsed() >= Duration::from_secs(asked) {
                        run::signal(child.id(), libc::SIGTERM);
                        asked += 1;
                    }
                    if child.try_wait().ok().flatten().is_some() {
                        exited = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !exited {
                    eprintln!(
                        "image-testbed: {} did not power off in {STOP_GRACE:?}; killing",
                        self.machine.name
                    );
                    if let Some(l) = leader {
                        if run::live_comm(l).is_some() {
                            run::signal(l, libc::SIGKILL);
                        }
                    }
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
        // Anything left in the container's cgroups.
        run::kill_and_remove_cgroups(&self.machine.cgroups, Duration::from_secs(5));
        if let Some(mut slirp) = slirp {
            stop_slirp(&mut slirp);
        }
        if self.mounted {
            run::unmount(&self.machine.merged);
            self.mounted = false;
        }
        if let Some(r) = self.run.take() {
            r.remove();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Asks slirp4netns (API socket) to forward 127.0.0.1:`port` to guest 22.
fn add_hostfwd(sock: &Path, port: u16) -> Result<()> {
    let what = || format!("slirp4netns API {}", sock.display());
    let mut s = UnixStream::connect(sock).ctx(what)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ctx(what)?;
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {"proto": "tcp", "host_addr": "127.0.0.1", "host_port": port, "guest_port": 22}
    });
    s.write_all(req.to_string().as_bytes()).ctx(what)?;
    s.shutdown(std::net::Shutdown::Write).ctx(what)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ctx(what)?;
    let v: serde_json::Value = serde_json::from_str(resp.trim())
        .map_err(|e| Error::Failed(format!("{}: bad answer {resp:?}: {e}", what())))?;
    if v.get("error").is_some() || v.get("return").is_none() {
        return Err(Error::Failed(format!(
            "{}: add_hostfwd {port}: {resp}",
            what()
        )));
    }
    Ok(())
}

/// Connects once to 127.0.0.1:`port` and reads the SSH identification
/// line (RFC 4253 allows lines before it). Fails if sshd is not up: slirp
/// and qemu accept, then close the connection.
pub(crate) fn read_ssh_banner(port: u16, timeout: Duration) -> Result<String> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let what = || format!("SSH banner from {addr}");
    let mut s = TcpStream::connect_timeout(&addr, timeout).ctx(what)?;
    s.set_read_timeout(Some(timeout)).ctx(what)?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // RFC 4253: lines before the identification string are allowed.
    loop {
        match s.read(&mut byte) {
            Ok(0) => return Err(Error::Failed(format!("{}: connection closed", what()))),
            Ok(_) => {}
            Err(e) => return Err(e).ctx(what),
        }
        if byte[0] == b'\n' {
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if line.starts_with("SSH-") {
                return Ok(line);
            }
            buf.clear();
        } else if buf.len() < 1024 {
            buf.push(byte[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_symlinks_inside_root() {
        let root = std::env::temp_dir().join(format!("tb-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib/systemd", root.join("usr/sd")).unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("/lib/systemd/system")).unwrap(),
            PathBuf::from("/usr/lib/systemd/system")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/usr/sd/x")).unwrap(),
            PathBuf::from("/usr/lib/systemd/x")
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
