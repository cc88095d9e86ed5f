//! The provisioning benchmark's helper (`bench/provision/run.sh`): writes a
//! generated workload, and turns the tools' logs into the per-module table.
//!
//! ```text
//! bench_provision gen SEED DIR
//!     writes DIR/tasks.yml (one play of 100 tasks drawn from SEED across
//!     the modules that make sense on a Debian target, with loops, handlers,
//!     `when:` on facts), and the files it uses (DIR/files, DIR/templates,
//!     DIR/vars, DIR/www for the HTTP server the bench starts). Needs
//!     `-e bench_http=http://HOST:PORT -e bench_fetch=DIR` when run.
//! bench_provision table PLAYBOOK OURS_FIRST.jsonl OURS_RERUN.jsonl [ANSIBLE_FIRST.txt ANSIBLE_RERUN.txt]
//!     per-module cost: tasks, image-cli ms/task and SSH round trips/task
//!     (from `image-cli provision --json`, whose finished events carry
//!     `round_trips` and `elapsed_us`), ansible-core ms/task (from the
//!     `ansible.posix.profile_tasks` callback), slowest re-run first.
//! ```
//!
//! Modules left out of the generated workload, and why: `hostname`,
//! `modprobe`, `mount`, `iptables`, `iptables_state` and `reboot` need a
//! kernel or a machine a container target does not give; `pip` and
//! `apt_key` need PyPI or a key server; `dnf`, `yum`, `yum_repository`,
//! `rpm_key` and the Red Hat subscription modules are for RPM hosts;
//! `pause` waits by design.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

use image_provision::task::{Action, Task};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("gen") if args.len() == 3 => match args[1].parse::<u64>() {
            Ok(seed) => generate(seed, Path::new(&args[2])),
            Err(_) => Err(format!("SEED must be a number, got `{}`", args[1])),
        },
        Some("table") if args.len() == 4 || args.len() == 6 => table(&args[1..]),
        _ => Err("usage: bench_provision gen SEED DIR | table PLAYBOOK OURS_FIRST.jsonl OURS_RERUN.jsonl [ANSIBLE_FIRST.txt ANSIBLE_RERUN.txt]".into()),
    };
    if let Err(e) = r {
        eprintln!("bench_provision: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// The generated workload

/// Small packages from bookworm's main, installed by the workload.
const PACKAGES: &[&str] = &[
    "jq", "tree", "less", "bzip2", "zstd", "rsync", "lsof", "psmisc", "bc", "unzip", "patch",
    "file", "xz-utils", "ncdu", "pv",
];

/// net.* sysctls a network namespace of its own lets a container set.
const SYSCTLS: &[(&str, &[&str])] = &[
    ("net.ipv4.ip_forward", &["0", "1"]),
    ("net.ipv4.conf.all.rp_filter", &["0", "1", "2"]),
    ("net.ipv4.conf.default.rp_filter", &["0", "1", "2"]),
    ("net.ipv4.tcp_syncookies", &["0", "1"]),
    ("net.core.somaxconn", &["1024", "4096", "8192"]),
    ("net.ipv4.tcp_keepalive_time", &["600", "1200", "7200"]),
    ("net.ipv4.tcp_fin_timeout", &["15", "30", "60"]),
    ("net.ipv4.conf.all.accept_redirects", &["0", "1"]),
    ("net.ipv4.tcp_tw_reuse", &["0", "1", "2"]),
    ("net.ipv6.conf.all.forwarding", &["0", "1"]),
];

/// What one draw adds: a task, and files next to the playbook.
struct Gen<'a> {
    rng: StdRng,
    dir: &'a Path,
    n: usize,
    /// Sysctl names already set (one value each).
    sysctls: Vec<&'static str>,
}

impl Gen<'_> {
    fn pick<'b, T>(&mut self, xs: &'b [T]) -> &'b T {
        &xs[self.rng.gen_range(0..xs.len())]
    }

    fn mode(&mut self) -> &'static str {
        const MODES: &[&str] = &["0644", "0640", "0600", "0755"];
        MODES[self.rng.gen_range(0..MODES.len())]
    }

    fn write(&self, rel: &str, content: &str) -> Result<(), String> {
        let p = self.dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(&p, content).map_err(|e| format!("writing {}: {e}", p.display()))
    }

    /// One task of module family `m` (a short module name); `i` makes its
    /// names and paths unique.
    fn task(&mut self, m: &str, i: usize) -> Result<Json, String> {
        let d = format!("/opt/gen/t{i}");
        let t = match m {
            "apt" => {
                let k = self.rng.gen_range(1..=3);
                let pkgs: Vec<&str> = PACKAGES
                    .choose_multiple(&mut self.rng, k)
                    .copied()
                    .collect();
                json!({"name": format!("apt {i}: {}", pkgs.join(" ")),
                       "ansible.builtin.apt": {"name": pkgs, "state": "present"}})
            }
            "package" => {
                let p = *self.pick(PACKAGES);
                json!({"name": format!("package {i}: {p}"),
                       "ansible.builtin.package": {"name": p, "state": "present"}})
            }
            "dpkg_selections" => {
                json!({"name": format!("dpkg_selections {i}: hold tree"),
                       "ansible.builtin.dpkg_selections": {"name": "tree", "selection": "hold"}})
            }
            "file" => match self.rng.gen_range(0..4) {
                0 => {
                    json!({"name": format!("file {i}: directories"),
                           "ansible.builtin.file": {"path": "{{ item }}", "state": "directory", "mode": "0755"},
                           "loop": [format!("{d}/a"), format!("{d}/b"), format!("{d}/c")]})
                }
                1 => {
                    json!({"name": format!("file {i}: link"),
                           "ansible.builtin.file": {"src": "/etc/hostname", "dest": format!("/opt/gen/link{i}"), "state": "link"}})
                }
                2 => {
                    json!({"name": format!("file {i}: touch"),
                           "ansible.builtin.file": {"path": format!("/opt/gen/touch{i}"), "state": "touch", "mode": self.mode(),
                                                    "modification_time": "preserve", "access_time": "preserve"}})
                }
                _ => {
                    json!({"name": format!("file {i}: absent"),
                           "ansible.builtin.file": {"path": format!("/opt/gen/never{i}"), "state": "absent"}})
                }
            },
            "copy" => match self.rng.gen_range(0..3) {
                0 => {
                    json!({"name": format!("copy {i}: content"),
                           "ansible.builtin.copy": {"content": format!("generated {i}\nseed line {}\n", self.rng.gen::<u32>()),
                                                    "dest": format!("/etc/gen/copy{i}.conf"), "mode": self.mode(), "owner": "root"},
                           "notify": "restart gen"})
                }
                1 => {
                    let body = format!("file {i}\n{}\n", self.rng.gen::<u64>());
                    self.write(&format!("files/f{i}.txt"), &body)?;
                    json!({"name": format!("copy {i}: src"),
                           "ansible.builtin.copy": {"src": format!("f{i}.txt"), "dest": format!("/etc/gen/f{i}.txt"), "mode": "0644"}})
                }
                _ => {
                    for k in 0..3 {
                        self.write(&format!("files/dir{i}/part{k}.txt"), &format!("{i}.{k}\n"))?;
                    }
                    json!({"name": format!("copy {i}: directory"),
                           "ansible.builtin.copy": {"src": format!("dir{i}/"), "dest": format!("{d}/"), "mode": "0644", "directory_mode": "0755"}})
                }
            },
            "template" => {
                let n = self.rng.gen_range(1..6);
                self.write(
                    &format!("templates/t{i}.conf.j2"),
                    &format!(
                        "# generated {i}\nhost={{{{ ansible_hostname }}}}\nos={{{{ ansible_distribution }}}} {{{{ ansible_distribution_major_version }}}}\n\
                         {{% for k in range({n}) %}}slot{{{{ k }}}}={{{{ k * {i} }}}}\n{{% endfor %}}"
                    ),
                )?;
                json!({"name": format!("template {i}"),
                       "ansible.builtin.template": {"src": format!("t{i}.conf.j2"), "dest": format!("/etc/gen/t{i}.conf"), "mode": self.mode()},
                       "notify": "restart gen"})
            }
            "lineinfile" => {
                if self.rng.gen_bool(0.5) {
                    json!({"name": format!("lineinfile {i}: loop"),
                           "ansible.builtin.lineinfile": {"path": format!("/etc/gen/lines{i}.conf"), "create": true, "mode": "0644",
                                                          "regexp": "^{{ item.k }}=", "line": "{{ item.k }}={{ item.v }}"},
                           "loop": [{"k": "alpha", "v": i}, {"k": "beta", "v": i * 2}]})
                } else {
                    json!({"name": format!("lineinfile {i}"),
                           "ansible.builtin.lineinfile": {"path": "/etc/gen/lines.conf", "create": true, "mode": "0644",
                                                          "regexp": format!("^key{i}="), "line": format!("key{i}={}", self.rng.gen::<u16>())}})
                }
            }
            "blockinfile" => {
                json!({"name": format!("blockinfile {i}"),
                       "ansible.builtin.blockinfile": {"path": "/etc/gen/blocks.conf", "create": true, "mode": "0644",
                                                       "marker": format!("# {{mark}} GEN {i}"),
                                                       "block": format!("opt{i} = {}\nother{i} = yes\n", self.rng.gen::<u16>())}})
            }
            "replace" => {
                json!({"name": format!("replace {i}"),
                       "ansible.builtin.replace": {"path": "/etc/gen/replace.txt", "regexp": format!("^old{}$", i % 5), "replace": format!("new{}", i % 5)}})
            }
            "ini_file" => {
                json!({"name": format!("ini_file {i}"),
                       "community.general.ini_file": {"path": "/etc/gen/gen.ini", "section": format!("s{}", i % 4), "option": format!("o{i}"),
                                                      "value": self.rng.gen::<u16>().to_string(), "mode": "0644"}})
            }
            "sysctl" => {
                let free: Vec<&(&str, &[&str])> = SYSCTLS
                    .iter()
                    .filter(|(k, _)| !self.sysctls.contains(k))
                    .collect();
                let Some(&&(k, vals)) = free.choose(&mut self.rng) else {
                    return self.task("lineinfile", i);
                };
                self.sysctls.push(k);
                let v = *self.pick(vals);
                json!({"name": format!("sysctl {i}: {k}"),
                       "ansible.posix.sysctl": {"name": k, "value": v, "sysctl_file": "/etc/sysctl.d/90-gen.conf", "reload": true}})
            }
            "user" => {
                json!({"name": format!("user {i}"),
                       "ansible.builtin.user": {"name": format!("gen{i}"), "system": true, "create_home": false, "shell": "/usr/sbin/nologin", "groups": "gens", "append": true}})
            }
            "group" => {
                json!({"name": format!("group {i}"),
                       "ansible.builtin.group": {"name": format!("gen{i}g"), "system": self.rng.gen_bool(0.5)}})
            }
            "cron" => {
                json!({"name": format!("cron {i}"),
                       "ansible.builtin.cron": {"name": format!("gen {i}"), "minute": (i % 60).to_string(), "hour": "3", "job": format!("/bin/true gen{i}"), "user": "root"}})
            }
            "command" => {
                if self.rng.gen_bool(0.5) {
                    json!({"name": format!("command {i}: creates"),
                           "ansible.builtin.command": {"cmd": format!("touch /opt/gen/made{i}"), "creates": format!("/opt/gen/made{i}")}})
                } else {
                    json!({"name": format!("command {i}: probe"),
                           "ansible.builtin.command": "uname -r", "register": format!("cmd{i}"), "changed_when": false})
                }
            }
            "shell" => {
                json!({"name": format!("shell {i}"),
                       "ansible.builtin.shell": "grep -c . /etc/passwd | tr -d ' '", "register": format!("sh{i}"), "changed_when": false})
            }
            "raw" => {
                json!({"name": format!("raw {i}"), "ansible.builtin.raw": "cat /etc/debian_version", "changed_when": false})
            }
            "script" => {
                self.write(
                    "files/gen.sh",
                    "#!/bin/sh\nset -e\nmkdir -p /opt/gen\necho \"$1\" > \"/opt/gen/script-$1\"\n",
                )?;
                json!({"name": format!("script {i}"),
                       "ansible.builtin.script": {"cmd": format!("gen.sh {i}"), "creates": format!("/opt/gen/script-{i}")}})
            }
            "stat" => {
                json!({"name": format!("stat {i}"),
                       "ansible.builtin.stat": {"path": "/etc/gen/lines.conf", "get_checksum": self.rng.gen_bool(0.5)}, "register": format!("st{i}")})
            }
            "assert" => {
                json!({"name": format!("assert {i}"),
                       "ansible.builtin.assert": {"that": ["ansible_os_family == 'Debian'", "ansible_distribution_major_version | int >= 12"], "quiet": true}})
            }
            "debug" => {
                json!({"name": format!("debug {i}"),
                       "ansible.builtin.debug": {"msg": "{{ ansible_distribution }} {{ ansible_kernel }} {{ gen_fact | default('') }}"}})
            }
            "set_fact" => {
                json!({"name": format!("set_fact {i}"),
                       "ansible.builtin.set_fact": {"gen_fact": format!("{{{{ ansible_hostname }}}}-{i}")}})
            }
            "fail" => {
                json!({"name": format!("fail {i}"),
                       "ansible.builtin.fail": {"msg": "not Debian"}, "when": "ansible_os_family != 'Debian'"})
            }
            "getent" => {
                json!({"name": format!("getent {i}"),
                       "ansible.builtin.getent": {"database": "passwd", "key": "root"}})
            }
            "find" => {
                json!({"name": format!("find {i}"),
                       "ansible.builtin.find": {"paths": "/etc/gen", "patterns": "*.conf"}, "register": format!("found{i}")})
            }
            "slurp" => {
                json!({"name": format!("slurp {i}"), "ansible.builtin.slurp": {"src": "/etc/os-release"}})
            }
            "fetch" => {
                json!({"name": format!("fetch {i}"),
                       "ansible.builtin.fetch": {"src": "/etc/os-release", "dest": format!("{{{{ bench_fetch }}}}/f{i}/"), "flat": true}})
            }
            "get_url" => {
                let body = format!("download {i} {}\n", self.rng.gen::<u64>());
                self.write(&format!("www/d{i}.txt"), &body)?;
                let sum = sha256_hex(body.as_bytes());
                json!({"name": format!("get_url {i}"),
                       "ansible.builtin.get_url": {"url": format!("{{{{ bench_http }}}}/d{i}.txt"), "dest": format!("/opt/gen/d{i}.txt"),
                                                   "checksum": format!("sha256:{sum}"), "mode": "0644"}})
            }
            "uri" => {
                json!({"name": format!("uri {i}"),
                       "ansible.builtin.uri": {"url": "{{ bench_http }}/index.json", "return_content": true}})
            }
            "unarchive" => {
                json!({"name": format!("unarchive {i}"),
                       "ansible.builtin.unarchive": {"src": "/opt/gen/gen.tar.gz", "dest": "/opt/gen/unpack", "remote_src": true},
                       "notify": "restart gen"})
            }
            "assemble" => {
                json!({"name": format!("assemble {i}"),
                       "ansible.builtin.assemble": {"src": "/opt/gen/frags", "dest": format!("/etc/gen/assembled{i}.conf"), "mode": "0644"}})
            }
            "systemd" => {
                json!({"name": format!("systemd {i}"),
                       "ansible.builtin.systemd": {"name": "gen", "enabled": true, "state": "started"}})
            }
            "service" => {
                json!({"name": format!("service {i}"),
                       "ansible.builtin.service": {"name": "cron", "state": "started", "enabled": true}})
            }
            "service_facts" => {
                json!({"name": format!("service_facts {i}"), "ansible.builtin.service_facts": {}})
            }
            "package_facts" => {
                json!({"name": format!("package_facts {i}"), "ansible.builtin.package_facts": {}})
            }
            "setup" => {
                json!({"name": format!("setup {i}"),
                       "ansible.builtin.setup": {"gather_subset": ["!all"]}})
            }
            "wait_for" => {
                json!({"name": format!("wait_for {i}"),
                       "ansible.builtin.wait_for": {"path": "/etc/os-release", "search_regex": "^ID=", "timeout": 5}})
            }
            "tempfile" => {
                json!({"name": format!("tempfile {i}"),
                       "ansible.builtin.tempfile": {"state": "file", "suffix": "gen"}, "register": format!("tmp{i}"), "changed_when": false})
            }
            "include_vars" => {
                let body = format!(
                    "gen_var_{i}: {}\ngen_list_{i}: [a, b]\n",
                    self.rng.gen::<u16>()
                );
                self.write(&format!("vars/v{i}.yml"), &body)?;
                json!({"name": format!("include_vars {i}"), "ansible.builtin.include_vars": {"file": format!("vars/v{i}.yml")}})
            }
            "apt_repository" => {
                json!({"name": format!("apt_repository {i}"),
                       "ansible.builtin.apt_repository": {"repo": "deb http://deb.debian.org/debian bookworm contrib", "filename": "gen-contrib", "update_cache": false}})
            }
            "deb822_repository" => {
                json!({"name": format!("deb822_repository {i}"),
                       "ansible.builtin.deb822_repository": {"name": "gen-backports", "types": "deb", "uris": "http://deb.debian.org/debian",
                                                             "suites": "bookworm-backports", "components": "main", "enabled": false}})
            }
            other => return Err(format!("no generator for module `{other}`")),
        };
        self.n += 1;
        Ok(t)
    }
}

/// The module families drawn from, with weights (how common each is in a
/// node image's provisioning).
const FAMILIES: &[(&str, u32)] = &[
    ("apt", 4),
    ("package", 1),
    ("dpkg_selections", 1),
    ("file", 8),
    ("copy", 7),
    ("template", 5),
    ("lineinfile", 6),
    ("blockinfile", 3),
    ("replace", 2),
    ("ini_file", 2),
    ("sysctl", 4),
    ("user", 2),
    ("group", 2),
    ("cron", 2),
    ("command", 5),
    ("shell", 3),
    ("raw", 1),
    ("script", 1),
    ("stat", 3),
    ("assert", 2),
    ("debug", 2),
    ("set_fact", 2),
    ("fail", 1),
    ("getent", 1),
    ("find", 1),
    ("slurp", 1),
    ("fetch", 1),
    ("get_url", 3),
    ("uri", 1),
    ("unarchive", 1),
    ("assemble", 1),
    ("systemd", 3),
    ("service", 2),
    ("service_facts", 1),
    ("package_facts", 1),
    ("setup", 1),
    ("wait_for", 1),
    ("tempfile", 1),
    ("include_vars", 1),
    ("apt_repository", 1),
    ("deb822_repository", 1),
];

/// The tasks everything else relies on (packages the modules need, the
/// directories, the unit, the archive, the fragments).
fn prelude() -> Vec<Json> {
    let unit = "[Unit]\nDescription=generated bench service\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";
    vec![
        json!({"name": "prelude: apt cache (1 h)", "ansible.builtin.apt": {"update_cache": true, "cache_valid_time": 3600}}),
        json!({"name": "prelude: what the modules need",
               "ansible.builtin.apt": {"name": ["cron", "python3-apt", "python3-debian", "tree"], "state": "present"}}),
        json!({"name": "prelude: directories", "ansible.builtin.file": {"path": "{{ item }}", "state": "directory", "mode": "0755"},
               "loop": ["/opt/gen", "/etc/gen", "/opt/gen/frags", "/opt/gen/src", "/opt/gen/unpack"]}),
        json!({"name": "prelude: group gens", "ansible.builtin.group": {"name": "gens"}}),
        json!({"name": "prelude: the unit", "ansible.builtin.copy": {"content": unit, "dest": "/etc/systemd/system/gen.service", "mode": "0644"},
               "notify": "reload systemd"}),
        json!({"name": "prelude: fragments", "ansible.builtin.copy": {"content": "frag {{ item }}\n", "dest": "/opt/gen/frags/{{ item }}.conf", "mode": "0644"},
               "loop": ["10-a", "20-b", "30-c"]}),
        json!({"name": "prelude: text to replace in",
               "ansible.builtin.copy": {"content": "old0\nold1\nold2\nold3\nold4\n", "dest": "/etc/gen/replace.txt", "force": false, "mode": "0644"}}),
        json!({"name": "prelude: the archive",
               "ansible.builtin.shell": "echo one > /opt/gen/src/one.txt && echo two > /opt/gen/src/two.txt && tar -C /opt/gen/src -czf /opt/gen/gen.tar.gz one.txt two.txt",
               "args": {"creates": "/opt/gen/gen.tar.gz"}}),
        json!({"name": "prelude: flush handlers", "ansible.builtin.meta": "flush_handlers"}),
    ]
}

fn generate(seed: u64, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        dir,
        n: 0,
        sysctls: Vec::new(),
    };
    g.write("www/index.json", "{\"name\": \"gen\", \"ok\": true}\n")?;
    let mut tasks = prelude();
    // Every family once (coverage), the rest drawn by weight, in a shuffled
    // order (every family's task stands on the prelude alone).
    let mut picks: Vec<&str> = FAMILIES.iter().map(|(m, _)| *m).collect();
    let total: u32 = FAMILIES.iter().map(|(_, w)| w).sum();
    while tasks.len() + picks.len() < 100 {
        let mut x = g.rng.gen_range(0..total);
        for (m, w) in FAMILIES {
            if x < *w {
                picks.push(m);
                break;
            }
            x -= w;
        }
    }
    picks.shuffle(&mut g.rng);
    for (k, m) in picks.iter().enumerate() {
        let mut t = g.task(m, k)?;
        // Some tasks only on Debian (a fact in `when:`).
        if g.rng.gen_bool(0.1) && t.get("when").is_none() {
            t["when"] = json!("ansible_os_family == 'Debian'");
        }
        tasks.push(t);
    }
    let play = json!([{
        "name": format!("Generated provisioning benchmark (seed {seed}, 100 tasks)"),
        "hosts": "all",
        "become": true,
        "gather_facts": true,
        "tasks": tasks,
        "handlers": [
            {"name": "reload systemd", "ansible.builtin.systemd": {"daemon_reload": true}},
            {"name": "restart gen", "ansible.builtin.systemd": {"name": "gen", "state": "restarted"}},
        ],
    }]);
    let yaml = serde_yaml::to_string(&play).map_err(|e| format!("yaml: {e}"))?;
    let head = format!(
        "# Generated by `bench_provision gen {seed}` (crates/image-provision/examples/bench_provision.rs):\n\
         # 100 tasks across the modules that make sense on a Debian target. Do not edit.\n"
    );
    let path = dir.join("tasks.yml");
    std::fs::write(&path, head + &yaml).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!(
        "bench_provision: {} tasks ({} drawn) in {}",
        tasks_count(&play),
        g.n,
        path.display()
    );
    Ok(())
}

fn tasks_count(play: &Json) -> usize {
    play[0]["tasks"].as_array().map_or(0, Vec::len)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// The table

/// Task name -> module short name, for every task and handler of a playbook.
fn modules_of(playbook: &Path) -> Result<BTreeMap<String, String>, String> {
    let steps = image_provision::parse::load(playbook, &[])
        .map_err(|e| format!("{}: {e}", playbook.display()))?;
    let mut m = BTreeMap::new();
    fn walk(ts: &[Task], m: &mut BTreeMap<String, String>) {
        for t in ts {
            let module = match &t.action {
                Action::Module { module, .. } => module.name().to_string(),
                Action::Facts { .. } => "setup".to_string(),
                Action::Block {
                    block,
                    rescue,
                    always,
                } => {
                    walk(block, m);
                    walk(rescue, m);
                    walk(always, m);
                    continue;
                }
                _ => continue,
            };
            m.insert(t.display_name(), module);
        }
    }
    for p in &steps.plays {
        for s in &p.sections {
            walk(s, &mut m);
        }
        let hs: Vec<Task> = p.handlers.iter().map(|h| h.task.clone()).collect();
        walk(&hs, &mut m);
    }
    m.insert("Gathering Facts".into(), "setup (play facts)".into());
    Ok(m)
}

/// Per task name: (milliseconds, round trips), summed over loop items.
fn ours(path: &Path) -> Result<BTreeMap<String, (f64, u64)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut m: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<Json>(l) else {
            continue;
        };
        if v["event"] != "step_finished" {
            continue;
        }
        let name = v["step"].as_str().unwrap_or_default().to_string();
        let ms = v["elapsed_us"]
            .as_f64()
            .map(|us| us / 1000.0)
            .or_else(|| v["elapsed_ms"].as_f64())
            .unwrap_or(0.0);
        let e = m.entry(name).or_default();
        e.0 += ms;
        e.1 += v["round_trips"].as_u64().unwrap_or(0);
    }
    Ok(m)
}

/// Per task name: seconds, from profile_tasks' summary lines
/// (`name ---- 1.23s`).
fn theirs(path: &Path) -> Result<BTreeMap<String, f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let re = regex::Regex::new(r"^(.*?) -+ (\d+\.\d+)s$").map_err(|e| e.to_string())?;
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if let Some(c) = re.captures(l.trim_end()) {
            m.insert(
                c[1].trim().to_string(),
                c[2].parse::<f64>().unwrap_or(0.0) * 1000.0,
            );
        }
    }
    Ok(m)
}

#[derive(Default)]
struct Row {
    tasks: usize,
    first_ms: f64,
    re_ms: f64,
    re_trips: u64,
    first_trips: u64,
    a_first_ms: f64,
    a_re_ms: f64,
}

fn table(args: &[String]) -> Result<(), String> {
    let names = modules_of(Path::new(&args[0]))?;
    let first = ours(&PathBuf::from(&args[1]))?;
    let re = ours(&PathBuf::from(&args[2]))?;
    let (a_first, a_re) = if args.len() == 5 {
        (
            Some(theirs(&PathBuf::from(&args[3]))?),
            Some(theirs(&PathBuf::from(&args[4]))?),
        )
    } else {
        (None, None)
    };
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut all: Vec<&String> = first.keys().chain(re.keys()).collect();
    all.sort();
    all.dedup();
    for task in all {
        let module = names
            .get(task)
            .cloned()
            .unwrap_or_else(|| "(other)".to_string());
        let r = rows.entry(module).or_default();
        r.tasks += 1;
        if let Some((ms, n)) = first.get(task) {
            r.first_ms += ms;
            r.first_trips += n;
        }
        if let Some((ms, n)) = re.get(task) {
            r.re_ms += ms;
            r.re_trips += n;
        }
        r.a_first_ms += a_first
            .as_ref()
            .and_then(|a| a.get(task))
            .copied()
            .unwrap_or(0.0);
        r.a_re_ms += a_re
            .as_ref()
            .and_then(|a| a.get(task))
            .copied()
            .unwrap_or(0.0);
    }
    let mut v: Vec<(String, Row)> = rows.into_iter().collect();
    v.sort_by(|a, b| (b.1.re_ms / b.1.tasks as f64).total_cmp(&(a.1.re_ms / a.1.tasks as f64)));
    let with_a = a_first.is_some();
    let mut out = String::new();
    out.push_str("| module | tasks | image-cli first run ms/task | round trips/task | image-cli re-run ms/task | round trips/task |");
    if with_a {
        out.push_str(
            " ansible-core first run ms/task | ansible-core re-run ms/task | re-run ratio |",
        );
    }
    out.push_str("\n|---|---|---|---|---|---|");
    if with_a {
        out.push_str("---|---|---|");
    }
    out.push('\n');
    let (mut tt, mut tf, mut tr, mut tn, mut ta) = (0usize, 0.0, 0.0, 0u64, 0.0);
    for (m, r) in &v {
        let n = r.tasks as f64;
        let _ = write!(
            out,
            "| {m} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.tasks,
            r.first_ms / n,
            r.first_trips as f64 / n,
            r.re_ms / n,
            r.re_trips as f64 / n
        );
        if with_a {
            let ratio = if r.re_ms > 0.0 {
                r.a_re_ms / r.re_ms
            } else {
                0.0
            };
            let _ = write!(
                out,
                " {:.0} | {:.0} | {ratio:.0}x |",
                r.a_first_ms / n,
                r.a_re_ms / n
            );
        }
        out.push('\n');
        tt += r.tasks;
        tf += r.first_ms;
        tr += r.re_ms;
        tn += r.re_trips;
        ta += r.a_re_ms;
    }
    let _ = writeln!(
        out,
        "\nall tasks: {tt}; image-cli first run {:.0} ms, re-run {:.0} ms in tasks ({} round trips, {:.2}/task){}",
        tf,
        tr,
        tn,
        tn as f64 / tt.max(1) as f64,
        if with_a {
            format!("; ansible-core re-run {ta:.0} ms in tasks")
        } else {
            String::new()
        }
    );
    print!("{out}");
    Ok(())
}
