//! `gather_subset`: which facts a gathering returns, by ansible-core's rule
//! (`module_utils/facts/collector.py` `get_collector_names`): the minimal
//! set always, then each named subset added (`all`, `hardware`, `network`,
//! `virtual`) or, with `!`, removed (`!all` removes all but the minimal
//! set, `!min` the minimal set), an explicitly named subset winning over a
//! removal. The fact script then skips what no returned fact needs: the
//! mounts (`awk`, `stat -f`, `lsblk`) without `hardware`, `ip` without
//! `network`, the chroot test without `all` (issue #16).
//!
//! Subsets are groups of keys here, not ansible's finer collectors: a spec
//! naming another subset (`distribution`, `mounts`, ...) returns every
//! fact, as before.

use serde_json::{Map, Value as Json};

/// The groups of facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Min,
    Hardware,
    Network,
    Virtual,
    /// In `all` but in no named subset here (`is_chroot`, `loadavg`).
    Other,
}

const ALL: [Group; 5] = [
    Group::Min,
    Group::Hardware,
    Group::Network,
    Group::Virtual,
    Group::Other,
];

/// Facts of ansible's minimal set that image-cli gathers.
const MIN_KEYS: &[&str] = &[
    "apparmor",
    "architecture",
    "cmdline",
    "date_time",
    "distribution",
    "distribution_file_parsed",
    "distribution_file_path",
    "distribution_file_variety",
    "distribution_major_version",
    "distribution_minor_version",
    "distribution_release",
    "distribution_version",
    "dns",
    "domain",
    "effective_group_id",
    "effective_user_id",
    "env",
    "fips",
    "fqdn",
    "hostname",
    "kernel",
    "kernel_version",
    "local",
    "lsb",
    "machine",
    "machine_id",
    "nodename",
    "os_family",
    "pkg_mgr",
    "proc_cmdline",
    "python",
    "python_version",
    "real_group_id",
    "real_user_id",
    "selinux",
    "selinux_python_present",
    "service_mgr",
    "system",
    "system_capabilities",
    "system_capabilities_enforced",
    "user_dir",
    "user_gecos",
    "user_gid",
    "user_id",
    "user_shell",
    "user_uid",
    "userspace_architecture",
    "userspace_bits",
];

const NETWORK_KEYS: &[&str] = &[
    "all_ipv4_addresses",
    "all_ipv6_addresses",
    "default_ipv4",
    "default_ipv6",
    "interfaces",
    "locally_reachable_ips",
];

const OTHER_KEYS: &[&str] = &["is_chroot", "loadavg"];

/// The groups a `gather_subset` asks for, and the spec as given (which
/// the `gather_subset` fact reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subset {
    groups: Vec<Group>,
    spec: Vec<String>,
}

impl Subset {
    /// Everything (no `gather_subset`, or `all`).
    pub fn all() -> Self {
        Subset::from_spec(&[])
    }

    /// The subset `spec` names, by ansible's rule (an empty spec is
    /// `all`, as ansible's default); every group when it names a subset
    /// this module does not model (so every fact is returned).
    pub fn from_spec(spec: &[String]) -> Self {
        let spec = if spec.is_empty() {
            vec!["all".to_string()]
        } else {
            spec.to_vec()
        };
        let named = |n: &str| match n {
            "hardware" => Some(Some(Group::Hardware)),
            "network" => Some(Some(Group::Network)),
            "virtual" => Some(Some(Group::Virtual)),
            // Tools image-cli never runs: nothing to add or remove.
            "facter" | "ohai" => Some(None),
            _ => None,
        };
        let mut add = vec![Group::Min];
        let mut exclude: Vec<Group> = Vec::new();
        let mut explicit: Vec<Group> = Vec::new();
        for s in &spec {
            let s = s.trim();
            match s {
                "min" => add.push(Group::Min),
                "all" => add.extend(ALL),
                "!min" => exclude.push(Group::Min),
                "!all" => exclude.extend(ALL.iter().filter(|g| **g != Group::Min)),
                _ => {
                    let (neg, name) = match s.strip_prefix('!') {
                        Some(n) => (true, n),
                        None => (false, s),
                    };
                    match named(name) {
                        Some(Some(g)) if neg => exclude.push(g),
                        Some(Some(g)) => {
                            add.push(g);
                            explicit.push(g);
                        }
                        Some(None) => {}
                        None => {
                            return Subset {
                                groups: ALL.to_vec(),
                                spec,
                            }
                        }
                    }
                }
            }
        }
        let groups = ALL
            .into_iter()
            .filter(|g| add.contains(g) && (!exclude.contains(g) || explicit.contains(g)))
            .collect();
        Subset { groups, spec }
    }

    fn has(&self, g: Group) -> bool {
        self.groups.contains(&g)
    }

    /// Shell lines set before the fact script: which of its parts to skip.
    pub fn script_prefix(&self) -> String {
        let mut s = String::new();
        if !self.has(Group::Hardware) {
            s.push_str("_no_hw=1\n");
        }
        if !self.has(Group::Network) {
            s.push_str("_no_net=1\n");
        }
        if !self.has(Group::Other) {
            s.push_str("_no_other=1\n");
        }
        s
    }

    /// The facts a gathering makes visible: those of `f` in the subset,
    /// plus ansible's `gather_subset` (the spec) and `module_setup`.
    pub fn visible(&self, f: Map<String, Json>) -> Map<String, Json> {
        let mut v = self.filter(f);
        v.insert("gather_subset".into(), Json::from(self.spec.clone()));
        v.insert("module_setup".into(), Json::Bool(true));
        v
    }

    /// The facts of `f` in the subset.
    fn filter(&self, f: Map<String, Json>) -> Map<String, Json> {
        if self.groups.len() == ALL.len() {
            return f;
        }
        let ifaces: Vec<String> = f
            .get("interfaces")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(|i| i.replace(['-', ':', '.'], "_"))
                    .collect()
            })
            .unwrap_or_default();
        f.into_iter()
            .filter(|(k, _)| {
                let g = if MIN_KEYS.contains(&k.as_str()) {
                    Group::Min
                } else if NETWORK_KEYS.contains(&k.as_str()) || ifaces.contains(k) {
                    Group::Network
                } else if k.starts_with("virtualization_") {
                    Group::Virtual
                } else if OTHER_KEYS.contains(&k.as_str()) {
                    Group::Other
                } else {
                    Group::Hardware
                };
                self.has(g)
            })
            .collect()
    }
}

/// A `gather_subset` value as a list: a list of names, or a string of
/// comma-separated names (as ansible's setup module takes it).
pub fn spec_of(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::Array(a)) => a
            .iter()
            .map(|x| match x {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Json::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => vec!["all".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(s: &[&str]) -> Subset {
        Subset::from_spec(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn follows_ansibles_rule_for_additions_and_removals() {
        assert_eq!(spec(&["all"]), Subset::all());
        assert_eq!(spec(&["!all"]).groups, [Group::Min]);
        assert_eq!(spec(&["min"]).groups, [Group::Min]);
        assert!(spec(&["!all", "!min"]).groups.is_empty());
        assert_eq!(
            spec(&["!all", "network"]).groups,
            [Group::Min, Group::Network]
        );
        // Named explicitly wins over a removal.
        assert_eq!(
            spec(&["network", "!all"]).groups,
            [Group::Min, Group::Network]
        );
        assert_eq!(
            spec(&["all", "!hardware"]).groups,
            [Group::Min, Group::Network, Group::Virtual, Group::Other]
        );
        assert_eq!(spec(&["!all", "!facter"]).groups, [Group::Min]);
        // A finer subset than these groups: every fact, as before.
        assert_eq!(spec(&["!all", "distribution"]).groups, Subset::all().groups);
        assert_eq!(spec(&[]), Subset::all());
        assert_eq!(spec_of(Some(&json!("!all, network"))), ["!all", "network"]);
        assert_eq!(spec_of(None), ["all"]);
    }

    #[test]
    fn keeps_the_keys_of_the_asked_groups() {
        let f = json!({"os_family": "Debian", "eth0": {}, "interfaces": ["eth0"],
            "mounts": [], "virtualization_type": "NA", "is_chroot": false})
        .as_object()
        .cloned()
        .unwrap_or_default();
        let min = spec(&["!all"]).filter(f.clone());
        assert_eq!(min.keys().collect::<Vec<_>>(), ["os_family"]);
        let net = spec(&["!all", "network"]).filter(f.clone());
        assert_eq!(net.len(), 3);
        assert_eq!(spec(&["all"]).filter(f.clone()), f);
        assert_eq!(
            spec(&["!all"]).script_prefix(),
            "_no_hw=1\n_no_net=1\n_no_other=1\n"
        );
        assert_eq!(Subset::all().script_prefix(), "");
    }
}
