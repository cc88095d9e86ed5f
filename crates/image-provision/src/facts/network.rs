//! Network facts: `interfaces`, one `<iface>` fact per interface (`-`
//! as `_` in the key: device, active, type, mtu, macaddress, promisc,
//! ipv4 (+ ipv4_secondaries), ipv6), `all_ipv4_addresses`,
//! `all_ipv6_addresses`, `default_ipv4`/`default_ipv6` (the interface the
//! route to ansible's probe addresses uses, with its address details), and
//! `dns` from resolv.conf.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value as Json};

use super::Sections;

/// Adds the network facts.
pub(super) fn add(s: &Sections, f: &mut Map<String, Json>) {
    let mut ifaces: Map<String, Json> = Map::new();
    for l in s.lines("links") {
        let p: Vec<&str> = l.split('|').collect();
        if p.len() < 7 {
            continue;
        }
        let flags = u32::from_str_radix(p[1].trim_start_matches("0x"), 16).unwrap_or(0);
        let kind = match (p[2], p[5]) {
            (_, "bridge") => "bridge",
            (_, "bonding") => "bonding",
            ("1", _) => "ether",
            ("512", _) => "ppp",
            ("772", _) => "loopback",
            ("65534", _) => "tunnel",
            _ => "unknown",
        };
        let mut m = Map::new();
        m.insert("device".into(), json!(p[0]));
        m.insert("active".into(), json!(flags & 0x1 != 0));
        m.insert("type".into(), json!(kind));
        if let Ok(mtu) = p[3].parse::<u64>() {
            m.insert("mtu".into(), json!(mtu));
        }
        if !p[4].is_empty() && p[4] != "00:00:00:00:00:00" {
            m.insert("macaddress".into(), json!(p[4]));
        }
        m.insert("promisc".into(), json!(flags & 0x100 != 0));
        if let Ok(sp) = p[6].trim().parse::<i64>() {
            m.insert("speed".into(), json!(sp));
        }
        ifaces.insert(p[0].to_string(), Json::Object(m));
    }
    let mut all4 = Vec::new();
    let mut all6 = Vec::new();
    for l in s.lines("addrs") {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 4 {
            continue;
        }
        let dev = w[1].split('@').next().unwrap_or(w[1]);
        let Some(Json::Object(m)) = ifaces.get_mut(dev) else {
            continue;
        };
        let (addr, prefix) = w[3].split_once('/').unwrap_or((w[3], "32"));
        let after = |k: &str| {
            w.iter()
                .position(|x| *x == k)
                .and_then(|i| w.get(i + 1))
                .copied()
        };
        if w[2] == "inet" {
            if !addr.starts_with("127.") {
                all4.push(json!(addr));
            }
            let (mask, net) = v4_net(addr, prefix);
            let a = json!({
                "address": addr, "broadcast": after("brd").unwrap_or(""),
                "netmask": mask, "network": net, "prefix": prefix,
            });
            if m.contains_key("ipv4") {
                match m.get_mut("ipv4_secondaries") {
                    Some(Json::Array(v)) => v.push(a),
                    _ => {
                        m.insert("ipv4_secondaries".into(), json!([a]));
                    }
                }
            } else {
                m.insert("ipv4".into(), a);
            }
        } else if w[2] == "inet6" {
            if addr != "::1" {
                all6.push(json!(addr));
            }
            let a =
                json!({"address": addr, "prefix": prefix, "scope": after("scope").unwrap_or("")});
            match m.get_mut("ipv6") {
                Some(Json::Array(v)) => v.push(a),
                _ => {
                    m.insert("ipv6".into(), json!([a]));
                }
            }
        }
    }
    f.insert(
        "interfaces".into(),
        json!(ifaces.keys().collect::<Vec<_>>()),
    );
    f.insert("all_ipv4_addresses".into(), Json::Array(all4));
    f.insert("all_ipv6_addresses".into(), Json::Array(all6));
    f.insert(
        "default_ipv4".into(),
        Json::Object(default_route(s.lines("route4").first(), &ifaces, false)),
    );
    f.insert(
        "default_ipv6".into(),
        Json::Object(default_route(s.lines("route6").first(), &ifaces, true)),
    );
    for (name, v) in ifaces {
        f.insert(name.replace(['-', ':', '.'], "_"), v);
    }
    f.insert("dns".into(), Json::Object(dns(s.lines("resolv"))));
}

/// Netmask and network of an IPv4 address.
fn v4_net(addr: &str, prefix: &str) -> (String, String) {
    let p: u32 = prefix.parse().unwrap_or(32).min(32);
    let mask: u32 = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    let a: u32 = addr.parse::<Ipv4Addr>().map(u32::from).unwrap_or(0);
    (
        Ipv4Addr::from(mask).to_string(),
        Ipv4Addr::from(a & mask).to_string(),
    )
}

/// `ip route get` → ansible's default_ipv4/6 (the interface's details
/// for the route's source address).
fn default_route(line: Option<&String>, ifaces: &Map<String, Json>, v6: bool) -> Map<String, Json> {
    let mut m = Map::new();
    let Some(line) = line else { return m };
    let w: Vec<&str> = line.split_whitespace().collect();
    let after = |k: &str| {
        w.iter()
            .position(|x| *x == k)
            .and_then(|i| w.get(i + 1))
            .copied()
    };
    let Some(dev) = after("dev") else { return m };
    let src = after("src");
    if let Some(gw) = after("via") {
        m.insert("gateway".into(), json!(gw));
    }
    m.insert("interface".into(), json!(dev));
    if let Some(Json::Object(i)) = ifaces.get(dev) {
        if !v6 {
            m.insert("alias".into(), json!(dev));
        }
        for k in ["macaddress", "mtu", "type"] {
            if let Some(v) = i.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        if v6 {
            let addrs = i
                .get("ipv6")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            let pick = addrs
                .iter()
                .find(|a| Some(a["address"].as_str().unwrap_or("")) == src)
                .or_else(|| addrs.iter().find(|a| a["scope"] == "global"));
            if let Some(Json::Object(a)) = pick {
                m.extend(a.clone());
            }
        } else {
            let mut all = vec![i.get("ipv4").cloned().unwrap_or(Json::Null)];
            if let Some(Json::Array(sec)) = i.get("ipv4_secondaries") {
                all.extend(sec.iter().cloned());
            }
            let pick = all
                .iter()
                .find(|a| a["address"].as_str().is_some() && a["address"].as_str() == src)
                .or_else(|| all.first());
            if let Some(Json::Object(a)) = pick {
                m.extend(a.clone());
            }
        }
    } else if let Some(a) = src {
        m.insert("address".into(), json!(a));
    }
    m
}

fn dns(lines: &[String]) -> Map<String, Json> {
    let mut m = Map::new();
    let mut ns = Vec::new();
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first().copied() {
            Some("nameserver") if w.len() > 1 => ns.push(json!(w[1])),
            Some("domain") if w.len() > 1 => {
                m.insert("domain".into(), json!(w[1]));
            }
            Some("search") => {
                m.insert("search".into(), json!(w[1..].to_vec()));
            }
            Some("sortlist") => {
                m.insert("sortlist".into(), json!(w[1..].to_vec()));
            }
            Some("options") if w.len() > 1 => {
                let mut o = Map::new();
                for opt in &w[1..] {
                    match opt.split_once(':') {
                        Some((k, v)) => o.insert(k.to_string(), json!(v)),
                        None => o.insert(opt.to_string(), json!(true)),
                    };
                }
                m.insert("options".into(), Json::Object(o));
            }
            _ => {}
        }
    }
    if !ns.is_empty() {
        m.insert("nameservers".into(), Json::Array(ns));
    }
    m
}
