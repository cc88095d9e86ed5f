//! Where each tool's time goes in `bench_node.rs` (included there with
//! `#[path]`): the build cut into the same phases for image-cli (its
//! `--json` step events) and packer (its `==>` lines and ansible's `TASK`
//! lines), both timed by the bench's own clock as each stdout line arrived
//! ([`super::bench_support::Run::line_secs`]); the provisioning split per
//! slow task; and the floor both tools share (the recipe's apt work run
//! bare on a fresh target, and the time the proxy keeps images pending).
//!
//! The phases are cut at the start of the next one, so each tool's rows add
//! up to its wall time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The phases of a build, in order (the last runs to the process's exit).
pub const PHASES: [&str; 10] = [
    "start, AWS set-up (source AMI, key pair, security group)",
    "launch the instance, wait until running",
    "wait for SSH",
    "provisioning (recipe)",
    "verify (goss, image-cli only)",
    "stop the instance",
    "create the AMI + wait until available",
    "copy to 3 regions + wait",
    "share (launch permissions), tags",
    "clean up (terminate, group, key pair), exit",
];

/// A tool's run cut into [`PHASES`] (seconds; `None`: the tool has no such
/// phase) and its provisioning per task.
#[derive(Default)]
pub struct Breakdown {
    /// Seconds per phase, as [`PHASES`].
    pub phases: Vec<Option<f64>>,
    /// From the start of provisioning to the first task (session, play
    /// set-up; ansible's start-up).
    pub prov_start: f64,
    /// Seconds per task name (items and same-named tasks added up), in the
    /// order first run.
    pub tasks: Vec<(String, f64)>,
}

/// The lines of `stdout` with the seconds each arrived.
fn timed<'a>(stdout: &'a str, line_secs: &'a [f64]) -> impl Iterator<Item = (f64, &'a str)> {
    stdout
        .lines()
        .zip(line_secs.iter().copied())
        .map(|(l, t)| (t, l))
}

/// Cuts `[0, total]` at `bounds` (each phase's start; `None`: no such
/// phase) into [`PHASES`].
fn cut(bounds: [Option<f64>; 10], total: f64) -> Vec<Option<f64>> {
    (0..bounds.len())
        .map(|i| {
            let start = bounds[i]?;
            let end = bounds[i + 1..].iter().flatten().next().copied();
            Some((end.unwrap_or(total) - start).max(0.0))
        })
        .collect()
}

/// Adds `secs` to task `name` in `tasks` (kept in first-run order).
fn add_task(tasks: &mut Vec<(String, f64)>, name: &str, secs: f64) {
    match tasks.iter_mut().find(|(n, _)| n == name) {
        Some(t) => t.1 += secs,
        None => tasks.push((name.to_string(), secs)),
    }
}

/// image-cli's `build --json` run: pipeline steps (names without a space)
/// give the phases, the recipe's task steps the provisioning rows.
pub fn cli(stdout: &str, line_secs: &[f64], total: f64) -> Breakdown {
    let mut started: BTreeMap<String, f64> = BTreeMap::new();
    let mut first_task = None;
    let mut verify_start = None;
    let mut tasks = Vec::new();
    for (t, l) in timed(stdout, line_secs) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let Some(step) = v["step"].as_str() else {
            continue;
        };
        let pipeline = !step.contains(' ');
        match v["event"].as_str() {
            Some("step_started") => {
                if pipeline {
                    started.entry(step.to_string()).or_insert(t);
                } else if step.starts_with("verify ") {
                    verify_start.get_or_insert(t);
                } else if !step.starts_with("provision ") && verify_start.is_none() {
                    first_task.get_or_insert(t);
                }
            }
            Some("step_finished")
                if !pipeline
                    && verify_start.is_none()
                    && !step.starts_with("provision ")
                    && !step.starts_with("verify ") =>
            {
                let ms = v["elapsed_ms"].as_u64().unwrap_or(0);
                add_task(&mut tasks, step, ms as f64 / 1000.0);
            }
            _ => {}
        }
    }
    let at = |s: &str| started.get(s).copied();
    let share = at("permissions").or(at("deprecate")).or(at("finalize"));
    let bounds = [
        Some(0.0),
        at("instance").or(at("spot_instance")),
        at("connect"),
        at("provision"),
        verify_start,
        at("stop"),
        at("image"),
        at("copy"),
        share,
        at("cleanup"),
    ];
    let prov_start = match (at("provision"), first_task) {
        (Some(p), Some(f)) => f - p,
        _ => 0.0,
    };
    Breakdown {
        phases: cut(bounds, total),
        prov_start,
        tasks,
    }
}

/// packer's `-machine-readable` run: `(arrival seconds, message)` of its
/// `ui` lines (newlines unescaped).
fn packer_ui<'a>(stdout: &'a str, line_secs: &'a [f64]) -> Vec<(f64, String)> {
    timed(stdout, line_secs)
        .filter_map(|(t, l)| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            if f.len() < 4 || f[2] != "ui" {
                return None;
            }
            let msg = f[3]
                .split_once(',')
                .map_or("", |(_, m)| m)
                .replace("%!(PACKER_COMMA)", ",")
                .replace("\\n", "\n");
            Some((t, msg))
        })
        .collect()
}

/// The task name of an ansible `TASK [role : name] ***` line (the role
/// left out, as image-cli names its steps).
fn ansible_task(msg: &str) -> Option<&str> {
    let rest = &msg[msg.find("TASK [")? + "TASK [".len()..];
    let name = &rest[..rest.rfind("] ")?];
    Some(name.split_once(" : ").map_or(name, |(_, n)| n))
}

/// packer + ansible: packer's `==>` lines give the phases, the time from
/// one ansible `TASK` line to the next the provisioning rows.
pub fn packer(stdout: &str, line_secs: &[f64], total: f64) -> Breakdown {
    let ui = packer_ui(stdout, line_secs);
    let first = |pat: &str| {
        ui.iter()
            .find(|(_, m)| m.starts_with("==>") && m.contains(pat))
            .map(|(t, _)| *t)
    };
    let bounds = [
        Some(0.0),
        first("Launching a source AWS instance"),
        first("Waiting for SSH to become available"),
        first("Provisioning with Ansible"),
        None,
        first("Stopping the source instance"),
        first("Creating AMI"),
        first("Copying/Encrypting AMI"),
        first("Modifying attributes on AMI"),
        first("Terminating the source AWS instance"),
    ];
    let mut tasks = Vec::new();
    let mut open: Option<(f64, String)> = None;
    let mut first_task = None;
    for (t, m) in &ui {
        let name = ansible_task(m);
        let recap = m.contains("PLAY RECAP");
        if name.is_some() || recap {
            if let Some((t0, n)) = open.take() {
                add_task(&mut tasks, &n, t - t0);
            }
        }
        if let Some(n) = name {
            first_task.get_or_insert(*t);
            open = Some((*t, n.to_string()));
        }
    }
    let prov_start = match (bounds[3], first_task) {
        (Some(p), Some(f)) => f - p,
        _ => 0.0,
    };
    Breakdown {
        phases: cut(bounds, total),
        prov_start,
        tasks,
    }
}

/// The floor both tools share: the recipe's apt work run bare on a fresh
/// target (seconds per recipe task it stands for) and the images' pending
/// time.
pub struct Floor {
    /// `(recipe task, seconds)` of the bare apt commands.
    pub apt: Vec<(&'static str, f64)>,
    /// The least time a tool polling every `poll_secs` waits for an image
    /// pending for `pending` polls: `pending * poll_secs` (the first poll
    /// at once).
    pub pending_wait: f64,
}

/// The recipe tasks the floor script's intervals stand for, in order.
pub const FLOOR_TASKS: [&str; 4] = [
    "Update the apt cache",
    "Install base packages",
    "Update the apt cache for the Kubernetes repository",
    "Install kubelet, kubeadm and kubectl 1.31.4-1.1",
];

/// Single-quoted for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The recipe's apt work as bare commands (root, in the guest, no SSH, no
/// tool): `apt-get update` and python3-apt (which ansible's apt module
/// installs first and image-cli too), the base packages (`debs`), the
/// Kubernetes repository (`repo`, `key`) and its packages at `version`.
/// Prints the 5 boundaries' `date +%s.%N` on its last line (the key
/// download and repository file between the 2nd and 3rd are left out).
pub fn floor_script(debs: &[String], repo: &str, key: &str, version: &str) -> String {
    let debs: Vec<String> = debs.iter().map(|d| sh_quote(d)).collect();
    let k8s: Vec<String> = ["kubelet", "kubeadm", "kubectl"]
        .iter()
        .map(|p| sh_quote(&format!("{p}={version}")))
        .collect();
    format!(
        r#"set -e
export DEBIAN_FRONTEND=noninteractive
L='-q -o DPkg::Lock::Timeout=120'
t() {{ date +%s.%N; }}
a=$(t)
apt-get update $L >/dev/null
apt-get install -y $L python3-apt >/dev/null
b=$(t)
apt-get install -y $L --no-install-recommends {debs} >/dev/null
c=$(t)
mkdir -p /etc/apt/keyrings
curl -fsS -o /etc/apt/keyrings/kubernetes.asc {key}
printf 'Types: deb\nURIs: %s\nSuites: /\nSigned-By: /etc/apt/keyrings/kubernetes.asc\n' {repo} >/etc/apt/sources.list.d/kubernetes.sources
d=$(t)
apt-get update $L >/dev/null
e=$(t)
apt-get install -y $L --no-install-recommends --allow-change-held-packages {k8s} >/dev/null
f=$(t)
echo "$a $b $c $d $e $f"
"#,
        debs = debs.join(" "),
        key = sh_quote(key),
        repo = sh_quote(repo),
        k8s = k8s.join(" "),
    )
}

/// [`FLOOR_TASKS`]' seconds from the floor script's output.
pub fn floor_apt(out: &str) -> Result<Vec<(&'static str, f64)>, String> {
    let last = out.lines().last().unwrap_or("");
    let t: Vec<f64> = last
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("floor script output {last:?}: {e}"))?;
    if t.len() != 6 {
        return Err(format!("floor script output {last:?}: expected 6 times"));
    }
    Ok(vec![
        (FLOOR_TASKS[0], t[1] - t[0]),
        (FLOOR_TASKS[1], t[2] - t[1]),
        (FLOOR_TASKS[2], t[4] - t[3]),
        (FLOOR_TASKS[3], t[5] - t[4]),
    ])
}

/// The `setup_debs` list of the recipe's `vars/default.yml` text.
pub fn setup_debs(default_vars: &str) -> Vec<String> {
    default_vars
        .lines()
        .skip_while(|l| l.trim_end() != "setup_debs:")
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.trim().is_empty())
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|s| s.trim().to_string())
        .collect()
}

/// The value of a top-level `key: "value"` line of a var file.
pub fn var(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?.trim();
        Some(v.trim_matches('"').to_string())
    })
}

/// The median of the `Some`s (None when there are none).
fn med(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = v.flatten().collect();
    (!v.is_empty()).then(|| super::bench_support::median(&v))
}

fn cell(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| format!("{s:.1}"))
}

/// The table: a row per phase, the provisioning split into its slow tasks
/// (`slow` seconds or more for either tool) and the rest, the floor where
/// one is known, and each tool's time above the floor. Medians over the
/// runs given.
pub fn write_table(
    t: &mut String,
    cli: &[Breakdown],
    packer: &[Breakdown],
    floor: &[Floor],
    cli_total: f64,
    packer_total: f64,
    slow: f64,
) {
    let phase = |b: &[Breakdown], i: usize| med(b.iter().map(|b| b.phases.get(i).copied()?));
    let task = |b: &[Breakdown], name: &str| {
        med(b
            .iter()
            .map(|b| Some(b.tasks.iter().find(|(n, _)| n == name).map_or(0.0, |x| x.1))))
    };
    let apt_floor = |name: &str| {
        med(floor
            .iter()
            .map(|f| f.apt.iter().find(|(n, _)| *n == name).map(|x| x.1)))
    };
    let pending = med(floor.iter().map(|f| Some(f.pending_wait)));
    let mut names: Vec<String> = Vec::new();
    for b in cli.iter().chain(packer) {
        for (n, _) in &b.tasks {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let slow_names: Vec<&String> = names
        .iter()
        .filter(|n| {
            FLOOR_TASKS.contains(&n.as_str())
                || task(cli, n).unwrap_or(0.0) >= slow
                || task(packer, n).unwrap_or(0.0) >= slow
        })
        .collect();
    let none = |b: &[Breakdown]| b.is_empty();
    let col = |b: &[Breakdown], v: Option<f64>| if none(b) { "—".into() } else { cell(v) };
    let _ = writeln!(
        t,
        "| phase (s, median) | image-cli | packer + ansible | floor both share |"
    );
    let _ = writeln!(t, "|---|---|---|---|");
    let mut floor_total = 0.0;
    for (i, name) in PHASES.iter().enumerate() {
        let f = match i {
            6 | 7 => pending,
            _ => None,
        };
        floor_total += f.unwrap_or(0.0);
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} |",
            col(cli, phase(cli, i)),
            col(packer, phase(packer, i)),
            cell(f)
        );
        if i != 3 {
            continue;
        }
        let start = |b: &[Breakdown]| med(b.iter().map(|b| Some(b.prov_start)));
        let _ = writeln!(
            t,
            "| · start-up to the first task (session, play; ansible's start) | {} | {} | — |",
            col(cli, start(cli)),
            col(packer, start(packer))
        );
        let (mut cli_rest, mut packer_rest) = (phase(cli, 3), phase(packer, 3));
        cli_rest = cli_rest.map(|r| r - start(cli).unwrap_or(0.0));
        packer_rest = packer_rest.map(|r| r - start(packer).unwrap_or(0.0));
        for n in &slow_names {
            let (c, p) = (task(cli, n), task(packer, n));
            cli_rest = cli_rest.map(|r| r - c.unwrap_or(0.0));
            packer_rest = packer_rest.map(|r| r - p.unwrap_or(0.0));
            let f = apt_floor(n);
            floor_total += f.unwrap_or(0.0);
            let _ = writeln!(
                t,
                "| · task: {n} | {} | {} | {} |",
                col(cli, c),
                col(packer, p),
                cell(f)
            );
        }
        let _ = writeln!(
            t,
            "| · the other {} tasks | {} | {} | — |",
            names.len() - slow_names.len(),
            col(cli, cli_rest),
            col(packer, packer_rest)
        );
    }
    let _ = writeln!(
        t,
        "| **wall time** | {} | {} | {} |",
        col(cli, Some(cli_total)),
        col(packer, Some(packer_total)),
        cell((!floor.is_empty()).then_some(floor_total))
    );
    let above = |b: &[Breakdown], total: f64| {
        if none(b) || floor.is_empty() {
            "—".to_string()
        } else {
            format!("{:.1}", total - floor_total)
        }
    };
    let ratio = if none(cli) || none(packer) || floor.is_empty() {
        "—".to_string()
    } else {
        format!(
            "{:.2}x",
            (cli_total - floor_total) / (packer_total - floor_total)
        )
    };
    let _ = writeln!(
        t,
        "| **above the floor** (image-cli / packer: {ratio}) | {} | {} | |",
        above(cli, cli_total),
        above(packer, packer_total)
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn ansible_task_names_leave_the_role_out() {
        let m = "    amazon-ebs: TASK [setup : Update the apt cache] *****";
        assert_eq!(super::ansible_task(m), Some("Update the apt cache"));
        let m = "    amazon-ebs: TASK [Gathering Facts] *****";
        assert_eq!(super::ansible_task(m), Some("Gathering Facts"));
    }
}
