//! goss's `add` and `autoadd`: gossfile entries written from a live host's
//! state, observed with the same probes as `verify` (so nothing is
//! installed on the host), then merged into a gossfile.
//!
//! - [`add`] records, for each key of one resource type, the attributes
//!   goss's `add` records (`package`: `installed`, `versions`; `file`:
//!   `exists`, `mode`, `owner`, `group`, `linked-to`, `filetype`; `user`:
//!   `exists`, `uid`, `gid`, `groups`, `home`, `shell`; ... see
//!   [`recorded`]). A resource that does not exist is recorded as such
//!   (`exists: false`, `installed: false`).
//! - [`autoadd`] records, for a name, every resource of that name that
//!   exists: a file (when the name has a `/`), group, package, listening
//!   port, running process and the ports its processes listen on, service,
//!   user.
//! - [`merge`] / [`write()`] put entries into a gossfile: an entry replaces
//!   the one with the same type and key, others are kept in their order,
//!   new ones come last (as goss, comments and templates of the file are
//!   not kept: it is read and written as data).
//!
//! ```no_run
//! # async fn demo(target: &dyn image_core::target::Target) -> Result<(), String> {
//! use image_verify::add::{self, AddConfig};
//! let cfg = AddConfig::default();
//! let mut entries = add::add(target, &cfg, "package", &["openssh-server".into()]).await?;
//! entries.extend(add::autoadd(target, &cfg, &["sshd".into()]).await?);
//! add::write(std::path::Path::new("goss.yaml"), &entries)?;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::time::Duration;

use image_core::target::{Become, Exec, Target};
use serde_json::{Map, Value};

use crate::resource::{self, Observed, Probe, ResourceSpec};

/// How to observe and what to leave out.
#[derive(Debug, Clone, Default)]
pub struct AddConfig {
    /// Observe through sudo.
    pub become_: Option<Become>,
    /// `--timeout` for `addr`, `command`, `dns`, `http`, `mount` (goss's
    /// defaults otherwise: 500 ms, 10 s, 500 ms, 5 s, 1 s).
    pub timeout: Option<Duration>,
    /// `--exclude-attr`: attributes not to record.
    pub exclude: Vec<String>,
    /// `--server` for `dns`.
    pub dns_server: Option<String>,
}

/// One gossfile entry: `kind: {key: attrs}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The resource type's key (`package`, `kernel-param`).
    pub kind: &'static str,
    /// The resource's key (`/etc/passwd`, `tcp:22`).
    pub key: String,
    /// The recorded attributes, in goss's order.
    pub attrs: Map<String, Value>,
}

/// The attributes goss's `add` records for a type, in its order, and the
/// default `timeout` it writes (milliseconds) for the types that have one.
pub fn recorded(kind: &str) -> Option<(&'static [&'static str], Option<u64>)> {
    Some(match kind {
        "addr" => (&["reachable"], Some(500)),
        "command" => (&["exit-status", "stdout", "stderr"], Some(10_000)),
        "dns" => (&["resolvable", "addrs"], Some(500)),
        "file" => (
            &["exists", "mode", "owner", "group", "linked-to", "filetype"],
            None,
        ),
        "group" => (&["exists", "gid"], None),
        "http" => (&["status"], Some(5000)),
        "interface" => (&["exists", "addrs", "mtu"], None),
        "kernel-param" => (&["value"], None),
        "mount" => (
            &["exists", "opts", "vfs-opts", "source", "filesystem"],
            Some(1000),
        ),
        "package" => (&["installed", "versions"], None),
        "port" => (&["listening", "ip"], None),
        "process" => (&["running"], None),
        "service" => (&["enabled", "running"], None),
        "user" => (&["exists", "uid", "gid", "groups", "home", "shell"], None),
        _ => return None,
    })
}

/// The types `add` takes (goss's, with `goss` for a gossfile include).
pub const ADDABLE: &[&str] = &[
    "addr",
    "command",
    "dns",
    "file",
    "goss",
    "group",
    "http",
    "interface",
    "kernel-param",
    "mount",
    "package",
    "port",
    "process",
    "service",
    "user",
];

fn spec(kind: &'static dyn resource::Resource, key: &str, cfg: &AddConfig) -> ResourceSpec {
    let mut settings = std::collections::BTreeMap::new();
    if let Some(t) = cfg.timeout {
        settings.insert("timeout".to_string(), Value::from(t.as_millis() as u64));
    }
    if kind.key() == "dns" {
        if let Some(s) = &cfg.dns_server {
            settings.insert("server".to_string(), Value::from(s.clone()));
        }
    }
    ResourceSpec {
        kind,
        id: key.to_string(),
        key: key.to_string(),
        title: String::new(),
        meta: Value::Null,
        skip: false,
        checks: Vec::new(),
        settings,
        raw: Value::Null,
        loc: image_core::diag::Location::new("<add>", 1, 1),
    }
}

/// goss's `add` output lines: trimmed, empty lines dropped, a leading `!`
/// or `/` escaped so the line is a literal pattern; `""` when there is
/// no output.
fn output_patterns(text: &str) -> Value {
    let lines: Vec<Value> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            if l.starts_with('!') || l.starts_with('/') {
                Value::String(format!("\\{l}"))
            } else {
                Value::String(l.to_string())
            }
        })
        .collect();
    if lines.is_empty() {
        Value::String(String::new())
    } else {
        Value::Array(lines)
    }
}

fn entry(kind: &'static str, key: &str, obs: &Observed, cfg: &AddConfig) -> Entry {
    let (attrs, timeout) = recorded(kind).unwrap_or((&[], None));
    let mut out = Map::new();
    for a in attrs {
        if cfg.exclude.iter().any(|e| e == a) {
            continue;
        }
        if let Some(v) = obs.values.get(a) {
            let v = match (kind, *a) {
                ("command", "stdout" | "stderr") => output_patterns(&crate::matcher::as_text(v)),
                _ => v.clone(),
            };
            out.insert((*a).to_string(), v);
        }
    }
    if kind == "http" {
        for a in ["allow-insecure", "no-follow-redirects"] {
            out.insert(a.to_string(), Value::Bool(false));
        }
    }
    if let Some(ms) = timeout.filter(|_| !cfg.exclude.iter().any(|e| e == "timeout")) {
        let ms = cfg.timeout.map_or(ms, |t| t.as_millis() as u64);
        out.insert("timeout".into(), Value::from(ms));
    }
    if kind == "dns" {
        if let Some(s) = &cfg.dns_server {
            out.insert("server".into(), Value::from(s.clone()));
        }
    }
    Entry {
        kind,
        key: key.to_string(),
        attrs: out,
    }
}

async fn observe(
    target: &dyn Target,
    cfg: &AddConfig,
    kind: &'static dyn resource::Resource,
    keys: &[String],
) -> Vec<Observed> {
    let probe = Probe::new(target, cfg.become_.clone(), 8);
    let specs: Vec<ResourceSpec> = keys.iter().map(|k| spec(kind, k, cfg)).collect();
    let refs: Vec<&ResourceSpec> = specs.iter().collect();
    kind.observe(&probe, &refs).await
}

/// Observes `keys` of type `kind` on `target` and returns their entries as
/// goss's `add` writes them. `Err` names a key that could not be observed.
pub async fn add(
    target: &dyn Target,
    cfg: &AddConfig,
    kind: &str,
    keys: &[String],
) -> Result<Vec<Entry>, String> {
    if kind == "goss" || kind == "gossfile" {
        return Ok(keys
            .iter()
            .map(|k| Entry {
                kind: "gossfile",
                key: k.clone(),
                attrs: Map::new(),
            })
            .collect());
    }
    let res = resource::by_key(kind)
        .filter(|r| recorded(r.key()).is_some())
        .ok_or_else(|| {
            format!(
                "cannot add `{kind}`: resource types: {}",
                ADDABLE.join(", ")
            )
        })?;
    let obs = observe(target, cfg, res, keys).await;
    keys.iter()
        .zip(&obs)
        .map(|(k, o)| match &o.error {
            Some(e) => Err(format!("{kind} {k}: {e}")),
            None => Ok(entry(res.key(), k, o, cfg)),
        })
        .collect()
}

/// True when an observation found the resource (its gate property, when
/// the type has one, is true; a service is known to systemd).
fn exists(kind: &str, o: &Observed) -> bool {
    if o.error.is_some() {
        return false;
    }
    match resource::gate_property(kind) {
        Some(g) => o.values.get(g) == Some(&Value::Bool(true)),
        None if kind == "process" => o.values.get("running") == Some(&Value::Bool(true)),
        None => o.absent.is_none(),
    }
}

/// Observes every resource named `name` that exists on `target` (goss's
/// `autoadd`): file (a name with `/`), group, package, port, process and
/// the ports its processes listen on, service, user.
pub async fn autoadd(
    target: &dyn Target,
    cfg: &AddConfig,
    names: &[String],
) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for name in names {
        let mut kinds = vec!["group", "package", "port", "process", "service", "user"];
        if name.contains('/') {
            kinds.insert(0, "file");
        }
        for kind in kinds {
            if kind == "port" && resource::port::parse_id(name).is_none() {
                continue;
            }
            let Some(res) = resource::by_key(kind) else {
                continue;
            };
            let keys = [name.clone()];
            let obs = observe(target, cfg, res, &keys).await;
            let Some(o) = obs.first().filter(|o| exists(kind, o)) else {
                continue;
            };
            out.push(entry(res.key(), name, o, cfg));
            if kind == "process" {
                let ports = process_ports(target, cfg, name).await?;
                if !ports.is_empty() {
                    let res = resource::by_key("port").ok_or("no port type")?;
                    let obs = observe(target, cfg, res, &ports).await;
                    for (p, o) in ports.iter().zip(&obs) {
                        if exists("port", o) {
                            out.push(entry("port", p, o, cfg));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The listening ports (`tcp:22`, `udp6:53`) of the processes named `comm`,
/// from their socket inodes in `/proc/PID/fd` and the kernel's socket
/// tables.
async fn process_ports(
    target: &dyn Target,
    cfg: &AddConfig,
    comm: &str,
) -> Result<Vec<String>, String> {
    let short: String = comm.chars().take(15).collect();
    let script = format!(
        "for d in /proc/[0-9]*; do IFS= read -r c < \"$d/comm\" 2>/dev/null || continue; \
         if [ \"$c\" = {q} ] || [ \"$c\" = {s} ]; then for f in \"$d\"/fd/*; do l=$(readlink \"$f\" 2>/dev/null) && \
         case $l in socket:*) echo \"$l\";; esac; done; fi; done; {tables}",
        q = image_core::target::shell_quote(comm),
        s = image_core::target::shell_quote(&short),
        tables = resource::port::SCRIPT,
    );
    let out = target
        .exec(&Exec::new(script).become_opt(cfg.become_.clone()))
        .await
        .map_err(|e| format!("process {comm}: {e}"))?;
    Ok(ports_of_sockets(&out.stdout_str()))
}

/// Parses `socket:[INODE]` lines followed by the `#proto` socket tables
/// into the sorted, deduplicated listening ports of those inodes.
pub fn ports_of_sockets(out: &str) -> Vec<String> {
    let mut inodes = std::collections::BTreeSet::new();
    let mut proto = String::new();
    let mut ports = std::collections::BTreeSet::new();
    for line in out.lines() {
        if let Some(i) = line
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
        {
            inodes.insert(i.to_string());
            continue;
        }
        if let Some(p) = line.strip_prefix('#') {
            proto = p.to_string();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[0] == "sl" || !inodes.contains(f[9]) {
            continue;
        }
        let listening = match proto.as_str() {
            "tcp" | "tcp6" => f[3] == "0A",
            "udp" | "udp6" => f[3] == "07",
            _ => false,
        };
        let port = f[1]
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if let (true, Some(port)) = (listening, port) {
            ports.insert(format!("{proto}:{port}"));
        }
    }
    ports.into_iter().collect()
}

/// `entries` merged into the gossfile text `existing` (empty: a new file),
/// as YAML.
pub fn merge(existing: &str, entries: &[Entry]) -> Result<String, String> {
    let mut doc: serde_yaml::Mapping = if existing.trim().is_empty() {
        serde_yaml::Mapping::new()
    } else {
        match serde_yaml::from_str::<serde_yaml::Value>(existing)
            .map_err(|e| format!("cannot read the gossfile to merge into: {e}"))?
        {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => serde_yaml::Mapping::new(),
            _ => return Err("the gossfile to merge into is not a mapping".into()),
        }
    };
    for e in entries {
        let section = doc
            .entry(serde_yaml::Value::from(e.kind))
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        if section.is_null() {
            *section = serde_yaml::Value::Mapping(Default::default());
        }
        let serde_yaml::Value::Mapping(section) = section else {
            return Err(format!("`{}:` in the gossfile is not a mapping", e.kind));
        };
        let attrs = serde_yaml::to_value(&e.attrs).map_err(|err| err.to_string())?;
        section.insert(serde_yaml::Value::from(e.key.clone()), attrs);
    }
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

/// Merges `entries` into the gossfile at `path` (created when missing).
pub fn write(path: &Path, entries: &[Entry]) -> Result<(), String> {
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let text = merge(&existing, entries).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The entries as YAML, as goss prints what it added.
pub fn to_yaml(entries: &[Entry]) -> String {
    merge("", entries).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(kind: &'static str, key: &str, attrs: Value) -> Entry {
        let Value::Object(attrs) = attrs else {
            panic!("attrs")
        };
        Entry {
            kind,
            key: key.into(),
            attrs,
        }
    }

    #[test]
    fn merges_replacing_same_keys_keeping_others() {
        let old = "file:\n  /a:\n    exists: true\npackage:\n  curl:\n    installed: false\n";
        let out = merge(
            old,
            &[
                e(
                    "package",
                    "curl",
                    json!({"installed": true, "versions": ["8.0"]}),
                ),
                e("user", "root", json!({"exists": true, "uid": 0})),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "file:\n  /a:\n    exists: true\npackage:\n  curl:\n    installed: true\n    versions:\n    - '8.0'\nuser:\n  root:\n    exists: true\n    uid: 0\n"
        );
        assert!(merge("- a\n", &[]).is_err());
        assert!(merge("file: [1]\n", &[e("file", "/x", json!({}))]).is_err());
    }

    #[test]
    fn command_output_becomes_literal_patterns() {
        assert_eq!(
            output_patterns("  hello \n\n!bang\n/path\n"),
            json!(["hello", "\\!bang", "\\/path"])
        );
        assert_eq!(output_patterns(""), json!(""));
    }

    #[test]
    fn listening_ports_of_a_process() {
        let out = "socket:[111]\nsocket:[222]\n#tcp\n  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n   1: 0100007F:0050 00000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 222 1\n#tcp6\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1\n   1: 00000000000000000000000000000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n#udp\n#udp6\n";
        assert_eq!(ports_of_sockets(out), vec!["tcp6:22", "tcp:22"]);
    }
}
