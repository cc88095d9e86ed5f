//! Run directories: `$TESTBED_DIR/run/<name>/` records what a [`crate::Moto`]
//! or [`crate::Target`] started, so that a crashed test run can be cleaned up.
//!
//! Layout (plain text, also read by `scripts/testbed/cleanup.sh`):
//! * `lock`: `flock`ed by the owning process for its whole life; a run dir
//!   whose lock can be taken is stale.
//! * `pids`: lines `<comm> <pid>`; a pid is only killed if its
//!   `/proc/<pid>/comm` still matches (pid reuse). A target that boots again
//!   after its guest rebooted replaces the file (atomically) with its new
//!   processes, so a reaper never kills a reused pid of an old boot.
//! * `cgroups`: cgroup directories to kill and remove (deepest first).
//! * `mounts`: mount points to unmount.
//!
//! A run dir is created as `.new-<name>` and renamed once locked, so reapers
//! (which skip dot names) never see an unlocked live one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, IoContext, Result};

/// An owned, locked run directory.
#[derive(Debug)]
pub(crate) struct RunDir {
    path: PathBuf,
    _lock: File,
}

fn flock(file: &File, nonblocking: bool) -> bool {
    let mut op = libc::LOCK_EX;
    if nonblocking {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: plain syscall on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

impl RunDir {
    /// Creates and locks `run/<prefix>-<pid>-<n>`; returns it and its name.
    pub(crate) fn create(run_root: &Path, prefix: &str) -> Result<(RunDir, String)> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        fs::create_dir_all(run_root).ctx(|| format!("creating {}", run_root.display()))?;
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}-{}-{n}", std::process::id());
            let path = run_root.join(&name);
            let tmp = run_root.join(format!(".new-{name}"));
            if path.exists() {
                continue; // left over by an earlier process with the same pid
            }
            match fs::create_dir(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).ctx(|| format!("creating {}", tmp.display())),
            }
            let lock = File::create(tmp.join("lock"))
                .ctx(|| format!("creating lock in {}", tmp.display()))?;
            if !flock(&lock, false) {
                return Err(Error::Failed(format!("cannot lock {}", tmp.display())));
            }
            fs::rename(&tmp, &path)
                .ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
            return Ok((RunDir { path, _lock: lock }, name));
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a line to one of the record files (`pids`, `cgroups`, `mounts`).
    pub(crate) fn record(&self, file: &str, line: &str) -> Result<()> {
        let p = self.path.join(file);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .ctx(|| format!("opening {}", p.display()))?;
        writeln!(f, "{line}").ctx(|| format!("writing {}", p.display()))
    }

    /// Removes the directory (then the lock is released by drop).
    pub(crate) fn remove(self) {
        remove_tree(&self.path);
    }
}

/// Replaces one of the record files of the run dir `dir` with `lines`
/// (writes a temporary file, then renames it: a reaper reads either the old
/// or the new list). By path: a target's supervisor thread does not own the
/// [`RunDir`].
pub(crate) fn rewrite_record(dir: &Path, file: &str, lines: &[String]) -> Result<()> {
    let tmp = dir.join(format!(".{file}.new"));
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    fs::write(&tmp, text).ctx(|| format!("writing {}", tmp.display()))?;
    let dest = dir.join(file);
    fs::rename(&tmp, &dest).ctx(|| format!("renaming {} to {}", tmp.display(), dest.display()))
}

/// `rm -rf` that tolerates what it cannot remove (logged to stderr).
pub(crate) fn remove_tree(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("image-testbed: cannot remove {}: {e}", path.display());
        }
    }
}

/// `/proc/<pid>/comm`, if the process exists and is not a zombie.
pub(crate) fn live_comm(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    if state == 'Z' || state == 'X' {
        return None;
    }
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim_end()
            .to_string(),
    )
}

pub(crate) fn signal(pid: u32, sig: i32) {
    if pid > 1 {
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// Kills a recorded process if it is still the one recorded (same comm):
/// SIGTERM, then SIGKILL after `grace`. Does not reap (not our child).
pub(crate) fn kill_recorded(comm: &str, pid: u32, grace: Duration) {
    if live_comm(pid).as_deref() != Some(comm) {
        return;
    }
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if live_comm(pid).as_deref() != Some(comm) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, libc::SIGKILL);
}

/// Mount points currently mounted (from /proc/self/mountinfo).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mount(mp) == want)
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts `path` (lazily if busy) while it is mounted.
pub(crate) fn unmount(path: &Path) {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    for attempt in 0..50 {
        if !is_mounted(path) {
            return;
        }
        let flags = if attempt < 10 { 0 } else { libc::MNT_DETACH };
        // SAFETY: valid C string.
        if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("image-testbed: cannot unmount {}", path.display());
}

/// All cgroup dirs below (and including) `dir`, deepest first.
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(cgroup_tree(&e.path()));
            }
        }
    }
    if dir.is_dir() {
        out.push(dir.to_path_buf());
    }
    out
}

/// Pids in a cgroup tree.
fn cgroup_pids(dir: &Path) -> Vec<u32> {
    cgroup_tree(dir)
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// SIGKILLs every process in the cgroups (cgroup.kill where available) and
/// removes the directories, deepest first, waiting up to `timeout`.
pub(crate) fn kill_and_remove_cgroups(dirs: &[PathBuf], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut busy = false;
        for d in dirs {
            if !d.exists() {
                continue;
            }
            let kill = d.join("cgroup.kill");
            if kill.exists() {
                let _ = fs::write(&kill, "1");
            }
            for pid in cgroup_pids(d) {
                signal(pid, libc::SIGKILL);
            }
            for sub in cgroup_tree(d) {
                if fs::remove_dir(&sub).is_err() && sub.exists() {
                    busy = true;
                }
            }
        }
        if !busy {
            return;
        }
        if Instant::now() >= deadline {
            for d in dirs.iter().filter(|d| d.exists()) {
                eprintln!("image-testbed: cannot remove cgroup {}", d.display());
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .map(str::to_string)
                .filter(|l| !l.trim().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Tears down everything recorded in a run dir (processes, cgroups, mounts)
/// and removes it. Used for stale run dirs.
pub(crate) fn teardown_recorded(dir: &Path) {
    let cgroups: Vec<PathBuf> = read_lines(&dir.join("cgroups"))
        .into_iter()
        .map(PathBuf::from)
        .collect();
    // Containers first: killing their cgroups kills nspawn and the guest.
    kill_and_remove_cgroups(&cgroups, Duration::from_secs(5));
    for line in read_lines(&dir.join("pids")) {
        let mut it = line.split_whitespace();
        if let (Some(comm), Some(Ok(pid))) = (it.next(), it.next().map(str::parse::<u32>)) {
            kill_recorded(comm, pid, Duration::from_secs(2));
        }
    }
    for m in read_lines(&dir.join("mounts")) {
        unmount(Path::new(&m));
    }
    // Processes might have still been in the cgroups after the first pass.
    kill_and_remove_cgroups(&cgroups, Duration::from_secs(2));
    remove_tree(dir);
}

/// Reaps stale run dirs under `run_root`; returns how many.
pub(crate) fn reap_stale(run_root: &Path) -> Result<usize> {
    let rd = match fs::read_dir(run_root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).ctx(|| format!("reading {}", run_root.display())),
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let dir = e.path();
        let Ok(lock) = File::open(dir.join("lock")) else {
            continue;
        };
        if flock(&lock, true) {
            eprintln!("image-testbed: reaping stale {}", dir.display());
            teardown_recorded(&dir);
            n += 1;
        }
    }
    Ok(n)
}
