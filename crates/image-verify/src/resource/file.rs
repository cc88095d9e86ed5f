//! `file`: existence, mode, size, ownership, type, link target, checksums
//! and contents of paths, all stat'ed in one shell script (`stat`,
//! `readlink`, `md5sum`/`sha256sum`/`sha512sum` and `base64` from coreutils;
//! checksums and contents only for the paths whose checks need them).
//!
//! Like goss, the file itself is examined (`lstat`): a symlink has
//! `filetype: symlink` and its `linked-to` target.

use async_trait::async_trait;
use base64::Engine;
use serde_json::Value;

use super::{all_failed, Observed, Probe, Property, Resource, ResourceSpec};
use image_core::target::shell_quote;

/// The `file` resource type.
pub struct File;

const PROPS: &[Property] = &[
    Property::value("exists"),
    Property::value("mode"),
    Property::value("size"),
    Property::value("owner"),
    Property::value("group"),
    Property::value("uid"),
    Property::value("gid"),
    Property::value("filetype"),
    Property::value("linked-to"),
    Property::value("md5"),
    Property::value("sha256"),
    Property::value("sha512"),
    Property::text("contents"),
];

const FUNC: &str = r#"f() {
  if [ -e "$2" ] || [ -L "$2" ]; then
    s=$(stat -c '%a	%s	%U	%G	%u	%g	%F' -- "$2") || { printf '%s\tX\tstat failed\n' "$1"; return; }
    l=; [ -L "$2" ] && l=$(readlink -- "$2")
    printf '%s\tE\t%s\t%s\n' "$1" "$s" "$l"
    case $3 in *5*) h=$(md5sum < "$2" 2>/dev/null) && printf '%s\tmd5\t%s\n' "$1" "${h%% *}";; esac
    case $3 in *2*) h=$(sha256sum < "$2" 2>/dev/null) && printf '%s\tsha256\t%s\n' "$1" "${h%% *}";; esac
    case $3 in *x*) h=$(sha512sum < "$2" 2>/dev/null) && printf '%s\tsha512\t%s\n' "$1" "${h%% *}";; esac
    case $3 in *c*) if [ -f "$2" ] && [ -r "$2" ]; then printf '%s\tcontents\t' "$1"; base64 -w0 < "$2"; echo; fi;; esac
  else printf '%s\tN\n' "$1"; fi
}
"#;

/// The probe script for `(path, flags)` pairs; flags: `5` md5, `2` sha256,
/// `x` sha512, `c` contents.
pub fn script(paths: &[(&str, String)]) -> String {
    let mut s = String::from(FUNC);
    for (i, (p, flags)) in paths.iter().enumerate() {
        let flags = if flags.is_empty() { "-" } else { flags };
        s.push_str(&format!("f {i} {} {flags}\n", shell_quote(p)));
    }
    s
}

fn filetype(stat_type: &str) -> &'static str {
    match stat_type {
        "regular file" | "regular empty file" => "file",
        "directory" => "directory",
        "symbolic link" => "symlink",
        "fifo" => "pipe",
        "socket" => "socket",
        "character special file" => "character-device",
        "block special file" => "block-device",
        _ => "unknown",
    }
}

/// Parses the probe output for `n` paths.
pub fn parse(out: &str, paths: &[&str]) -> Vec<Observed> {
    let mut obs: Vec<Observed> = paths
        .iter()
        .map(|p| Observed::failed(format!("no record for {p}")))
        .collect();
    for line in out.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(idx), Some(tag)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(i) = idx.parse::<usize>().ok().filter(|i| *i < paths.len()) else {
            continue;
        };
        let rest = f.next().unwrap_or("");
        let o = &mut obs[i];
        match tag {
            "N" => {
                *o = Observed::missing("exists", format!("{}: no such file or directory", paths[i]))
            }
            "X" => *o = Observed::failed(format!("{}: {rest}", paths[i])),
            "E" => {
                let c: Vec<&str> = rest.split('\t').collect();
                if c.len() < 8 {
                    *o = Observed::failed(format!("{}: unparseable stat output: {rest}", paths[i]));
                    continue;
                }
                *o = Observed::default();
                let num = |s: &str| s.parse::<u64>().map(Value::from).unwrap_or(Value::Null);
                o.set("exists", true)
                    .set("mode", format!("{:0>4}", c[0]))
                    .set("size", num(c[1]))
                    .set("owner", c[2])
                    .set("group", c[3])
                    .set("uid", num(c[4]))
                    .set("gid", num(c[5]))
                    .set("filetype", filetype(c[6]));
                if !c[7].is_empty() {
                    o.set("linked-to", c[7]);
                }
            }
            "md5" => {
                o.set("md5", rest);
            }
            "sha256" => {
                o.set("sha256", rest);
            }
            "sha512" => {
                o.set("sha512", rest);
            }
            "contents" => match base64::engine::general_purpose::STANDARD.decode(rest.trim()) {
                Ok(bytes) => {
                    o.set("contents", String::from_utf8_lossy(&bytes).into_owned());
                }
                Err(e) => o.absent = Some(format!("{}: contents: {e}", paths[i])),
            },
            _ => {}
        }
    }
    for (o, p) in obs.iter_mut().zip(paths) {
        if o.values.get("exists") == Some(&Value::Bool(true)) && o.absent.is_none() {
            o.absent = Some(format!("{p}: not readable or not a regular file"));
        }
    }
    obs
}

#[async_trait]
impl Resource for File {
    fn key(&self) -> &'static str {
        "file"
    }
    fn type_name(&self) -> &'static str {
        "File"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[("contains", "contents")]
    }
    async fn observe(&self, probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        let jobs: Vec<(&str, String)> = specs
            .iter()
            .map(|s| {
                let mut flags = String::new();
                for (prop, flag) in [
                    ("md5", '5'),
                    ("sha256", '2'),
                    ("sha512", 'x'),
                    ("contents", 'c'),
                ] {
                    if s.checks_property(prop) {
                        flags.push(flag);
                    }
                }
                (s.id.as_str(), flags)
            })
            .collect();
        let paths: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        match probe.sh_stdout(&script(&jobs)).await {
            Ok(out) => parse(&out, &paths),
            Err(e) => all_failed(specs, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let out = "0\tE\t644\t12\troot\troot\t0\t0\tregular file\t\n0\tmd5\tabc\n0\tcontents\taGVsbG8K\n1\tN\n2\tE\t777\t7\troot\troot\t0\t0\tsymbolic link\t/etc/x\n";
        let o = parse(out, &["/a", "/b", "/c"]);
        assert_eq!(o[0].values["mode"], Value::from("0644"));
        assert_eq!(o[0].values["size"], Value::from(12));
        assert_eq!(o[0].values["md5"], Value::from("abc"));
        assert_eq!(o[0].values["contents"], Value::from("hello\n"));
        assert_eq!(o[1].values["exists"], Value::Bool(false));
        assert_eq!(o[2].values["filetype"], Value::from("symlink"));
        assert_eq!(o[2].values["linked-to"], Value::from("/etc/x"));
    }
}
