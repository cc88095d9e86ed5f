//! Compares one playbook's tasks as ansible-core ran them with image-cli's:
//! tasks are matched by `file:line` (the n-th run of a line with the n-th),
//! then the status must be the same and, for tasks that ran (ok/changed),
//! the whole result as the playbook sees it (what `register` stores; per
//! loop item): every key ansible returns, minus volatile ones (times,
//! invocation, warnings, inode numbers, ansible's own temp paths, the
//! run-time properties of a systemd unit, the checksums of files in a gpg
//! home, see [`VOLATILE`] and [`volatile_unit_property`]), must be in image-cli's result with the same
//! value (strings after [`normal`]'s rewriting; apt's `cache_update_time`
//! within the run's hour). Keys only image-cli returns are not judged.
//! Failed tasks compare `rc` only (error wording is the tool's own).
//!
//! This is issue 15's "every module returns the keys ansible documents":
//! a module that leaves out a key ansible returns, or returns another
//! value, makes its playbook diverge.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::normal;
use super::observed::{Observed, Status};

/// Keys never compared, at any depth.
const VOLATILE: &[&str] = &[
    "start",
    "end",
    "delta",
    "invocation",
    "warnings",
    "deprecations",
    "atime",
    "mtime",
    "ctime",
    "inode",
    "dev",
    "nlink",
    "blocks",
    "block_size",
    "device_type",
    "version",
    "attributes",
    "action",
    "ansible_loop_var",
    "_ansible_item_label",
    "_ansible_no_log",
    "_ansible_verbose_always",
    "_ansible_verbose_override",
    "_ansible_delegated_vars",
    "_ansible_ignore_errors",
    "skip_reason",
    "false_condition",
    "discovered_interpreter_python",
    "server_port",
    "diff",
    "elapsed",
    "exception",
    "failed_when_suppressed_exception",
    "stop",
    "module_stdout",
    "module_stderr",
    "exclusions",
    "deleted",
];

/// Result keys compared for failed tasks.
const FAILED_KEYS: &[&str] = &["rc"];

/// Differences of one playbook, one line each.
pub fn compare(ansible: &[Observed], cli: &[Observed]) -> Vec<String> {
    let mut diffs = Vec::new();
    let group = |list: &[Observed]| {
        let mut m: BTreeMap<String, Vec<Observed>> = BTreeMap::new();
        for o in list {
            m.entry(o.loc()).or_default().push(o.clone());
        }
        m
    };
    let a = group(ansible);
    let c = group(cli);
    // In ansible's run order, then what only image-cli ran.
    let mut order: Vec<String> = Vec::new();
    for o in ansible.iter().chain(cli) {
        if !order.contains(&o.loc()) {
            order.push(o.loc());
        }
    }
    for loc in order {
        let empty = Vec::new();
        let xs = a.get(&loc).unwrap_or(&empty);
        let ys = c.get(&loc).unwrap_or(&empty);
        let short = short_loc(&loc);
        for i in 0..xs.len().max(ys.len()) {
            match (xs.get(i), ys.get(i)) {
                (Some(x), None) => diffs.push(format!(
                    "{short} `{}`: ansible {} {}, image-cli did not run it",
                    x.name,
                    x.status.word(),
                    msg(&x.result)
                )),
                (None, Some(y)) => diffs.push(format!(
                    "{short} `{}`: image-cli {} {}, ansible did not run it",
                    y.name,
                    y.status.word(),
                    msg(&y.result)
                )),
                (Some(x), Some(y)) if x.status != y.status => diffs.push(format!(
                    "{short} `{}`: ansible {} {}, image-cli {} {}",
                    x.name,
                    x.status.word(),
                    msg(&x.result),
                    y.status.word(),
                    msg(&y.result)
                )),
                (Some(x), Some(y)) => {
                    let want = normal::ansible_result(&x.result);
                    let mut out = Vec::new();
                    match x.status {
                        Status::Skipped => {}
                        Status::Failed => {
                            for k in FAILED_KEYS {
                                if let Some(v) = want.get(*k) {
                                    same(v, y.result.get(*k), k, &mut out);
                                }
                            }
                        }
                        Status::Ok | Status::Changed => same(&want, Some(&y.result), "", &mut out),
                    }
                    for d in out {
                        diffs.push(format!("{short} `{}`: {d}", x.name));
                    }
                }
                (None, None) => {}
            }
        }
    }
    diffs
}

/// `corpus/ansible/x.yml:12` for messages.
fn short_loc(loc: &str) -> String {
    match loc.find("corpus/ansible/") {
        Some(i) => loc[i + "corpus/ansible/".len()..].to_string(),
        None => loc.to_string(),
    }
}

/// A result's `msg`, shortened, for messages.
fn msg(r: &Json) -> String {
    let m = match r.get("msg") {
        Some(Json::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => return String::new(),
    };
    let m: String = m.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = m.chars().take(140).collect();
    format!("({cut})")
}

/// Records in `out` where `got` lacks or differs from `want` (ansible's).
fn same(want: &Json, got: Option<&Json>, path: &str, out: &mut Vec<String>) {
    let Some(got) = got else {
        out.push(format!("result `{path}` missing (ansible: {})", clip(want)));
        return;
    };
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => {
            for (k, v) in w {
                if VOLATILE.contains(&k.as_str()) {
                    continue;
                }
                // `changed`/`failed`/`skipped` flags: the status already says.
                if path.is_empty() && matches!(k.as_str(), "changed" | "failed" | "skipped") {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                // Paths of ansible's own temp files: on the target
                // (`~/.ansible/tmp/`) and on the controller (`copy`'s
                // `content` written to `ansible-local-*/`).
                if v.as_str()
                    .is_some_and(|s| s.contains("/.ansible/tmp/") || s.contains("/ansible-local-"))
                {
                    continue;
                }
                if volatile_unit_property(path, k) || volatile_path(&p) {
                    continue;
                }
                // gpg stamps a new keybox and trustdb with its creation time.
                if k == "checksum"
                    && w.get("path")
                        .and_then(Json::as_str)
                        .is_some_and(|s| s.contains("/.gnupg/"))
                {
                    continue;
                }
                if let Some(norm) = unit_property_normal(path, k) {
                    if let (Json::String(a), Some(Json::String(b))) = (v, g.get(k)) {
                        if norm(a) != norm(b) {
                            out.push(format!(
                                "result `{p}`: ansible {}, image-cli {}",
                                clip(v),
                                clip(&g[k])
                            ));
                        }
                        continue;
                    }
                }
                // A false/empty flag ansible adds that image-cli leaves out.
                if g.get(k).is_none() && matches!(v, Json::Bool(false) | Json::Null) {
                    continue;
                }
                same(v, g.get(k), &p, out);
            }
        }
        (Json::Array(w), Json::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!(
                    "result `{path}`: {} items, image-cli {}",
                    w.len(),
                    g.len()
                ));
                return;
            }
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                same(a, Some(b), &format!("{path}[{i}]"), out);
            }
        }
        (Json::Number(a), Json::Number(b)) if a.as_f64() == b.as_f64() => {}
        (Json::Number(a), Json::Number(b)) if same_cache_time(path, a, b) => {}
        (Json::String(a), Json::String(b)) if same_pause(a, b) || same_normal(a, b) => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!(
            "result `{path}`: ansible {}, image-cli {}",
            clip(a),
            clip(b)
        )),
    }
}

/// Results paths never compared, each with why.
const VOLATILE_PATHS: &[(&str, &str)] = &[
    // systemd-hostnamed is started on D-Bus demand and exits after 30 s
    // idle: ansible's hostname module asks it (hostnamectl) even in check
    // mode, image-cli reads /etc/hostname; whether it still runs when
    // service_facts looks is a matter of timing.
    (
        "ansible_facts.services.systemd-hostnamed.service.state",
        "bus-activated, exits when idle",
    ),
    (
        "ansible_facts.services.dbus-org.freedesktop.hostname1.service.state",
        "alias of systemd-hostnamed",
    ),
];

fn volatile_path(path: &str) -> bool {
    VOLATILE_PATHS.iter().any(|(p, _)| path == *p)
}

/// A property of a systemd unit's `status` (`systemctl show`) that is the
/// unit's run-time history rather than its configuration or state, so it
/// differs between two targets running the same thing: when it entered a
/// state (`*Timestamp`, `*TimestampMonotonic`), its processes (`*PID`),
/// its invocation and cgroup ids, and its resource accounting. (The `Exec*`
/// command records are compared without their pid and times, the lists of
/// units as sets, see [`unit_property_normal`].)
fn volatile_unit_property(parent: &str, key: &str) -> bool {
    let in_status = parent == "status" || parent.ends_with(".status");
    in_status
        && (key.ends_with("Timestamp")
            || key.ends_with("TimestampMonotonic")
            || key.ends_with("PID")
            || matches!(
                key,
                "InvocationID"
                    | "ControlGroupId"
                    | "MemoryCurrent"
                    | "MemoryPeak"
                    | "MemorySwapCurrent"
                    | "MemorySwapPeak"
                    | "MemoryZSwapCurrent"
                    | "MemoryAvailable"
                    | "CPUUsageNSec"
                    | "TasksCurrent"
                    | "IOReadBytes"
                    | "IOReadOperations"
                    | "IOWriteBytes"
                    | "IOWriteOperations"
                    | "IPIngressBytes"
                    | "IPIngressPackets"
                    | "IPEgressBytes"
                    | "IPEgressPackets"
                    | "EffectiveCPUs"
                    | "EffectiveMemoryNodes"
            ))
}

/// Properties of a systemd unit that list other units: systemd keeps them
/// in hash sets, so their order differs from one boot to the next.
const UNIT_LISTS: &[&str] = &[
    "Names",
    "Requires",
    "Requisite",
    "Wants",
    "BindsTo",
    "PartOf",
    "Upholds",
    "RequiredBy",
    "RequisiteOf",
    "WantedBy",
    "BoundBy",
    "UpheldBy",
    "ConsistsOf",
    "Conflicts",
    "ConflictedBy",
    "Before",
    "After",
    "OnFailure",
    "OnFailureOf",
    "OnSuccess",
    "OnSuccessOf",
    "Triggers",
    "TriggeredBy",
    "PropagatesReloadTo",
    "ReloadPropagatedFrom",
    "PropagatesStopTo",
    "StopPropagatedFrom",
    "JoinsNamespaceOf",
    "SliceOf",
];

/// How a property of a systemd unit's `status` is compared when not as it
/// is: an `Exec*` command record (`ExecStart`..., not the `ExecMain*` state
/// of the main process) without its pid and times, a list of units as a set.
fn unit_property_normal(parent: &str, key: &str) -> Option<fn(&str) -> String> {
    if !(parent == "status" || parent.ends_with(".status")) {
        return None;
    }
    if key.starts_with("Exec") && !key.starts_with("ExecMain") {
        return Some(normal::exec_record);
    }
    UNIT_LISTS
        .contains(&key)
        .then_some(sorted_words as fn(&str) -> String)
}

/// The whitespace-separated words of `s`, sorted.
fn sorted_words(s: &str) -> String {
    let mut w: Vec<&str> = s.split_whitespace().collect();
    w.sort_unstable();
    w.join(" ")
}

/// Equal once the volatile parts [`normal`] knows are rewritten (backup
/// names, apt-get's download time and speed, a module's temporary
/// downloads).
fn same_normal(a: &str, b: &str) -> bool {
    let n = |s: &str| normal::module_tmp(&normal::names(&normal::backup_name(&normal::text(s))));
    n(a) == n(b)
}

/// apt's `cache_update_time` is the time apt's package lists were last
/// updated on that target: equal when both targets updated them during
/// this run (within an hour of each other), else only when the same.
fn same_cache_time(path: &str, a: &serde_json::Number, b: &serde_json::Number) -> bool {
    let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) else {
        return false;
    };
    path.ends_with("cache_update_time") && a > 0 && b > 0 && (a - b).abs() < 3600
}

/// `pause` reports the time it measured (`Paused for 1.01 seconds`): equal
/// when both say the same unit and differ by less than half a second.
fn same_pause(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let rest = s.strip_prefix("Paused for ")?;
        let (n, unit) = rest.split_once(' ')?;
        Some((n.parse::<f64>().ok()?, unit.to_string()))
    };
    match (parse(a), parse(b)) {
        (Some((x, u)), Some((y, v))) => u == v && (x - y).abs() < 0.5,
        _ => false,
    }
}

fn clip(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(119).collect::<String>())
    } else {
        s
    }
}
