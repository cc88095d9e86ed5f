//! The step engine's modules one by one against a real booted Debian target
//! (test bed). For each module that changes something, the cycle is: check
//! mode on a fresh resource reports `changed` and changes nothing (a probe
//! of the target's state is identical before and after), the first real run
//! reports `changed`, the second reports changed=0; then the real outcome is
//! asserted on the target (its filesystem through `root_dir()`, or a probe
//! command). Read-only modules (stat, find, wait_for, set_fact, assert,
//! debug, pause, package_facts, service_facts) must report ok, never changed,
//! in both modes, with the right return values; `fail` must fail.
//!
//! One boot per test function; each groups several modules.
//!
//! Skipped in nspawn: loading a kernel module (no modules on the host
//! kernel: modprobe is covered with `persistent: present` only), actually
//! mounting (mount is covered with `state: present`, fstab only).
//!
//! Needs `scripts/testbed/setup.sh` (root) and Debian's mirror.

mod bed_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bed_support::{boot, connect, serve, serve_dir};
use image_core::events::{Outcome, Recorder};
use image_core::ssh::SshTarget;
use image_core::target::{Exec, Target};
use image_provision::{parse, Options, Report};
use image_testbed::{Target as Bed, HOST_ADDR_FROM_GUEST};
use serde_json::Value as Json;

/// A tarball holding `pm/hello.sh` and `pm/data.txt`.
fn tarball() -> Vec<u8> {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(d.path().join("pm")).expect("mkdir");
    std::fs::write(d.path().join("pm/hello.sh"), "#!/bin/sh\necho hello\n").expect("write");
    std::fs::write(d.path().join("pm/data.txt"), "data\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        d.path().join("pm/hello.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let out = d.path().join("a.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(d.path())
        .arg("pm")
        .status()
        .expect("tar");
    assert!(st.success());
    std::fs::read(out).expect("read tarball")
}

/// One booted target, a connection, and a local directory with
/// `templates/` and `files/` for the step lists.
struct Ctx {
    bed: Bed,
    t: SshTarget,
    root: PathBuf,
    dir: tempfile::TempDir,
}

impl Ctx {
    async fn new() -> Ctx {
        let bed = boot().await;
        let t = connect(&bed).await;
        let root = bed.root_dir().to_path_buf();
        let dir = tempfile::tempdir().expect("tempdir");
        for (p, c) in [
            (
                "templates/pm.j2",
                "name={{ who }}\n{% for p in ports %}port={{ p }}\n{% endfor %}",
            ),
            ("files/static.txt", "static\n"),
        ] {
            let f = dir.path().join(p);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(f, c).expect("write");
        }
        let c = Ctx { bed, t, root, dir };
        c.sh("mkdir -p /opt/pm").await;
        c
    }

    /// Runs `cmd` as root on the target; its stdout. Panics on failure.
    async fn sh(&self, cmd: &str) -> String {
        let o = self
            .t
            .exec(&Exec::new(cmd).become_root())
            .await
            .expect("exec");
        assert!(o.success(), "`{cmd}`: {}", o.stderr_str());
        o.stdout_str()
    }

    /// Writes `data` to `path` on the target (as root).
    async fn put(&self, path: &str, data: &[u8]) {
        let o = self
            .t
            .exec(&Exec::new(format!("cat > {path}")).stdin(data).become_root())
            .await
            .expect("exec");
        assert!(o.success(), "put {path}: {}", o.stderr_str());
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.root.join(p.trim_start_matches('/')))
            .unwrap_or_else(|e| format!("<{p}: {e}>"))
    }

    fn exists(&self, p: &str) -> bool {
        self.root
            .join(p.trim_start_matches('/'))
            .symlink_metadata()
            .is_ok()
    }

    async fn run(&self, yaml: &str, check: bool) -> Report {
        let steps = parse::parse_str("steps.yaml", yaml, self.dir.path(), &[])
            .unwrap_or_else(|d| panic!("{d}"));
        let opts = Options {
            check,
            diff: true,
            become_: true,
            ..Default::default()
        };
        image_provision::run(&self.t, &steps, &opts, &Recorder::default()).await
    }

    /// check mode (fresh: reports changed, probe unchanged) → real run
    /// (changed) → real run (changed=0).
    async fn cycle(&self, name: &str, yaml: &str, probe: &str) -> Result<(), String> {
        let probe = format!("{{ {probe} ; }} 2>&1; true");
        let before = self.sh(&probe).await;
        let r = self.run(yaml, true).await;
        if r.recap.failed > 0 {
            return Err(format!("{name}: check mode failed: {}", failures(&r)));
        }
        if r.recap.changed == 0 {
            return Err(format!("{name}: check mode reports no change: {}", r.recap));
        }
        let after = self.sh(&probe).await;
        if after != before {
            return Err(format!(
                "{name}: check mode changed the target:\n--- before\n{before}--- after\n{after}"
            ));
        }
        let r1 = self.run(yaml, false).await;
        if r1.recap.failed > 0 {
            return Err(format!("{name}: first run failed: {}", failures(&r1)));
        }
        if r1.recap.changed == 0 {
            return Err(format!("{name}: first run reports no change: {}", r1.recap));
        }
        let r2 = self.run(yaml, false).await;
        if r2.recap.failed > 0 {
            return Err(format!("{name}: second run failed: {}", failures(&r2)));
        }
        if r2.recap.changed != 0 {
            return Err(format!(
                "{name}: second run not idempotent: {:?}",
                changed(&r2)
            ));
        }
        Ok(())
    }

    /// The cycle without its check-mode part: first run changed, second
    /// run changed=0.
    async fn apply_twice(&self, name: &str, yaml: &str) -> Result<(), String> {
        let r1 = self.run(yaml, false).await;
        if r1.recap.failed > 0 || r1.recap.changed == 0 {
            return Err(format!("{name}: first run: {} {}", r1.recap, failures(&r1)));
        }
        let r2 = self.run(yaml, false).await;
        if r2.recap.failed > 0 || r2.recap.changed != 0 {
            return Err(format!(
                "{name}: second run: {} {} {:?}",
                r2.recap,
                failures(&r2),
                changed(&r2)
            ));
        }
        Ok(())
    }

    /// A read-only step list: ok (no change, no failure) in check mode and
    /// for real; the real run's report.
    async fn read_only(&self, name: &str, yaml: &str) -> Result<Report, String> {
        for check in [true, false] {
            let r = self.run(yaml, check).await;
            if r.recap.failed > 0 {
                return Err(format!("{name} (check={check}): {}", failures(&r)));
            }
            if r.recap.changed != 0 {
                return Err(format!("{name} (check={check}): changed {:?}", changed(&r)));
            }
            if !check {
                return Ok(r);
            }
        }
        unreachable!()
    }

    async fn stop(self) {
        let bed = self.bed;
        tokio::task::spawn_blocking(move || bed.stop())
            .await
            .expect("stop");
    }
}

fn failures(r: &Report) -> String {
    r.results
        .iter()
        .filter(|t| t.outcome == Outcome::Failed)
        .map(|t| format!("[{} @ {}] {}", t.task, t.loc, t.msg))
        .collect::<Vec<_>>()
        .join("; ")
}

fn changed(r: &Report) -> Vec<String> {
    r.results
        .iter()
        .filter(|t| t.outcome == Outcome::Changed)
        .map(|t| format!("{} {:?}", t.task, t.item))
        .collect()
}

/// Collects failures so one run shows every broken module.
#[derive(Default)]
struct Errs(Vec<String>);

impl Errs {
    fn cycle(&mut self, r: Result<(), String>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.0.push(e);
                false
            }
        }
    }
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    fn check(&mut self, what: &str, ok: bool) {
        if !ok {
            self.0.push(format!("{what}: false"));
        }
    }
    fn done(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

fn result_of<'a>(r: &'a Report, task_prefix: &str) -> &'a Json {
    &r.results
        .iter()
        .find(|t| t.task.starts_with(task_prefix))
        .unwrap_or_else(|| {
            panic!(
                "no task `{task_prefix}` in {:?}",
                r.results.iter().map(|t| &t.task).collect::<Vec<_>>()
            )
        })
        .result
}

// ---------------------------------------------------------------- files --

async fn lineinfile_blockinfile_replace_ini(c: &Ctx, e: &mut Errs) {
    c.put("/opt/pm/li.conf", b"a=1\n#b=2\n").await;
    if e.cycle(
        c.cycle(
            "lineinfile",
            r#"
- lineinfile: {path: /opt/pm/li.conf, regexp: '^#?b=', line: b=3}
- lineinfile: {path: /opt/pm/li.conf, line: c=4}
- lineinfile: {path: /opt/pm/li.conf, regexp: '^a=', state: absent}
- lineinfile: {path: /opt/pm/li-new.conf, line: x=1, create: true, mode: "0640"}
"#,
            "cat /opt/pm/li.conf; ls -l /opt/pm/li-new.conf",
        )
        .await,
    ) {
        e.eq(
            "lineinfile li.conf",
            c.read("/opt/pm/li.conf"),
            "b=3\nc=4\n".into(),
        );
        e.eq(
            "lineinfile li-new.conf",
            c.read("/opt/pm/li-new.conf"),
            "x=1\n".into(),
        );
        e.eq(
            "lineinfile mode",
            c.sh("stat -c %a /opt/pm/li-new.conf").await,
            "640\n".into(),
        );
    }

    c.put("/opt/pm/bi.conf", b"top\n").await;
    if e.cycle(
        c.cycle(
            "blockinfile",
            r#"
- blockinfile:
    path: /opt/pm/bi.conf
    marker: '# {mark} PM'
    block: |
      x
      y
- blockinfile:
    path: /opt/pm/bi-new.conf
    create: true
    block: "z"
"#,
            "cat /opt/pm/bi.conf /opt/pm/bi-new.conf",
        )
        .await,
    ) {
        e.eq(
            "blockinfile bi.conf",
            c.read("/opt/pm/bi.conf"),
            "top\n# BEGIN PM\nx\ny\n# END PM\n".into(),
        );
        e.eq(
            "blockinfile bi-new.conf",
            c.read("/opt/pm/bi-new.conf"),
            "# BEGIN ANSIBLE MANAGED BLOCK\nz\n# END ANSIBLE MANAGED BLOCK\n".into(),
        );
    }

    c.put("/opt/pm/re.conf", b"port=1\nport=2\nhost=a\n").await;
    if e.cycle(
        c.cycle(
            "replace",
            r#"
- replace: {path: /opt/pm/re.conf, regexp: '^port=(\d)$', replace: 'port=1\1'}
"#,
            "cat /opt/pm/re.conf",
        )
        .await,
    ) {
        e.eq(
            "replace re.conf",
            c.read("/opt/pm/re.conf"),
            "port=11\nport=12\nhost=a\n".into(),
        );
    }

    c.put("/opt/pm/app.ini", b"[main]\nx = 1\n").await;
    if e.cycle(
        c.cycle(
            "ini_file",
            r#"
- ini_file: {path: /opt/pm/app.ini, section: main, option: x, value: "2"}
- ini_file: {path: /opt/pm/app.ini, section: main, option: y, value: "3"}
- ini_file: {path: /opt/pm/app.ini, section: other, option: z, value: "4"}
- ini_file: {path: /opt/pm/new.ini, section: s, option: k, value: v, mode: "0600"}
"#,
            "cat /opt/pm/app.ini; ls -l /opt/pm/new.ini",
        )
        .await,
    ) {
        let lines = |s: String| -> Vec<String> {
            s.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        };
        e.eq(
            "ini_file app.ini",
            lines(c.read("/opt/pm/app.ini")),
            vec!["[main]", "x = 2", "y = 3", "[other]", "z = 4"]
                .into_iter()
                .map(String::from)
                .collect(),
        );
        e.eq(
            "ini_file new.ini",
            lines(c.read("/opt/pm/new.ini")),
            vec!["[s]".to_string(), "k = v".to_string()],
        );
    }
}

async fn copy_template(c: &Ctx, e: &mut Errs) {
    c.put("/opt/pm/copy.txt", b"old\n").await;
    if e.cycle(
        c.cycle(
            "copy",
            r#"
- copy:
    content: "new\n"
    dest: /opt/pm/copy.txt
    backup: true
    mode: "0640"
    owner: builder
    group: builder
- copy: {src: static.txt, dest: /opt/pm/static.txt, mode: "0644"}
"#,
            "ls -la /opt/pm; cat /opt/pm/copy.txt",
        )
        .await,
    ) {
        e.eq("copy content", c.read("/opt/pm/copy.txt"), "new\n".into());
        e.eq("copy src", c.read("/opt/pm/static.txt"), "static\n".into());
        e.eq(
            "copy mode/owner",
            c.sh("stat -c '%a %U %G' /opt/pm/copy.txt").await,
            "640 builder builder\n".into(),
        );
        let backups: Vec<String> = std::fs::read_dir(c.root.join("opt/pm"))
            .expect("readdir")
            .flatten()
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("copy.txt.") && n.ends_with('~'))
            .collect();
        e.eq("copy backups", backups.len(), 1);
        if let Some(b) = backups.first() {
            e.eq(
                "copy backup content",
                c.read(&format!("/opt/pm/{b}")),
                "old\n".into(),
            );
        }
    }

    if e.cycle(
        c.cycle(
            "template",
            r#"
- template: {src: pm.j2, dest: /opt/pm/tpl.conf, mode: "0600"}
  vars:
    who: pm
    ports: [80, 443]
"#,
            "ls -l /opt/pm/tpl.conf; cat /opt/pm/tpl.conf",
        )
        .await,
    ) {
        e.eq(
            "template content",
            c.read("/opt/pm/tpl.conf"),
            "name=pm\nport=80\nport=443\n".into(),
        );
        e.eq(
            "template mode",
            c.sh("stat -c %a /opt/pm/tpl.conf").await,
            "600\n".into(),
        );
    }
}

async fn file_states(c: &Ctx, e: &mut Errs) {
    c.put("/opt/pm/target.txt", b"target\n").await;
    c.put("/opt/pm/gone", b"x").await;
    c.put("/opt/pm/perm.txt", b"p\n").await;
    if e.cycle(
        c.cycle(
            "file",
            r#"
- file: {path: /opt/pm/d, state: directory, mode: "0750", owner: builder, group: builder}
- file: {path: /opt/pm/lnk, src: /opt/pm/target.txt, state: link}
- file: {path: /opt/pm/hard, src: /opt/pm/target.txt, state: hard}
- file: {path: /opt/pm/gone, state: absent}
- file: {path: /opt/pm/touched, state: touch, mode: "0600", modification_time: preserve, access_time: preserve}
- file: {path: /opt/pm/perm.txt, mode: "0604", owner: builder}
"#,
            "ls -la --full-time /opt/pm; stat -c '%a %U %G %h' /opt/pm/target.txt /opt/pm/perm.txt",
        )
        .await,
    ) {
        e.eq(
            "file directory",
            c.sh("stat -c '%F %a %U %G' /opt/pm/d").await,
            "directory 750 builder builder\n".into(),
        );
        e.eq(
            "file link",
            std::fs::read_link(c.root.join("opt/pm/lnk")).ok(),
            Some(PathBuf::from("/opt/pm/target.txt")),
        );
        e.eq(
            "file hard",
            c.sh("stat -c '%i %h' /opt/pm/hard; stat -c '%i %h' /opt/pm/target.txt")
                .await
                .lines()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            1,
        );
        e.check("file absent", !c.exists("/opt/pm/gone"));
        e.eq(
            "file touch",
            c.sh("stat -c '%F %a' /opt/pm/touched").await,
            "regular empty file 600\n".into(),
        );
        e.eq(
            "file mode/owner",
            c.sh("stat -c '%a %U %G' /opt/pm/perm.txt").await,
            "604 builder root\n".into(),
        );
    }
}

/// `with_check`: the full cycle (see `command_shell_check_mode`), else
/// first run changed, second run ok.
async fn command_shell(c: &Ctx, e: &mut Errs, with_check: bool) {
    c.sh("mkdir -p /opt/pm/cmd && echo x > /opt/pm/rmme").await;
    let yaml = r#"
- command: touch /opt/pm/made
  args: {creates: /opt/pm/made}
- command: rm /opt/pm/rmme
  args: {removes: /opt/pm/rmme}
- shell: pwd > where.txt
  args: {chdir: /opt/pm/cmd, creates: /opt/pm/cmd/where.txt}
- shell: cat > /opt/pm/stdin.txt
  args: {stdin: hello, creates: /opt/pm/stdin.txt}
- command:
    cmd: tee /opt/pm/stdin2.txt
    stdin: "raw"
    stdin_add_newline: false
    creates: /opt/pm/stdin2.txt
"#;
    let r = if with_check {
        c.cycle("command/shell", yaml, "ls -la /opt/pm /opt/pm/cmd")
            .await
    } else {
        c.apply_twice("command/shell", yaml).await
    };
    if e.cycle(r) {
        e.check("command creates", c.exists("/opt/pm/made"));
        e.check("command removes", !c.exists("/opt/pm/rmme"));
        e.eq(
            "shell chdir",
            c.read("/opt/pm/cmd/where.txt"),
            "/opt/pm/cmd\n".into(),
        );
        e.eq("shell stdin", c.read("/opt/pm/stdin.txt"), "hello\n".into());
        e.eq(
            "command stdin raw",
            c.read("/opt/pm/stdin2.txt"),
            "raw".into(),
        );
    }
}

async fn stat_find(c: &Ctx, e: &mut Errs) {
    c.sh("mkdir -p /opt/pm/f/sub && echo a > /opt/pm/f/a.conf && echo b > /opt/pm/f/sub/b.conf && echo c > /opt/pm/f/c.txt")
        .await;
    match c
        .read_only(
            "stat/find",
            r#"
- stat: {path: /opt/pm/f/a.conf, checksum_algorithm: sha256}
  register: st
- stat: {path: /opt/pm/nope}
  register: st2
- find: {paths: /opt/pm/f, patterns: "*.conf", recurse: true}
  register: found
- find: {paths: /opt/pm/f, file_type: directory}
  register: dirs
- assert:
    that:
      - st.stat.exists
      - st.stat.isreg
      - st.stat.size == 2
      - not st2.stat.exists
      - found.matched == 2
      - dirs.matched == 1
"#,
        )
        .await
    {
        Err(m) => e.0.push(m),
        Ok(r) => {
            let st = result_of(&r, "stat");
            e.eq(
                "stat checksum",
                st["stat"]["checksum"].as_str().map(str::to_string),
                Some(image_provision::script::sha256_hex(b"a\n")),
            );
            let mut paths: Vec<String> = r
                .results
                .iter()
                .find(|t| t.task.starts_with("find"))
                .map(|t| {
                    t.result["files"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["path"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            paths.sort();
            e.eq(
                "find paths",
                paths,
                vec![
                    "/opt/pm/f/a.conf".to_string(),
                    "/opt/pm/f/sub/b.conf".to_string(),
                ],
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_modules_converge() {
    let t0 = Instant::now();
    let c = Ctx::new().await;
    let mut e = Errs::default();
    lineinfile_blockinfile_replace_ini(&c, &mut e).await;
    copy_template(&c, &mut e).await;
    file_states(&c, &mut e).await;
    command_shell(&c, &mut e, false).await;
    stat_find(&c, &mut e).await;
    c.stop().await;
    eprintln!("file modules: {:?}", t0.elapsed());
    e.done();
}

/// command/shell with `creates`/`removes`, check mode on a fresh target:
/// reported `changed` ("would have run"), as ansible does, and nothing runs.
#[tokio::test(flavor = "multi_thread")]
async fn command_shell_check_mode() {
    let c = Ctx::new().await;
    let mut e = Errs::default();
    command_shell(&c, &mut e, true).await;
    c.stop().await;
    e.done();
}

// --------------------------------------------------------------- system --

async fn group_user(c: &Ctx, e: &mut Errs) {
    if e.cycle(
        c.cycle(
            "group",
            "- group: {name: pmgroup, gid: 2345}\n- group: {name: pmsys, system: true}\n",
            "getent group pmgroup pmsys",
        )
        .await,
    ) {
        e.eq(
            "group pmgroup",
            c.sh("getent group pmgroup").await,
            "pmgroup:x:2345:\n".into(),
        );
        let gid: u32 = c
            .sh("getent group pmsys | cut -d: -f3")
            .await
            .trim()
            .parse()
            .unwrap_or(0);
        e.check("group system gid < 1000", gid > 0 && gid < 1000);
    }
    if e.cycle(
        c.cycle(
            "user",
            r#"
- user:
    name: pmuser
    uid: 2346
    group: pmgroup
    groups: [sudo]
    append: true
    shell: /bin/bash
    comment: PM user
    create_home: true
"#,
            "getent passwd pmuser; id pmuser; ls -la /home",
        )
        .await,
    ) {
        e.eq(
            "user passwd",
            c.sh("getent passwd pmuser").await,
            "pmuser:x:2346:2345:PM user:/home/pmuser:/bin/bash\n".into(),
        );
        e.check(
            "user groups",
            c.sh("id -nG pmuser")
                .await
                .split_whitespace()
                .any(|g| g == "sudo"),
        );
        e.eq(
            "user home",
            c.sh("stat -c '%F %U' /home/pmuser").await,
            "directory pmuser\n".into(),
        );
    }
    c.sh("useradd -m pmgone").await;
    if e.cycle(
        c.cycle(
            "user absent",
            "- user: {name: pmgone, state: absent, remove: true}\n",
            "getent passwd pmgone; ls /home",
        )
        .await,
    ) {
        e.eq(
            "user absent",
            c.sh("getent passwd pmgone || true").await,
            String::new(),
        );
        e.check("user absent home", !c.exists("/home/pmgone"));
    }
}

async fn hostname(c: &Ctx, e: &mut Errs) {
    if e.cycle(
        c.cycle(
            "hostname",
            "- hostname: {name: pm-host}\n",
            "hostname; cat /etc/hostname",
        )
        .await,
    ) {
        e.eq("hostname live", c.sh("hostname").await, "pm-host\n".into());
        e.eq("hostname file", c.read("/etc/hostname"), "pm-host\n".into());
    }
}

async fn mount_fstab(c: &Ctx, e: &mut Errs) {
    c.sh("mkdir -p /opt/pm/bindsrc").await;
    if e.cycle(
        c.cycle(
            "mount",
            "- mount: {path: /mnt/pmbind, src: /opt/pm/bindsrc, fstype: none, opts: bind, state: present}\n",
            "cat /etc/fstab",
        )
        .await,
    ) {
        let fstab = c.read("/etc/fstab");
        e.check(
            &format!("mount fstab line in {fstab:?}"),
            fstab.lines().any(|l| {
                l.split_whitespace().collect::<Vec<_>>()
                    == ["/opt/pm/bindsrc", "/mnt/pmbind", "none", "bind", "0", "0"]
            }),
        );
        e.eq(
            "mount not mounted (present only)",
            c.sh("mountpoint -q /mnt/pmbind && echo mounted || echo no").await,
            "no\n".into(),
        );
    }
}

async fn systemd_unit(c: &Ctx, e: &mut Errs) {
    if e.cycle(
        c.cycle(
            "unit file (copy)",
            r#"
- copy:
    dest: /etc/systemd/system/pm-demo.service
    content: |
      [Unit]
      Description=pm demo
      [Service]
      ExecStart=/bin/sleep infinity
      [Install]
      WantedBy=multi-user.target
"#,
            "ls -l /etc/systemd/system",
        )
        .await,
    ) {
        e.check("unit file", c.exists("/etc/systemd/system/pm-demo.service"));
    }
    if e.cycle(
        c.cycle(
            "systemd",
            "- systemd: {name: pm-demo, enabled: true, state: started, daemon_reload: true}\n",
            "systemctl is-enabled pm-demo; systemctl is-active pm-demo",
        )
        .await,
    ) {
        e.eq(
            "systemd state",
            c.sh("systemctl is-enabled pm-demo; systemctl is-active pm-demo")
                .await,
            "enabled\nactive\n".into(),
        );
    }
    if e.cycle(
        c.cycle(
            "systemd stop/disable",
            "- systemd: {name: pm-demo, enabled: false, state: stopped}\n",
            "systemctl is-enabled pm-demo; systemctl is-active pm-demo",
        )
        .await,
    ) {
        e.eq(
            "systemd stopped",
            c.sh("systemctl is-enabled pm-demo; systemctl is-active pm-demo; true")
                .await,
            "disabled\ninactive\n".into(),
        );
    }
}

async fn sysctl_modprobe(c: &Ctx, e: &mut Errs) {
    c.sh("sysctl -qw net.ipv4.ip_forward=0").await;
    if e.cycle(
        c.cycle(
            "sysctl",
            r#"
- sysctl: {name: net.ipv4.ip_forward, value: "1", sysctl_file: /etc/sysctl.d/90-pm.conf, reload: true}
- sysctl: {name: vm.swappiness, value: "10", sysctl_file: /etc/sysctl.d/91-pm.conf, reload: false, sysctl_set: false}
"#,
            "cat /proc/sys/net/ipv4/ip_forward /etc/sysctl.d/90-pm.conf /etc/sysctl.d/91-pm.conf",
        )
        .await,
    ) {
        e.eq(
            "sysctl live",
            c.sh("cat /proc/sys/net/ipv4/ip_forward").await,
            "1\n".into(),
        );
        e.eq(
            "sysctl file",
            c.read("/etc/sysctl.d/90-pm.conf"),
            "net.ipv4.ip_forward=1\n".into(),
        );
        e.eq(
            "sysctl file only",
            c.read("/etc/sysctl.d/91-pm.conf"),
            "vm.swappiness=10\n".into(),
        );
    }
    if e.cycle(
        c.cycle(
            "modprobe (persistent only)",
            "- modprobe: {name: dummy, state: present, persistent: present, params: numdummies=2}\n",
            "ls /etc/modules-load.d /etc/modprobe.d; cat /etc/modules-load.d/dummy.conf /etc/modprobe.d/dummy.conf",
        )
        .await,
    ) {
        e.eq(
            "modprobe modules-load.d",
            c.read("/etc/modules-load.d/dummy.conf"),
            "dummy\n".into(),
        );
        e.eq(
            "modprobe modprobe.d",
            c.read("/etc/modprobe.d/dummy.conf"),
            "options dummy numdummies=2\n".into(),
        );
    }
}

async fn control_modules(c: &Ctx, e: &mut Errs) {
    c.put("/opt/pm/ready", b"state=ready\n").await;
    if let Err(m) = c
        .read_only(
            "wait_for",
            r#"
- wait_for: {port: 22, timeout: 10}
- wait_for: {path: /opt/pm/ready, search_regex: "state=ready", timeout: 10}
- wait_for: {path: /opt/pm/never, state: absent, timeout: 5}
"#,
        )
        .await
    {
        e.0.push(m);
    }
    // wait_for on something that never comes must time out and fail.
    let r = c.run("- wait_for: {port: 1, timeout: 2}\n", false).await;
    e.eq("wait_for timeout fails", r.recap.failed, 1);

    match c
        .read_only(
            "set_fact/assert/debug",
            r#"
- set_fact: {x: 42, words: [a, b]}
- assert:
    that:
      - x | int == 42
      - words | length == 2
    success_msg: fine
- debug: {msg: "x={{ x }} {{ words | join(',') }}"}
- debug: {var: x}
"#,
        )
        .await
    {
        Err(m) => e.0.push(m),
        Ok(r) => {
            let d = r
                .results
                .iter()
                .find(|t| t.task.starts_with("debug"))
                .map(|t| t.msg.clone())
                .unwrap_or_default();
            e.check(&format!("debug msg {d:?}"), d.contains("x=42 a,b"));
        }
    }
    let r = c
        .run(
            r#"
- set_fact: {x: 1}
- assert: {that: x | int == 2, fail_msg: "x is not 2"}
- file: {path: /opt/pm/after-assert, state: touch}
"#,
            false,
        )
        .await;
    e.eq("assert false fails", r.recap.failed, 1);
    e.check("assert fail_msg", failures(&r).contains("x is not 2"));
    e.check(
        "nothing runs after a failed assert",
        !c.exists("/opt/pm/after-assert"),
    );
    for check in [true, false] {
        let r = c
            .run(
                r#"
- fail: {msg: "stop here"}
- file: {path: /opt/pm/after-fail, state: touch}
"#,
                check,
            )
            .await;
        e.eq(&format!("fail fails (check={check})"), r.recap.failed, 1);
        e.check("fail msg", failures(&r).contains("stop here"));
        e.check("nothing runs after fail", !c.exists("/opt/pm/after-fail"));
    }
    let t0 = Instant::now();
    if let Err(m) = c
        .read_only("pause", "- pause: {seconds: 1}\n- pause: {seconds: 0}\n")
        .await
    {
        e.0.push(m);
    }
    // check mode and the real run each pause 1 s.
    e.check("pause waits", t0.elapsed() >= Duration::from_secs(2));

    // A stopped unit systemd still has loaded is `stopped`; one it has
    // unloaded gets `systemctl show`'s ActiveState (`inactive`), as ansible's.
    if let Err(m) = c
        .read_only(
            "service_facts",
            r#"
- service_facts:
- assert:
    that:
      - ansible_facts.services['ssh.service'].state == 'running'
      - ansible_facts.services['ssh.service'].source == 'systemd'
      - ansible_facts.services['pm-demo.service'].state in ['stopped', 'inactive']
      - ansible_facts.services['pm-demo.service'].status == 'disabled'
"#,
        )
        .await
    {
        e.0.push(m);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn system_modules_converge() {
    let t0 = Instant::now();
    let c = Ctx::new().await;
    let mut e = Errs::default();
    group_user(&c, &mut e).await;
    hostname(&c, &mut e).await;
    mount_fstab(&c, &mut e).await;
    systemd_unit(&c, &mut e).await;
    sysctl_modprobe(&c, &mut e).await;
    control_modules(&c, &mut e).await;
    c.stop().await;
    eprintln!("system modules: {:?}", t0.elapsed());
    e.done();
}

// ------------------------------------------------------ packages, fetch --

async fn apt_dpkg(c: &Ctx, e: &mut Errs) {
    // The cache is filled outside the engine so check mode can resolve `tree`.
    c.sh("apt-get update -qq").await;
    if e.cycle(
        c.cycle(
            "apt",
            "- apt: {name: tree, state: present}\n",
            "dpkg-query -W -f='${Status}' tree; ls -l /usr/bin/tree",
        )
        .await,
    ) {
        e.check("apt installed", c.exists("/usr/bin/tree"));
        e.eq(
            "apt status",
            c.sh("dpkg-query -W -f='${Status}' tree").await,
            "install ok installed".into(),
        );
    }
    if e.cycle(
        c.cycle(
            "dpkg_selections hold",
            "- dpkg_selections: {name: tree, selection: hold}\n",
            "dpkg --get-selections tree",
        )
        .await,
    ) {
        e.eq(
            "dpkg hold",
            c.sh("dpkg --get-selections tree")
                .await
                .split_whitespace()
                .nth(1)
                .map(str::to_string),
            Some("hold".into()),
        );
    }
    if e.cycle(
        c.cycle(
            "dpkg_selections unhold",
            "- dpkg_selections: {name: tree, selection: install}\n",
            "dpkg --get-selections tree",
        )
        .await,
    ) {
        e.eq(
            "dpkg unhold",
            c.sh("dpkg --get-selections tree")
                .await
                .split_whitespace()
                .nth(1)
                .map(str::to_string),
            Some("install".into()),
        );
    }
    if let Err(m) = c
        .read_only(
            "package_facts",
            r#"
- package_facts: {manager: auto}
- assert:
    that:
      - "'sudo' in ansible_facts.packages"
      - ansible_facts.packages['tree'][0].name == 'tree'
      - ansible_facts.packages['tree'][0].source == 'apt'
      - ansible_facts.packages['tree'][0].version | length > 0
      - ansible_facts.packages['tree'][0].arch == 'amd64'
"#,
        )
        .await
    {
        e.0.push(m);
    }
    if e.cycle(
        c.cycle(
            "apt absent",
            "- apt: {name: tree, state: absent}\n",
            "dpkg-query -W -f='${Status}' tree; ls -l /usr/bin/tree",
        )
        .await,
    ) {
        e.check("apt removed", !c.exists("/usr/bin/tree"));
    }
    // update_cache alone: changed only when the package lists changed (as
    // ansible's apt reports it), so an update right after an update is ok;
    // check mode says it would update.
    let update = "- apt: {update_cache: true}\n";
    let r = c.run(update, true).await;
    e.check(
        "apt update_cache in check mode reports a change",
        r.recap.failed == 0 && r.recap.changed == 1,
    );
    let r1 = c.run(update, false).await;
    let r2 = c.run(update, false).await;
    e.check(
        &format!("apt update_cache runs: {} / {}", r1.recap, failures(&r1)),
        r1.recap.failed == 0,
    );
    e.check(
        &format!(
            "apt update_cache right after an update is no change: {} {:?}",
            r2.recap,
            changed(&r2)
        ),
        r2.recap.failed == 0 && r2.recap.changed == 0,
    );
    e.eq(
        "apt update_cache reports cache_updated",
        result_of(&r2, "apt")["cache_updated"].clone(),
        Json::Bool(false),
    );
}

async fn repositories(c: &Ctx, e: &mut Errs) {
    if e.cycle(
        c.cycle(
            "apt_repository",
            r#"
- apt_repository:
    repo: deb http://deb.debian.org/debian bookworm-backports main
    filename: pm-backports
    update_cache: false
"#,
            "ls -l /etc/apt/sources.list.d; cat /etc/apt/sources.list.d/pm-backports.list",
        )
        .await,
    ) {
        e.eq(
            "apt_repository file",
            c.read("/etc/apt/sources.list.d/pm-backports.list"),
            "deb http://deb.debian.org/debian bookworm-backports main\n".into(),
        );
        e.eq(
            "apt_repository mode",
            c.sh("stat -c %a /etc/apt/sources.list.d/pm-backports.list")
                .await,
            "644\n".into(),
        );
    }
    // As ansible's module: a target with python3 but without python3-debian
    // fails the task and writes nothing.
    let r = c
        .run(
            "- deb822_repository:\n    name: pm-nodeb\n    uris: http://deb.debian.org/debian\n    suites: bookworm\n",
            false,
        )
        .await;
    e.check(
        &format!("deb822 without python3-debian fails: {}", failures(&r)),
        r.recap.failed == 1
            && failures(&r).contains("python3-debian")
            && !c.exists("/etc/apt/sources.list.d/pm-nodeb.sources"),
    );
    c.sh("export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q python3-debian >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3-debian >/dev/null; }")
        .await;
    if e.cycle(
        c.cycle(
            "deb822_repository",
            r#"
- deb822_repository:
    name: pm-extra
    types: deb
    uris: http://deb.debian.org/debian
    suites: bookworm-updates
    components: [contrib, non-free]
"#,
            "ls -l /etc/apt/sources.list.d; cat /etc/apt/sources.list.d/pm-extra.sources",
        )
        .await,
    ) {
        let f = c.read("/etc/apt/sources.list.d/pm-extra.sources");
        for l in [
            "X-Repolib-Name: pm-extra",
            "Types: deb",
            "URIs: http://deb.debian.org/debian",
            "Suites: bookworm-updates",
            "Components: contrib non-free",
        ] {
            e.check(&format!("deb822 `{l}` in {f:?}"), f.lines().any(|x| x == l));
        }
        // apt accepts both files.
        let o =
            c.t.exec(
                &Exec::new("apt-get indextargets >/dev/null && apt-cache policy >/dev/null")
                    .become_root(),
            )
            .await
            .expect("exec");
        e.check(
            &format!("apt parses the repos: {}", o.stderr_str()),
            o.success() && o.stderr_str().is_empty(),
        );
    }
}

async fn get_url_unarchive(c: &Ctx, e: &mut Errs) {
    let body = b"downloaded by get_url\n".to_vec();
    let sha = image_provision::script::sha256_hex(&body);
    let port = serve(body);
    c.sh("mkdir -p /opt/pm/dl").await;
    let yaml = format!(
        r#"
- get_url:
    url: http://{HOST_ADDR_FROM_GUEST}:{port}/pm.txt
    dest: /opt/pm/dl/pm.txt
    checksum: sha256:{sha}
    mode: "0640"
"#
    );
    if e.cycle(c.cycle("get_url", &yaml, "ls -la /opt/pm/dl").await) {
        e.eq(
            "get_url content",
            c.read("/opt/pm/dl/pm.txt"),
            "downloaded by get_url\n".into(),
        );
        e.eq(
            "get_url mode",
            c.sh("stat -c %a /opt/pm/dl/pm.txt").await,
            "640\n".into(),
        );
    }
    // A wrong checksum fails and leaves nothing behind.
    let r = c
        .run(
            &format!(
                "- get_url: {{url: 'http://{HOST_ADDR_FROM_GUEST}:{port}/x', dest: /opt/pm/dl/bad.txt, checksum: 'sha256:{}'}}\n",
                "0".repeat(64)
            ),
            false,
        )
        .await;
    e.eq("get_url bad checksum fails", r.recap.failed, 1);
    e.check(
        "get_url bad checksum leaves no file",
        !c.exists("/opt/pm/dl/bad.txt"),
    );

    c.put("/opt/pm/a.tar.gz", &tarball()).await;
    c.sh("mkdir -p /opt/pm/un").await;
    if e.cycle(
        c.cycle(
            "unarchive",
            "- unarchive: {src: /opt/pm/a.tar.gz, dest: /opt/pm/un, remote_src: true}\n",
            "ls -laR /opt/pm/un",
        )
        .await,
    ) {
        e.eq(
            "unarchive data",
            c.read("/opt/pm/un/pm/data.txt"),
            "data\n".into(),
        );
        e.eq(
            "unarchive script",
            c.sh("/opt/pm/un/pm/hello.sh").await,
            "hello\n".into(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn package_and_fetch_modules_converge() {
    let t0 = Instant::now();
    let c = Ctx::new().await;
    let mut e = Errs::default();
    apt_dpkg(&c, &mut e).await;
    repositories(&c, &mut e).await;
    get_url_unarchive(&c, &mut e).await;
    c.stop().await;
    eprintln!("package/fetch modules: {:?}", t0.elapsed());
    e.done();
}

// ------------------------------------------------------------------ pip --

/// Writes `tinypkg-V-py3-none-any.whl` into `dir` for each version `V`: a
/// pure-Python wheel (package `tinypkg` with `__version__`, METADATA,
/// WHEEL, RECORD with hashes), zipped by the host's python3.
fn wheels(dir: &std::path::Path, versions: &[&str]) {
    const BUILD: &str = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1]
for ver in sys.argv[2:]:
    di = f"tinypkg-{ver}.dist-info"
    files = {
        "tinypkg/__init__.py": f'__version__ = "{ver}"\n',
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: tinypkg\nVersion: {ver}\nSummary: pip module test fixture\n",
        f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: image-builder-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    def rec(name, text):
        h = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        return f"{name},sha256={h},{len(text.encode())}\n"
    files[f"{di}/RECORD"] = "".join(rec(n, t) for n, t in files.items()) + f"{di}/RECORD,,\n"
    with zipfile.ZipFile(f"{out}/tinypkg-{ver}-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as z:
        for n, t in files.items():
            z.writestr(n, t)
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(BUILD)
        .arg(dir)
        .args(versions)
        .output()
        .expect("python3 on the host");
    assert!(
        o.status.success(),
        "building wheels: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `tinypkg.__version__` as the virtualenv's python imports it, or None.
async fn tinypkg_version(c: &Ctx) -> Option<String> {
    let o =
        c.t.exec(&Exec::new(
            "/opt/venv/bin/python -c 'import tinypkg; print(tinypkg.__version__)'",
        ))
        .await
        .expect("exec");
    o.success().then(|| o.stdout_str().trim().to_string())
}

/// The `tinypkg-*.dist-info` directories in the virtualenv, read from the
/// target's root.
fn dist_infos(c: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    let lib = c.root.join("opt/venv/lib");
    for py in std::fs::read_dir(lib).into_iter().flatten().flatten() {
        for d in std::fs::read_dir(py.path().join("site-packages"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = d.file_name().to_string_lossy().into_owned();
            if n.starts_with("tinypkg-") && n.ends_with(".dist-info") {
                out.push(n);
            }
        }
    }
    out.sort();
    out
}

async fn pip_virtualenv(c: &Ctx, e: &mut Errs) {
    let r = c
        .run("- apt: {name: python3-venv, update_cache: true}\n", false)
        .await;
    assert_eq!(r.recap.failed, 0, "apt python3-venv: {}", failures(&r));

    let fixtures = tempfile::tempdir().expect("tempdir");
    wheels(fixtures.path(), &["1.0", "1.1"]);
    let port = serve_dir(fixtures.path());
    let index = format!(
        "--no-index --trusted-host {HOST_ADDR_FROM_GUEST} --find-links http://{HOST_ADDR_FROM_GUEST}:{port}/"
    );
    // A pip step into /opt/venv from the fixture index, with `more` lines.
    let pip = |name: &str, more: &str| {
        format!(
            r#"
- pip:
    name: "{name}"
    virtualenv: /opt/venv
    virtualenv_command: python3 -m venv
    extra_args: {index}
{more}"#
        )
    };
    let probe = "/opt/venv/bin/pip freeze; ls /opt/venv";
    let freeze = "/opt/venv/bin/pip freeze";

    // A pinned version into a virtualenv that does not exist yet: check
    // mode creates neither.
    if e.cycle(
        c.cycle(
            "pip version (new virtualenv)",
            &pip("tinypkg", "    version: \"1.0\"\n"),
            probe,
        )
        .await,
    ) {
        e.eq(
            "pip 1.0 imports",
            tinypkg_version(c).await,
            Some("1.0".into()),
        );
        e.eq(
            "pip 1.0 freeze",
            c.sh(freeze).await,
            "tinypkg==1.0\n".into(),
        );
        e.eq(
            "pip 1.0 dist-info",
            dist_infos(c),
            vec!["tinypkg-1.0.dist-info".to_string()],
        );
        e.check("pip virtualenv", c.exists("/opt/venv/bin/activate"));
    }

    // present without a version does not upgrade what is there.
    if let Err(m) = c
        .read_only("pip present (installed)", &pip("tinypkg", ""))
        .await
    {
        e.0.push(m);
    }

    if e.cycle(
        c.cycle(
            "pip state=latest",
            &pip("tinypkg", "    state: latest\n"),
            probe,
        )
        .await,
    ) {
        e.eq(
            "pip latest imports",
            tinypkg_version(c).await,
            Some("1.1".into()),
        );
        e.eq(
            "pip latest dist-info",
            dist_infos(c),
            vec!["tinypkg-1.1.dist-info".to_string()],
        );
    }
    // Up to date: ok in check mode too (pip --dry-run; ansible's check
    // mode always says changed for latest).
    if let Err(m) = c
        .read_only(
            "pip state=latest (up to date)",
            &pip("tinypkg", "    state: latest\n"),
        )
        .await
    {
        e.0.push(m);
    }

    // A pin below what is installed goes back to it.
    if e.cycle(
        c.cycle(
            "pip version downgrade",
            &pip("tinypkg", "    version: \"1.0\"\n"),
            probe,
        )
        .await,
    ) {
        e.eq(
            "pip downgrade imports",
            tinypkg_version(c).await,
            Some("1.0".into()),
        );
    }

    // A range in the name that 1.0 does not satisfy upgrades; one that
    // 1.1 satisfies (with a comma, which splits name lists) is ok.
    if e.cycle(c.cycle("pip range", &pip("tinypkg>=1.1", ""), probe).await) {
        e.eq(
            "pip range imports",
            tinypkg_version(c).await,
            Some("1.1".into()),
        );
    }
    if let Err(m) = c
        .read_only("pip range (satisfied)", &pip("tinypkg>=1.0,<2", ""))
        .await
    {
        e.0.push(m);
    }

    // An unknown version fails with pip's message and changes nothing.
    let r = c
        .run(&pip("tinypkg", "    version: \"9.9\"\n"), false)
        .await;
    e.eq("pip unknown version fails", r.recap.failed, 1);
    e.check(
        &format!("pip failure names the requirement: {}", failures(&r)),
        failures(&r).contains("tinypkg==9.9"),
    );
    e.eq(
        "pip after failure",
        c.sh(freeze).await,
        "tinypkg==1.1\n".into(),
    );
    // `version` with two names is ambiguous (as in ansible).
    let r = c
        .run(&pip("tinypkg, other", "    version: \"1.0\"\n"), true)
        .await;
    e.check(
        &format!("pip version with two names fails: {}", failures(&r)),
        r.recap.failed == 1 && failures(&r).contains("ambiguous"),
    );

    if e.cycle(
        c.cycle(
            "pip state=absent",
            &pip("tinypkg", "    state: absent\n"),
            probe,
        )
        .await,
    ) {
        e.eq("pip absent freeze", c.sh(freeze).await, String::new());
        e.eq("pip absent import", tinypkg_version(c).await, None);
        e.eq("pip absent dist-info", dist_infos(c), Vec::<String>::new());
        e.check(
            "pip absent keeps the virtualenv",
            c.exists("/opt/venv/bin/pip"),
        );
    }

    c.put("/tmp/req.txt", b"tinypkg==1.1\n").await;
    let req = |more: &str| {
        format!(
            r#"
- pip:
    requirements: /tmp/req.txt
    virtualenv: /opt/venv
    extra_args: {index}
{more}"#
        )
    };
    if e.cycle(c.cycle("pip requirements", &req(""), probe).await) {
        e.eq(
            "pip requirements imports",
            tinypkg_version(c).await,
            Some("1.1".into()),
        );
        e.eq(
            "pip requirements freeze",
            c.sh(freeze).await,
            "tinypkg==1.1\n".into(),
        );
    }
    if e.cycle(
        c.cycle(
            "pip requirements state=absent",
            &req("    state: absent\n"),
            probe,
        )
        .await,
    ) {
        e.eq(
            "pip requirements absent freeze",
            c.sh(freeze).await,
            String::new(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pip_module_converges() {
    let t0 = Instant::now();
    let c = Ctx::new().await;
    let mut e = Errs::default();
    pip_virtualenv(&c, &mut e).await;
    c.stop().await;
    eprintln!("pip module: {:?}", t0.elapsed());
    e.done();
}

// ------------------------------------------- issue 15: modules and facts --

/// find follows Python's `re` (`re.match` on the base name, inline flags)
/// and `fnmatch`, as image-builder's sysprep role uses it.
async fn find_python_re(c: &Ctx, e: &mut Errs) {
    c.sh("mkdir -p /opt/pm/logs/sub && cd /opt/pm/logs && touch Boot.LOG a.log b.log.1 c.gz d.txt .h.log sub/e.log sub/f.2")
        .await;
    match c
        .read_only(
            "find use_regex",
            r#"
- find: {paths: /opt/pm/logs, patterns: '(?i).*\.log$', recurse: true, use_regex: true, hidden: true}
  register: logs
- find: {paths: /opt/pm/logs, patterns: '.*[0-9z]$', recurse: true, use_regex: true}
  register: rotated
- find: {paths: /opt/pm/logs, patterns: 'b', use_regex: true}
  register: anchored
- find: {paths: /opt/pm/logs, patterns: '*.log', excludes: 'a*'}
  register: globbed
"#,
        )
        .await
    {
        Err(m) => e.0.push(m),
        Ok(r) => {
            let paths = |task: usize| -> Vec<String> {
                let mut v: Vec<String> = r.results[task].result["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["path"].as_str().map(|p| p.replace("/opt/pm/logs/", "")))
                    .collect();
                v.sort();
                v
            };
            e.eq("find (?i).*\\.log$", paths(0), vec![".h.log".into(), "Boot.LOG".into(), "a.log".into(), "sub/e.log".into()]);
            e.eq("find .*[0-9z]$", paths(1), vec!["b.log.1".into(), "c.gz".into(), "sub/f.2".into()]);
            e.eq("find re.match anchors at the start", paths(2), vec!["b.log.1".into()]);
            e.eq("find glob with excludes", paths(3), Vec::<String>::new());
            e.eq("find matched", r.results[0].result["matched"].clone(), serde_json::json!(4));
            e.check("find returns stat keys", r.results[0].result["files"][0]["pw_name"] == "root");
        }
    }
}

/// slurp, getent, tempfile, uri (python3 on the target), and a refused
/// parameter.
async fn new_modules(c: &Ctx, e: &mut Errs) {
    c.put("/opt/pm/slurp.txt", b"slurp me\n").await;
    let port = serve(b"{\"hello\": \"world\"}".to_vec());
    match c
        .read_only(
            "slurp/getent/uri",
            r#"
- slurp: {src: /opt/pm/slurp.txt}
  register: s
- getent: {database: passwd, key: nobody-here, fail_key: false}
- assert:
    that: ansible_facts.getent_passwd["nobody-here"] is none
- getent: {database: passwd, key: root}
- assert:
    that:
      - s.content | b64decode == "slurp me\n"
      - s.encoding == "base64"
      - ansible_facts.getent_passwd.root[4] == "/root"
"#,
        )
        .await
    {
        Err(m) => e.0.push(m),
        Ok(r) => e.eq(
            "slurp content",
            r.results[0].result["content"].as_str().map(str::to_string),
            Some("c2x1cnAgbWUK".to_string()),
        ),
    }
    // uri is skipped in check mode (as ansible: no check-mode support).
    let uri = format!(
        "- uri: {{url: 'http://{HOST_ADDR_FROM_GUEST}:{port}/j', return_content: true}}\n  register: u\n- assert:\n    that: [u.status == 200, u.content is defined]\n"
    );
    let r = c.run(&uri, false).await;
    e.eq("uri ok", (r.recap.failed, r.recap.changed), (0, 0));
    if let Some(t) = r.results.first() {
        e.eq(
            "uri status",
            t.result["status"].clone(),
            serde_json::json!(200),
        );
        e.eq(
            "uri content",
            t.result["content"].clone(),
            serde_json::json!("{\"hello\": \"world\"}"),
        );
        e.check(
            "uri headers as keys",
            t.result.get("content_length").is_some(),
        );
    }
    let r = c
        .run(
            &format!(
                "- uri: {{url: 'http://{HOST_ADDR_FROM_GUEST}:{port}/j', status_code: 201}}\n"
            ),
            false,
        )
        .await;
    e.eq("uri wrong status fails", r.recap.failed, 1);
    e.check(
        "uri wrong status message",
        r.results
            .first()
            .is_some_and(|t| t.msg.contains("Status code was 200 and not [201]")),
    );
    let r = c
        .run(
            "- tempfile: {state: directory, suffix: pm}\n  register: t\n",
            true,
        )
        .await;
    e.eq("tempfile check mode skipped", r.recap.skipped, 1);
    let r = c
        .run("- tempfile: {state: directory, suffix: pm}\n", false)
        .await;
    e.eq("tempfile changed", r.recap.changed, 1);
    if let Some(p) = r.results.first().and_then(|t| t.result["path"].as_str()) {
        e.check(
            "tempfile suffix",
            p.starts_with("/tmp/ansible.") && p.ends_with("pm"),
        );
        e.eq(
            "tempfile is a 700 directory",
            c.sh(&format!("stat -c %F:%a {p}")).await,
            "directory:700\n".into(),
        );
    } else {
        e.0.push("tempfile returned no path".into());
    }
    // A parameter we do not implement is refused, not ignored.
    let r = c
        .run(
            "- lineinfile: {path: /opt/pm/slurp.txt, line: x, attributes: '+i'}\n",
            false,
        )
        .await;
    e.eq("refused attributes fails", r.recap.failed, 1);
    e.check(
        "refused attributes says why",
        r.results
            .first()
            .is_some_and(|t| t.msg.contains("attributes")),
    );
    e.eq(
        "refused attributes changes nothing",
        c.read("/opt/pm/slurp.txt"),
        "slurp me\n".into(),
    );
}

/// `unsafe_writes`: a bind-mounted file (as /etc/resolv.conf in a
/// container) cannot be replaced by a rename; ansible then writes it in
/// place, and fails without `unsafe_writes`.
async fn unsafe_writes(c: &Ctx, e: &mut Errs) {
    c.sh("echo a > /opt/pm/bm.src && touch /opt/pm/bm.txt && mount --bind /opt/pm/bm.src /opt/pm/bm.txt")
        .await;
    let r = c
        .run("- lineinfile: {path: /opt/pm/bm.txt, line: b}\n", false)
        .await;
    e.eq("rename onto a bind mount fails", r.recap.failed, 1);
    if e.cycle(
        c.apply_twice(
            "unsafe_writes",
            "- lineinfile: {path: /opt/pm/bm.txt, line: b, unsafe_writes: true}\n",
        )
        .await,
    ) {
        e.eq(
            "unsafe_writes wrote in place",
            c.sh("cat /opt/pm/bm.src").await,
            "a\nb\n".into(),
        );
    }
    c.sh("umount /opt/pm/bm.txt").await;
}

/// sysctl keeps ansible's order: the live value first; when setting it
/// fails (vm.* is read-only in the container), the file is not written.
async fn sysctl_order(c: &Ctx, e: &mut Errs) {
    let r = c
        .run(
            "- sysctl: {name: vm.swappiness, value: '13', sysctl_set: true, sysctl_file: /etc/sysctl.d/92-pm.conf}\n",
            false,
        )
        .await;
    e.eq("sysctl_set on a read-only key fails", r.recap.failed, 1);
    e.check(
        "sysctl message",
        r.results
            .first()
            .is_some_and(|t| t.msg.contains("setting vm.swappiness failed")),
    );
    e.check(
        "sysctl file not written after a failed set",
        !c.exists("/etc/sysctl.d/92-pm.conf"),
    );
    c.sh("sysctl -qw net.ipv4.ip_forward=0").await;
    if e.cycle(
        c.cycle(
            "sysctl set live then file",
            "- sysctl: {name: net.ipv4.ip_forward, value: 1, sysctl_set: true, reload: false, sysctl_file: /etc/sysctl.d/93-pm.conf}\n",
            "cat /proc/sys/net/ipv4/ip_forward /etc/sysctl.d/93-pm.conf",
        )
        .await,
    ) {
        e.eq("sysctl live value", c.sh("cat /proc/sys/net/ipv4/ip_forward").await, "1\n".into());
        e.eq("sysctl file", c.read("/etc/sysctl.d/93-pm.conf"), "net.ipv4.ip_forward=1\n".into());
    }
}

/// get_url, uri and deb822_repository's key on a host with neither curl,
/// wget nor python3: the controller fetches and uploads. The URL names
/// 127.0.0.1, which only the controller can reach, so a pass proves the
/// controller did the transfer.
async fn downloads_without_a_downloader(c: &Ctx, e: &mut Errs) {
    c.sh(
        "for b in curl wget python3; do p=$(command -v $b) && mv \"$p\" \"$p.pm-off\"; done; true",
    )
    .await;
    let body = b"fetched by the controller\n".to_vec();
    let sha = image_provision::script::sha256_hex(&body);
    let port = serve(body);
    let yaml = format!(
        "- get_url: {{url: 'http://127.0.0.1:{port}/c.txt', dest: /opt/pm/ctl.txt, checksum: 'sha256:{sha}', mode: '0600'}}\n"
    );
    if e.cycle(
        c.cycle(
            "get_url from the controller",
            &yaml,
            "ls -la /opt/pm; ls /tmp",
        )
        .await,
    ) {
        e.eq(
            "get_url controller content",
            c.read("/opt/pm/ctl.txt"),
            "fetched by the controller\n".into(),
        );
        e.eq(
            "no upload left behind",
            c.sh("ls /tmp | grep -c image-cli-dl; true").await,
            "0\n".into(),
        );
    }
    let r = c
        .run(
            &format!("- uri: {{url: 'http://127.0.0.1:{port}/c.txt', return_content: true}}\n"),
            false,
        )
        .await;
    e.eq("uri from the controller", r.recap.failed, 0);
    e.check(
        "uri controller content",
        r.results
            .first()
            .is_some_and(|t| t.result["content"] == "fetched by the controller\n"),
    );
    c.sh("for p in /usr/bin/*.pm-off /usr/local/bin/*.pm-off; do [ -e \"$p\" ] && mv \"$p\" \"${p%.pm-off}\"; done; true").await;
}

/// iptables and iptables_state on the target (iptables installed with
/// apt's `force`), apt `autoclean`, and file `follow` on a link.
async fn iptables_apt_file_extras(c: &Ctx, e: &mut Errs) {
    let r = c
        .run(
            "- apt: {name: iptables, update_cache: true, force: true}\n",
            false,
        )
        .await;
    if r.recap.failed > 0 {
        e.0.push(format!("apt install iptables: {}", failures(&r)));
        return;
    }
    if e.cycle(
        c.cycle(
            "iptables",
            r#"
- iptables: {chain: INPUT, protocol: tcp, destination_port: "6443", ctstate: [NEW], jump: ACCEPT, comment: api}
- iptables: {chain: PMCHAIN, chain_management: true}
- iptables: {chain: FORWARD, policy: DROP}
"#,
            "iptables -S",
        )
        .await,
    ) {
        let rules = c.sh("iptables -S").await;
        e.check("iptables rule", rules.contains("-A INPUT -p tcp -m tcp --dport 6443 -m conntrack --ctstate NEW -m comment --comment api -j ACCEPT"));
        e.check("iptables chain", rules.contains("-N PMCHAIN"));
        e.check("iptables policy", rules.contains("-P FORWARD DROP"));
    }
    let r = c
        .run("- iptables: {chain: INPUT, protocol: tcp, destination_port: '6443', ctstate: [NEW], jump: ACCEPT, comment: api, state: absent}\n", false)
        .await;
    e.eq(
        "iptables absent changed",
        (r.recap.changed, r.recap.failed),
        (1, 0),
    );
    if let Some(t) = r.results.first() {
        e.eq(
            "iptables returns ansible's rule text",
            t.result["rule"].clone(),
            serde_json::json!("-p tcp -j ACCEPT --destination-port 6443 -m conntrack --ctstate NEW -m comment --comment api"),
        );
    }
    if e.cycle(
        c.apply_twice(
            "iptables_state saved",
            "- iptables_state: {state: saved, path: /opt/pm/rules.v4}\n",
        )
        .await,
    ) {
        e.check(
            "iptables_state file",
            c.read("/opt/pm/rules.v4").contains(":PMCHAIN"),
        );
    }
    c.sh("iptables -X PMCHAIN").await;
    let r = c
        .run(
            "- iptables_state: {state: restored, path: /opt/pm/rules.v4}\n",
            false,
        )
        .await;
    e.eq(
        "iptables_state restored changed",
        (r.recap.changed, r.recap.failed),
        (1, 0),
    );
    e.check(
        "iptables_state restored the chain",
        c.sh("iptables -S").await.contains("-N PMCHAIN"),
    );
    let r = c
        .run(
            "- apt: {autoclean: true, autoremove: true, force_apt_get: true}\n",
            false,
        )
        .await;
    e.eq("apt autoclean", r.recap.failed, 0);
    c.sh("touch /opt/pm/tgt && chmod 644 /opt/pm/tgt").await;
    if e.cycle(
        c.apply_twice(
            "file link follow",
            "- file: {src: /opt/pm/tgt, dest: /opt/pm/lnk, state: link, mode: '0755'}\n",
        )
        .await,
    ) {
        e.eq(
            "follow: mode goes to the target",
            c.sh("stat -c %a /opt/pm/tgt").await,
            "755\n".into(),
        );
    }
    c.sh("touch /opt/pm/tgt2 && chmod 644 /opt/pm/tgt2").await;
    let r = c
        .run("- file: {src: /opt/pm/tgt2, dest: /opt/pm/lnk2, state: link, mode: '0755', follow: false}\n", false)
        .await;
    e.eq("follow false ok", r.recap.failed, 0);
    e.eq(
        "follow: false leaves the target's mode",
        c.sh("stat -c %a /opt/pm/tgt2").await,
        "644\n".into(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue15_modules_converge() {
    let c = Ctx::new().await;
    let mut e = Errs::default();
    find_python_re(&c, &mut e).await;
    new_modules(&c, &mut e).await;
    sysctl_order(&c, &mut e).await;
    unsafe_writes(&c, &mut e).await;
    downloads_without_a_downloader(&c, &mut e).await;
    iptables_apt_file_extras(&c, &mut e).await;
    c.stop().await;
    e.done();
}

/// image-cli's facts against `ansible -m setup` (become, as plays run) on
/// the same target, key by key. Keys that change between two calls
/// (clock, load, free memory) are compared by presence.
#[tokio::test(flavor = "multi_thread")]
async fn facts_match_ansible_setup() {
    let c = Ctx::new().await;
    let ours = image_provision::facts::gather_as(&c.t, Some(image_core::target::Become::default()))
        .await
        .expect("gather");
    let venv = c.bed.testbed().dir().join("ansible-core-venv/bin/ansible");
    assert!(
        venv.exists(),
        "{} missing: run scripts/testbed/install.sh",
        venv.display()
    );
    let out = std::process::Command::new(&venv)
        .args([
            "all",
            "-i",
            "127.0.0.1,",
            "-b",
            "-m",
            "setup",
            "-u",
            c.bed.user(),
        ])
        .arg("-e")
        .arg(format!("ansible_port={}", c.bed.ssh_port()))
        .arg("--private-key")
        .arg(c.bed.testbed().ed25519_key())
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
        .output()
        .expect("ansible");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json_start = text
        .find('{')
        .unwrap_or_else(|| panic!("ansible: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let theirs: Json = serde_json::from_str(&text[json_start..]).expect("ansible json");
    let theirs = &theirs["ansible_facts"];
    c.stop().await;
    let mut e = Errs::default();
    let exact = [
        "distribution",
        "distribution_version",
        "distribution_major_version",
        "distribution_minor_version",
        "distribution_release",
        "distribution_file_path",
        "distribution_file_variety",
        "os_family",
        "architecture",
        "machine",
        "kernel",
        "kernel_version",
        "hostname",
        "nodename",
        "fqdn",
        "domain",
        "system",
        "pkg_mgr",
        "service_mgr",
        "user_id",
        "user_uid",
        "user_gid",
        "user_dir",
        "user_shell",
        "user_gecos",
        "effective_user_id",
        "effective_group_id",
        "real_user_id",
        "real_group_id",
        "memtotal_mb",
        "swaptotal_mb",
        "processor",
        "processor_count",
        "processor_cores",
        "processor_threads_per_core",
        "processor_vcpus",
        "processor_nproc",
        "virtualization_type",
        "virtualization_role",
        "default_ipv4",
        "default_ipv6",
        "all_ipv4_addresses",
        "all_ipv6_addresses",
        "lsb",
        "machine_id",
        "selinux",
        "selinux_python_present",
        "apparmor",
        "cmdline",
        "proc_cmdline",
        "dns",
        "product_name",
        "product_version",
        "product_serial",
        "product_uuid",
        "system_vendor",
        "bios_vendor",
        "bios_version",
        "bios_date",
        "board_name",
        "chassis_vendor",
        "form_factor",
        "fips",
        "userspace_bits",
        "userspace_architecture",
        "is_chroot",
        "python_version",
    ];
    for k in exact {
        e.eq(
            &format!("ansible_{k}"),
            ours.get(k).cloned(),
            theirs.get(format!("ansible_{k}")).cloned(),
        );
    }
    let sorted = |v: Option<&Json>| {
        let mut a: Vec<String> = v
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .map(|x| x.to_string())
            .collect();
        a.sort();
        a
    };
    // Python sets and os.listdir: their order means nothing.
    for k in [
        "interfaces",
        "virtualization_tech_guest",
        "virtualization_tech_host",
    ] {
        e.eq(
            &format!("ansible_{k}"),
            sorted(ours.get(k)),
            sorted(theirs.get(format!("ansible_{k}").as_str())),
        );
    }
    for i in ours
        .get("interfaces")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let k = i.as_str().unwrap_or("").replace('-', "_");
        let mut a = ours.get(&k).cloned().unwrap_or(Json::Null);
        let mut b = theirs
            .get(format!("ansible_{k}"))
            .cloned()
            .unwrap_or(Json::Null);
        for x in [&mut a, &mut b] {
            if let Json::Object(m) = x {
                m.remove("features");
                m.remove("timestamping");
                m.remove("hw_timestamp_filters");
                m.remove("pciid");
                m.remove("module");
            }
        }
        e.eq(&format!("ansible_{k}"), a, b);
    }
    e.eq(
        "memory_mb.swap.total",
        ours["memory_mb"]["swap"]["total"].clone(),
        theirs["ansible_memory_mb"]["swap"]["total"].clone(),
    );
    e.eq(
        "memory_mb.real.total",
        ours["memory_mb"]["real"]["total"].clone(),
        theirs["ansible_memory_mb"]["real"]["total"].clone(),
    );
    let keys = |v: &Json| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys().cloned())
            .collect();
        k.sort();
        k
    };
    e.eq(
        "date_time keys",
        keys(&ours["date_time"]),
        keys(&theirs["ansible_date_time"]),
    );
    e.eq(
        "date_time tz",
        ours["date_time"]["tz"].clone(),
        theirs["ansible_date_time"]["tz"].clone(),
    );
    let mounts = |v: &Json| -> Vec<String> {
        let mut m: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{} {} {} {} {} {}",
                    m["mount"], m["device"], m["fstype"], m["options"], m["block_size"], m["uuid"]
                )
            })
            .collect();
        m.sort();
        m
    };
    e.eq(
        "mounts",
        mounts(&ours["mounts"]),
        mounts(&theirs["ansible_mounts"]),
    );
    for k in [
        "uptime_seconds",
        "loadavg",
        "memfree_mb",
        "memory_mb",
        "env",
        "python",
        "date_time",
    ] {
        e.check(
            &format!("ansible_{k} present"),
            ours.get(k).is_some() == theirs.get(format!("ansible_{k}")).is_some(),
        );
    }
    e.done();
}
