//! Facts in one round trip: one `sh` script prints `key=value` lines (and
//! the environment after a marker), parsed into `ansible_facts`.

use image_core::target::{Exec, Target, TargetError};
use serde_json::{json, Map, Value as Json};

const SCRIPT: &str = r#"
[ -r /etc/os-release ] && . /etc/os-release
echo "id=${ID:-}"
echo "id_like=${ID_LIKE:-}"
echo "version_id=${VERSION_ID:-}"
echo "codename=${VERSION_CODENAME:-}"
[ -r /etc/debian_version ] && echo "debian_version=$(cat /etc/debian_version)"
echo "architecture=$(uname -m)"
echo "kernel=$(uname -r)"
echo "hostname=$(hostname 2>/dev/null || uname -n)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n)"
echo "memtotal_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo 2>/dev/null)"
echo "swaptotal_kb=$(awk '/^SwapTotal:/{print $2}' /proc/meminfo 2>/dev/null)"
echo "vcpus=$(nproc 2>/dev/null || echo 1)"
if [ -d /run/systemd/system ]; then echo service_mgr=systemd; else echo "service_mgr=$(cat /proc/1/comm 2>/dev/null)"; fi
for p in apt-get dnf yum zypper apk; do if command -v $p >/dev/null 2>&1; then echo "pkg_mgr=${p%-get}"; break; fi; done
echo "user_id=$(id -un)"
echo "user_uid=$(id -u)"
echo "user_dir=$HOME"
r=$(ip -4 route get 1.1.1.1 2>/dev/null | head -n1)
if [ -n "$r" ]; then echo "route=$r"; else
  dev=$(awk '$2=="00000000"{print $1; exit}' /proc/net/route 2>/dev/null); echo "route_dev=$dev"
  echo "route_addr=$(hostname -I 2>/dev/null | awk '{print $1}')"
fi
echo "@@env"
env
"#;

fn family(id: &str, like: &str) -> &'static str {
    let all = format!("{id} {like}");
    if all.contains("debian") || all.contains("ubuntu") {
        "Debian"
    } else if ["rhel", "fedora", "centos", "amzn"]
        .iter()
        .any(|x| all.contains(x))
    {
        "RedHat"
    } else if all.contains("suse") {
        "Suse"
    } else if all.contains("alpine") {
        "Alpine"
    } else if all.contains("arch") {
        "Archlinux"
    } else {
        "Linux"
    }
}

fn distribution(id: &str) -> String {
    match id {
        "debian" => "Debian".into(),
        "ubuntu" => "Ubuntu".into(),
        "centos" => "CentOS".into(),
        "rhel" => "RedHat".into(),
        "amzn" => "Amazon".into(),
        "rocky" => "Rocky".into(),
        "almalinux" => "AlmaLinux".into(),
        "fedora" => "Fedora".into(),
        "flatcar" => "Flatcar".into(),
        "photon" => "VMware Photon OS".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// Gathers facts with one command (as the login user).
pub async fn gather(target: &dyn Target) -> Result<Map<String, Json>, TargetError> {
    let out = target.exec(&Exec::new(SCRIPT)).await?;
    Ok(parse(&out.stdout_str()))
}

/// Parses the fact script's output into `ansible_facts` (keys without the
/// `ansible_` prefix).
pub fn parse(text: &str) -> Map<String, Json> {
    let mut kv = std::collections::HashMap::new();
    let mut env = Map::new();
    let mut in_env = false;
    for line in text.lines() {
        if line == "@@env" {
            in_env = true;
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if in_env {
                env.insert(k.to_string(), Json::String(v.to_string()));
            } else {
                kv.insert(k.to_string(), v.to_string());
            }
        }
    }
    let g = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let id = g("id");
    let mut version = g("version_id");
    if id == "debian" {
        let dv = g("debian_version");
        if dv.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            version = dv;
        }
    }
    let major = version.split('.').next().unwrap_or("").to_string();
    let mb = |k: &str| g(k).trim().parse::<u64>().map(|kb| kb / 1024).unwrap_or(0);
    let mut ipv4 = Map::new();
    let route = g("route");
    if !route.is_empty() {
        let words: Vec<&str> = route.split_whitespace().collect();
        let after = |w: &str| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| words.get(i + 1))
                .map(|s| s.to_string())
        };
        if let Some(a) = after("src") {
            ipv4.insert("address".into(), json!(a));
        }
        if let Some(d) = after("dev") {
            ipv4.insert("interface".into(), json!(d));
            ipv4.insert("alias".into(), json!(d));
        }
        if let Some(gw) = after("via") {
            ipv4.insert("gateway".into(), json!(gw));
        }
    } else {
        if !g("route_dev").is_empty() {
            ipv4.insert("interface".into(), json!(g("route_dev")));
        }
        if !g("route_addr").is_empty() {
            ipv4.insert("address".into(), json!(g("route_addr")));
        }
    }
    let hostname = g("hostname");
    let mut f = Map::new();
    f.insert("distribution".into(), json!(distribution(&id)));
    f.insert("distribution_version".into(), json!(version));
    f.insert("distribution_major_version".into(), json!(major));
    f.insert("distribution_release".into(), json!(g("codename")));
    f.insert("os_family".into(), json!(family(&id, &g("id_like"))));
    f.insert("system".into(), json!("Linux"));
    f.insert("architecture".into(), json!(g("architecture")));
    f.insert("machine".into(), json!(g("architecture")));
    f.insert("kernel".into(), json!(g("kernel")));
    f.insert(
        "hostname".into(),
        json!(hostname.split('.').next().unwrap_or("")),
    );
    f.insert("nodename".into(), json!(hostname));
    f.insert("fqdn".into(), json!(g("fqdn")));
    f.insert("memtotal_mb".into(), json!(mb("memtotal_kb")));
    f.insert("swaptotal_mb".into(), json!(mb("swaptotal_kb")));
    f.insert(
        "processor_vcpus".into(),
        json!(g("vcpus").trim().parse::<u64>().unwrap_or(1)),
    );
    f.insert("service_mgr".into(), json!(g("service_mgr")));
    f.insert("pkg_mgr".into(), json!(g("pkg_mgr")));
    f.insert("user_id".into(), json!(g("user_id")));
    f.insert(
        "user_uid".into(),
        json!(g("user_uid").parse::<u64>().unwrap_or(0)),
    );
    f.insert("user_dir".into(), json!(g("user_dir")));
    f.insert("env".into(), Json::Object(env));
    f.insert("default_ipv4".into(), Json::Object(ipv4));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian() {
        let out = "id=debian\nversion_id=12\ncodename=bookworm\ndebian_version=12.5\narchitecture=x86_64\nmemtotal_kb=2048000\nservice_mgr=systemd\npkg_mgr=apt\nroute=1.1.1.1 via 10.0.2.2 dev host0 src 10.0.2.15 uid 0\n@@env\nHOME=/root\nA=b=c\n";
        let f = parse(out);
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["distribution_version"], "12.5");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["os_family"], "Debian");
        assert_eq!(f["memtotal_mb"], 2000);
        assert_eq!(f["default_ipv4"]["address"], "10.0.2.15");
        assert_eq!(f["env"]["A"], "b=c");
    }
}
