//! Facts in one round trip, as ansible's `setup` module names them (keys
//! without the `ansible_` prefix): `facts/gather.sh` prints raw sections
//! (os-release, /proc files, /sys/class/net, `ip`, `date`, ...) and the
//! parsers below turn them into ansible's structure, key by key:
//! `platform` (distribution, lsb, kernel, user, date_time, env, python,
//! selinux, cmdline), `hardware` (memory, processors, mounts, DMI),
//! `network` (interfaces, default_ipv4/6, dns) and `virt`
//! (virtualization type and role). No python is needed on the host;
//! `python`/`python_version` are present only when python3 is.

use std::collections::HashMap;

use image_core::target::{Become, Exec, Target, TargetError};
use serde_json::{Map, Value as Json};

mod hardware;
mod network;
mod platform;
mod subset;
mod virt;

pub use subset::{spec_of as subset_spec, Subset};

/// The fact script.
const SCRIPT: &str = include_str!("facts/gather.sh");

/// Gathers facts with one command as the login user.
pub async fn gather(target: &dyn Target) -> Result<Map<String, Json>, TargetError> {
    gather_as(target, None).await
}

/// Gathers facts with one command, through sudo with `become_` (as
/// ansible gathers with the play's become: `user_*` facts and the
/// root-only files, /proc/1/environ for one, follow it).
pub async fn gather_as(
    target: &dyn Target,
    become_: Option<Become>,
) -> Result<Map<String, Json>, TargetError> {
    gather_subset(target, become_, &Subset::all()).await
}

/// As [`gather_as`], skipping the parts of the script that no fact of
/// `subset` needs (the facts returned are not filtered: see
/// [`Subset::visible`]).
pub async fn gather_subset(
    target: &dyn Target,
    become_: Option<Become>,
    subset: &Subset,
) -> Result<Map<String, Json>, TargetError> {
    let script = format!("{}{SCRIPT}", subset.script_prefix());
    let out = target.exec(&Exec::new(script).become_opt(become_)).await?;
    Ok(parse(&out.stdout_str()))
}

/// A fact's key in a `setup` result's `ansible_facts`: `ansible_` and the
/// key, except for the keys of ansible's meta collector (`gather_subset`,
/// `module_setup`), which have no prefix.
pub fn result_key(k: &str) -> String {
    match k {
        "gather_subset" | "module_setup" => k.to_string(),
        _ => format!("ansible_{k}"),
    }
}

/// The script's output split into its sections.
pub(crate) struct Sections(HashMap<String, Vec<String>>);

impl Sections {
    fn parse(text: &str) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        let mut cur = String::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("@@s ") {
                cur = name.trim().to_string();
                m.entry(cur.clone()).or_default();
            } else if !cur.is_empty() {
                m.entry(cur.clone()).or_default().push(line.to_string());
            }
        }
        Sections(m)
    }

    /// The lines of a section (empty when absent).
    pub(crate) fn lines(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `key=value` lines of a section.
    pub(crate) fn kv(&self, name: &str) -> HashMap<String, String> {
        self.lines(name)
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// Parses the fact script's output into `ansible_facts`.
pub fn parse(text: &str) -> Map<String, Json> {
    let s = Sections::parse(text);
    let mut f = Map::new();
    platform::add(&s, &mut f);
    hardware::add(&s, &mut f);
    network::add(&s, &mut f);
    virt::add(&s, &mut f);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_debian_host() {
        let out = "@@s osrel\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n@@s debver\n12.5\n@@s uname\nx86_64\n6.1.0\n#1 SMP\nbox.example.com\n@@s host\nbox\nbox.example.com\n@@s meminfo\nMemTotal: 2048000 kB\nMemFree: 1024000 kB\nBuffers: 0 kB\nCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n@@s misc\nservice_mgr=systemd\npkg_mgr=apt\n@@s route4\n8.8.8.8 via 10.0.2.2 dev host0 src 10.0.2.15 uid 0\n@@s links\nhost0|0x1003|1|1500|02:00:00:00:00:01||\n@@s addrs\n2: host0    inet 10.0.2.15/24 brd 10.0.2.255 scope global host0\\       valid_lft forever\n@@s env\nSE9NRT0vcm9vdABBPWI9YwA=\n@@s end\n";
        let f = parse(out);
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["distribution_version"], "12.5");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["distribution_minor_version"], "5");
        assert_eq!(f["os_family"], "Debian");
        assert_eq!(f["memtotal_mb"], 2000);
        assert_eq!(f["memory_mb"]["swap"]["total"], 0);
        assert_eq!(f["memory_mb"]["real"]["used"], 1000);
        assert_eq!(f["default_ipv4"]["address"], "10.0.2.15");
        assert_eq!(f["default_ipv4"]["gateway"], "10.0.2.2");
        assert_eq!(f["default_ipv4"]["netmask"], "255.255.255.0");
        assert_eq!(f["default_ipv4"]["macaddress"], "02:00:00:00:00:01");
        assert_eq!(f["host0"]["ipv4"]["network"], "10.0.2.0");
        assert_eq!(f["env"]["A"], "b=c");
        assert_eq!(f["hostname"], "box");
        assert_eq!(f["domain"], "example.com");
        assert_eq!(f["virtualization_type"], "NA");
    }
}
