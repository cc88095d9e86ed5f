//! `stat`: facts about a path (exists, type, mode, owner, size, times,
//! link target, checksum), in one command.

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

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
        let body = format!(
            "p={}\nif [ -e \"$p\" ] || [ -L \"$p\" ]; then echo @@exists=1; stat {} -c '@@st=%f|%a|%u|%g|%U|%G|%s|%Y|%X|%Z|%i|%h|%F' \"$p\"\n[ -L \"$p\" ] && echo \"@@lnk=$(readlink \"$p\")\" && echo \"@@lnk_target=$(readlink -f \"$p\")\"\n[ {} = 1 ] && [ -f \"$p\" ] && [ -r \"$p\" ] && echo \"@@sum=$({cmd} \"$p\" | cut -d' ' -f1)\"\n[ -r \"$p\" ] && echo @@r=1; [ -w \"$p\" ] && echo @@w=1; [ -x \"$p\" ] && echo @@x=1\nelse echo @@exists=0; fi",
            q(&path),
            if follow { "-L" } else { "" },
            u8::from(sum)
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
            st.insert("pw_name".into(), json!(g(4)));
            st.insert("gr_name".into(), json!(g(5)));
            st.insert("size".into(), json!(n(6)));
            st.insert("mtime".into(), json!(n(7)));
            st.insert("atime".into(), json!(n(8)));
            st.insert("ctime".into(), json!(n(9)));
            st.insert("inode".into(), json!(n(10)));
            st.insert("nlink".into(), json!(n(11)));
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
        } else {
            st.insert("exists".into(), json!(false));
        }
        Ok(ModuleResult::ok().with("stat", Json::Object(st)))
    }
}
