//! Task keywords against this machine: when, loop, register, until,
//! handlers, block/rescue/always, tags, become, no_log, precedence,
//! includes and roles.

mod common;

use common::{events_text, run_in, steps, write};
use image_core::events::Outcome;
use image_provision::{Options, CENSORED};

fn opts() -> Options {
    Options::default()
}

#[tokio::test]
async fn when_loop_register_until() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- shell: echo hi
  register: out
  changed_when: false
- assert:
    that:
      - out.stdout == "hi"
      - out.rc == 0
      - out is succeeded
- copy:
    content: "{{ item.v }}"
    dest: "@D@/{{ item.k }}"
  loop: "{{ pairs }}"
  loop_control:
    label: "{{ item.k }}"
  vars:
    pairs: [{k: a, v: "1"}, {k: b, v: "2"}]
  register: copies
- assert:
    that: copies.results | length == 2 and copies.changed
- debug: msg=skipped
  when: ansible_os_family == "Nope"
- file: path=@D@/{{ item }} state=touch
  with_items: [[x, y], z]
- set_fact: {count: 0}
- shell: "echo $(( {{ count }} + 1 ))"
  register: r
  until: r.stdout == "3"
  retries: 5
  delay: 0
  changed_when: false
  vars: {count: "{{ (lookup('file', '@D@/n') if False else 0) }}"}
  ignore_errors: true
- shell: "n=$(cat @D@/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > @D@/n; echo $n"
  register: r2
  until: r2.stdout | int >= 3
  retries: 5
  delay: 0
- assert: {that: [r2.attempts == 3]}
- command: /bin/false
  ignore_errors: true
  register: f
- assert: {that: [f is failed, f.rc == 1]}
"#,
    );
    let (r, _) = run_in(dir, &s, &opts()).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    assert_eq!(std::fs::read_to_string(dir.join("b")).unwrap(), "2");
    for f in ["x", "y", "z"] {
        assert!(dir.join(f).exists());
    }
    assert!(r.results.iter().any(|t| t.item.as_deref() == Some("a")));
    assert_eq!(r.recap.skipped, 1);
    assert_eq!(r.recap.ignored, 2);
}

#[tokio::test]
async fn handlers_run_once_in_definition_order_at_end_and_flush() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- hosts: all
  tasks:
    - copy: {content: "1", dest: "@D@/c1"}
      notify: [second, first]
    - copy: {content: "2", dest: "@D@/c2"}
      notify: first
    - meta: flush_handlers
    - shell: cat @D@/log
      register: mid
      changed_when: false
    - copy: {content: "3", dest: "@D@/c3"}
      notify: topic
    - debug: msg=unchanged
      notify: first
  handlers:
    - name: first
      shell: echo first >> @D@/log
    - name: second
      shell: echo second >> @D@/log
    - name: third
      shell: echo third >> @D@/log
      listen: topic
"#,
    );
    let (r, _) = run_in(dir, &s, &opts()).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    assert_eq!(
        std::fs::read_to_string(dir.join("log")).unwrap(),
        "first\nsecond\nthird\n"
    );
    let (r2, _) = run_in(dir, &s, &opts()).await;
    assert_eq!(r2.recap.changed, 0);
    assert_eq!(
        std::fs::read_to_string(dir.join("log")).unwrap(),
        "first\nsecond\nthird\n"
    );
}

#[tokio::test]
async fn block_rescue_always() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- block:
    - shell: exit 3
    - shell: echo never > @D@/never
  rescue:
    - shell: echo "{{ ansible_failed_result.rc }}" > @D@/rescued
  always:
    - shell: echo yes > @D@/always
- name: after the block
  shell: echo ok > @D@/after
- block:
    - fail: msg=boom
  always:
    - shell: echo a2 > @D@/always2
- name: not reached
  shell: echo x > @D@/unreached
"#,
    );
    let (r, _) = run_in(dir, &s, &opts()).await;
    assert!(!dir.join("never").exists());
    assert_eq!(std::fs::read_to_string(dir.join("rescued")).unwrap(), "3\n");
    assert!(
        dir.join("always").exists() && dir.join("after").exists() && dir.join("always2").exists()
    );
    assert!(!dir.join("unreached").exists());
    assert_eq!(r.recap.rescued, 1);
    assert_eq!(r.recap.failed, 1);
    assert!(r.failed());
    let fail = r
        .results
        .iter()
        .find(|t| t.outcome == Outcome::Failed && t.msg.contains("boom"))
        .unwrap();
    assert!(
        fail.loc.to_string().ends_with("steps.yaml:12:7"),
        "{}",
        fail.loc
    );
}

#[tokio::test]
async fn tags_select_and_skip() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- file: {path: "@D@/a", state: touch}
  tags: [a]
- file: {path: "@D@/b", state: touch}
  tags: b
- file: {path: "@D@/always", state: touch}
  tags: [always]
- file: {path: "@D@/never", state: touch}
  tags: [never]
- block:
    - file: {path: "@D@/blk", state: touch}
  tags: [a]
"#,
    );
    let (r, _) = run_in(
        dir,
        &s,
        &Options {
            tags: vec!["a".into()],
            ..opts()
        },
    )
    .await;
    assert_eq!(r.recap.failed, 0);
    assert!(dir.join("a").exists() && dir.join("always").exists() && dir.join("blk").exists());
    assert!(!dir.join("b").exists() && !dir.join("never").exists());
    let (_, _) = run_in(
        dir,
        &s,
        &Options {
            skip_tags: vec!["a".into()],
            ..opts()
        },
    )
    .await;
    assert!(dir.join("b").exists() && !dir.join("never").exists());
    let (_, _) = run_in(
        dir,
        &s,
        &Options {
            tags: vec!["never".into()],
            ..opts()
        },
    )
    .await;
    assert!(dir.join("never").exists());
}

#[tokio::test]
async fn no_log_hides_values_everywhere() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- shell: echo s3cr3t-value
  register: sec
  no_log: true
- copy: {content: "{{ sec.stdout }}", dest: "@D@/out"}
  no_log: true
  diff: true
- shell: "echo s3cr3t-value >&2; exit 1"
  no_log: true
  ignore_errors: true
- debug: msg="{{ item }}"
  loop: [s3cr3t-value]
  no_log: true
"#,
    );
    let (r, ev) = run_in(
        dir,
        &s,
        &Options {
            diff: true,
            ..opts()
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.join("out")).unwrap(),
        "s3cr3t-value"
    );
    let all = format!("{}{}", events_text(&ev), serde_json::to_string(&r).unwrap());
    assert!(!all.contains("s3cr3t"), "{all}");
    assert!(all.contains(CENSORED));
}

#[tokio::test]
async fn variable_precedence_is_ansibles() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "roles/r/defaults/main.yml",
        "v_def: role_default\nv_play: role_default\nv_rvar: role_default\n",
    );
    write(
        dir,
        "roles/r/vars/main.yml",
        "v_rvar: role_vars\nv_block: role_vars\n",
    );
    write(
        dir,
        "roles/r/tasks/main.yml",
        r#"
- block:
    - copy:
        dest: "{{ out }}/r"
        content: "{{ [v_def, v_play, v_rvar, v_block, v_task, v_inc, v_fact, v_param, v_extra] | join(',') }}"
      vars:
        v_task: task
        v_inc: task
        v_fact: task
        v_param: task
        v_extra: task
  vars:
    v_block: block
    v_task: block
"#,
    );
    write(
        dir,
        "inc.yml",
        "v_inc: include_vars\nv_fact: include_vars\n",
    );
    let s = steps(
        dir,
        r#"
- hosts: all
  vars:
    out: "@D@"
    v_play: play
    v_rvar: play
  pre_tasks:
    - include_vars: inc.yml
    - set_fact:
        v_fact: set_fact
        v_param: set_fact
  tasks:
    - include_role:
        name: r
      vars:
        v_param: role_param
        v_extra: role_param
"#,
    );
    let mut o = opts();
    o.extra_vars.insert("v_extra".into(), "extra".into());
    let (r, _) = run_in(dir, &s, &o).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    assert_eq!(
        std::fs::read_to_string(dir.join("r")).unwrap(),
        "role_default,play,role_vars,block,task,include_vars,set_fact,role_param,extra"
    );
}

#[tokio::test]
async fn roles_with_meta_deps_handlers_and_includes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "roles/base/tasks/main.yml",
        "- shell: echo base >> {{ out }}/order\n",
    );
    write(
        dir,
        "roles/app/meta/main.yml",
        "dependencies:\n  - role: base\n",
    );
    write(
        dir,
        "roles/app/tasks/main.yml",
        "- import_tasks: part.yml\n- include_tasks: looped.yml\n  loop: [1, 2]\n",
    );
    write(
        dir,
        "roles/app/tasks/part.yml",
        "- template: {src: t.j2, dest: \"{{ out }}/t\"}\n  notify: restart app\n",
    );
    write(
        dir,
        "roles/app/tasks/looped.yml",
        "- shell: echo app{{ item }} >> {{ out }}/order\n",
    );
    write(dir, "roles/app/templates/t.j2", "{{ greeting }}\n");
    write(dir, "roles/app/defaults/main.yml", "greeting: hi\n");
    write(
        dir,
        "roles/app/handlers/main.yml",
        "- name: restart app\n  shell: echo handler >> {{ out }}/order\n",
    );
    let s = steps(
        dir,
        r#"
- hosts: all
  vars: {out: "@D@"}
  roles:
    - app
"#,
    );
    let (r, _) = run_in(dir, &s, &opts()).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "base\napp1\napp2\nhandler\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("t")).unwrap(), "hi\n");
}

#[tokio::test]
async fn become_runs_as_root() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(dir, "- shell: id -u > @D@/uid\n  become: true\n");
    let (r, _) = run_in(dir, &s, &opts()).await;
    if r.recap.failed > 0 {
        // No passwordless sudo here: the failure must say so.
        assert!(
            r.results.iter().any(|t| t.msg.contains("sudo")),
            "{:#?}",
            r.results
        );
        return;
    }
    assert_eq!(std::fs::read_to_string(dir.join("uid")).unwrap(), "0\n");
}

#[tokio::test]
async fn broken_step_lists_name_file_line_col() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "bad.yaml", "- name: ok\n  file: path=/tmp/x state=directory\n- name: bad\n  lineinfile:\n    path: /x\n    lnie: y\n- name: worse\n  shel: echo\n  loop_contrl: {}\n");
    let e = image_provision::parse::load(&dir.join("bad.yaml"), &[])
        .err()
        .unwrap()
        .to_string();
    // Misspelt modules (and parameters one edit away) are refused up
    // front; another unknown parameter is a warning and fails the task
    // when a run reaches it, as ansible's argument check.
    assert!(
        e.contains("bad.yaml:6:5: warning: unknown parameter `lnie` for module `lineinfile`"),
        "{e}"
    );
    assert!(e.contains("help: `lineinfile` takes: path"), "{e}");
    assert!(
        e.contains("bad.yaml:8:3: error: unknown module or task keyword `shel`"),
        "{e}"
    );
    write(
        dir,
        "inc.yaml",
        "- import_tasks: missing.yml\n- include_role: {name: nope}\n",
    );
    let e = image_provision::parse::load(&dir.join("inc.yaml"), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("inc.yaml:1:17: error: cannot read"), "{e}");
    // include_role is dynamic: a warning now, a failure when reached.
    assert!(
        e.contains("inc.yaml:2:17: warning: role `nope` not found"),
        "{e}"
    );
    write(
        dir,
        "dyn.yaml",
        "- include_role: {name: nope}\n  when: false\n- include_role: {name: nope}\n",
    );
    let s = image_provision::parse::load(&dir.join("dyn.yaml"), &[]).unwrap();
    let rec = image_core::events::Recorder::default();
    let r = image_provision::run(&image_core::local::LocalTarget::new(), &s, &opts(), &rec).await;
    assert_eq!(
        (r.recap.skipped, r.recap.failed),
        (1, 1),
        "{:#?}",
        r.results
    );
    let f = r
        .results
        .iter()
        .find(|t| t.outcome == Outcome::Failed)
        .unwrap();
    assert!(
        f.msg.contains("role `nope` not found") && f.msg.contains("dyn.yaml:3:3"),
        "{}",
        f.msg
    );
}

#[tokio::test]
async fn node_recipe_idioms() {
    // What images/node relies on: templated retries/delay, multi-line
    // `shell: |` scripts kept line by line, dicts in written order
    // (with_dict, dict2items), import_tasks with when, flush_handlers.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "more.yml",
        "- copy: {content: imported, dest: \"@D@/imported\"}\n"
            .replace("@D@", &dir.display().to_string())
            .as_str(),
    );
    let s = steps(
        dir,
        r#"
- set_fact:
    tries: 4
    pause: 0
    zdict: {zeta: 1, alpha: 2, mid: 3}
- shell: "n=$(cat @D@/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > @D@/n; echo $n"
  register: r
  until: r.stdout | int >= 3
  retries: "{{ tries }}"
  delay: "{{ pause }}"
- assert: {that: [r.attempts == 3]}
- shell: |
    set -eu
    found="$(echo x)"
    echo "got $found"
  args:
    executable: /bin/bash
  register: multi
  changed_when: false
- assert: {that: ['multi.stdout == "got x"']}
- shell: "echo {{ item.key }} >> @D@/order"
  with_dict: "{{ zdict }}"
- copy:
    content: "{{ zdict | dict2items | map(attribute='key') | join(',') }}"
    dest: "@D@/keys"
- import_tasks: more.yml
  when: ansible_os_family is defined
"#,
    );
    let (r, _) = run_in(dir, &s, &opts()).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "zeta\nalpha\nmid\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keys")).unwrap(),
        "zeta,alpha,mid"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("imported")).unwrap(),
        "imported"
    );
}
