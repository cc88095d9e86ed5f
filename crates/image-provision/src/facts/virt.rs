//! `virtualization_type`, `virtualization_role`,
//! `virtualization_tech_guest`/`_host`, in the order of ansible's
//! LinuxVirtual checks: /proc/1/cgroup, /proc/1/environ (readable as root
//! only, as for ansible), OpenVZ, /run/systemd/container, docker marker
//! files, Xen, DMI vendor and product names, /proc/modules. `NA` when
//! nothing matches.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value as Json};

use super::Sections;

/// Adds the virtualization facts.
pub(super) fn add(s: &Sections, f: &mut Map<String, Json>) {
    let lines = s.lines("virt");
    let with = |p: &str| -> Vec<&str> { lines.iter().filter_map(|l| l.strip_prefix(p)).collect() };
    let cgroup = with("cgroup:");
    let environ = with("environ:");
    let exists: BTreeSet<&str> = with("exists:").into_iter().collect();
    let modules: BTreeSet<&str> = with("module:").into_iter().collect();
    let container = with("container:")
        .first()
        .map(|c| c.trim())
        .unwrap_or("")
        .to_string();
    let dmi: HashMap<String, String> = s.kv("dmi");
    let d = |k: &str| {
        dmi.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| v != "@@NA")
            .unwrap_or_default()
    };

    let mut ty: Option<String> = None;
    let mut role: Option<String> = None;
    let mut guest: BTreeSet<String> = BTreeSet::new();
    let mut host: BTreeSet<String> = BTreeSet::new();
    let found = |t: &str, r: &str, ty: &mut Option<String>, role: &mut Option<String>| {
        if ty.is_none() {
            *ty = Some(t.into());
            *role = Some(r.into());
        }
    };
    for l in &cgroup {
        if l.contains("/docker/") || (l.contains("/docker-") && l.contains(".scope")) {
            guest.insert("docker".into());
            found("docker", "guest", &mut ty, &mut role);
        }
        if l.contains("/lxc/") || l.contains("/machine.slice/machine-lxc") {
            guest.insert("lxc".into());
            found("lxc", "guest", &mut ty, &mut role);
        }
        if l.contains("/system.slice/containerd.service") {
            guest.insert("containerd".into());
            found("containerd", "guest", &mut ty, &mut role);
        }
    }
    for l in &environ {
        if l.contains("container=lxc") {
            guest.insert("lxc".into());
            found("lxc", "guest", &mut ty, &mut role);
        }
        if l.contains("container=podman") {
            guest.insert("podman".into());
            found("podman", "guest", &mut ty, &mut role);
        }
        if l.len() > "container=".len() && l.starts_with("container=") {
            guest.insert("container".into());
            found("container", "guest", &mut ty, &mut role);
        }
    }
    if exists.contains("/proc/vz") && !exists.contains("/proc/lve") {
        let r = if exists.contains("/proc/bc") {
            "host"
        } else {
            "guest"
        };
        if r == "host" {
            host.insert("openvz".into());
        } else {
            guest.insert("openvz".into());
        }
        found("openvz", r, &mut ty, &mut role);
    }
    if !container.is_empty() {
        guest.insert(container.clone());
        found(&container, "guest", &mut ty, &mut role);
    }
    if exists.contains("/.dockerenv") || exists.contains("/.dockerinit") {
        guest.insert("docker".into());
        found("docker", "guest", &mut ty, &mut role);
    }
    if ["docker", "lxc", "podman", "openvz", "containerd"]
        .iter()
        .any(|t| guest.contains(*t))
        || !container.is_empty()
    {
        guest.insert("container".into());
    }
    if exists.contains("/proc/xen") {
        if lines.iter().any(|l| l == "xenhost:1") {
            host.insert("xen".into());
            found("xen", "host", &mut ty, &mut role);
        } else {
            found("xen", "guest", &mut ty, &mut role);
        }
    }
    let product = d("product_name");
    let vendor = d("sys_vendor");
    let bios = d("bios_vendor");
    let mut dmi_guest = |t: &str, ty: &mut Option<String>, role: &mut Option<String>| {
        guest.insert(t.into());
        found(t, "guest", ty, role);
    };
    if [
        "KVM",
        "KVM Server",
        "Bochs",
        "AHV",
        "CloudStack KVM Hypervisor",
    ]
    .contains(&product.as_str())
    {
        dmi_guest("kvm", &mut ty, &mut role);
    }
    if vendor == "oVirt" {
        dmi_guest("oVirt", &mut ty, &mut role);
    }
    if product.starts_with("VMware") {
        dmi_guest("VMware", &mut ty, &mut role);
    }
    if product == "OpenStack Compute"
        || product == "OpenStack Nova"
        || vendor == "OpenStack Foundation"
    {
        dmi_guest("openstack", &mut ty, &mut role);
    }
    if bios == "Xen" {
        dmi_guest("xen", &mut ty, &mut role);
    }
    if bios == "innotek GmbH" {
        dmi_guest("virtualbox", &mut ty, &mut role);
    }
    if ["Amazon EC2", "DigitalOcean", "Hetzner", "Linode"].contains(&bios.as_str())
        || [
            "QEMU",
            "Amazon EC2",
            "DigitalOcean",
            "Google",
            "Scaleway",
            "Nutanix",
        ]
        .contains(&vendor.as_str())
    {
        dmi_guest("kvm", &mut ty, &mut role);
    }
    if vendor == "Microsoft Corporation" {
        dmi_guest("VirtualPC", &mut ty, &mut role);
    }
    if modules.contains("kvm") {
        host.insert("kvm".into());
        found("kvm", "host", &mut ty, &mut role);
    }
    if modules.contains("vboxdrv") {
        host.insert("virtualbox".into());
        found("virtualbox", "host", &mut ty, &mut role);
    }
    if modules.contains("virtio") {
        host.insert("kvm".into());
        found("kvm", "guest", &mut ty, &mut role);
    }
    f.insert(
        "virtualization_type".into(),
        json!(ty.unwrap_or_else(|| "NA".into())),
    );
    f.insert(
        "virtualization_role".into(),
        json!(role.unwrap_or_else(|| "NA".into())),
    );
    f.insert(
        "virtualization_tech_guest".into(),
        json!(guest.into_iter().collect::<Vec<_>>()),
    );
    f.insert(
        "virtualization_tech_host".into(),
        json!(host.into_iter().collect::<Vec<_>>()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspawn_and_ec2() {
        let s = Sections::parse("@@s virt\ncontainer:systemd-nspawn\n@@s end\n");
        let mut f = Map::new();
        add(&s, &mut f);
        assert_eq!(f["virtualization_type"], "systemd-nspawn");
        assert_eq!(f["virtualization_role"], "guest");
        assert_eq!(
            f["virtualization_tech_guest"],
            json!(["container", "systemd-nspawn"])
        );
        let s = Sections::parse(
            "@@s virt\ncontainer:\n@@s dmi\nsys_vendor=Amazon EC2\nbios_vendor=Amazon EC2\n",
        );
        let mut f = Map::new();
        add(&s, &mut f);
        assert_eq!(f["virtualization_type"], "kvm");
        assert_eq!(f["virtualization_role"], "guest");
    }
}
