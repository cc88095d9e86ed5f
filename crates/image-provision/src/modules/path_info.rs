//! The file keys ansible adds to the result of every module that returns a
//! `path` or `dest` (its `add_path_info`): `state` (`file`, `directory`,
//! `link`, `hard`, `absent`), `mode` (`0644`), `uid`, `gid`, `owner`,
//! `group`, `size`, all of the path itself (not what a link points to);
//! nothing when the path does not exist. Scripts print them with the
//! prelude's `fattrs PATH` (one `@@fattrs=` line); [`insert`] turns that
//! line into the keys.

use serde_json::{Map, Value as Json};

use crate::script::ScriptOut;

/// Adds the keys of the script's last `@@fattrs=` line to `data` (nothing
/// when the script printed none, e.g. it failed before).
pub fn insert(out: &ScriptOut, data: &mut Map<String, Json>) {
    if let Some(line) = out.get("fattrs") {
        data.extend(parse(line));
    }
}

/// The keys of one `@@fattrs=TYPE MODE UID GID SIZE NLINK OWNER GROUP` line.
pub fn parse(line: &str) -> Map<String, Json> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let mut m = Map::new();
    let Some(kind) = f.first() else {
        return m;
    };
    if f.len() < 8 {
        m.insert("state".into(), Json::String((*kind).to_string()));
        return m;
    }
    let num = |s: &str| s.parse::<u64>().map(Json::from).unwrap_or(Json::Null);
    let nlink: u64 = f[5].parse().unwrap_or(1);
    let state = if *kind == "file" && nlink > 1 {
        "hard"
    } else {
        kind
    };
    m.insert("state".into(), Json::String(state.to_string()));
    m.insert("mode".into(), Json::String(format!("0{:0>3}", f[1])));
    m.insert("uid".into(), num(f[2]));
    m.insert("gid".into(), num(f[3]));
    m.insert("size".into(), num(f[4]));
    // stat prints UNKNOWN for ids without a name; ansible the number.
    let name = |n: &str, id: &str| Json::String(if n == "UNKNOWN" { id } else { n }.to_string());
    m.insert("owner".into(), name(f[6], f[2]));
    m.insert("group".into(), name(f[7], f[3]));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_file_line_gives_ansibles_keys() {
        let m = parse("file 640 0 4 8 1 root adm");
        assert_eq!(
            Json::Object(m),
            json!({"state": "file", "mode": "0640", "uid": 0, "gid": 4, "size": 8, "owner": "root", "group": "adm"})
        );
    }

    #[test]
    fn hard_links_setuid_modes_unknown_ids_and_absence() {
        let m = parse("file 4755 1234 0 3 2 UNKNOWN root");
        assert_eq!(m["state"], "hard");
        assert_eq!(m["mode"], "04755");
        assert_eq!(m["owner"], "1234");
        assert_eq!(parse("file 0 0 0 0 1 root root")["mode"], "0000");
        assert_eq!(Json::Object(parse("link")), json!({"state": "link"}));
    }
}
