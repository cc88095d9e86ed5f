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

use super::{Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section};
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
    g "$@"
  else printf '%s\tN\n' "$1"; fi
}
g() {
  if [ -e "$2" ] || [ -L "$2" ]; then
    case $3 in *5*) h=$(md5sum < "$2" 2>/dev/null) && printf '%s\tmd5\t%s\n' "$1" "${h%% *}";; esac
    case $3 in *2*) h=$(sha256sum < "$2" 2>/dev/null) && printf '%s\tsha256\t%s\n' "$1" "${h%% *}";; esac
    case $3 in *x*) h=$(sha512sum < "$2" 2>/dev/null) && printf '%s\tsha512\t%s\n' "$1" "${h%% *}";; esac
    case $3 in *c*) if [ -f "$2" ] && [ -r "$2" ]; then printf '%s\tcontents\t' "$1"; base64 -w0 < "$2"; echo; fi;; esac
  fi
}
"#;

/// The `stat` format of the one call that examines every path (`%N` with
/// `QUOTING_STYLE=literal`: `NAME` or `NAME -> TARGET`).
const STAT: &str = "S\t%a\t%s\t%U\t%G\t%u\t%g\t%F\t%N";

/// A path that one `stat` line can name without doubt.
fn batchable(p: &str) -> bool {
    !p.is_empty() && !p.contains(['\t', '\n'])
}

/// The probe script for `(path, flags)` pairs; flags: `5` md5, `2` sha256,
/// `x` sha512, `c` contents. One `stat` examines every path (a path with a
/// tab or newline in its name gets its own); checksums and contents are
/// read only for the paths that check them.
pub fn script(paths: &[(&str, String)]) -> String {
    let mut s = String::from(FUNC);
    let batch: Vec<&str> = paths
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| batchable(p))
        .collect();
    if !batch.is_empty() {
        s.push_str(&format!(
            "QUOTING_STYLE=literal stat -c '{STAT}' -- {} 2>/dev/null\n",
            super::quote_all(batch.iter().copied())
        ));
    }
    for (i, (p, flags)) in paths.iter().enumerate() {
        let q = shell_quote(p);
        if !batchable(p) {
            let flags = if flags.is_empty() { "-" } else { flags };
            s.push_str(&format!("f {i} {q} {flags}\n"));
        } else if !flags.is_empty() {
            s.push_str(&format!("g {i} {q} {flags}\n"));
        }
    }
    s.push_str("true\n");
    s
}

/// Turns the `stat` lines (`S<TAB>...`, in argument order, none for a path
/// that does not exist) into the per-path `i<TAB>E<TAB>...` and
/// `i<TAB>N` records that `f` prints, ahead of the other records.
pub fn indexed(out: &str, paths: &[&str]) -> String {
    let batch: Vec<(usize, &str)> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| batchable(p))
        .map(|(i, p)| (i, *p))
        .collect();
    let mut head = String::new();
    let mut rest = String::new();
    let mut next = 0;
    for line in out.lines() {
        let Some(stat) = line.strip_prefix("S\t") else {
            rest.push_str(line);
            rest.push('\n');
            continue;
        };
        let f: Vec<&str> = stat.splitn(8, '\t').collect();
        if f.len() < 8 {
            continue;
        }
        let named = f[7];
        // The next path (in order) that this line names; the ones passed
        // over do not exist.
        while let Some((i, p)) = batch.get(next) {
            next += 1;
            if named == *p {
                head.push_str(&format!("{i}\tE\t{}\t\n", f[..7].join("\t")));
                break;
            }
            if let Some(target) = named
                .strip_prefix(p)
                .and_then(|t| t.strip_prefix(" -> "))
                .filter(|_| f[6] == "symbolic link")
            {
                head.push_str(&format!("{i}\tE\t{}\t{target}\n", f[..7].join("\t")));
                break;
            }
            head.push_str(&format!("{i}\tN\n"));
        }
    }
    for (i, _) in batch.get(next..).unwrap_or_default() {
        head.push_str(&format!("{i}\tN\n"));
    }
    head + &rest
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
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
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
        let section = Section::new(script(&jobs));
        Some(Plan::one(specs, section, move |out| {
            parse(&indexed(out, &paths), &paths)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stat_line_per_existing_path_in_order() {
        let out = "S\t644\t12\troot\troot\t0\t0\tregular file\t/a\n\
                   S\t777\t4\troot\troot\t0\t0\tsymbolic link\t/c -> /x y\n\
                   2\tmd5\tabc\n";
        let paths = ["/a", "/b", "/c", "/d", "/e\tf"];
        let o = parse(&indexed(out, &paths), &paths);
        assert_eq!(o[0].values["mode"], Value::from("0644"));
        assert_eq!(o[1].values["exists"], Value::Bool(false));
        assert_eq!(o[2].values["linked-to"], Value::from("/x y"));
        assert_eq!(o[2].values["md5"], Value::from("abc"));
        assert_eq!(o[3].values["exists"], Value::Bool(false));
        // Not in the batch: its own `f` record, here none.
        assert!(o[4].error.is_some());
    }

    #[test]
    fn the_script_examines_real_paths_as_one_stat_per_path_did() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("f"), "hello\n").unwrap();
        std::os::unix::fs::symlink("f", d.join("l")).unwrap();
        std::os::unix::fs::symlink("/no/where", d.join("dangling")).unwrap();
        std::fs::write(d.join("t\tab"), "x").unwrap();
        let names = ["f", "l", "missing", "dangling", "t\tab", "f"];
        let paths: Vec<String> = names
            .iter()
            .map(|n| d.join(n).display().to_string())
            .collect();
        let jobs: Vec<(&str, String)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.as_str(),
                    if i == 1 {
                        "5c".to_string()
                    } else {
                        String::new()
                    },
                )
            })
            .collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(&jobs))
            .output()
            .unwrap();
        assert!(out.status.success());
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let o = parse(
            &indexed(&String::from_utf8_lossy(&out.stdout), &refs),
            &refs,
        );
        assert_eq!(o[0].values["filetype"], Value::from("file"));
        assert_eq!(o[0].values["size"], Value::from(6));
        assert_eq!(o[1].values["filetype"], Value::from("symlink"));
        assert_eq!(o[1].values["linked-to"], Value::from("f"));
        assert_eq!(
            o[1].values["md5"],
            Value::from("b1946ac92492d2347c6235b4d2611184")
        );
        assert_eq!(o[1].values["contents"], Value::from("hello\n"));
        assert_eq!(o[2].values["exists"], Value::Bool(false));
        assert_eq!(o[3].values["linked-to"], Value::from("/no/where"));
        assert_eq!(o[4].values["size"], Value::from(1));
        assert_eq!(o[5].values["size"], Value::from(6));
    }

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
