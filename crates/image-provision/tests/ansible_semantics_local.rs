//! Play and task keywords against this machine, each playbook also run
//! by ansible-core 2.19 (`ansible-playbook -i localhost, -c local`) when it
//! was written: the recap counts asserted here are the ones ansible-core
//! printed for the same playbook, and the `assert` tasks inside check the
//! values ansible-core computed. Files are written under a temp dir only.

mod common;

use common::{run_in, steps, write};
use image_provision::{Options, Recap};

fn recap(
    ok: usize,
    changed: usize,
    failed: usize,
    skipped: usize,
    rescued: usize,
    ignored: usize,
) -> Recap {
    Recap {
        ok,
        changed,
        unreachable: 0,
        failed,
        skipped,
        rescued,
        ignored,
    }
}

fn roles(dir: &std::path::Path) {
    write(
        dir,
        "imp_when.yml",
        r#"- set_fact: {gate: closed}
- debug: msg=second-import-task
"#,
    );
    write(
        dir,
        "inc.yml",
        r#"- assert: {that: ["iv == 'include_param'", "sf == 'include_wins'"]}
"#,
    );
    write(
        dir,
        "inc_loop.yml",
        r#"- debug: msg="inner {{ outer }} {{ ansible_loop_var }}"
- set_fact: {seen: "{{ seen | default([]) + [outer] }}"}
"#,
    );
    write(
        dir,
        "inc_prec.yml",
        r#"- assert: {that: ["ip == 'include_param'", "a_sf == 'include_param'"]}
  vars: {a_sf: task_loses}
"#,
    );
    write(
        dir,
        "roles/p/defaults/main.yml",
        r#"a_def: p_default
a_play: p_default
a_vf: p_default
a_rvar: p_default
a_rkw: p_default
a_sf: p_default
q_sees_parent_default: from_p
"#,
    );
    write(
        dir,
        "roles/p/meta/main.yml",
        r#"dependencies:
  - role: q
"#,
    );
    write(
        dir,
        "roles/p/tasks/main.yml",
        r#"- block:
    - assert:
        that:
          - a_def == 'p_default'
          - a_play == 'play'
          - a_vf == 'vars_file'
          - a_rvar == 'role_kw_loses_to_nothing'
          - a_rkw == 'role_kw'
          - a_blk == 'block'
          - a_task == 'task'
          - a_iv == 'include_vars'
          - a_sf == 'set_fact'
          - a_par == 'param'
          - a_ext == 'extra'
          - q_def == 'q_default'
      vars:
        a_task: task
        a_iv: task
        a_sf: task
        a_par: task
        a_ext: task
  vars:
    a_blk: block
    a_task: block
"#,
    );
    write(
        dir,
        "roles/p/vars/main.yml",
        r#"a_rvar: p_vars
a_blk: p_vars
"#,
    );
    write(
        dir,
        "roles/q/defaults/main.yml",
        r#"q_def: q_default
a_def: q_default_loses
"#,
    );
    write(
        dir,
        "roles/q/tasks/main.yml",
        r#"- assert:
    that:
      - q_sees_parent_default == 'from_p'
      - a_par == 'param'
      - a_rvar == 'p_vars'
"#,
    );
    write(
        dir,
        "roles/r1/defaults/main.yml",
        r#"d1: r1_default
shared: r1_default
r2_param_src: from_r1_defaults
"#,
    );
    write(
        dir,
        "roles/r1/handlers/main.yml",
        r#"- name: r1 handler
  include_tasks: h.yml
- name: other
  debug: msg=listened
  listen: topic2
"#,
    );
    write(
        dir,
        "roles/r1/meta/main.yml",
        r#"dependencies:
  - role: r2
    r2p: "{{ r2_param_src }}"
"#,
    );
    write(
        dir,
        "roles/r1/tasks/h.yml",
        r#"- debug: msg=handler-included
"#,
    );
    write(
        dir,
        "roles/r1/tasks/main.yml",
        r#"- assert:
    that:
      - d1 == 'r1_default'
      - v1 == 'r1_vars'
      - d2 == 'r2_default'
      - role_name == 'r1'
- shell: echo hi
  notify: r1 handler
- shell: echo hi2
  notify: topic2
"#,
    );
    write(
        dir,
        "roles/r1/vars/main.yml",
        r#"v1: r1_vars
"#,
    );
    write(
        dir,
        "roles/r2/defaults/main.yml",
        r#"d2: r2_default
"#,
    );
    write(
        dir,
        "roles/r2/tasks/main.yml",
        r#"- assert:
    that:
      - r2p == 'from_r1_defaults'
      - role_name == 'r2'
"#,
    );
    write(
        dir,
        "roles/r3/defaults/main.yml",
        r#"r3d: r3_default
"#,
    );
    write(
        dir,
        "roles/r3/tasks/main.yml",
        r#"- debug: msg="r3 {{ r3d }}"
- meta: end_role
  when: stop_r3 | default(false)
- debug: msg="r3 after end_role"
"#,
    );
    write(
        dir,
        "roles/r3/tasks/other.yml",
        r#"- command: "true"
  changed_when: false
  register: r3o
- assert: {that: ["r3o.rc == 0"]}
"#,
    );
    write(
        dir,
        "roles/r3/vars/main.yml",
        r#"r3v: r3_vars
"#,
    );
    write(
        dir,
        "vf/a.yml",
        r#"vf_a: from_vf_a
"#,
    );
    write(
        dir,
        "vf/b.yml",
        r#"vf_b: from_b
"#,
    );
    write(
        dir,
        "vf/iv.yml",
        r#"a_iv: include_vars
a_sf: include_vars
"#,
    );
    write(
        dir,
        "vf/prec.yml",
        r#"a_vf: vars_file
a_rvar: vars_file
"#,
    );
}

/// Every `with_*` form and `loop_control` key; a loop over an undefined
/// variable is skipped by a false `when` (ansible's TaskExecutor evaluates
/// the condition before raising the loop's error); one recap count per task.
#[tokio::test]
async fn loops_as_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- hosts: localhost
  gather_facts: false
  vars:
    users:
      - {name: a, keys: [k1, k2]}
      - {name: b, keys: [k3]}
  tasks:
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item] }}"}
      with_items: [[1, 2], 3, [4, [5]]]
    - assert: {that: ["acc == [1, 2, 3, 4, [5]]"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item.key ~ '=' ~ item.value] }}"}
      with_dict: {x: 1, y: 2}
    - assert: {that: ["acc == ['x=1', 'y=2']"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item] }}"}
      with_together: [[a, b, c], [1, 2]]
    - assert: {that: ["acc == [['a', 1], ['b', 2], ['c', None]]"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item] }}"}
      with_sequence: start=1 end=5 stride=2 format=n%02d
    - assert: {that: ["acc == ['n01', 'n03', 'n05']"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item] }}"}
      with_sequence: count=2
    - assert: {that: ["acc == ['1', '2']"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item[0] ~ item[1]] }}"}
      with_nested: [[a, b], [1, 2]]
    - assert: {that: ["acc == ['a1', 'a2', 'b1', 'b2']"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item.0.name ~ ':' ~ item.1] }}"}
      with_subelements: ["{{ users }}", keys]
    - assert: {that: ["acc == ['a:k1', 'a:k2', 'b:k3']"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item] }}"}
      with_indexed_items: [x, y]
    - assert: {that: ["acc == [[0, 'x'], [1, 'y']]"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [item] }}"}
      with_list: [[1, 2], 3]
    - assert: {that: ["acc == [[1, 2], 3]"]}
    - set_fact: {pick: "{{ item }}"}
      with_random_choice: [only]
    - assert: {that: ["pick == 'only'"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [[ansible_loop.index, ansible_loop.first, ansible_loop.last, ansible_loop.revindex, ansible_loop.previtem | default('-'), ansible_loop.length, idx]] }}"}
      loop: [p, q]
      loop_control: {extended: true, index_var: idx, label: "L{{ idx }}"}
    - assert: {that: ["acc == [[1, True, False, 2, '-', 2, 0], [2, False, True, 1, 'p', 2, 1]]"]}
    - set_fact: {acc: []}
    - set_fact: {acc: "{{ acc + [x] }}"}
      loop: [1, 2, 3, 4]
      loop_control: {loop_var: x, break_when: ["x == 2"]}
    - assert: {that: ["acc == [1, 2]"]}
    - debug: msg=never
      loop: "{{ not_defined_anywhere }}"
      when: false
    - debug: msg=empty
      loop: []
    - debug: msg="{{ item }}"
      loop: [1, 2, 3]
      when: item > 1
      register: partial
    - assert: {that: ["partial.results | length == 3", "partial.results[0].skipped", "not partial.skipped"]}
    - debug: msg="{{ item }}"
      loop: [1, 2]
      when: item > 5
      register: allskip
    - assert: {that: ["allskip.skipped"]}
    - shell: exit 1
      loop: [1, 2]
      ignore_errors: true
      register: lf
    - assert: {that: ["lf.failed", "lf.results | length == 2", "lf.msg == 'One or more items failed'"]}
    - debug: msg=x
      loop: "{{ not_defined_anywhere }}"
      ignore_errors: true
"#,
    );
    let (r, _) = run_in(dir, &s, &Options::default()).await;
    // ansible-core 2.19: ok=41 changed=1 failed=0 skipped=3 rescued=0 ignored=2
    assert_eq!(r.recap, recap(41, 1, 0, 3, 0, 2), "{:#?}", r.results);
}

/// Play keywords (ignore_errors, environment, module_defaults, vars_files
/// with a first-found list, gather_facts: false), role dependency params
/// that use the parent role's defaults, include params, `setup` and
/// `group_by` as tasks, delegation to localhost, `meta: end_play`.
#[tokio::test]
async fn play_keywords_as_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    roles(dir);
    let s = steps(
        dir,
        r#"
- hosts: localhost
  gather_facts: false
  ignore_errors: true
  environment: {PLAYENV: pe}
  module_defaults:
    shell: {chdir: /tmp}
  vars_files:
    - vf/a.yml
    - [vf/missing.yml, vf/b.yml]
  vars:
    pv: play
    vf_a: play_loses
  tasks:
    - assert: {that: ["vf_a == 'from_vf_a'", "vf_b == 'from_b'", "pv == 'play'"]}
    - assert: {that: ["ansible_facts == {}"]}
    - shell: echo $PLAYENV; pwd
      register: e
      changed_when: false
    - assert: {that: ["e.stdout_lines == ['pe', '/tmp']"]}
    - fail: msg=ignored-by-play
    - include_role: {name: r1}
    - set_fact: {sf: 1}
    - include_tasks: inc.yml
      vars: {iv: include_param, sf: include_wins}
    - setup:
        filter: ansible_system
    - assert: {that: ["ansible_facts.system == 'Linux'", "ansible_system == 'Linux'"]}
    - group_by: {key: "grp_{{ 'x' }}"}
    - assert: {that: ["'grp_x' in group_names", "groups['grp_x'] == [inventory_hostname]"]}
    - debug: msg=delegated
      delegate_to: localhost
    - local_action: {module: debug, msg: local}
    - debug: msg=once
      run_once: true
    - meta: noop
    - meta: end_play
      when: false
    - debug: msg=before-end
    - meta: end_play
    - debug: msg=never
"#,
    );
    let (r, _) = run_in(dir, &s, &Options::default()).await;
    // ansible-core 2.19: ok=21 changed=3 failed=0 skipped=0 rescued=0 ignored=1
    assert_eq!(r.recap, recap(21, 3, 0, 0, 0, 1), "{:#?}", r.results);
    assert!(!r.results.iter().any(|t| t.msg == "never"));
}

/// Handlers: definition order, `listen`, `role : name`, a handler that
/// includes a file from its role's tasks/, flushes per section; blocks with
/// rescue/always and a false block `when`.
#[tokio::test]
async fn handlers_and_blocks_as_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    roles(dir);
    let s = steps(
        dir,
        r#"
- hosts: localhost
  gather_facts: false
  vars: {d: @D@/work}
  pre_tasks:
    - file: {path: "{{ d }}", state: absent}
      changed_when: false
    - file: {path: "{{ d }}", state: directory}
      notify: h-pre
  roles:
    - role: r1
  tasks:
    - copy: {content: "1", dest: "{{ d }}/a"}
      notify: [h2, h1]
    - copy: {content: "1", dest: "{{ d }}/a"}
      notify: h3
    - command: "true"
      notify: "r1 : r1 handler"
    - meta: flush_handlers
    - debug: msg=after-flush
    - block:
        - command: "false"
        - debug: msg=skipped-by-failure
      rescue:
        - debug: msg="rescued {{ ansible_failed_task.name | default('') }} {{ ansible_failed_result.rc }}"
      always:
        - debug: msg=always
    - block:
        - debug: msg=in-block
      when: false
    - block:
        - command: "true"
          changed_when: false
      vars: {bv: 1}
      become: false
  handlers:
    - name: h1
      debug: msg=h1
    - name: h2
      debug: msg=h2
    - name: h3
      debug: msg=h3-not-notified
    - name: h-pre
      debug: msg=pre
"#,
    );
    let (r, _) = run_in(dir, &s, &Options::default()).await;
    // ansible-core 2.19: ok=19 changed=5 failed=0 skipped=1 rescued=1 ignored=0
    assert_eq!(r.recap, recap(19, 5, 0, 1, 1, 0), "{:#?}", r.results);
    let order: Vec<&str> = r
        .results
        .iter()
        .map(|t| t.msg.as_str())
        .filter(|m| ["pre", "handler-included", "listened", "h1", "h2"].contains(m))
        .collect();
    assert_eq!(order, ["pre", "handler-included", "listened", "h1", "h2"]);
}

/// Looped include_tasks with loop_var, import_tasks `when` evaluated per
/// task, include_role public/tasks_from/apply, `meta: end_role`, task
/// environment templates, until per loop item, clear_facts, first_found
/// and fileglob loops, play-level no_log, end_host, three plays (facts
/// gathered per play).
#[tokio::test]
async fn includes_roles_and_plays_as_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    roles(dir);
    let s = steps(
        dir,
        r#"
- hosts: localhost
  gather_facts: true
  check_mode: false
  tasks:
    - include_tasks: inc_loop.yml
      loop: [a, b]
      loop_control: {loop_var: outer}
    - assert: {that: ["seen == ['a', 'b']"]}
    - import_tasks: imp_when.yml
      when: gate | default('open') == 'open'
    - include_role:
        name: r3
        public: true
    - assert: {that: ["r3d == 'r3_default'", "r3v == 'r3_vars'"]}
    - include_role:
        name: r3
        tasks_from: other
        apply:
          tags: [t_apply]
      tags: [t_apply]
    - include_role: {name: r3}
      vars: {stop_r3: true}
    - shell: echo "$X"
      environment: {X: "{{ 'ab' | upper }}"}
      register: envo
      changed_when: false
    - assert: {that: ["envo.stdout == 'AB'"]}
    - shell: "n=$(cat @D@/cnt_{{ item }} 2>/dev/null || echo 0); n=$((n+1)); echo $n > @D@/cnt_{{ item }}; echo $n"
      loop: [u1, u2]
      register: uu
      until: uu.stdout | int >= 2
      retries: 3
      delay: 0
    - assert: {that: ["uu.results | map(attribute='attempts') | list == [2, 2]"]}
    - file: {path: "@D@/cnt_{{ item }}", state: absent}
      loop: [u1, u2]
    - assert: {that: ["ansible_facts.os_family is defined"]}
    - meta: clear_facts
    - assert: {that: ["ansible_facts.os_family is not defined"]}
    - debug: msg="{{ item }}"
      with_first_found:
        - files: [nope.yml, inc_loop.yml]
          paths: ["{{ playbook_dir }}"]
    - debug: msg="{{ item | basename }}"
      with_fileglob: ["{{ playbook_dir }}/vf/*.yml"]
- hosts: localhost
  gather_facts: false
  no_log: true
  tasks:
    - debug: msg=secret
    - meta: end_host
    - debug: msg=never
- hosts: localhost
  tasks:
    - debug: msg=third-play
"#,
    );
    let (r, _) = run_in(dir, &s, &Options::default()).await;
    // ansible-core 2.19: ok=30 changed=2 failed=0 skipped=1 rescued=0 ignored=0
    assert_eq!(r.recap, recap(30, 2, 0, 1, 0, 0), "{:#?}", r.results);
    assert!(r.results.iter().any(|t| t.msg == "third-play"));
    assert!(!r
        .results
        .iter()
        .any(|t| t.msg == "never" || t.msg == "secret"));
}

/// The documented precedence levels, each shadowing the one below: role
/// defaults (the dependency sees its parent's), play vars, vars_files,
/// role vars, the role call's `vars:`, block and task vars, include_vars,
/// set_fact, role params, include params, extra vars.
#[tokio::test]
async fn variable_precedence_as_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    roles(dir);
    let s = steps(
        dir,
        r#"
- hosts: localhost
  gather_facts: false
  vars:
    a_play: play
    a_vf: play
  vars_files: [vf/prec.yml]
  pre_tasks:
    - include_vars: vf/iv.yml
    - set_fact: {a_sf: set_fact, a_par: set_fact, a_ext: set_fact}
  roles:
    - role: p
      a_par: param
      a_ext: param
      vars: {a_rkw: role_kw, a_rvar: role_kw_loses_to_nothing}
  tasks:
    - assert: {that: ["a_def == 'p_default'", "a_rvar is defined"]}
    - include_tasks: inc_prec.yml
      vars: {ip: include_param, a_sf: include_param}
"#,
    );
    let mut o = Options::default();
    o.extra_vars.insert("a_ext".into(), "extra".into());
    let (r, _) = run_in(dir, &s, &o).await;
    // ansible-core 2.19 (-e a_ext=extra): ok=7 changed=0 failed=0 skipped=0
    assert_eq!(r.recap, recap(7, 0, 0, 0, 0, 0), "{:#?}", r.results);
}

/// Refused as ansible-core refuses them (or, for vars_prompt, because
/// there is no terminal): keywords a dynamic include would not pass on.
#[test]
fn refused_play_and_include_keywords() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "p.yml", "- hosts: all\n  vars_prompt:\n    - name: pw\n  tasks:\n    - include_tasks: x.yml\n      become: true\n");
    let e = image_provision::parse::load(&dir.join("p.yml"), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("p.yml:2:3: error: vars_prompt is not supported"),
        "{e}"
    );
    assert!(
        e.contains("p.yml:6:7: error: 'become' is not a valid attribute for a TaskInclude"),
        "{e}"
    );
}

/// Task check_mode, delegate_to localhost, run_once, templated task names,
/// and an include whose file is missing inside a block with rescue: the
/// rescue runs but ansible counts the failure (not a rescue).
#[tokio::test]
async fn misc_keywords_as_ansible() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = steps(
        dir,
        r#"
- hosts: localhost
  gather_facts: false
  tasks:
    - copy: {content: x, dest: @D@/cm_file}
      check_mode: true
      register: cm
    - assert: {that: ["cm.changed", "'@D@/cm_file' is not exists"]}
    - set_fact: {df2: 1}
      delegate_to: localhost
    - assert: {that: ["df2 == 1"]}
    - command: echo hi
      run_once: true
      register: ro
    - assert: {that: ["ro.stdout == 'hi'"]}
    - debug: msg="{{ ansible_check_mode }}"
      check_mode: true
      register: acm
    - name: with_items over a dict-list and templated name {{ 1 + 1 }}
      debug: msg="{{ item.k }}"
      with_items: [{k: a}, {k: b}]
    - block:
        - include_tasks: nope_{{ 'missing' }}.yml
      rescue:
        - debug: msg=rescued-include
"#,
    );
    let (r, _) = run_in(dir, &s, &Options::default()).await;
    // ansible-core 2.19: ok=9 changed=2 failed=1 skipped=0 rescued=0 ignored=0
    assert_eq!(r.recap, recap(9, 2, 1, 0, 0, 0), "{:#?}", r.results);
    assert!(!dir.join("cm_file").exists());
}
