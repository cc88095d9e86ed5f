//! ansible-core as the oracle (issue 15): every playbook of
//! `tests/corpus/ansible/` runs under ansible-core 2.19 on one fresh test-bed
//! target and under image-cli on another, identical one; per task the status
//! (ok/changed/skipped/failed) and the result (the keys ansible returns,
//! minus volatile ones) must be the same, and so must the file trees under
//! the paths each playbook touches (`/srv/diff/<stem>` and its `# paths:`),
//! compared by type, mode, owner, group and sha256.
//!
//! One pair of targets for the whole corpus: ansible-playbook takes many
//! playbooks per invocation (a playbook whose run fails, `# ends: failed`,
//! runs alone: ansible stops its batch there), image-cli runs them one by
//! one over one SSH session, both at the same time.
//!
//! [`KNOWN_DIVERGENT`] lists the playbooks where image-cli does not behave as
//! ansible-core yet, with the reason: they are run and compared like the
//! others, the test passes while they still diverge, and fails when one of
//! them starts to match (remove it from the list) or when any other playbook
//! diverges. `DIFF_ONLY=stem,stem` runs a subset (while working on one);
//! `DIFF_DUMP=FILE` writes both tools' results of every task to FILE (JSON).
//!
//! Needs `scripts/testbed/setup.sh` (root; installs ansible-core in the test
//! bed's venv) and Debian's mirror for the apt playbooks.

mod bed_support;
mod diff_support;

use std::collections::BTreeMap;
use std::path::Path;

use bed_support::{boot, connect, serve_dir, stop};
use diff_support::ansible::{self, Conn};
use diff_support::cli::{self, CliRun};
use diff_support::corpus::{self, Playbook};
use diff_support::{tree, verdict};
use image_testbed::HOST_ADDR_FROM_GUEST;
use serde_json::{json, Map, Value as Json};

/// Playbooks image-cli does not run as ansible-core does yet: (stem, why).
/// The full report names every difference.
const KNOWN_DIVERGENT: &[(&str, &str)] = &[
    ("fail_play_bad_template", "image-cli checks template syntax when it loads the playbook and refuses it (on purpose); ansible-core runs up to the task and fails there"),
    ("check_mode_unsupported_fqcn", "a module without check-mode support, skipped under check mode: ansible-core's message names the module as the task wrote it (`remote module (ansible.builtin.wait_for) ...`); image-cli does not keep the written name and gives the short one"),
    ("tpl_list_methods", "`nums.count(1)` on a list variable: ansible-core 2.19 answers 0 (a bug of its lazy lists: `count` sees unrendered values), image-cli 1"),
];

/// Per playbook: its observed tasks and whether its run failed.
type Outcomes = BTreeMap<String, (Vec<diff_support::observed::Observed>, bool)>;

/// Playbooks per ansible-playbook invocation.
const BATCH: usize = 40;

/// ansible-core's side: every playbook, in batches; per playbook its tasks
/// and whether its run failed, plus corpus errors (a playbook whose outcome
/// under ansible contradicts its `# ends:` header).
fn run_ansible(
    conn: &Conn<'_>,
    playbooks: &[Playbook],
    extra: &Map<String, Json>,
) -> (Outcomes, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let mut queue: Vec<&Playbook> = playbooks.iter().collect();
    while !queue.is_empty() {
        let batch: Vec<&Playbook> = if queue[0].ends_failed || queue[0].alone {
            vec![queue[0]]
        } else {
            queue
                .iter()
                .take_while(|p| !p.ends_failed && !p.alone)
                .take(BATCH)
                .copied()
                .collect()
        };
        let paths: Vec<&Path> = batch.iter().map(|p| p.path.as_path()).collect();
        let run = ansible::run_batch(conn, &paths, extra);
        let ran = run.per_playbook.len().min(batch.len());
        if ran == 0 {
            panic!(
                "ansible-playbook ran none of {:?} (exit {}): {}",
                batch.iter().map(|p| &p.stem).collect::<Vec<_>>(),
                run.exit_status,
                run.stderr
            );
        }
        for (i, (p, tasks)) in batch.iter().zip(run.per_playbook).enumerate() {
            let failed = i + 1 == ran && run.exit_status != 0;
            if failed != p.ends_failed {
                errors.push(format!(
                    "{}: ansible-core {} it, but its header says {} (exit {}; {})",
                    p.stem,
                    if failed { "failed" } else { "ran" },
                    if p.ends_failed {
                        "`# ends: failed`"
                    } else {
                        "nothing about failing"
                    },
                    run.exit_status,
                    run.stderr.trim()
                ));
            }
            out.insert(p.stem.clone(), (tasks, failed));
        }
        let started: Vec<&Playbook> = batch[..ran].to_vec();
        queue.retain(|p| !started.iter().any(|s| s.stem == p.stem));
    }
    (out, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_runs_as_under_ansible_core() {
    let only: Vec<String> = std::env::var("DIFF_ONLY")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let mut playbooks = corpus::load();
    if only.is_empty() {
        assert!(
            playbooks.len() >= 150,
            "corpus: {} playbooks",
            playbooks.len()
        );
    } else {
        playbooks.retain(|p| only.contains(&p.stem));
    }
    for (stem, why) in KNOWN_DIVERGENT {
        assert!(
            corpus::load().iter().any(|p| p.stem == *stem),
            "KNOWN_DIVERGENT names {stem} ({why}), not in the corpus"
        );
    }

    let (a, b) = tokio::join!(boot(), boot());
    let ta = connect(&a).await;
    let tb = connect(&b).await;
    let files_port = serve_dir(&corpus::dir().join("files"));
    let mut extra = Map::new();
    extra.insert(
        "fixture_url".into(),
        json!(format!("http://{HOST_ADDR_FROM_GUEST}:{files_port}")),
    );

    // ansible-core on A (blocking processes, on their own thread) while
    // image-cli runs on B.
    let control = tempfile::tempdir().expect("tempdir");
    let (port, user, key) = (
        a.ssh_port(),
        a.user().to_string(),
        a.testbed().ed25519_key().to_path_buf(),
    );
    let ctl = control.path().to_path_buf();
    // Each side's own directory on the controller (`fetch`'s dest): the
    // two runs go at once, on the same machine.
    let ours_dir = tempfile::tempdir().expect("tempdir");
    let (pbs, mut ex) = (playbooks.clone(), extra.clone());
    ex.insert("controller_dir".into(), json!(ctl.join("files")));
    // `files/` on both sides, so `fetch`'s `dest` differs only in the
    // temp directory's name (see `normal::names`).
    extra.insert(
        "controller_dir".into(),
        json!(ours_dir.path().join("files")),
    );
    let oracle = tokio::task::spawn_blocking(move || {
        let conn = Conn {
            port,
            user: &user,
            key: &key,
            control_dir: &ctl,
        };
        run_ansible(&conn, &pbs, &ex)
    });
    let mut ours = BTreeMap::new();
    for p in &playbooks {
        ours.insert(p.stem.clone(), cli::run(&tb, &p.path, &extra).await);
    }
    let (theirs, corpus_errors) = oracle.await.expect("ansible thread");

    let paths: Vec<String> = playbooks.iter().flat_map(|p| p.paths.clone()).collect();
    let tree_a = tree::snapshot(&ta, &paths).await;
    let tree_b = tree::snapshot(&tb, &paths).await;
    drop((ta, tb));
    tokio::join!(stop(a), stop(b));

    if let Ok(file) = std::env::var("DIFF_DUMP") {
        dump(&file, &playbooks, &theirs, &ours);
    }

    // Verdicts.
    let mut report = String::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let (mut matching, mut known) = (0, 0);
    for p in &playbooks {
        let (a_tasks, a_failed) = theirs.get(&p.stem).cloned().unwrap_or_default();
        let run = ours.get(&p.stem);
        let diffs = verdict::differences(&a_tasks, a_failed, run, &tree_a, &tree_b, &p.paths);
        let listed = KNOWN_DIVERGENT.iter().find(|(s, _)| *s == p.stem);
        match (diffs.is_empty(), listed) {
            (true, None) => matching += 1,
            (true, Some(_)) => fixed.push(p.stem.clone()),
            (false, Some(_)) => known += 1,
            (false, None) => unexpected.push(p.stem.clone()),
        }
        if !diffs.is_empty() {
            report.push_str(&format!(
                "\n{} ({}){}:\n",
                p.stem,
                p.construct,
                listed
                    .map(|(_, w)| format!(" [known: {w}]"))
                    .unwrap_or_default()
            ));
            for d in &diffs {
                report.push_str(&format!("  - {d}\n"));
            }
        }
    }
    let summary = format!(
        "{} playbooks: {matching} as under ansible-core, {known} known divergent, {} newly divergent, {} now matching (remove from KNOWN_DIVERGENT), {} corpus errors",
        playbooks.len(),
        unexpected.len(),
        fixed.len(),
        corpus_errors.len()
    );
    let file = std::env::temp_dir().join("provision-differential-report.txt");
    let _ = std::fs::write(
        &file,
        format!("{summary}\n{}\n{report}", corpus_errors.join("\n")),
    );
    println!("{summary}\n(full report: {})\n{report}", file.display());
    assert!(
        corpus_errors.is_empty(),
        "corpus errors:\n{}",
        corpus_errors.join("\n")
    );
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{summary}\nnewly divergent: {unexpected:?}\nnow matching: {fixed:?}\n{report}"
    );
}

/// Writes both tools' tasks (status, action, result) per playbook to `file`
/// as JSON (`DIFF_DUMP`), to audit the keys each module returns.
fn dump(file: &str, playbooks: &[Playbook], theirs: &Outcomes, ours: &BTreeMap<String, CliRun>) {
    let side = |tasks: &[diff_support::observed::Observed]| -> Json {
        tasks
            .iter()
            .map(|t| {
                json!({"loc": t.loc(), "name": t.name, "status": t.status.word(),
                       "action": t.action, "result": t.result})
            })
            .collect()
    };
    let mut out = Map::new();
    for p in playbooks {
        let a = theirs
            .get(&p.stem)
            .map(|(t, _)| side(t))
            .unwrap_or(Json::Null);
        let b = match ours.get(&p.stem) {
            Some(CliRun::Ran { tasks, .. }) => side(tasks),
            _ => Json::Null,
        };
        out.insert(p.stem.clone(), json!({"ansible": a, "cli": b}));
    }
    if let Err(e) = std::fs::write(file, Json::Object(out).to_string()) {
        println!("DIFF_DUMP: cannot write {file}: {e}");
    }
}
