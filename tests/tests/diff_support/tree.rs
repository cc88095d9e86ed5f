//! File trees on a target: type, mode, owner, group and sha256 (or link
//! target) of everything under some paths, read as root in one round trip
//! (python3 is on every test-bed target), to compare the two targets.

use std::collections::BTreeMap;

use image_core::target::{shell_quote, Exec, Target};
use serde_json::Value as Json;

/// Walks the paths given as arguments; one JSON object per entry.
const WALK: &str = r#"
import grp, hashlib, json, os, pwd, stat, sys
def name(f, i):
    try:
        return f(i)[0]
    except KeyError:
        return str(i)
def entry(p):
    st = os.lstat(p)
    e = {"path": p, "owner": name(pwd.getpwuid, st.st_uid), "group": name(grp.getgrgid, st.st_gid)}
    if stat.S_ISLNK(st.st_mode):
        e["type"] = "link"; e["target"] = os.readlink(p)
    else:
        e["mode"] = "%04o" % stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            e["type"] = "dir"
        elif stat.S_ISREG(st.st_mode):
            e["type"] = "file"
            with open(p, "rb") as f:
                e["sha256"] = hashlib.sha256(f.read()).hexdigest()
        else:
            e["type"] = "other"
    print(json.dumps(e, sort_keys=True))
for top in sys.argv[1:]:
    if not os.path.lexists(top):
        print(json.dumps({"path": top, "type": "absent"}))
        continue
    entry(top)
    if os.path.isdir(top) and not os.path.islink(top):
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for n in sorted(dirs + files):
                entry(os.path.join(root, n))
"#;

/// path -> its description.
pub type Tree = BTreeMap<String, Json>;

/// The entries under `paths` on `target`.
pub async fn snapshot(target: &dyn Target, paths: &[String]) -> Tree {
    let args: Vec<String> = paths.iter().map(|p| shell_quote(p)).collect();
    let cmd = Exec::new(format!("python3 - {}", args.join(" ")))
        .stdin(WALK.as_bytes().to_vec())
        .become_root();
    let out = target.exec(&cmd).await.expect("tree walk");
    assert!(
        out.status == 0,
        "tree walk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tree = Tree::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(Json::Object(mut e)) = serde_json::from_str::<Json>(line) else {
            continue;
        };
        if let Some(Json::String(p)) = e.remove("path") {
            tree.insert(p, Json::Object(e));
        }
    }
    tree
}

/// Differences of the two trees under `prefixes`, one line each.
pub fn diff(ansible: &Tree, cli: &Tree, prefixes: &[String]) -> Vec<String> {
    let under = |p: &str| {
        prefixes
            .iter()
            .any(|x| p == x || p.starts_with(&format!("{}/", x.trim_end_matches('/'))))
    };
    let mut out = Vec::new();
    for (p, a) in ansible.iter().filter(|(p, _)| under(p)) {
        match cli.get(p) {
            None => out.push(format!(
                "{p}: {a} on the ansible target, absent on image-cli's"
            )),
            Some(c) if c != a => out.push(format!("{p}: ansible {a}, image-cli {c}")),
            Some(_) => {}
        }
    }
    for (p, c) in cli.iter().filter(|(p, _)| under(p)) {
        if !ansible.contains_key(p) {
            out.push(format!(
                "{p}: {c} on the image-cli target, absent on ansible's"
            ));
        }
    }
    out
}
