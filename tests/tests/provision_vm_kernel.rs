//! Kernel-facing modules on a target with its own kernel (issue 15): the
//! nspawn targets share the host's kernel (no modules, `vm.*`/`kernel.*`
//! sysctls read-only, no real mounts), so `community.general.modprobe`,
//! `ansible.posix.sysctl` with live values and `ansible.posix.mount` only
//! run for real on a VM target ([`image_testbed::Vm`]: the Debian cloud
//! kernel under qemu, `scripts/testbed/build-vm-image.sh`).
//!
//! ansible-core 2.19 is the oracle: the playbooks of `tests/corpus/vm/` run
//! under ansible-core on one fresh VM target and under image-cli on another;
//! per task the status and the compared result keys must be the same, and
//! so must the file trees the playbooks name. Then the image-cli target's
//! state is checked against what the playbooks ask for, independently of
//! ansible: live sysctl values, loaded modules and module parameters, mounts.
//!
//! Ignored by default (the VM image is only built when asked, and a VM
//! boots in about a minute under TCG): `TESTBED_VM=1 scripts/testbed/setup.sh`
//! then `cargo nextest run -p tests -E 'binary(provision_vm_kernel)'
//! --run-ignored only`.

mod bed_support;
mod diff_support;

use std::collections::BTreeMap;
use std::time::Instant;

use bed_support::{boot_vm, connect_vm, stop_vm};
use diff_support::ansible::{self, Conn};
use diff_support::cli::{self, CliRun};
use diff_support::{corpus, tree, verdict};
use image_core::target::{Exec, Target};
use image_testbed::VmOptions;
use serde_json::Map;

/// Runs `cmd` as root on `t`; its stdout (must succeed).
async fn root_sh(t: &dyn Target, cmd: &str) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the VM image (TESTBED_VM=1 scripts/testbed/setup.sh); run with --run-ignored only"]
async fn kernel_modules_run_as_under_ansible_core() {
    let playbooks =
        corpus::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/vm"));
    assert!(
        playbooks.len() >= 3,
        "corpus/vm: {} playbooks",
        playbooks.len()
    );

    let t0 = Instant::now();
    let (a, b) = tokio::join!(boot_vm(VmOptions::default()), boot_vm(VmOptions::default()));
    println!(
        "two VM targets ({:?}) answered SSH after {:?}",
        a.accel(),
        t0.elapsed()
    );
    let ta = connect_vm(&a).await;
    let tb = connect_vm(&b).await;
    // Both kernels are the image's, not the host's.
    let uname = root_sh(&tb, "uname -r").await;
    assert!(uname.trim().ends_with("-cloud-amd64"), "VM kernel: {uname}");
    let extra = Map::new();

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
    let state = "cat /srv/diff/vm_sysctl/live.txt /srv/diff/vm_modprobe/seen.txt /srv/diff/vm_mount/seen.txt; \
                 sysctl -n vm.swappiness kernel.panic; ls /sys/module | grep -cx dummy || true; \
                 findmnt -rn -o TARGET | grep -c '^/mnt/diff' || true";
    let state_b = root_sh(&tb, state).await;
    drop((ta, tb));
    tokio::join!(stop_vm(a), stop_vm(b));

    // Verdicts against ansible-core.
    let mut report = String::new();
    if theirs.exit_status != 0 {
        report.push_str(&format!(
            "ansible-playbook failed with {} (ran {} of {} playbooks): {}\n",
            theirs.exit_status,
            theirs.per_playbook.len(),
            playbooks.len(),
            theirs.stderr
        ));
    }
    for (i, p) in playbooks.iter().enumerate() {
        let a_tasks = theirs.per_playbook.get(i).cloned().unwrap_or_default();
        let run = ours.get(&p.stem);
        if let Some(CliRun::Ran { tasks, .. }) = run {
            // VM_SHOW=1: both results of every task, to see them.
            if std::env::var_os("VM_SHOW").is_some() {
                verdict::show(&a_tasks, tasks);
            }
        }
        // One ansible-playbook ran them all and its exit status is checked.
        let diffs = verdict::differences(&a_tasks, false, run, &tree_a, &tree_b, &p.paths);
        for d in &diffs {
            report.push_str(&format!("{}: {d}\n", p.stem));
        }
    }
    println!("{report}");
    let _ = std::fs::write(
        std::env::temp_dir().join("provision-vm-kernel-report.txt"),
        &report,
    );
    assert!(
        report.is_empty(),
        "differences from ansible-core:\n{report}"
    );

    // What the kernel of image-cli's target says, whatever ansible did:
    // live sysctls (the file's, plus vm.dirty_ratio and the default file's
    // key), overlay loaded by the first task (changed), dummy's parameter,
    // then br_netfilter and overlay loaded, dummy unloaded; the tmpfs
    // remounted at 16m; no /mnt/diff* mount left; kernel.panic still 10
    // live (state: absent edits the file only).
    // (`grep -o` keeps the space after a module name; findmnt pads its
    // columns.)
    let want = "1\n10\n262144\n1\n1\n15\n1000000\n\
                True 2 br_netfilter ,overlay \n\
                tmpfs  rw,relatime,size=16384k,mode=755,inode64|\n\
                10\n10\n0\n0\n";
    assert_eq!(state_b, want, "state of image-cli's target");
}
