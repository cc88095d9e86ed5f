//! Bringing the report directory back: every file under it on the
//! instance (read as root) is copied below the local results directory,
//! never outside it, and the junit files among them are totalled.

use std::path::{Component, Path, PathBuf};

use image_core::target::{shell_quote, Become, Exec, Target};

use super::junit::{add_junit, JunitSummary};
use super::{exec_ok, Error};

/// The local path of a report file: `results_dir` + its path below
/// `report_dir` on the instance. None for paths that would leave
/// `results_dir`.
pub fn local_path(results_dir: &Path, report_dir: &str, remote: &str) -> Option<PathBuf> {
    let rel = remote.strip_prefix(report_dir)?.strip_prefix('/')?;
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(results_dir.join(rel))
}

/// Copies every file under `report_dir` (read as root) below `results_dir`.
pub(super) async fn collect(
    t: &dyn Target,
    report_dir: &str,
    results_dir: &Path,
) -> Result<(Vec<PathBuf>, JunitSummary), Error> {
    let root = Become::default();
    let qr = shell_quote(report_dir);
    let list = exec_ok(
        t,
        &format!("listing {report_dir}"),
        Exec::new(format!("if [ -d {qr} ]; then find {qr} -type f; fi")).become_root(),
    )
    .await?;
    tokio::fs::create_dir_all(results_dir)
        .await
        .map_err(|e| Error::new(format!("creating {}", results_dir.display()), e))?;
    let mut files = Vec::new();
    let mut junit = JunitSummary::default();
    for remote in list.lines().filter(|l| !l.trim().is_empty()) {
        let Some(local) = local_path(results_dir, report_dir, remote) else {
            continue;
        };
        let data = t
            .get(remote, Some(&root))
            .await
            .map_err(|e| Error::new(format!("fetching {remote}"), e))?;
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::new(format!("creating {}", parent.display()), e))?;
        }
        tokio::fs::write(&local, &data)
            .await
            .map_err(|e| Error::new(format!("writing {}", local.display()), e))?;
        let is_junit = local
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("junit") && n.ends_with(".xml"));
        if is_junit {
            add_junit(&mut junit, &String::from_utf8_lossy(&data));
        }
        files.push(local);
    }
    files.sort();
    Ok((files, junit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files_stay_inside_the_results_dir() {
        let d = Path::new("/out");
        assert_eq!(
            local_path(d, "/tmp/w/results", "/tmp/w/results/junit_01.xml"),
            Some(PathBuf::from("/out/junit_01.xml"))
        );
        assert_eq!(
            local_path(d, "/tmp/w/results", "/tmp/w/results/logs/kubelet.log"),
            Some(PathBuf::from("/out/logs/kubelet.log"))
        );
        assert_eq!(local_path(d, "/tmp/w/results", "/tmp/w/results/../x"), None);
        assert_eq!(local_path(d, "/tmp/w/results", "/etc/passwd"), None);
        assert_eq!(local_path(d, "/tmp/w/results", "/tmp/w/results2/x"), None);
    }
}
