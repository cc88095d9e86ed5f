//! Platform facts: distribution (`distribution*`, `os_family`, `lsb`),
//! kernel and architecture, host names, the user, `date_time`, `env`,
//! `cmdline`/`proc_cmdline`, `machine_id`, `pkg_mgr`, `service_mgr`,
//! `python` (only when python3 is on the host), `selinux`, `apparmor`.

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use super::Sections;

/// ansible's OS_FAMILY map for the IDs a build host has.
fn family(dist: &str, like: &str) -> &'static str {
    match dist {
        "Debian" | "Ubuntu" | "Kali" | "Raspbian" | "Linux Mint" | "Pop!_OS" => "Debian",
        "RedHat" | "CentOS" | "Fedora" | "Amazon" | "Rocky" | "AlmaLinux" | "OracleLinux"
        | "Scientific" | "VMware Photon OS" | "Mariner" | "AzureLinux" => "RedHat",
        "Flatcar" => "Flatcar",
        "Alpine" => "Alpine",
        "Archlinux" => "Archlinux",
        "SLES" | "openSUSE Leap" | "openSUSE Tumbleweed" | "SLES_SAP" => "Suse",
        _ if like.contains("debian") || like.contains("ubuntu") => "Debian",
        _ if like.contains("rhel") || like.contains("fedora") => "RedHat",
        _ if like.contains("suse") => "Suse",
        _ => "Linux",
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
        "ol" => "OracleLinux".into(),
        "azurelinux" => "AzureLinux".into(),
        "mariner" => "Mariner".into(),
        "sles" => "SLES".into(),
        "alpine" => "Alpine".into(),
        "arch" => "Archlinux".into(),
        "" => "Linux".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(v)
        .to_string()
}

/// Adds the platform facts.
pub(super) fn add(s: &Sections, f: &mut Map<String, Json>) {
    let os: std::collections::HashMap<String, String> = s
        .lines("osrel")
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v)))
        .collect();
    let g = |k: &str| os.get(k).cloned().unwrap_or_default();
    let id = g("ID");
    let dist = distribution(&id);
    let mut version = g("VERSION_ID");
    if id == "debian" {
        if let Some(dv) = s.lines("debver").first() {
            if dv.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                version = dv.trim().to_string();
            }
        }
    }
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("").to_string();
    let minor = parts.next().unwrap_or("").to_string();
    let mut release = g("VERSION_CODENAME");
    if release.is_empty() {
        release = g("UBUNTU_CODENAME");
    }
    if release.is_empty() && dist == "Amazon" {
        release = "NA".into();
    }
    f.insert("distribution".into(), json!(dist));
    f.insert("distribution_version".into(), json!(version));
    f.insert("distribution_major_version".into(), json!(major));
    if !minor.is_empty() {
        f.insert("distribution_minor_version".into(), json!(minor));
    }
    f.insert("distribution_release".into(), json!(release));
    f.insert("distribution_file_parsed".into(), json!(true));
    f.insert("distribution_file_path".into(), json!("/etc/os-release"));
    f.insert("distribution_file_variety".into(), json!(dist));
    f.insert("os_family".into(), json!(family(&dist, &g("ID_LIKE"))));
    f.insert("system".into(), json!("Linux"));
    f.insert("lsb".into(), Json::Object(lsb(s.lines("lsb"))));

    let un = s.lines("uname");
    let at = |i: usize| un.get(i).cloned().unwrap_or_default();
    f.insert("architecture".into(), json!(at(0)));
    f.insert("machine".into(), json!(at(0)));
    f.insert("kernel".into(), json!(at(1)));
    f.insert("kernel_version".into(), json!(at(2)));
    f.insert("nodename".into(), json!(at(3)));
    let host = s.lines("host");
    let node = at(3);
    f.insert(
        "hostname".into(),
        json!(node.split('.').next().unwrap_or("")),
    );
    let fqdn = host.get(1).cloned().unwrap_or_else(|| node.clone());
    f.insert("fqdn".into(), json!(fqdn));
    f.insert(
        "domain".into(),
        json!(fqdn.split_once('.').map(|(_, d)| d).unwrap_or("")),
    );

    let misc = s.kv("misc");
    let m = |k: &str| misc.get(k).cloned().unwrap_or_default();
    f.insert("service_mgr".into(), json!(m("service_mgr")));
    f.insert("pkg_mgr".into(), json!(m("pkg_mgr")));
    if let Ok(u) = m("uptime").split('.').next().unwrap_or("").parse::<u64>() {
        f.insert("uptime_seconds".into(), json!(u));
    }
    let la: Vec<f64> = m("loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    if la.len() == 3 {
        f.insert(
            "loadavg".into(),
            json!({"1m": la[0], "5m": la[1], "15m": la[2]}),
        );
    }
    f.insert("fips".into(), json!(m("fips").trim() == "1"));
    f.insert("apparmor".into(), json!({"status": m("apparmor")}));
    match m("chroot").as_str() {
        "1" => f.insert("is_chroot".into(), json!(true)),
        "0" => f.insert("is_chroot".into(), json!(false)),
        _ => None,
    };
    let bits = m("bits");
    if !bits.is_empty() {
        f.insert("userspace_bits".into(), json!(bits));
        let arch = at(0);
        let ua = if bits == "32" && arch == "x86_64" {
            "i386".to_string()
        } else {
            arch
        };
        f.insert("userspace_architecture".into(), json!(ua));
    }
    // python: what python3 on the host reports; absent without python3
    // (ansible itself needs it, image-cli does not).
    if let Ok(p @ Json::Object(_)) = serde_json::from_str::<Json>(&m("python")) {
        let v = &p["version"];
        f.insert(
            "python_version".into(),
            json!(format!("{}.{}.{}", v["major"], v["minor"], v["micro"])),
        );
        f.insert("python".into(), p);
    }
    // selinux as ansible reports it: its binding needs libselinux; the
    // status comes from selinuxfs.
    let lib = misc.contains_key("selinux_lib");
    f.insert("selinux_python_present".into(), json!(lib));
    let mode_name = |v: &str| match v.trim() {
        "1" | "enforcing" => "enforcing",
        "0" | "permissive" => "permissive",
        "disabled" => "disabled",
        _ => "unknown",
    };
    let sel = match misc.get("selinux_enforce") {
        _ if !lib => json!({"status": "Missing selinux Python library"}),
        None => json!({"status": "disabled"}),
        Some(e) => json!({
            "status": "enabled",
            "mode": mode_name(e),
            "config_mode": misc.get("selinux_config").map_or("unknown", |c| mode_name(c)),
            "type": misc.get("selinux_type").map_or("unknown", |t| t.trim()),
            "policyvers": misc.get("selinux_policyvers").and_then(|p| p.trim().parse::<u64>().ok()).map_or(json!("unknown"), |p| json!(p)),
        }),
    };
    f.insert("selinux".into(), sel);

    // user
    let u = s.lines("user");
    let ui = |i: usize| u.get(i).cloned().unwrap_or_default();
    let num = |x: String| x.trim().parse::<u64>().map_or(Json::Null, |n| json!(n));
    f.insert("user_id".into(), json!(ui(0)));
    f.insert("user_uid".into(), num(ui(1)));
    f.insert("user_gid".into(), num(ui(2)));
    f.insert("effective_user_id".into(), num(ui(1)));
    f.insert("effective_group_id".into(), num(ui(2)));
    f.insert("real_user_id".into(), num(ui(3)));
    f.insert("real_group_id".into(), num(ui(4)));
    let pw: Vec<String> = ui(5).split(':').map(str::to_string).collect();
    if pw.len() >= 7 {
        f.insert("user_gecos".into(), json!(pw[4]));
        f.insert("user_dir".into(), json!(pw[5]));
        f.insert("user_shell".into(), json!(pw[6]));
    }

    // env (NUL-separated, base64)
    let mut env = Map::new();
    let raw = s.lines("env").join("");
    if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(raw.trim()) {
        for kv in String::from_utf8_lossy(&b).split('\0') {
            if let Some((k, v)) = kv.split_once('=') {
                env.insert(k.to_string(), json!(v));
            }
        }
    }
    if !f.contains_key("user_dir") {
        if let Some(h) = env.get("HOME") {
            f.insert("user_dir".into(), h.clone());
        }
    }
    f.insert("env".into(), Json::Object(env));

    // cmdline
    if let Some(c) = s.lines("cmdline").first() {
        let (cl, pcl) = cmdline(c);
        f.insert("cmdline".into(), Json::Object(cl));
        f.insert("proc_cmdline".into(), Json::Object(pcl));
    }
    if let Some(id) = s
        .lines("machine_id")
        .first()
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
    {
        f.insert("machine_id".into(), json!(id));
    }
    if let Some(dt) = date_time(s.lines("date")) {
        f.insert("date_time".into(), Json::Object(dt));
    }
}

/// `lsb_release -a` (or `/etc/lsb-release` lines prefixed `F:`).
fn lsb(lines: &[String]) -> Map<String, Json> {
    let mut m = Map::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("F:") {
            if let Some((k, v)) = rest.split_once('=') {
                let key = match k.trim() {
                    "DISTRIB_ID" => "id",
                    "DISTRIB_RELEASE" => "release",
                    "DISTRIB_DESCRIPTION" => "description",
                    "DISTRIB_CODENAME" => "codename",
                    _ => continue,
                };
                m.insert(key.into(), json!(unquote(v)));
            }
        } else if let Some((k, v)) = l.split_once(':') {
            let key = match k.trim() {
                "Distributor ID" => "id",
                "Release" => "release",
                "Description" => "description",
                "Codename" => "codename",
                _ => continue,
            };
            m.insert(key.into(), json!(v.trim()));
        }
    }
    if let Some(r) = m.get("release").and_then(Json::as_str).map(str::to_string) {
        m.insert(
            "major_release".into(),
            json!(r.split('.').next().unwrap_or("")),
        );
    }
    m
}

/// ansible's `cmdline` (last value wins, bare words `true`) and
/// `proc_cmdline` (repeated keys collect into lists).
fn cmdline(c: &str) -> (Map<String, Json>, Map<String, Json>) {
    let mut cl = Map::new();
    let mut pcl = Map::new();
    for w in c.split_whitespace() {
        let (k, v) = match w.split_once('=') {
            Some((k, v)) => (k, json!(v)),
            None => (w, json!(true)),
        };
        cl.insert(k.to_string(), v.clone());
        match pcl.get_mut(k) {
            Some(Json::Array(a)) => a.push(v),
            Some(prev) => {
                let p = prev.clone();
                *prev = json!([p, v]);
            }
            None => {
                pcl.insert(k.to_string(), v);
            }
        }
    }
    (cl, pcl)
}

/// `date_time` from the target's one `date` (its local fields); the UTC
/// ones are that instant's epoch in UTC.
fn date_time(lines: &[String]) -> Option<Map<String, Json>> {
    let l: Vec<&str> = lines.first()?.split('|').collect();
    if l.len() < 13 {
        return None;
    }
    let micro = &l[12].get(..6).unwrap_or("000000");
    let umicro = micro;
    let uiso = l[6]
        .parse::<i64>()
        .ok()
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default();
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.into(), json!(v));
    };
    put("year", l[0].into());
    put("month", l[1].into());
    put("day", l[2].into());
    put("hour", l[3].into());
    put("minute", l[4].into());
    put("second", l[5].into());
    put("epoch", l[6].into());
    put("epoch_int", l[6].into());
    put("weekday", l[7].into());
    put("weekday_number", l[8].into());
    put("weeknumber", l[9].into());
    put("tz", l[10].into());
    put(
        "tz_dst",
        lines.get(1).cloned().unwrap_or_else(|| l[10].to_string()),
    );
    put("tz_offset", l[11].into());
    put("date", format!("{}-{}-{}", l[0], l[1], l[2]));
    put("time", format!("{}:{}:{}", l[3], l[4], l[5]));
    put("iso8601", format!("{uiso}Z"));
    put("iso8601_micro", format!("{uiso}.{umicro}Z"));
    put(
        "iso8601_basic",
        format!("{}{}{}T{}{}{}{micro}", l[0], l[1], l[2], l[3], l[4], l[5]),
    );
    put(
        "iso8601_basic_short",
        format!("{}{}{}T{}{}{}", l[0], l[1], l[2], l[3], l[4], l[5]),
    );
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdlines() {
        let (c, p) = cmdline("console=tty0 console=ttyS0 quiet");
        assert_eq!(c["console"], "ttyS0");
        assert_eq!(p["console"], json!(["tty0", "ttyS0"]));
        assert_eq!(c["quiet"], true);
    }

    #[test]
    fn utc_fields_come_from_the_local_dates_epoch() {
        let m = date_time(&[
            "2026|12|07|03|04|05|1796609045|Monday|1|49|CET|+0100|123456789".into(),
            "UTC".into(),
        ])
        .expect("date_time");
        assert_eq!(m["iso8601"], "2026-12-07T02:04:05Z");
        assert_eq!(m["iso8601_micro"], "2026-12-07T02:04:05.123456Z");
        assert_eq!(m["iso8601_basic"], "20261207T030405123456");
        assert_eq!(m["tz"], "CET");
        assert_eq!(m["tz_dst"], "UTC");
    }

    #[test]
    fn lsb_release() {
        let m = lsb(&["Distributor ID:\tUbuntu".into(), "Release:\t24.04".into()]);
        assert_eq!(m["id"], "Ubuntu");
        assert_eq!(m["major_release"], "24");
    }
}
