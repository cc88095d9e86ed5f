//! The built-in definition's node recipe on the test bed (`cli_build_node.rs`
//! and the demo's `demo_bed`): the download and apt fixtures
//! (`scripts/fixtures/build.sh`) served over HTTP from this process, and a
//! var file for `image-cli build` with their URLs plus the switches the
//! test bed needs, all as variables of the built-in definition
//! (`images/kubernetes.yaml`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use super::workspace;

/// Variables of the built-in definition for a build whose "instance" is the
/// test bed target (Debian bookworm in systemd-nspawn) standing in for
/// Ubuntu 24.04 (what `tests/fixtures/node/test-vars.yml` does for the
/// recipe alone):
/// - `verify_os: debian`: the goss spec's `os/debian.yaml` (auditd/chrony
///   enabled, not running; only the net.* sysctls checked live) instead of
///   `os/ubuntu.yaml` (both running, every sysctl live, the SSM snap);
/// - no modprobe and no live vm.*/kernel.*/fs.* sysctls (a container);
/// - auditd/chrony not started (no audit netlink, no `CAP_SYS_TIME`);
/// - no SSM agent (a snap on Ubuntu; Debian's .deb is not reachable);
/// - no image pre-pull (the fake kubeadm/crictl have no image store);
/// - no dist-upgrade (independent of pending Debian updates, and fast).
pub const TESTBED_VARS: &str = "\
verify_os: debian
node_load_modules: false
node_apply_sysctl_live: false
node_start_auditd: false
node_start_chrony: false
aws_install_ssm_agent: false
prepull_images: false
apt_dist_upgrade: false
";

/// The fixtures, served until the process exits.
#[derive(Debug)]
pub struct NodeFixtures {
    /// The fixture server's port on 127.0.0.1 (10.0.2.2 from the target).
    pub port: u16,
    /// `--var-file` for `image-cli build`: the fixture URLs and checksums
    /// plus [`TESTBED_VARS`].
    pub var_file: PathBuf,
}

/// Builds the fixtures into `dir` for a free port, serves `dir/www` on it
/// and writes `dir/build-vars.yaml`.
pub fn start_node_fixtures(dir: &Path) -> Result<NodeFixtures, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    build_fixtures(port, dir)?;
    let fixture_vars =
        std::fs::read_to_string(dir.join("vars.yml")).map_err(|e| format!("vars.yml: {e}"))?;
    let var_file = dir.join("build-vars.yaml");
    std::fs::write(&var_file, build_var_file(&fixture_vars))
        .map_err(|e| format!("{}: {e}", var_file.display()))?;
    serve(listener, dir.join("www"));
    Ok(NodeFixtures { port, var_file })
}

/// Builds the fixtures for `port` into `dir` (`scripts/fixtures/build.sh`;
/// its stderr shown, its stdout dropped).
pub fn build_fixtures(port: u16, dir: &Path) -> Result<(), String> {
    let st = std::process::Command::new(workspace().join("scripts/fixtures/build.sh"))
        .arg("--port")
        .arg(port.to_string())
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|e| format!("running scripts/fixtures/build.sh: {e}"))?;
    if !st.success() {
        return Err(format!("scripts/fixtures/build.sh failed: {st}"));
    }
    Ok(())
}

/// The fixture vars the built-in definition declares (the others, e.g. the
/// ECR credential provider's, which it does not install, would be unknown
/// variables), then [`TESTBED_VARS`].
pub fn build_var_file(fixture_vars: &str) -> String {
    let declared = |key: &str| {
        image_core::builtin::SPEC_SOURCE
            .lines()
            .any(|l| l.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) == Some(key))
    };
    let mut out = String::from(
        "# image-cli build of the built-in definition on the test bed: the fixture\n\
         # downloads (scripts/fixtures/build.sh) and the test bed's switches.\n",
    );
    for line in fixture_vars.lines() {
        let key = line.split_once(':').map(|(k, _)| k.trim());
        match key {
            Some(k) if !line.starts_with([' ', '#', '-']) && declared(k) => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    out.push_str(TESTBED_VARS);
    out
}

/// `%3A` -> `:` (apt escapes some characters of repository paths).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(s: TcpStream, root: &Path) {
    let mut r = BufReader::new(&s);
    let mut request = String::new();
    if r.read_line(&mut request).is_err() {
        return;
    }
    let mut line = String::new();
    while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let path = percent_decode(path.split('?').next().unwrap_or("/"));
    let mut w = &s;
    let body = if path.contains("..") {
        None
    } else {
        std::fs::read(root.join(path.trim_start_matches('/'))).ok()
    };
    match body {
        Some(b) => {
            let _ = write!(
                w,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            );
            if method != "HEAD" {
                let _ = w.write_all(&b);
            }
        }
        None => {
            let _ = write!(
                w,
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    }
}

/// Serves the files under `root` on `l` (one thread per request) for the
/// rest of the process.
pub fn serve(l: TcpListener, root: PathBuf) {
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || answer(s, &root));
        }
    });
}
