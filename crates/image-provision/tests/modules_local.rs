//! File modules against this machine: first run changes, second run is
//! ok, check mode reports the change and changes nothing.

mod common;

use common::{run_in, steps, write};
use image_provision::Options;

async fn converge(dir: &std::path::Path, s: &str, check_paths: &[&str]) {
    let s = steps(dir, s);
    let snapshot = |ps: &[&str]| -> Vec<Option<Vec<u8>>> {
        ps.iter().map(|p| std::fs::read(dir.join(p)).ok()).collect()
    };
    let before = snapshot(check_paths);
    let check = Options {
        check: true,
        diff: true,
        ..Default::default()
    };
    let (r, _) = run_in(dir, &s, &check).await;
    assert_eq!(r.recap.failed, 0, "check run failed: {:#?}", r.results);
    assert!(
        r.recap.changed > 0,
        "check mode reports changes: {}",
        r.recap
    );
    assert_eq!(snapshot(check_paths), before, "check mode changed files");
    let (r1, _) = run_in(dir, &s, &Options::default()).await;
    assert_eq!(r1.recap.failed, 0, "{:#?}", r1.results);
    assert!(r1.recap.changed > 0);
    let (r2, _) = run_in(dir, &s, &Options::default()).await;
    assert_eq!(r2.recap.failed, 0, "{:#?}", r2.results);
    assert_eq!(
        r2.recap.changed,
        0,
        "second run must be idempotent: {:#?}",
        r2.results
            .iter()
            .filter(|t| t.outcome == image_core::events::Outcome::Changed)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn file_copy_template_edit_modules_converge() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "templates/conf.j2",
        "name={{ who }}\n{% for p in ports %}port={{ p }}\n{% endfor %}",
    );
    write(dir, "files/static.txt", "static\n");
    write(dir, "out/edit.conf", "a=1\n#b=2\n");
    write(dir, "out/app.ini", "[main]\nx = 1\n");
    converge(
        dir,
        r#"
- file: path=@D@/out/dir state=directory mode=0750
- copy:
    content: "hello\n"
    dest: "@D@/out/hello.txt"
    mode: "0600"
- copy: src=static.txt dest=@D@/out/
- template:
    src: conf.j2
    dest: "@D@/out/app.conf"
  vars:
    who: world
    ports: [1, 2]
- lineinfile:
    path: "@D@/out/edit.conf"
    regexp: '^#?b='
    line: b=3
- lineinfile: path=@D@/out/edit.conf line=c=4
- blockinfile:
    path: "@D@/out/edit.conf"
    block: |
      x
      y
- replace:
    path: "@D@/out/edit.conf"
    regexp: '^a=1$'
    replace: 'a=9'
- ini_file: path=@D@/out/app.ini section=main option=y value=2
- file: path=@D@/out/link src=@D@/out/hello.txt state=link
- sysctl:
    name: net.ipv4.ip_forward
    value: "1"
    sysctl_file: "@D@/out/99-k8s.conf"
    reload: false
- command: touch @D@/out/made
  args:
    creates: "@D@/out/made"
"#,
        &[
            "out/hello.txt",
            "out/edit.conf",
            "out/app.ini",
            "out/app.conf",
        ],
    )
    .await;
    let rd = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    assert_eq!(rd("out/hello.txt"), "hello\n");
    assert_eq!(
        std::fs::read_link(dir.join("out/link")).expect("the symlink was created"),
        dir.join("out/hello.txt")
    );
    assert_eq!(rd("out/static.txt"), "static\n");
    assert_eq!(rd("out/app.conf"), "name=world\nport=1\nport=2\n");
    assert_eq!(
        rd("out/edit.conf"),
        "a=9\nb=3\nc=4\n# BEGIN ANSIBLE MANAGED BLOCK\nx\ny\n# END ANSIBLE MANAGED BLOCK\n"
    );
    assert_eq!(rd("out/app.ini"), "[main]\nx = 1\ny = 2\n");
    assert_eq!(rd("out/99-k8s.conf"), "net.ipv4.ip_forward=1\n");
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(dir.join("out/hello.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o777, 0o600);
    let m = std::fs::metadata(dir.join("out/dir"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o777, 0o750);
}

#[tokio::test]
async fn diff_shows_changed_lines() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "f.txt", "one\ntwo\n");
    let s = steps(
        dir,
        "- copy:\n    content: \"one\\nTWO\\n\"\n    dest: \"@D@/f.txt\"\n",
    );
    let (r, ev) = run_in(
        dir,
        &s,
        &Options {
            diff: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.recap.changed, 1);
    let text = common::events_text(&ev);
    assert!(text.contains("-two") && text.contains("+TWO"), "{text}");
}

/// Issue 15's modules on this machine: find with Python's `re`, slurp,
/// tempfile, getent, sysctl's plan order is unit-tested in the crate.
#[tokio::test]
async fn find_slurp_tempfile_getent() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for f in [
        "logs/Boot.LOG",
        "logs/a.log",
        "logs/b.log.1",
        "logs/c.gz",
        "logs/sub/e.log",
        "slurp.txt",
    ] {
        write(dir, f, "x\n");
    }
    let s = steps(
        dir,
        r#"
- find: {paths: "@D@/logs", patterns: '(?i).*\.log$', recurse: true, use_regex: true}
  register: logs
- find: {paths: "@D@/logs", patterns: '.*[0-9z]$', use_regex: true}
  register: rot
- slurp: {path: "@D@/slurp.txt"}
  register: s
- tempfile: {path: "@D@", prefix: pm., suffix: .tmp}
  register: t
- getent: {database: passwd, key: root}
- assert:
    that:
      - logs.matched == 3
      - rot.files | map(attribute='path') | map('basename') | sort | list == ['b.log.1', 'c.gz']
      - s.content == 'eAo='
      - t.path is match('.*/pm\..*\.tmp$')
      - ansible_facts.getent_passwd.root[0] == 'x'
"#,
    );
    let (r, _) = run_in(dir, &s, &Options::default()).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    let t = r
        .results
        .iter()
        .find(|t| t.task.starts_with("tempfile"))
        .unwrap();
    let p = t.result["path"].as_str().unwrap();
    assert!(std::path::Path::new(p).is_file(), "{p}");
}

/// Parameters that would change the module's behaviour and are not
/// implemented are refused at run time, naming the parameter; modules
/// recognised but not implemented fail with their name.
#[tokio::test]
async fn refused_parameters_and_modules() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "f.txt", "a\n");
    for (yaml, want) in [
        (
            "- lineinfile: {path: '@D@/f.txt', line: b, attributes: '+i'}\n",
            "attributes",
        ),
        (
            "- copy: {content: b, dest: '@D@/f.txt', follow: true}\n",
            "follow",
        ),
        (
            "- amazon.aws.s3_object: {bucket: b, object: o, dest: /tmp/x, mode: get}\n",
            "s3_object",
        ),
        (
            "- community.general.redhat_subscription: {state: present}\n",
            "redhat_subscription",
        ),
    ] {
        let (r, _) = run_in(dir, &steps(dir, yaml), &Options::default()).await;
        assert_eq!(r.recap.failed, 1, "{yaml}: {:#?}", r.results);
        assert!(
            r.results[0].msg.contains(want),
            "{yaml}: {}",
            r.results[0].msg
        );
    }
    assert_eq!(std::fs::read_to_string(dir.join("f.txt")).unwrap(), "a\n");
}
