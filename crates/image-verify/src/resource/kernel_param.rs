//! `kernel-param`: sysctl values, read from `/proc/sys` in one shell script
//! (`net.ipv4.ip_forward` is `/proc/sys/net/ipv4/ip_forward`) by one
//! `head -v` for all of them. Values are trimmed; multi-value parameters
//! keep their tabs, as goss.

use async_trait::async_trait;

use super::{quote_all, Observed, Property, Resource, ResourceSpec};
use crate::gather::Plan;

/// The `kernel-param` resource type.
pub struct KernelParam;

const PROPS: &[Property] = &[Property::value("value")];

/// The `/proc/sys` path of a parameter.
pub fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// The probe: one `head -v` over every parameter file (one process;
/// `/proc/sys` integer files must be read in one go, which the shell's
/// `read` builtin does not do). Unreadable files are left out.
pub fn script(keys: &[&str]) -> String {
    let paths: Vec<String> = keys.iter().map(|k| proc_path(k)).collect();
    format!(
        "head -v -n 1000 -- {} 2>/dev/null; true",
        quote_all(paths.iter().map(String::as_str))
    )
}

/// Parses `==> PATH <==` sections.
pub fn parse(out: &str, keys: &[&str]) -> Vec<Observed> {
    let mut values: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        if let Some(path) = line
            .strip_prefix("==> ")
            .and_then(|l| l.strip_suffix(" <=="))
        {
            values.push((path.to_string(), String::new()));
        } else if let Some((_, v)) = values.last_mut() {
            if !v.is_empty() {
                v.push('\n');
            }
            v.push_str(line);
        }
    }
    keys.iter()
        .map(|k| {
            let path = proc_path(k);
            match values.iter().find(|(p, _)| *p == path) {
                Some((_, v)) => {
                    let mut o = Observed::default();
                    o.set("value", v.trim());
                    o
                }
                None => Observed::failed(format!(
                    "kernel parameter {k} not found ({path} missing or unreadable)"
                )),
            }
        })
        .collect()
}

#[async_trait]
impl Resource for KernelParam {
    fn key(&self) -> &'static str {
        "kernel-param"
    }
    fn type_name(&self) -> &'static str {
        "KernelParam"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        Some(Plan::ids(specs, script, parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let out = "==> /proc/sys/a/b <==\n1\n\n==> /proc/sys/d <==\n32768\t60999\n";
        let o = parse(out, &["a.b", "c", "d"]);
        assert_eq!(o[0].values["value"], "1");
        assert!(o[1].error.is_some());
        assert_eq!(o[2].values["value"], "32768\t60999");
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
    }
}
