//! `stat`: facts about a path (exists, type, mode, owner, size, times,
//! link target, checksum), in one command.

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Prints `@@mime=` what `file` says of the path's type and encoding
/// (ansible's `mimetype`/`charset`), when `file` is there.
const MIME: &str = "command -v file >/dev/null 2>&1 && _m=$(file --mime-type --mime-encoding \"$p\" 2>/dev/null) && echo \"@@mime=$_m\"\n";

/// Prints `@@lsattr=` `lsattr -vd`'s version and flags (ansible's
/// `version`, `attr_flags`, `attributes`), when it works on the path.
const ATTRS: &str =
    "_a=$(PATH=$PATH:/sbin:/usr/sbin lsattr -vd \"$p\" 2>/dev/null) && echo \"@@lsattr=$_a\"\n";

/// ansible's names of `lsattr`'s flags.
const FLAG_NAMES: &[(char, &str)] = &[
    ('A', "noatime"),
    ('a', "append"),
    ('c', "compressed"),
    ('C', "nocow"),
    ('d', "nodump"),
    ('D', "dirsync"),
    ('e', "extents"),
    ('E', "encrypted"),
    ('h', "blocksize"),
    ('i', "immutable"),
    ('I', "indexed"),
    ('j', "journalled"),
    ('N', "inline"),
    ('s', "zero"),
    ('S', "synchronous"),
    ('t', "notail"),
    ('T', "blockroot"),
    ('u', "undelete"),
    ('X', "compressedraw"),
    ('Z', "compresseddirty"),
];

/// `stat`'s whole seconds and the fraction of its `%y`-style date
/// (`2026-12-06 07:33:05.123456789 +0000`) as Python's float time.
fn float_time(secs: &str, date: &str) -> Json {
    let s = secs.parse::<i64>().unwrap_or(0);
    let frac = date
        .split_once('.')
        .and_then(|(_, r)| r.split(' ').next())
        .and_then(|f| format!("0.{f}").parse::<f64>().ok())
        .unwrap_or(0.0);
    json!(s as f64 + if s < 0 { -frac } else { frac })
}

/// Python's `st_rdev` from the major and minor numbers `stat` prints in
/// hex (glibc's `makedev`).
fn rdev(major: &str, minor: &str) -> u64 {
    let ma = u64::from_str_radix(major, 16).unwrap_or(0);
    let mi = u64::from_str_radix(minor, 16).unwrap_or(0);
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

/// The `stat` module.
pub struct Stat;

#[async_trait]
impl Module for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path",
            "dest",
            "name",
            "follow",
            "get_checksum",
            "checksum_algorithm",
            "checksum_algo",
            "checksum",
            "get_md5",
            "get_mime",
            "get_attributes",
            "get_selinux_context",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["path|dest|name"]
    }
    /// Reads only.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let _ = args;
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let path = args.str_any(&["path", "dest", "name"])?;
        let follow = args.bool_or("follow", false)?;
        let sum = args.bool_or("get_checksum", true)?;
        let algo = args
            .opt_str_any(&["checksum_algorithm", "checksum_algo", "checksum"])
            .unwrap_or_else(|| "sha1".into());
        let cmd = match algo.as_str() {
            "sha1" => "sha1sum",
            "sha224" => "sha224sum",
            "sha256" => "sha256sum",
            "sha384" => "sha384sum",
            "sha512" => "sha512sum",
            "md5" => "md5sum",
            other => {
                return Err(ModuleError::Arg(format!(
                    "unknown checksum algorithm `{other}`"
                )))
            }
        };
        let mime = args.bool_or("get_mime", true)?;
        let attrs = args.bool_or("get_attributes", true)?;
        let body = format!(
            "p={}\nif [ -e \"$p\" ] || [ -L \"$p\" ]; then echo @@exists=1; stat {} -c '@@st=%f|%a|%u|%g|%U|%G|%s|%Y|%X|%Z|%i|%h|%F|%y|%x|%z|%b|%o|%d|%t|%T' \"$p\"\n[ -L \"$p\" ] && echo \"@@lnk=$(readlink \"$p\")\" && echo \"@@lnk_target=$(readlink -f \"$p\")\"\n[ {} = 1 ] && [ -f \"$p\" ] && [ -r \"$p\" ] && sum_ {cmd} \"$p\" && echo \"@@sum=$_h\"\n[ -r \"$p\" ] && echo @@r=1; [ -w \"$p\" ] && echo @@w=1; [ -x \"$p\" ] && echo @@x=1\n{}{}else echo @@exists=0; fi",
            q(&path),
            if follow { "-L" } else { "" },
            u8::from(sum),
            if mime { MIME } else { "" },
            if attrs { ATTRS } else { "" },
        );
        let out = ctx.run_script(&body, None).await?;
        if let Some(f) = &out.failed {
            return Ok(ModuleResult::fail(f.clone()));
        }
        let mut st = Map::new();
        if out.get("exists") == Some("1") {
            let f: Vec<&str> = out.get("st").unwrap_or("").split('|').collect();
            let g = |i: usize| f.get(i).copied().unwrap_or("");
            let n = |i: usize| g(i).parse::<u64>().unwrap_or(0);
            let raw = u32::from_str_radix(g(0), 16).unwrap_or(0);
            let fmt = raw & 0o170000;
            st.insert("exists".into(), json!(true));
            st.insert("path".into(), json!(path));
            st.insert("mode".into(), json!(format!("{:04o}", raw & 0o7777)));
            st.insert("isdir".into(), json!(fmt == 0o040000));
            st.insert("isreg".into(), json!(fmt == 0o100000));
            st.insert("islnk".into(), json!(fmt == 0o120000));
            st.insert("isblk".into(), json!(fmt == 0o060000));
            st.insert("ischr".into(), json!(fmt == 0o020000));
            st.insert("isfifo".into(), json!(fmt == 0o010000));
            st.insert("issock".into(), json!(fmt == 0o140000));
            st.insert("uid".into(), json!(n(2)));
            st.insert("gid".into(), json!(n(3)));
            // Names only when the ids have one (as ansible's).
            if g(4) != "UNKNOWN" {
                st.insert("pw_name".into(), json!(g(4)));
            }
            if g(5) != "UNKNOWN" {
                st.insert("gr_name".into(), json!(g(5)));
            }
            st.insert("size".into(), json!(n(6)));
            st.insert("mtime".into(), float_time(g(7), g(13)));
            st.insert("atime".into(), float_time(g(8), g(14)));
            st.insert("ctime".into(), float_time(g(9), g(15)));
            st.insert("inode".into(), json!(n(10)));
            st.insert("nlink".into(), json!(n(11)));
            st.insert("blocks".into(), json!(n(16)));
            st.insert("block_size".into(), json!(n(17)));
            st.insert("dev".into(), json!(n(18)));
            st.insert("device_type".into(), json!(rdev(g(19), g(20))));
            for (key, bit) in [
                ("rusr", 0o400),
                ("wusr", 0o200),
                ("xusr", 0o100),
                ("rgrp", 0o040),
                ("wgrp", 0o020),
                ("xgrp", 0o010),
                ("roth", 0o004),
                ("woth", 0o002),
                ("xoth", 0o001),
                ("isuid", 0o4000),
                ("isgid", 0o2000),
            ] {
                st.insert(key.into(), json!(raw & bit != 0));
            }
            st.insert("readable".into(), json!(out.get("r") == Some("1")));
            st.insert("writeable".into(), json!(out.get("w") == Some("1")));
            st.insert("executable".into(), json!(out.get("x") == Some("1")));
            if let Some(l) = out.get("lnk") {
                st.insert(
                    "lnk_source".into(),
                    json!(out.get("lnk_target").unwrap_or(l)),
                );
                st.insert("lnk_target".into(), json!(l));
            }
            if let Some(s) = out.get("sum") {
                st.insert("checksum".into(), json!(s));
            }
            if mime {
                // `PATH: TYPE; charset=ENC`, else "unknown" (as ansible).
                let parsed = out.get("mime").and_then(|m| {
                    let (_, rest) = m.rsplit_once(':')?;
                    let (t, c) = rest.split_once(';')?;
                    let (_, c) = c.split_once('=')?;
                    Some((t.trim().to_string(), c.trim().to_string()))
                });
                let (t, c) = parsed.unwrap_or(("unknown".into(), "unknown".into()));
                st.insert("mimetype".into(), json!(t));
                st.insert("charset".into(), json!(c));
            }
            if attrs {
                let mut words = out.get("lsattr").unwrap_or("").split_whitespace();
                let (version, flags) = match (words.next(), words.next()) {
                    (Some(v), Some(f)) => (json!(v), f.replace('-', "")),
                    _ => (Json::Null, String::new()),
                };
                let names: Vec<&str> = flags
                    .chars()
                    .filter_map(|c| FLAG_NAMES.iter().find(|(f, _)| *f == c).map(|(_, n)| *n))
                    .collect();
                st.insert("version".into(), version);
                st.insert("attributes".into(), json!(names));
                st.insert("attr_flags".into(), json!(flags));
            }
        } else {
            st.insert("exists".into(), json!(false));
        }
        Ok(ModuleResult::ok().with("stat", Json::Object(st)))
    }
}
