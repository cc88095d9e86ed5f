//! The RPM family on an RPM-managed target (issue 15, §7): `dnf`/`yum`,
//! `yum_repository`, `rpm_key` and `package` with the dnf backend, run by
//! image-cli on the test bed's RPM target ([`Rootfs::Rpm`]: Debian with rpm
//! and dnf, an rpm database and an Amazon Linux 2023 look-alike os-release)
//! against the local signed repository of our own packages
//! (`scripts/testbed/build-rpm-repo.sh`, served over HTTP).
//!
//! ansible-core 2.19 is the oracle: the playbooks of `tests/corpus/rpm/` run
//! under ansible-core on one RPM target and under image-cli on an identical
//! one (ansible's dnf module uses the target's python3-dnf); per task the
//! status and the result keys the differential harness compares must be the
//! same, and so must the file trees, the installed packages (`rpm -qa`) and
//! the imported keys. Then the image-cli target's state is checked against
//! what the playbooks ask for, independently of ansible: the packages and
//! versions, the `.repo` files' content, the `gpg-pubkey` entries.
//!
//! Needs `scripts/testbed/setup.sh` (root; builds the RPM rootfs and the
//! repository, installs ansible-core).

mod bed_support;
mod diff_support;

use std::collections::BTreeMap;
use std::process::Command;

use bed_support::{boot_with, connect, serve_dir, stop};
use diff_support::ansible::{self, Conn};
use diff_support::cli::{self, CliRun};
use diff_support::{corpus, tree, verdict};
use image_core::target::Exec;
use image_testbed::{Rootfs, TargetOptions, Testbed, HOST_ADDR_FROM_GUEST};
use serde_json::{json, Map};

/// Field `field` of the first `kind:` record of `gpg --with-colons --show-keys`.
fn key_field(armored: &std::path::Path, kind: &str, field: usize) -> String {
    let out = Command::new("gpg")
        .args(["--batch", "--with-colons", "--show-keys"])
        .arg(armored)
        .output()
        .expect("gpg --show-keys");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with(&format!("{kind}:")))
        .and_then(|l| l.split(':').nth(field))
        .unwrap_or_else(|| panic!("no `{kind}` record in {}: {text}", armored.display()))
        .to_string()
}

/// The long key id (16 hex digits, lower case) of an armored public key.
fn key_id(armored: &std::path::Path) -> String {
    key_field(armored, "pub", 4).to_lowercase()
}

/// The fingerprint (40 hex digits) of an armored public key.
fn key_fpr(armored: &std::path::Path) -> String {
    key_field(armored, "fpr", 9)
}

/// Runs `cmd` as root on `t`; its stdout (must succeed).
async fn root_sh(t: &dyn image_core::target::Target, cmd: &str) -> String {
    let out = t
        .exec(&Exec::new(cmd.to_string()).become_root())
        .await
        .expect("exec");
    assert!(
        out.status == 0,
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What tells the two targets' package state apart: packages and keys.
const RPM_STATE: &str =
    "rpm -qa --qf '%{NAME}-%{VERSION}-%{RELEASE} %{RSAHEADER:pgpsig}\\n' | sort";

/// Result differences image-cli still has on this corpus since the verdict
/// judges every key ansible returns (issue 15), not fixed yet: (playbook,
/// the difference's `file:line` and result key as the report words it,
/// why). They are reported, not failed on; the test fails when one of them
/// no longer shows (remove it) or when any other difference does.
const KNOWN_KEYS: &[(&str, &str, &str)] = &[
    ("rpm_upgrade", "rpm_upgrade.yml:43 `the application pulls it in again`: result `results[0]`", "ansible lists a transaction's packages in its Python set's order (by libsolv solvable id), image-cli by name"),
    ("rpm_upgrade", "rpm_upgrade.yml:43 `the application pulls it in again`: result `results[1]`", "ansible lists a transaction's packages in its Python set's order (by libsolv solvable id), image-cli by name"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_modules_run_as_under_ansible_core() {
    let testbed = Testbed::locate().expect("test bed (run scripts/testbed/setup.sh)");
    let repo = testbed
        .rpm_repo()
        .expect("RPM repository (run scripts/testbed/setup.sh)");
    let playbooks =
        corpus::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/rpm"));
    assert!(
        playbooks.len() >= 3,
        "corpus/rpm: {} playbooks",
        playbooks.len()
    );

    let opts = || TargetOptions::default().rootfs(Rootfs::Rpm);
    let (a, b) = tokio::join!(boot_with(opts()), boot_with(opts()));
    let ta = connect(&a).await;
    let tb = connect(&b).await;
    let port = serve_dir(&repo);
    let testbed_key = key_id(&repo.join("RPM-GPG-KEY-testbed"));
    let other_key = key_id(&repo.join("RPM-GPG-KEY-other"));
    let mut extra = Map::new();
    extra.insert(
        "rpm_repo_url".into(),
        json!(format!("http://{HOST_ADDR_FROM_GUEST}:{port}")),
    );
    extra.insert("other_key_id".into(), json!(other_key.to_uppercase()));
    // Spaced in groups of four, as keys are usually quoted.
    let fpr = key_fpr(&repo.join("RPM-GPG-KEY-testbed"));
    let spaced: Vec<String> = fpr
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    extra.insert("testbed_key_fpr".into(), json!(spaced.join(" ")));

    // ansible-core on A, one invocation, while image-cli runs on B.
    let control = tempfile::tempdir().expect("tempdir");
    let (aport, user, key) = (
        a.ssh_port(),
        a.user().to_string(),
        a.testbed().ed25519_key().to_path_buf(),
    );
    let ctl = control.path().to_path_buf();
    let paths: Vec<std::path::PathBuf> = playbooks.iter().map(|p| p.path.clone()).collect();
    let ex = extra.clone();
    let oracle = tokio::task::spawn_blocking(move || {
        let conn = Conn {
            port: aport,
            user: &user,
            key: &key,
            control_dir: &ctl,
        };
        let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        ansible::run_batch(&conn, &refs, &ex)
    });
    let mut ours = BTreeMap::new();
    for p in &playbooks {
        ours.insert(p.stem.clone(), cli::run(&tb, &p.path, &extra).await);
    }
    let theirs = oracle.await.expect("ansible thread");

    let paths: Vec<String> = playbooks.iter().flat_map(|p| p.paths.clone()).collect();
    let tree_a = tree::snapshot(&ta, &paths).await;
    let tree_b = tree::snapshot(&tb, &paths).await;
    let rpm_a = root_sh(&ta, RPM_STATE).await;
    let rpm_b = root_sh(&tb, RPM_STATE).await;
    let repos_b = root_sh(
        &tb,
        "cd /etc/yum.repos.d && for f in *.repo; do echo \"== $f\"; cat \"$f\"; done",
    )
    .await;
    drop((ta, tb));
    tokio::join!(stop(a), stop(b));

    // Verdicts against ansible-core.
    let mut report = String::new();
    let mut known = String::new();
    let mut seen = vec![false; KNOWN_KEYS.len()];
    assert_eq!(
        theirs.exit_status,
        0,
        "ansible-playbook failed (ran {} of {} playbooks): {}",
        theirs.per_playbook.len(),
        playbooks.len(),
        theirs.stderr
    );
    for (i, p) in playbooks.iter().enumerate() {
        let a_tasks = theirs.per_playbook.get(i).cloned().unwrap_or_default();
        let run = ours.get(&p.stem);
        if let Some(CliRun::Ran { tasks, .. }) = run {
            // RPM_SHOW=1: both results of every task, to see them.
            if std::env::var_os("RPM_SHOW").is_some() {
                verdict::show(&a_tasks, tasks);
            }
        }
        // One ansible-playbook ran them all and its exit status is checked.
        let diffs = verdict::differences(&a_tasks, false, run, &tree_a, &tree_b, &p.paths);
        for d in &diffs {
            let k = KNOWN_KEYS
                .iter()
                .position(|(stem, what, _)| *stem == p.stem && d.contains(what));
            match k {
                Some(k) => {
                    seen[k] = true;
                    known.push_str(&format!("{}: {d} [known: {}]\n", p.stem, KNOWN_KEYS[k].2));
                }
                None => report.push_str(&format!("{}: {d}\n", p.stem)),
            }
        }
    }
    for ((stem, what, _), seen) in KNOWN_KEYS.iter().zip(&seen) {
        if !seen {
            report.push_str(&format!(
                "{stem}: `{what}` now matches ansible-core: remove it from KNOWN_KEYS\n"
            ));
        }
    }
    println!("known differences:\n{known}");
    if rpm_a != rpm_b {
        report.push_str(&format!(
            "installed packages differ:\nansible-core's target:\n{rpm_a}image-cli's target:\n{rpm_b}"
        ));
    }
    println!("{report}");
    let _ = std::fs::write(
        std::env::temp_dir().join("provision-rpm-report.txt"),
        &report,
    );
    assert!(
        report.is_empty(),
        "differences from ansible-core:\n{report}"
    );

    // Outcomes on image-cli's target, whatever ansible did.
    let short = &testbed_key[8..];
    let mut want_rpms: Vec<String> = [
        "tb-extra-1.0-1",
        "tb-hello-2.0-1",
        "tb-system-release-2023.0-1",
        "tb-unsigned-1.0-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let names: Vec<&str> = rpm_b
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    want_rpms.push(
        names
            .iter()
            .find(|n| n.starts_with(&format!("gpg-pubkey-{short}-")))
            .unwrap_or_else(|| panic!("key {short} not imported:\n{rpm_b}"))
            .to_string(),
    );
    want_rpms.sort();
    assert_eq!(names, want_rpms, "rpm -qa on image-cli's target");
    assert!(
        !rpm_b.contains(&other_key[8..]),
        "the other key {other_key} is still imported:\n{rpm_b}"
    );
    assert!(
        rpm_b
            .lines()
            .any(|l| l.starts_with("tb-hello-2.0-1 ") && l.contains(short)),
        "tb-hello 2.0 not signed by {short}:\n{rpm_b}"
    );
    let url = format!("http://{HOST_ADDR_FROM_GUEST}:{port}");
    let want_repos = format!(
        "== tb-extra.repo\n[tb-extra]\nbaseurl = {url}/extra\nenabled = 0\ngpgcheck = 1\ngpgkey = {url}/RPM-GPG-KEY-testbed\nmetadata_expire = 1h\nname = test bed extra\n\n\
         == tb-main.repo\n[tb-main]\nbaseurl = {url}/main\nenabled = 1\ngpgcheck = 1\ngpgkey = {url}/RPM-GPG-KEY-testbed\nname = test bed main\n\n\
         == tb-two.repo\n[tb-two-b]\nbaseurl = {url}/main\n\t{url}/extra\nenabled = 0\nexclude = tb-app tb-lib\nname = second of two\npriority = 10\n\n"
    );
    assert_eq!(
        repos_b, want_repos,
        "/etc/yum.repos.d on image-cli's target"
    );
}
