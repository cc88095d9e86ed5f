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
//! diverges. `DIFF_ONLY=stem,stem` runs a subset (while working on one).
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
use diff_support::{compare, tree};
use image_testbed::HOST_ADDR_FROM_GUEST;
use serde_json::{json, Map, Value as Json};

/// Playbooks image-cli does not run as ansible-core does yet: (stem, why).
/// Generated from the run of 2026-12-05 14:10 (first difference of each);
/// the full report names every difference.
const KNOWN_DIVERGENT: &[(&str, &str)] = &[
    ("fact_arch_system", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("fact_date_time_types", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("fact_env_paths", "`ansible.builtin.debug`: result `msg`: ansible \"/root\", image-cli \"/home/builder\""),
    ("fact_memory_cpu", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("fact_mounts_selinux", "`ansible.builtin.debug`: result `msg`: ansible false, image-cli \"false\""),
    ("fact_network", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("fact_python", "`ansible.builtin.debug`: result `msg`: ansible 3, image-cli \"3\""),
    ("fact_set_fact_cacheable", "`ansible.builtin.debug`: result `msg`: ansible \"value value\", image-cli \"absent value\""),
    ("fact_user", "`ansible.builtin.debug`: result `msg`: ansible \"root\", image-cli \"builder\""),
    ("fail_assert_quiet", "`ansible.builtin.debug`: result `msg`: ansible \"True one is not more than two\", image-cli \"True one is not mo…"),
    ("fail_play_bad_template", "image-cli refused it: /work/main/tests/corpus/ansible/fail_play_bad_template.yml:15:14: error: bad template: …"),
    ("fail_rescue", "`ansible.builtin.debug`: result `msg`: ansible \"rescued  rc=1\", image-cli \"rescued command rc=1\""),
    ("inc_import_playbook", "image-cli refused it: /work/main/tests/corpus/ansible/inc_import_playbook.yml:4:3: error: import_playbook is …"),
    ("inc_include_vars_file", "`ansible.builtin.include_vars`: result `ansible_facts` missing (ansible: {\"from_vars_file\":\"vars-file-value\",…"),
    ("inc_include_vars_name", "`ansible.builtin.include_vars`: result `ansible_facts` missing (ansible: {\"loaded\":{\"from_vars_file\":\"vars-fi…"),
    ("kw_args_keyword", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("kw_become_false", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("kw_gather_facts_false", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"false\""),
    ("loop_break_when", "`ansible.builtin.debug`: result `msg`: ansible 2, image-cli \"2\""),
    ("loop_control_extended", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_control_label_index", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_dict2items", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_dict_items_method", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_pause_zero", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_range", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_register", "`ansible.builtin.debug`: result `msg`: ansible [\"x\",\"y\"], image-cli \"[\\n  \\\"x\\\",\\n  \\\"y\\\"\\n]\""),
    ("loop_when_per_item", "/srv/diff/loop_when_per_item/2.txt: ansible {\"group\":\"root\",\"mode\":\"0644\",\"owner\":\"root\",\"type\":\"file\",\"sha25…"),
    ("loop_with_dict", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_first_found", "`ansible.builtin.include_vars`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_indexed_items", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_items_flatten", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_lines", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_list", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_nested", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_random_choice_single", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_sequence", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_subelements", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("loop_with_together", "`ansible.builtin.debug`: result `msg` missing (ansible: \"All items completed\")"),
    ("mod_apt_install", "`ansible.builtin.apt`: result `stdout`: ansible \"Reading package lists...\\nBuilding dependency tree...\\nReadi…"),
    ("mod_apt_repository_check", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("mod_assemble", "`ansible.builtin.assemble`: ansible changed (OK), image-cli failed (module `ansible.builtin.assemble` is not …"),
    ("mod_blockinfile", "`ansible.builtin.debug`: result `r.msg`: ansible \"Block removed\", image-cli \"VARIABLE IS NOT DEFINED!\""),
    ("mod_command_argv", "`ansible.builtin.debug`: result `r.cmd`: ansible [\"printf\",\"%s|%s\",\"a b\",\"c\"], image-cli \"printf '%s|%s' 'a b…"),
    ("mod_command_creates_removes", "`ansible.builtin.command`: result `stdout`: ansible \"skipped, since /srv/diff/mod_command_creates_removes/mad…"),
    ("mod_command_result_keys", "`ansible.builtin.debug`: result `r.cmd`: ansible [\"sh\",\"-c\",\"echo out; echo err >&2\"], image-cli \"sh -c 'echo…"),
    ("mod_copy_backup", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"false\""),
    ("mod_copy_content", "`ansible.builtin.debug`: ansible ok (True /srv/diff/mod_copy_content/c.txt 0640 root adm 7fe70820e08a1aac0ef2…"),
    ("mod_copy_remote_src", "/srv/diff/mod_copy_remote_src/hn: ansible {\"group\":\"root\",\"mode\":\"0600\",\"owner\":\"root\",\"type\":\"file\",\"sha256\"…"),
    ("mod_copy_src_dir", "`ansible.builtin.copy`: ansible changed , image-cli failed (copy: `directory_mode: 0755` would change what th…"),
    ("mod_cron", "`ansible.builtin.apt`: result `stdout`: ansible \"Reading package lists...\\nBuilding dependency tree...\\nReadi…"),
    ("mod_deb822_repository", "`ansible's module needs python3-debian on the target`: result `stdout`: ansible \"Reading package lists...\\nBu…"),
    ("mod_debug_var_forms", "`ansible.builtin.debug`: result `msg`: ansible [\"a\",\"b\"], image-cli \"[\\n  \\\"a\\\",\\n  \\\"b\\\"\\n]\""),
    ("mod_fetch", "`ansible.builtin.fetch`: ansible ok , image-cli failed (module `ansible.builtin.fetch` is not available in im…"),
    ("mod_file_result", "`ansible.builtin.debug`: result `r.gid` missing (ansible: 0)"),
    ("mod_file_states", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("mod_getent", "`ansible.builtin.debug`: result `msg`: ansible [\"x\",\"0\",\"0\",\"root\",\"/root\",\"/bin/bash\"], image-cli \"[\\n  \\\"x\\…"),
    ("mod_hostname_check", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("mod_ini_file", "/srv/diff/mod_ini_file/x.ini: ansible {\"group\":\"root\",\"mode\":\"0644\",\"owner\":\"root\",\"type\":\"file\",\"sha256\":\"1e…"),
    ("mod_lineinfile_absent_create", "`ansible.builtin.debug`: ansible ok (1 1 line(s) removed), image-cli failed (template error in arguments: und…"),
    ("mod_lineinfile_regexp", "`ansible.builtin.debug`: result `r.msg`: ansible \"line added\", image-cli \"VARIABLE IS NOT DEFINED!\""),
    ("mod_pause_zero", "`ansible.builtin.pause`: result `rc` missing (ansible: 0)"),
    ("mod_raw", "`ansible.builtin.raw`: result `stdout`: ansible \"raw-out\\r\\n\", image-cli \"raw-out\""),
    ("mod_replace", "`ansible.builtin.replace`: result `rc` missing (ansible: 0)"),
    ("mod_script", "`ansible.builtin.script`: ansible changed , image-cli failed (module `ansible.builtin.script` is not availabl…"),
    ("mod_tempfile", "`ansible.builtin.debug`: ansible ok (directory True), image-cli failed (template error in arguments: undefine…"),
    ("mod_template", "`ansible.builtin.debug`: ansible ok (True c572f42a632dfc2636b05014defcf2c2c46f67e8), image-cli failed (templa…"),
    ("mod_unarchive_remote", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("mod_user_group", "`ansible.builtin.debug`: ansible ok (True 2345 /home/corpususer /bin/sh), image-cli failed (template error in…"),
    ("mod_wait_for_path", "`ansible.builtin.debug`: ansible ok (22 started), image-cli failed (template error in arguments: undefined va…"),
    ("prec_include_vars_over_set_fact", "`ansible.builtin.include_vars`: result `ansible_facts` missing (ansible: {\"from_vars_file\":\"vars-file-value\",…"),
    ("prec_task_over_play", "`ansible.builtin.debug`: result `level`: ansible \"fact\", image-cli \"task\""),
    ("prec_vars_files_over_play_vars", "`ansible.builtin.debug`: result `shared`: ansible \"fact\", image-cli \"from-vars-file\""),
    ("role_osvars", "`osvars : Load OS-family vars`: result `ansible_facts` missing (ansible: {\"os_pkg_name\":\"debian-flavour\"})"),
    ("tpl_bool_filter", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_combine", "`ansible.builtin.debug`: result `msg`: ansible {\"a\":1,\"b\":2,\"n\":{\"y\":2}}, image-cli \"{\\n  \\\"a\\\": 1,\\n  \\\"n\\\":…"),
    ("tpl_dict_conversions", "`ansible.builtin.debug`: result `msg`: ansible [{\"key\":\"a\",\"value\":1}], image-cli \"[\\n  {\\n    \\\"key\\\": \\\"a\\\"…"),
    ("tpl_dict_get", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_dict_keys_values", "`ansible.builtin.debug`: result `msg`: ansible [\"name\",\"port\"], image-cli \"[\\n  \\\"name\\\",\\n  \\\"port\\\"\\n]\""),
    ("tpl_extract", "`ansible.builtin.debug`: result `msg`: ansible [1,2], image-cli \"[\\n  1,\\n  2\\n]\""),
    ("tpl_flatten", "`ansible.builtin.debug`: result `msg`: ansible [1,2,3], image-cli \"[\\n  1,\\n  2,\\n  3\\n]\""),
    ("tpl_hostvars", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_in_operator", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_ipaddr_free", "`ansible.builtin.debug`: result `msg`: ansible [3,1,2,9], image-cli \"[\\n  3,\\n  1,\\n  2,\\n  9\\n]\""),
    ("tpl_json_roundtrip", "`ansible.builtin.debug`: result `msg`: ansible {\"a\":[1,2]}, image-cli \"{\\n  \\\"a\\\": [\\n    1,\\n    2\\n  ]\\n}\""),
    ("tpl_list_methods", "`ansible.builtin.debug`: result `msg`: ansible 0, image-cli \"0\""),
    ("tpl_lookup_file", "`ansible.builtin.debug`: result `msg`: ansible {\"name\":\"corpus\",\"nested\":{\"enabled\":true,\"level\":3},\"ports\":[…"),
    ("tpl_lookup_fileglob", "`ansible.builtin.debug`: result `msg`: ansible [\"a.txt\"], image-cli \"[\\n  \\\"a.txt\\\"\\n]\""),
    ("tpl_lookup_template", "`ansible.builtin.debug`: ansible ok (parent start child sees demoparent end), image-cli failed (template erro…"),
    ("tpl_map_select", "`ansible.builtin.debug`: result `msg`: ansible [\"ann\",\"bob\"], image-cli \"[\\n  \\\"ann\\\",\\n  \\\"bob\\\"\\n]\""),
    ("tpl_math", "`ansible.builtin.debug`: result `msg`: ansible 3, image-cli \"3\""),
    ("tpl_now_year", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"false\""),
    ("tpl_path_filters", "`ansible.builtin.debug`: result `msg`: ansible [\"c.tar\",\".gz\"], image-cli \"[\\n  \\\"c.tar\\\",\\n  \\\".gz\\\"\\n]\""),
    ("tpl_product_permutations", "`ansible.builtin.debug`: result `msg`: ansible [[\"a\",1],[\"a\",2],[\"b\",1],[\"b\",2]], image-cli \"[\\n  [\\n    \\\"a\\…"),
    ("tpl_query_items", "`ansible.builtin.debug`: result `msg`: ansible [1,2], image-cli \"[\\n  1,\\n  2\\n]\""),
    ("tpl_random_seeded", "`ansible.builtin.debug`: result `msg`: ansible 4, image-cli \"4\""),
    ("tpl_range_loop_controls", "`ansible.builtin.debug`: result `msg`: ansible [0,1,2], image-cli \"[\\n  0,\\n  1,\\n  2\\n]\""),
    ("tpl_regex_search", "`ansible.builtin.debug`: result `msg`: ansible [\"1\",\"22\",\"333\"], image-cli \"[\\n  \\\"1\\\",\\n  \\\"22\\\",\\n  \\\"333\\\"…"),
    ("tpl_regex_tests", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_set_filters", "`ansible.builtin.debug`: result `msg`: ansible [1,2,3], image-cli \"[\\n  1,\\n  2,\\n  3\\n]\""),
    ("tpl_sort_minmax", "`ansible.builtin.debug`: result `msg`: ansible [1,2,3], image-cli \"[\\n  1,\\n  2,\\n  3\\n]\""),
    ("tpl_split_filter", "`ansible.builtin.debug`: result `msg`: ansible [\"a\",\"b\",\"c\"], image-cli \"[\\n  \\\"a\\\",\\n  \\\"b\\\",\\n  \\\"c\\\"\\n]\""),
    ("tpl_str_find_count", "`ansible.builtin.debug`: result `msg`: ansible 1, image-cli \"1\""),
    ("tpl_str_isdigit", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_str_join_splitlines", "`ansible.builtin.debug`: result `msg`: ansible [\"l1\",\"l2\"], image-cli \"[\\n  \\\"l1\\\",\\n  \\\"l2\\\"\\n]\""),
    ("tpl_str_split", "`ansible.builtin.debug`: result `msg`: ansible [\"a\",\"b\",\"c\"], image-cli \"[\\n  \\\"a\\\",\\n  \\\"b\\\",\\n  \\\"c\\\"\\n]\""),
    ("tpl_str_startswith", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_string_filters", "`ansible.builtin.debug`: result `msg`: ansible 3, image-cli \"3\""),
    ("tpl_subset_tests", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_to_datetime", "`ansible.builtin.debug`: ansible ok (2024), image-cli failed (template error in arguments: unknown filter: fi…"),
    ("tpl_type_tests", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_vars_dict", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_version_test", "`ansible.builtin.debug`: result `msg`: ansible true, image-cli \"true\""),
    ("tpl_yaml_roundtrip", "`ansible.builtin.debug`: result `msg`: ansible {\"a\":1,\"b\":[\"x\"]}, image-cli \"{\\n  \\\"a\\\": 1,\\n  \\\"b\\\": [\\n    …"),
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
        let batch: Vec<&Playbook> = if queue[0].ends_failed {
            vec![queue[0]]
        } else {
            queue
                .iter()
                .take_while(|p| !p.ends_failed)
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
    let (pbs, ex) = (playbooks.clone(), extra.clone());
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

    // Verdicts.
    let mut report = String::new();
    let mut module_keys = std::collections::BTreeSet::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let (mut matching, mut known) = (0, 0);
    for p in &playbooks {
        let (a_tasks, a_failed) = theirs.get(&p.stem).cloned().unwrap_or_default();
        let mut diffs = match ours.get(&p.stem) {
            Some(CliRun::Refused(d)) => vec![format!("image-cli refused it: {}", d.trim())],
            Some(CliRun::Ran { tasks, failed }) => {
                module_keys.extend(compare::module_keys(&a_tasks, tasks));
                let mut d = compare::compare(&a_tasks, tasks);
                if *failed != a_failed {
                    d.push(format!(
                        "the run {} under ansible-core, {} under image-cli",
                        if a_failed { "failed" } else { "succeeded" },
                        if *failed { "failed" } else { "succeeded" }
                    ));
                }
                d
            }
            None => vec!["image-cli did not run it".into()],
        };
        diffs.extend(tree::diff(&tree_a, &tree_b, &p.paths));
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
    report.push_str(&format!(
        "\nModule return keys image-cli lacks or returns differently (not part of the verdict, {}):\n",
        module_keys.len()
    ));
    for k in &module_keys {
        report.push_str(&format!("  - {k}\n"));
    }
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
