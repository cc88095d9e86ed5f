//! `mount`: mount points from `/proc/self/mountinfo` (one `cat`): `opts`
//! (per-mount options), `vfs-opts` (superblock options), `source` and
//! `filesystem`. When a path is mounted over, the last mount wins. `usage`
//! (percent of blocks used, rounded, as goss: `1 - free/total`) comes from
//! `stat -f` for the mount points that check it.

use async_trait::async_trait;
use serde_json::Value;

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section};

/// The `mount` resource type.
pub struct Mount;

const PROPS: &[Property] = &[
    Property::value("exists"),
    Property::value("opts"),
    Property::value("vfs-opts"),
    Property::value("source"),
    Property::value("filesystem"),
    Property::value("usage"),
];

/// The probe script: mountinfo, then one `#usage<TAB>i<TAB>blocks free`
/// line for each `(index, path)` in `usage`.
pub fn script(usage: &[(usize, &str)]) -> String {
    let mut s = String::from("cat /proc/self/mountinfo\n");
    for (i, p) in usage {
        s.push_str(&format!(
            "u=$(stat -f -c '%b %f' -- {} 2>/dev/null) && printf '#usage\\t{i}\\t%s\\n' \"$u\"\n",
            image_core::target::shell_quote(p)
        ));
    }
    s.push_str(":\n");
    s
}

/// Percent of blocks used, rounded as goss does; 0 for a file system
/// without blocks (`proc`).
fn usage(blocks_free: &str) -> Option<Value> {
    let (b, f) = blocks_free.trim().split_once(' ')?;
    let (b, f): (f64, f64) = (b.parse().ok()?, f.parse().ok()?);
    if b <= 0.0 {
        return Some(Value::from(0));
    }
    Some(Value::from(((1.0 - f / b) * 100.0).round() as i64))
}

/// Decodes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn usage_line(out: &str, i: usize) -> Option<Value> {
    let tag = format!("#usage\t{i}\t");
    out.lines()
        .find_map(|l| l.strip_prefix(tag.as_str()))
        .and_then(usage)
}

fn list(s: &str) -> Value {
    Value::Array(s.split(',').map(|o| Value::String(o.to_string())).collect())
}

/// Parses mountinfo for the given mount points.
pub fn parse(out: &str, points: &[&str]) -> Vec<Observed> {
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let want = p.trim_end_matches('/');
            let want = if want.is_empty() { "/" } else { want };
            let entry = out.lines().rev().find_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                let pre: Vec<&str> = pre.split(' ').collect();
                let post: Vec<&str> = post.split(' ').collect();
                (pre.len() >= 6 && post.len() >= 3 && unescape(pre[4]) == want).then(|| {
                    (
                        pre[5].to_string(),
                        post[0].to_string(),
                        unescape(post[1]),
                        post[2].to_string(),
                    )
                })
            });
            match entry {
                Some((opts, fs, source, vfs)) => {
                    let mut o = Observed::default();
                    o.set("exists", true)
                        .set("opts", list(&opts))
                        .set("vfs-opts", list(&vfs))
                        .set("source", source)
                        .set("filesystem", fs);
                    if let Some(u) = usage_line(out, i) {
                        o.set("usage", u);
                    } else {
                        o.absent = Some(format!("{p}: usage: statfs failed"));
                    }
                    o
                }
                None => Observed::missing("exists", format!("{p} is not a mount point")),
            }
        })
        .collect()
}

#[async_trait]
impl Resource for Mount {
    fn key(&self) -> &'static str {
        "mount"
    }
    fn type_name(&self) -> &'static str {
        "Mount"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn settings(&self) -> &'static [&'static str] {
        &["timeout"]
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let points: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        let usage: Vec<(usize, &str)> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.checks_property("usage"))
            .map(|(i, s)| (i, s.id.as_str()))
            .collect();
        let section = Section::new(script(&usage));
        Some(Plan::one(specs, section, move |out| parse(out, &points)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let mi = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n\
                  30 22 0:5 / /mnt/my\\040disk rw,nosuid - tmpfs tmpfs rw,size=10k\n";
        let o = parse(mi, &["/", "/mnt/my disk", "/nope"]);
        assert_eq!(o[0].values["filesystem"], "ext4");
        assert_eq!(o[0].values["opts"], serde_json::json!(["rw", "relatime"]));
        assert_eq!(o[1].values["source"], "tmpfs");
        assert_eq!(o[2].values["exists"], Value::Bool(false));
        assert!(!o[0].values.contains_key("usage"));
    }

    #[test]
    fn usage_is_rounded_percent_of_blocks_used() {
        let mi = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n#usage\t0\t1000 333\n";
        let o = parse(mi, &["/"]);
        assert_eq!(o[0].values["usage"], serde_json::json!(67));
        assert_eq!(usage("0 0"), Some(serde_json::json!(0)));
    }
}
