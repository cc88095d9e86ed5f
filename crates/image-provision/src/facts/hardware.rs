//! Hardware facts: `memtotal_mb`/`memfree_mb`/`swap*_mb` and `memory_mb`
//! (real, nocache, swap) from /proc/meminfo; `processor*` from
//! /proc/cpuinfo; `mounts` (statvfs numbers from `stat -f`, the same
//! devices ansible lists); DMI (`product_*`, `system_vendor`, `bios_*`,
//! `board_*`, `chassis_*`, `form_factor`), `NA` where unreadable.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value as Json};

use super::Sections;

/// Adds the hardware facts.
pub(super) fn add(s: &Sections, f: &mut Map<String, Json>) {
    memory(s.lines("meminfo"), f);
    processors(s.lines("cpuinfo"), s.lines("nproc"), f);
    let binds: BTreeSet<&str> = s.lines("binds").iter().map(String::as_str).collect();
    f.insert(
        "mounts".into(),
        Json::Array(mounts(s.lines("mounts"), &binds)),
    );
    dmi(&s.kv("dmi"), f);
}

fn memory(lines: &[String], f: &mut Map<String, Json>) {
    let mut kb: HashMap<&str, u64> = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if let Some(n) = v.split_whitespace().next().and_then(|n| n.parse().ok()) {
                kb.insert(k.trim(), n);
            }
        }
    }
    if kb.is_empty() {
        return;
    }
    let mb = |k: &str| kb.get(k).copied().unwrap_or(0) / 1024;
    let total = mb("MemTotal");
    let free = mb("MemFree");
    let nocache_free = (kb.get("MemFree").copied().unwrap_or(0)
        + kb.get("Buffers").copied().unwrap_or(0)
        + kb.get("Cached").copied().unwrap_or(0))
        / 1024;
    let (st, sf) = (mb("SwapTotal"), mb("SwapFree"));
    f.insert("memtotal_mb".into(), json!(total));
    f.insert("memfree_mb".into(), json!(free));
    f.insert("swaptotal_mb".into(), json!(st));
    f.insert("swapfree_mb".into(), json!(sf));
    f.insert(
        "memory_mb".into(),
        json!({
            "real": {"total": total, "free": free, "used": total.saturating_sub(free)},
            "nocache": {"free": nocache_free, "used": total.saturating_sub(nocache_free)},
            "swap": {"total": st, "free": sf, "used": st.saturating_sub(sf), "cached": mb("SwapCached")},
        }),
    );
}

fn processors(lines: &[String], nproc: &[String], f: &mut Map<String, Json>) {
    let mut list: Vec<Json> = Vec::new();
    let mut sockets: BTreeSet<String> = BTreeSet::new();
    let mut cores: u64 = 0;
    let mut siblings: u64 = 0;
    let mut count: u64 = 0;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                list.push(json!(count.to_string()));
                count += 1;
            }
            "vendor_id" | "model name" | "Processor" | "vendor" | "cpu" => list.push(json!(v)),
            "physical id" => {
                sockets.insert(v.to_string());
            }
            "cpu cores" => cores = v.parse().unwrap_or(1),
            "siblings" => siblings = v.parse().unwrap_or(1),
            _ => {}
        }
    }
    if count == 0 {
        return;
    }
    let (pcount, pcores, threads) = if sockets.is_empty() {
        (count, 1, 1)
    } else {
        let c = cores.max(1);
        (sockets.len() as u64, c, (siblings.max(c) / c).max(1))
    };
    f.insert("processor".into(), Json::Array(list));
    f.insert("processor_count".into(), json!(pcount));
    f.insert("processor_cores".into(), json!(pcores));
    f.insert("processor_threads_per_core".into(), json!(threads));
    f.insert("processor_vcpus".into(), json!(threads * pcores * pcount));
    let np = nproc
        .first()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(count);
    f.insert("processor_nproc".into(), json!(np));
}

/// `DEV|MOUNT|FSTYPE|OPTIONS|bsize frsize blocks bavail bfree files ffree|UUID|dump passno`.
fn mounts(lines: &[String], binds: &BTreeSet<&str>) -> Vec<Json> {
    // As ansible's dict keyed by mount point: a later entry for the same
    // mount point replaces the earlier one, in the earlier one's place.
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Json> = Vec::new();
    for l in lines {
        let p: Vec<&str> = l.splitn(7, '|').collect();
        if p.len() < 7 {
            continue;
        }
        let st: Vec<u64> = p[4]
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let dp: Vec<u64> = p[6]
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let mut m = Map::new();
        m.insert("mount".into(), json!(p[1]));
        m.insert("device".into(), json!(p[0]));
        m.insert("fstype".into(), json!(p[2]));
        // As ansible: a bind mount (findmnt's SOURCE has `[dir]`) gets
        // `,bind` added to its options.
        if binds.contains(p[1]) {
            m.insert("options".into(), json!(format!("{},bind", p[3])));
        } else {
            m.insert("options".into(), json!(p[3]));
        }
        m.insert("dump".into(), json!(dp.first().copied().unwrap_or(0)));
        m.insert("passno".into(), json!(dp.get(1).copied().unwrap_or(0)));
        if st.len() == 7 {
            let (bsize, frsize, blocks, bavail, bfree, files, ffree) =
                (st[0], st[1], st[2], st[3], st[4], st[5], st[6]);
            m.insert("size_total".into(), json!(frsize * blocks));
            m.insert("size_available".into(), json!(frsize * bavail));
            m.insert("block_size".into(), json!(bsize));
            m.insert("block_total".into(), json!(blocks));
            m.insert("block_available".into(), json!(bavail));
            m.insert("block_used".into(), json!(blocks.saturating_sub(bfree)));
            m.insert("inode_total".into(), json!(files));
            m.insert("inode_available".into(), json!(ffree));
            m.insert("inode_used".into(), json!(files.saturating_sub(ffree)));
        }
        m.insert("uuid".into(), json!(p[5]));
        match at.get(p[1]) {
            Some(&i) => out[i] = Json::Object(m),
            None => {
                at.insert(p[1].to_string(), out.len());
                out.push(Json::Object(m));
            }
        }
    }
    out
}

/// ansible's chassis types (form_factor).
const FORM_FACTORS: &[&str] = &[
    "Unknown",
    "Other",
    "Unknown",
    "Desktop",
    "Low Profile Desktop",
    "Pizza Box",
    "Mini Tower",
    "Tower",
    "Portable",
    "Laptop",
    "Notebook",
    "Hand Held",
    "Docking Station",
    "All In One",
    "Sub Notebook",
    "Space-saving",
    "Lunch Box",
    "Main Server Chassis",
    "Expansion Chassis",
    "Sub Chassis",
    "Bus Expansion Chassis",
    "Peripheral Chassis",
    "RAID Chassis",
    "Rack Mount Chassis",
    "Sealed-case PC",
    "Multi-system",
    "CompactPCI",
    "AdvancedTCA",
    "Blade",
    "Blade Enclosure",
    "Tablet",
    "Convertible",
    "Detachable",
    "IoT Gateway",
    "Embedded PC",
    "Mini PC",
    "Stick PC",
];

fn dmi(kv: &HashMap<String, String>, f: &mut Map<String, Json>) {
    let get = |k: &str| match kv.get(k).map(|v| v.trim()) {
        None | Some("@@NA") => "NA".to_string(),
        Some(v) => v.to_string(),
    };
    for (fact, file) in [
        ("bios_date", "bios_date"),
        ("bios_vendor", "bios_vendor"),
        ("bios_version", "bios_version"),
        ("board_asset_tag", "board_asset_tag"),
        ("board_name", "board_name"),
        ("board_serial", "board_serial"),
        ("board_vendor", "board_vendor"),
        ("board_version", "board_version"),
        ("chassis_asset_tag", "chassis_asset_tag"),
        ("chassis_serial", "chassis_serial"),
        ("chassis_vendor", "chassis_vendor"),
        ("chassis_version", "chassis_version"),
        ("product_name", "product_name"),
        ("product_serial", "product_serial"),
        ("product_uuid", "product_uuid"),
        ("product_version", "product_version"),
        ("system_vendor", "sys_vendor"),
    ] {
        f.insert(fact.into(), json!(get(file)));
    }
    let ff = get("chassis_type")
        .parse::<usize>()
        .ok()
        .and_then(|i| FORM_FACTORS.get(i).copied())
        .unwrap_or("NA");
    f.insert("form_factor".into(), json!(ff));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus() {
        let l: Vec<String> = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\n"
            .lines()
            .map(str::to_string)
            .collect();
        let mut f = Map::new();
        processors(&l, &["2".into()], &mut f);
        assert_eq!(
            f["processor"],
            json!(["0", "GenuineIntel", "Xeon", "1", "GenuineIntel", "Xeon"])
        );
        assert_eq!(f["processor_count"], 1);
        assert_eq!(f["processor_cores"], 2);
        assert_eq!(f["processor_threads_per_core"], 1);
        assert_eq!(f["processor_vcpus"], 2);
    }

    #[test]
    fn mount_numbers() {
        let m = mounts(
            &["/dev/vda|/|ext4|rw,relatime|4096 4096 100 50 60 1000 900|N/A|0 1".into()],
            &BTreeSet::new(),
        );
        assert_eq!(m[0]["size_total"], 409600);
        assert_eq!(m[0]["block_used"], 40);
        assert_eq!(m[0]["inode_used"], 100);
        assert_eq!(m[0]["passno"], 1);
    }
}
