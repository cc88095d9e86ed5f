//! `find`: files matching name patterns (globs, or regexes with
//! `use_regex`), type, age, size and `contains`, in one `find` command.

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `find` module.
pub struct Find;

#[async_trait]
impl Module for Find {
    fn name(&self) -> &'static str {
        "find"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "paths",
            "path",
            "name",
            "patterns",
            "pattern",
            "excludes",
            "exclude",
            "file_type",
            "recurse",
            "hidden",
            "follow",
            "depth",
            "use_regex",
            "age",
            "age_stamp",
            "size",
            "contains",
            "get_checksum",
            "read_whole_file",
            "mode",
            "exact_mode",
            "encoding",
            "checksum_algorithm",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["paths|path|name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        let paths = args.list_any(&["paths", "path", "name"]);
        let patterns = args.list_any(&["patterns", "pattern"]);
        let excludes = args.list_any(&["excludes", "exclude"]);
        let regex = args.bool_or("use_regex", false)?;
        let recurse = args.bool_or("recurse", false)?;
        let hidden = args.bool_or("hidden", false)?;
        let ftype = args.choice("file_type", &["file", "directory", "link", "any"], "file")?;
        let depth = args.opt_i64("depth")?;
        let mut expr = String::new();
        if !recurse {
            expr.push_str(" -maxdepth 1");
        } else if let Some(d) = depth {
            expr.push_str(&format!(" -maxdepth {d}"));
        }
        expr.push_str(" -mindepth 1");
        match ftype.as_str() {
            "file" => expr.push_str(" -type f"),
            "directory" => expr.push_str(" -type d"),
            "link" => expr.push_str(" -type l"),
            _ => {}
        }
        let name_test = |p: &str| {
            if regex {
                format!("-regextype posix-extended -regex {}", q(&format!(".*/{p}")))
            } else {
                format!("-name {}", q(p))
            }
        };
        if !patterns.is_empty() {
            let alts: Vec<String> = patterns.iter().map(|p| name_test(p)).collect();
            expr.push_str(&format!(" \\( {} \\)", alts.join(" -o ")));
        }
        for e in &excludes {
            expr.push_str(&format!(" ! {}", name_test(e)));
        }
        if !hidden {
            expr.push_str(" ! -name '.*'");
        }
        if let Some(s) = args.opt_str("size") {
            let (sign, rest) = match s.strip_prefix('-') {
                Some(r) => ("-", r.to_string()),
                None => ("+", s.clone()),
            };
            let unit = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            let num = &rest[..rest.len() - unit.len()];
            let unit = match unit.to_lowercase().as_str() {
                "" | "b" => "c",
                "k" | "kb" => "k",
                "m" | "mb" => "M",
                "g" | "gb" => "G",
                _ => "c",
            };
            expr.push_str(&format!(" -size {sign}{num}{unit}"));
        }
        if let Some(a) = args.opt_str("age") {
            let (sign, rest) = match a.strip_prefix('-') {
                Some(r) => ("-", r),
                None => ("+", a.as_str()),
            };
            let unit = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            let num: i64 = rest[..rest.len() - unit.len()].parse().unwrap_or(0);
            let mins = num
                * match unit {
                    "s" => 0,
                    "m" => 1,
                    "h" => 60,
                    "d" | "" => 1440,
                    "w" => 10080,
                    _ => 1440,
                };
            expr.push_str(&format!(
                " -mmin {sign}{}",
                mins.max(if unit == "s" { 0 } else { 1 })
            ));
        }
        let mut body = String::new();
        for p in &paths {
            body.push_str(&format!(
                "[ -d {p} ] && find {f} {p}{expr} -printf '%p|%s|%m|%T@|%u|%g|%y\\n'",
                p = q(p),
                f = if args.bool_or("follow", false)? {
                    "-L"
                } else {
                    ""
                }
            ));
            if let Some(c) = args.opt_str("contains") {
                body.push_str(&format!(" | while IFS='|' read -r fp rest; do grep -Eq {} \"$fp\" 2>/dev/null && echo \"$fp|$rest\"; done", q(&c)));
            }
            body.push('\n');
        }
        let out = ctx.run_script(&body, None).await?;
        if let Some(f) = &out.failed {
            return Ok(ModuleResult::fail(f.clone()));
        }
        let files: Vec<Json> = out
            .stdout
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.len() >= 7).then(|| {
                    json!({
                        "path": f[0], "size": f[1].parse::<u64>().unwrap_or(0),
                        "mode": format!("{:0>4}", f[2]),
                        "mtime": f[3].parse::<f64>().unwrap_or(0.0),
                        "pw_name": f[4], "gr_name": f[5],
                        "isdir": f[6] == "d", "isreg": f[6] == "f", "islnk": f[6] == "l",
                    })
                })
            })
            .collect();
        let n = files.len();
        Ok(ModuleResult::ok()
            .with("files", Json::Array(files))
            .with("matched", n)
            .with("examined", n))
    }
}
