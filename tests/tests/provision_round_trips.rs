//! Round trips per task (issue #16): on a booted Debian target, an
//! idempotent re-run costs at most one SSH round trip per task, whatever
//! the module (facts, service_facts, package_facts, a directory copy,
//! assemble, apt with a list, systemd, get_url with a checksum,
//! dpkg_selections, find, slurp, getent), counted by
//! [`image_provision::round_trips::Counting`] around the SSH target; and the
//! shortcuts that make it so still see changes: a file changed on the
//! target is written again, a service disabled behind service_facts' cache
//! shows as disabled. A loop's items are checked in one round trip (copy,
//! file, lineinfile, apt), so are the tasks ahead of a task (`lookahead`),
//! and an item changed on the target is still seen and put back; a
//! command's change on every run does not stop that.
//!
//! Needs `scripts/testbed/setup.sh` (root).

mod bed_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

use bed_support::{boot, connect, serve, stop};
use image_core::events::{Event, EventSink};
use image_core::target::{Exec, Target};
use image_provision::round_trips::{Counting, RoundTrips};
use image_provision::{parse, Options, Report};
use image_testbed::HOST_ADDR_FROM_GUEST;
use serde_json::{json, Map};

/// Round trips of each finished task (or loop item), in order.
struct PerTask {
    trips: RoundTrips,
    seen: Mutex<u64>,
    counts: Mutex<Vec<(String, u64)>>,
}

impl EventSink for PerTask {
    fn emit(&self, event: &Event) {
        let now = self.trips.get();
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let before = std::mem::replace(&mut *seen, now);
        if let Event::StepFinished { step, .. } = event {
            if let Ok(mut c) = self.counts.lock() {
                c.push((step.clone(), now - before));
            }
        }
    }
}

const PLAY: &str = r#"
- hosts: all
  become: true
  gather_facts: true
  tasks:
    - name: dirs
      file: {path: /srv/rt/frags, state: directory, mode: "0755"}
    - name: fragments
      copy: {content: "frag {{ item }}\n", dest: "/srv/rt/frags/{{ item }}.conf", mode: "0644"}
      loop: [a, b, c, d]
    - name: dir loop
      file: {path: "/srv/rt/d{{ item }}", state: directory, mode: "0750"}
      loop: [1, 2, 3, 4, 5]
    - name: line loop
      lineinfile: {path: /srv/rt/lines.conf, create: true, mode: "0644", regexp: "^{{ item.k }}=", line: "{{ item.k }}={{ item.v }}"}
      loop: [{k: a, v: 1}, {k: b, v: 2}, {k: c, v: 3}]
    - name: apt loop
      apt: {name: "{{ item }}", state: present}
      loop: [curl, python3, openssh-server]
    - name: tree
      copy: {src: tree/, dest: /srv/rt/tree/, mode: "0640", directory_mode: "0755"}
    - name: assemble
      assemble: {src: /srv/rt/frags, dest: /srv/rt/assembled.conf, mode: "0644"}
    - name: apt list
      apt: {name: [curl, python3, openssh-server], state: present}
    - name: systemd
      systemd: {name: ssh, state: started, enabled: true}
    - name: get_url
      get_url: {url: "{{ url }}", dest: /srv/rt/got.txt, checksum: "sha256:{{ sum }}", mode: "0644"}
    - name: dpkg_selections
      dpkg_selections: {name: curl, selection: install}
    - name: find
      find: {paths: /srv/rt, patterns: "*.conf"}
    - name: slurp
      slurp: {src: /srv/rt/lines.conf}
    - name: getent
      getent: {database: passwd, key: root}
    - name: setup
      setup: {gather_subset: ["!all"]}
    - name: package_facts
      package_facts: {}
    - name: service_facts
      service_facts: {}
    - name: ssh unit state
      assert:
        that: ansible_facts.services['ssh.service'].status == ssh_status
    - name: curl is installed
      assert:
        that: "'curl' in ansible_facts.packages"
"#;

const SF: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: service_facts
      service_facts: {}
    - name: ssh unit state
      assert:
        that:
          - ansible_facts.services['ssh.service'].status == ssh_status
          # An alias of a loaded unit has its state (systemctl show); it
          # is there while ssh is enabled (disabling removes the alias).
          - ('sshd.service' in ansible_facts.services) == (ssh_status == 'enabled')
          - (ansible_facts.services['sshd.service'].state | default('active')) == 'active'
          # A SysV script's state (kept under the units' states): procps
          # is Debian's alias of systemd-sysctl.service.
          - ansible_facts.services['procps'].state == procps_state
          - ansible_facts.services['procps'].source == 'sysv'
"#;

async fn run(
    t: &Counting,
    steps: &image_provision::Steps,
    vars: &Map<String, serde_json::Value>,
) -> (Report, Vec<(String, u64)>) {
    let sink = PerTask {
        trips: t.counter(),
        seen: Mutex::new(t.counter().get()),
        counts: Mutex::new(Vec::new()),
    };
    let o = Options {
        extra_vars: vars.clone(),
        ..Default::default()
    };
    let r = image_provision::run(t, steps, &o, &sink).await;
    let counts = sink.counts.into_inner().expect("counts");
    (r, counts)
}

fn changed_tasks(r: &Report) -> Vec<String> {
    r.results
        .iter()
        .filter(|x| x.outcome == image_core::events::Outcome::Changed)
        .map(|x| x.task.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_rerun_is_one_round_trip_per_task_and_changes_are_seen() {
    let bed = boot().await;
    let t = Counting::new(Box::new(connect(&bed).await));
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("files/tree/sub")).expect("mkdir");
    std::fs::write(d.path().join("files/tree/a.txt"), "a\n").expect("write");
    std::fs::write(d.path().join("files/tree/sub/b.txt"), "b\n").expect("write");
    std::fs::write(d.path().join("play.yml"), PLAY).expect("write");
    let body = b"downloaded\n".to_vec();
    let sum = image_provision::script::sha256_hex(&body);
    let port = serve(body);
    let mut vars = Map::new();
    vars.insert(
        "url".into(),
        json!(format!("http://{HOST_ADDR_FROM_GUEST}:{port}/got.txt")),
    );
    vars.insert("sum".into(), json!(sum));
    vars.insert("ssh_status".into(), json!("enabled"));
    let steps = parse::load(&d.path().join("play.yml"), &[]).expect("parse");

    let (r, _) = run(&t, &steps, &vars).await;
    assert_eq!(r.recap.failed, 0, "first run: {:#?}", r.results);

    // The re-run: nothing changes, no task costs more than one round trip.
    let (r, counts) = run(&t, &steps, &vars).await;
    assert_eq!(r.recap.failed, 0, "re-run: {:#?}", r.results);
    assert_eq!(r.recap.changed, 0, "re-run changed {:?}", changed_tasks(&r));
    let over: Vec<&(String, u64)> = counts.iter().filter(|(_, n)| *n > 1).collect();
    assert!(over.is_empty(), "tasks over one round trip: {over:?}");
    for name in ["Gathering Facts", "setup", "service_facts"] {
        assert!(
            counts.iter().any(|(s, n)| s == name && *n == 1),
            "{name}: {counts:?}"
        );
    }
    // The tasks ahead are checked together (`lookahead`): from `dirs`
    // through `getent` (the last: its facts change the variables), four
    // loops and ten plain tasks, eleven modules, one round trip in all,
    // counted at the first task; a loop's items never cost one each.
    let span: Vec<&(String, u64)> = counts
        .iter()
        .skip_while(|(s, _)| s != "dirs")
        .take_while(|(s, _)| s != "setup")
        .collect();
    assert_eq!(span.len(), 1 + 4 + 5 + 3 + 3 + 9, "{counts:?}");
    assert_eq!(span.iter().map(|(_, n)| n).sum::<u64>(), 1, "{span:?}");
    assert_eq!(span[0], &("dirs".to_string(), 1), "{span:?}");
    // Facts, the span, setup, package_facts, service_facts with the asserts.
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert!(total <= 5, "{total} round trips for the re-run: {counts:?}");

    // Changes on the target are still seen and undone.
    let root = bed.root_dir().to_path_buf();
    std::fs::write(root.join("srv/rt/tree/sub/b.txt"), "edited\n").expect("edit");
    std::fs::write(root.join("srv/rt/assembled.conf"), "edited\n").expect("edit");
    // In loops: a fragment edited, a directory's mode changed, a line
    // removed; the items after a changed one are checked again.
    std::fs::write(root.join("srv/rt/frags/c.conf"), "edited\n").expect("edit");
    std::fs::set_permissions(
        root.join("srv/rt/d2"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    std::fs::write(root.join("srv/rt/lines.conf"), "a=1\nc=3\n").expect("edit");
    let (r, _) = run(&t, &steps, &vars).await;
    assert_eq!(r.recap.failed, 0, "{:#?}", r.results);
    assert_eq!(
        changed_tasks(&r),
        ["fragments", "dir loop", "line loop", "tree", "assemble"]
    );
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(root.join(p)).expect("stat").permissions(),
        ) & 0o7777
    };
    assert_eq!(mode("srv/rt/d2"), 0o750);
    assert_eq!(
        std::fs::read_to_string(root.join("srv/rt/frags/c.conf")).expect("read"),
        "frag c\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("srv/rt/lines.conf")).expect("read"),
        "a=1\nc=3\nb=2\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("srv/rt/tree/sub/b.txt")).expect("read"),
        "b\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("srv/rt/assembled.conf")).expect("read"),
        "frag a\nfrag b\nfrag c\nfrag d\n"
    );

    // service_facts' caches follow the unit files and the units' states:
    // ssh disabled behind our back shows as disabled, and as enabled again
    // once enabled; procps' SysV status follows its unit's state.
    std::fs::write(d.path().join("sf.yml"), SF).expect("write");
    let sf = parse::load(&d.path().join("sf.yml"), &[]).expect("parse");
    let status = |ssh: &str, procps: &str| {
        let mut v = Map::new();
        v.insert("ssh_status".into(), json!(ssh));
        v.insert("procps_state".into(), json!(procps));
        v
    };
    for (cmd, now, not) in [
        (
            "systemctl disable ssh",
            ("disabled", "running"),
            ("enabled", "running"),
        ),
        (
            "systemctl enable ssh",
            ("enabled", "running"),
            ("disabled", "running"),
        ),
        (
            "systemctl stop systemd-sysctl",
            ("enabled", "stopped"),
            ("enabled", "running"),
        ),
        (
            "systemctl start systemd-sysctl",
            ("enabled", "running"),
            ("enabled", "stopped"),
        ),
    ] {
        let out = t.exec(&Exec::new(cmd).become_root()).await.expect("exec");
        assert!(out.success(), "{cmd}: {}", out.stderr_str());
        let (r, counts) = run(&t, &sf, &status(now.0, now.1)).await;
        assert_eq!(r.recap.failed, 0, "after `{cmd}`: {:#?}", r.results);
        assert!(counts.iter().all(|(_, n)| *n <= 1), "{counts:?}");
        let (r, _) = run(&t, &sf, &status(not.0, not.1)).await;
        assert_eq!(r.recap.failed, 1, "after `{cmd}` the state is not {not:?}");
    }

    // package_facts' python probe (`import apt`) is kept under the package
    // databases' fingerprint: a cached "no" is believed (ansible's failure)
    // until a package changes.
    std::fs::write(d.path().join("pf.yml"), PF).expect("write");
    let pf = parse::load(&d.path().join("pf.yml"), &[]).expect("parse");
    std::fs::write(d.path().join("pfo.yml"), PF_ORIGIN).expect("write");
    let pf_origin = parse::load(&d.path().join("pfo.yml"), &[]).expect("parse");
    let sh = |c: &'static str| Exec::new(c).become_root();
    let out = t
        .exec(&sh("sed -i '2s/.*/1/' /run/image-cli/package-facts-py-apt"))
        .await
        .expect("exec");
    assert!(
        out.success(),
        "no package_facts cache: {}",
        out.stderr_str()
    );
    let (r, _) = run(&t, &pf, &Map::new()).await;
    assert_eq!(
        r.recap.failed, 1,
        "a cached no is believed: {:#?}",
        r.results
    );
    let out = t
        .exec(&sh("sleep 1; touch /var/lib/dpkg/status"))
        .await
        .expect("exec");
    assert!(out.success(), "touch: {}", out.stderr_str());
    let (r, counts) = run(&t, &pf, &Map::new()).await;
    assert_eq!(
        r.recap.failed, 0,
        "after a package change: {:#?}",
        r.results
    );
    assert!(counts.iter().all(|(_, n)| *n <= 1), "{counts:?}");

    // Its origins (python-apt reading the whole cache) are kept the same
    // way: an origin edited in the cache is believed until a package
    // changes, then read again.
    let origin = |v: &str| {
        let mut m = Map::new();
        m.insert("curl_origin".into(), json!(v));
        m
    };
    let out = t
        .exec(&sh(concat!(
            r"sed -i 's/^\(origin\tcurl\t[^\t]*\t\)[^\t]*\t/\1cached-origin\t/' ",
            "/run/image-cli/package-facts-origins && ",
            "grep -q cached-origin /run/image-cli/package-facts-origins"
        )))
        .await
        .expect("exec");
    assert!(out.success(), "no origins cache: {}", out.stderr_str());
    let (r, _) = run(&t, &pf_origin, &origin("cached-origin")).await;
    assert_eq!(r.recap.failed, 0, "the cached origin: {:#?}", r.results);
    let out = t
        .exec(&sh("sleep 1; touch /var/lib/dpkg/status"))
        .await
        .expect("exec");
    assert!(out.success(), "touch: {}", out.stderr_str());
    let (r, _) = run(&t, &pf_origin, &origin("cached-origin")).await;
    assert_eq!(
        r.recap.failed, 1,
        "after a package change the origin is read again: {:#?}",
        r.results
    );

    // SysV scripts' states (`service --status-all`) are kept the same way:
    // a script's unit stopped or started behind the cache shows so.
    let setup = format!(
        "printf '%s' {} > /etc/init.d/rtdemo && chmod 755 /etc/init.d/rtdemo && \
         printf '%s' {} > /etc/systemd/system/rtdemo.service && \
         systemctl daemon-reload && systemctl start rtdemo",
        image_provision::script::q(RTDEMO_INIT),
        image_provision::script::q(RTDEMO_UNIT)
    );
    let out = t.exec(&Exec::new(setup).become_root()).await.expect("exec");
    assert!(out.success(), "rtdemo: {}", out.stderr_str());
    std::fs::write(d.path().join("sysv.yml"), SYSV).expect("write");
    let sysv = parse::load(&d.path().join("sysv.yml"), &[]).expect("parse");
    let state = |s: &str| {
        let mut v = Map::new();
        v.insert("rt_state".into(), json!(s));
        v
    };
    for (cmd, now) in [
        ("true", "running"),
        ("true", "running"),
        ("systemctl stop rtdemo", "stopped"),
        ("true", "stopped"),
        ("systemctl start rtdemo", "running"),
    ] {
        let out = t.exec(&Exec::new(cmd).become_root()).await.expect("exec");
        assert!(out.success(), "{cmd}: {}", out.stderr_str());
        let (r, counts) = run(&t, &sysv, &state(now)).await;
        assert_eq!(r.recap.failed, 0, "after `{cmd}`: {:#?}", r.results);
        assert!(counts.iter().all(|(_, n)| *n <= 1), "{counts:?}");
    }
    // The cache was used: every script of this target (Debian's own, one
    // through init-d-script, and rtdemo) hands its status to systemd.
    let out = t
        .exec(&Exec::new("test -s /run/image-cli/service-facts-sysv").become_root())
        .await
        .expect("exec");
    assert!(out.success(), "no SysV cache on the target");

    // A command changes on every run; that does not stop the tasks after
    // it from being checked together (their first run still is not). The
    // look-ahead ends after `getent` (its facts change the variables), so
    // the loop after it has a batch of its own, not a round trip per item.
    // Commands that `creates`/`removes` stop are checked with the tasks
    // after them.
    std::fs::write(d.path().join("cmd.yml"), CMD).expect("write");
    let cmd = parse::load(&d.path().join("cmd.yml"), &[]).expect("parse");
    let (r, _) = run(&t, &cmd, &Map::new()).await;
    assert_eq!(
        changed_tasks(&r),
        [
            "a command",
            "d1",
            "d2",
            "d3",
            "after getent",
            "after getent",
            "after getent",
            "d4",
            "undo",
            "d4 again"
        ]
    );
    let (r, counts) = run(&t, &cmd, &Map::new()).await;
    assert_eq!(changed_tasks(&r), ["a command", "undo", "d4 again"]);
    // A command runs for real with the checks of the tasks after it, in
    // one exec (`fuse`), and they see what it did: `undo`'s chmod makes
    // `d4 again` run and put the mode back.
    let trips: Vec<u64> = counts.iter().map(|(_, n)| *n).collect();
    assert_eq!(trips, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1], "{counts:?}");
    let mode = std::fs::metadata(root.join("srv/rt/cmd4"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // The commands that `creates`/`removes` stop were checked with the
    // loop and `d4`, and their results are the real run's.
    for x in r.results.iter().filter(|x| x.task.starts_with("once")) {
        assert_eq!(x.outcome, image_core::events::Outcome::Ok, "{x:#?}");
        assert!(x.msg.starts_with("Did not run command"), "{x:#?}");
    }

    // A registered result ends the look-ahead only before a task that uses
    // it: `r1` is checked with the command that registers, `r2` is not.
    std::fs::write(d.path().join("reg.yml"), REG).expect("write");
    let reg = parse::load(&d.path().join("reg.yml"), &[]).expect("parse");
    let (r, _) = run(&t, &reg, &Map::new()).await;
    assert_eq!(changed_tasks(&r), ["r1", "r2 uses it", "r3"]);
    let (r, counts) = run(&t, &reg, &Map::new()).await;
    assert_eq!(changed_tasks(&r), Vec::<String>::new());
    let trips: Vec<u64> = counts.iter().map(|(_, n)| *n).collect();
    assert_eq!(trips, [1, 0, 1, 0], "{counts:?}");
    assert!(root.join("srv/rt/reg1").is_dir());
    drop(t);
    stop(bed).await;
}

const REG: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: reg command
      command: echo /srv/rt/reg1
      register: regc
      changed_when: false
    - name: r1
      file: {path: /srv/rt/reg0, state: directory, mode: "0755"}
    - name: r2 uses it
      file: {path: "{{ regc.stdout }}", state: directory, mode: "0755"}
    - name: r3
      file: {path: /srv/rt/reg3, state: directory, mode: "0755"}
"#;

const CMD: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: a command
      command: "true"
    - name: d1
      file: {path: /srv/rt/cmd1, state: directory, mode: "0755"}
    - name: d2
      file: {path: /srv/rt/cmd2, state: directory, mode: "0755"}
    - name: d3
      file: {path: /srv/rt/cmd3, state: directory, mode: "0755"}
    - name: getent
      getent: {database: passwd, key: root}
    - name: after getent
      file: {path: "/srv/rt/g{{ item }}", state: directory, mode: "0755"}
      loop: [1, 2, 3]
    - name: once 1
      command: "true"
      args: {creates: /srv/rt/cmd1}
    - name: once 2
      shell: "true"
      args: {removes: /srv/rt/absent}
    - name: d4
      file: {path: /srv/rt/cmd4, state: directory, mode: "0755"}
    - name: undo
      shell: chmod 700 /srv/rt/cmd4
    - name: d4 again
      file: {path: /srv/rt/cmd4, state: directory, mode: "0755"}
"#;

/// An LSB init script whose `status` Debian's hook hands to systemd.
const RTDEMO_INIT: &str = "#!/bin/sh
### BEGIN INIT INFO
# Provides:          rtdemo
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: round-trip test service
### END INIT INFO
. /lib/lsb/init-functions
echo \"Usage: $0 {start|stop|status}\"
exit 1
";

const RTDEMO_UNIT: &str = "[Service]\nExecStart=/bin/sleep infinity\n";

const PF: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: package_facts
      package_facts: {}
    - name: curl is installed
      assert:
        that: "'curl' in ansible_facts.packages"
"#;

const PF_ORIGIN: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: package_facts
      package_facts: {}
    - name: curl's origin
      assert:
        that: "ansible_facts.packages.curl[0].origin == curl_origin"
"#;

const SYSV: &str = r#"
- hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: service_facts
      service_facts: {}
    - name: the script's state
      assert:
        that:
          - ansible_facts.services['rtdemo'].source == 'sysv'
          - ansible_facts.services['rtdemo'].state == rt_state
"#;
