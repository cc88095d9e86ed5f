//! `find`: walks `paths` on the target in one `find` command that prints
//! every entry's stat, then filters here exactly as ansible's module does:
//! `patterns`/`excludes` on the base name with Python's `fnmatch`, or with
//! `use_regex` Python's `re.match` (anchored at the start only; inline
//! flags such as `(?i)` work; lookaround and backreferences through
//! fancy-regex), `file_type`, `age`/`age_stamp`, `size`, `mode`/
//! `exact_mode`, `hidden`, `depth`. `contains` (Python `re.match` per
//! line, or `re.search` over the file with `read_whole_file`) and
//! `get_checksum` need the files' content: one more round trip over the
//! candidates only. Returns `files` (ansible's stat keys), `matched`,
//! `examined`, `skipped_paths`, `msg`.

use async_trait::async_trait;
use fancy_regex::Regex;
use serde_json::{json, Map, Value as Json};

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
            "checksum",
            "checksum_algo",
            "limit",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["paths|path|name"]
    }
    /// A probe: read-only: a check-mode run is the run.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let paths = args.list_any(&["paths", "path", "name"]);
        let use_regex = args.bool_or("use_regex", false)?;
        let mut patterns = args.list_any(&["patterns", "pattern"]);
        if patterns.is_empty() {
            patterns.push(if use_regex { ".*" } else { "*" }.to_string());
        }
        let excludes = args.list_any(&["excludes", "exclude"]);
        let matcher = Matcher::new(&patterns, &excludes, use_regex)?;
        let recurse = args.bool_or("recurse", false)?;
        let hidden = args.bool_or("hidden", false)?;
        let follow = args.bool_or("follow", false)?;
        let ftype = args.choice("file_type", &["file", "directory", "link", "any"], "file")?;
        let depth = args.opt_i64("depth")?.filter(|d| *d > 0);
        let age_stamp = args.choice("age_stamp", &["atime", "ctime", "mtime"], "mtime")?;
        let age = match args.opt_str("age") {
            None => None,
            Some(a) => match parse_unit(
                &a,
                &[
                    ("s", 1),
                    ("m", 60),
                    ("h", 3600),
                    ("d", 86400),
                    ("w", 604800),
                ],
            ) {
                Some(v) => Some(v),
                None => return Ok(ModuleResult::fail("failed to process age").with("age", a)),
            },
        };
        let size = match args.opt_str("size") {
            None => None,
            Some(s) => match parse_unit(
                &s,
                &[
                    ("b", 1),
                    ("k", 1 << 10),
                    ("m", 1 << 20),
                    ("g", 1 << 30),
                    ("t", 1 << 40),
                ],
            ) {
                Some(v) => Some(v),
                None => return Ok(ModuleResult::fail("failed to process size").with("size", s)),
            },
        };
        let mode = match args.opt_str("mode") {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m.trim(), 8).map_err(|_| {
                    ModuleError::Arg(format!("find: `mode: {m}`: only octal modes are supported"))
                })? & 0o7777,
            ),
        };
        let exact_mode = args.bool_or("exact_mode", true)?;
        let contains = args.opt_str("contains");
        let whole = args.bool_or("read_whole_file", false)?;
        let get_checksum = args.bool_or("get_checksum", false)?;
        let algo = args
            .opt_str_any(&["checksum_algorithm", "checksum", "checksum_algo"])
            .unwrap_or_else(|| "sha1".into());
        if !["md5", "sha1", "sha224", "sha256", "sha384", "sha512"].contains(&algo.as_str()) {
            return Err(ModuleError::Arg(format!(
                "find: `checksum_algorithm` must be one of md5, sha1, sha224, sha256, sha384, sha512, got `{algo}`"
            )));
        }
        if let Some(e) = args.opt_str("encoding") {
            if !e.eq_ignore_ascii_case("utf-8") && !e.eq_ignore_ascii_case("utf8") {
                return Err(ModuleError::Arg(format!(
                    "find: only `encoding: utf-8` is supported, got `{e}`"
                )));
            }
        }
        let limit = args.opt_i64("limit")?;
        if let Some(l) = limit {
            if l <= 0 {
                return Ok(ModuleResult::fail(format!(
                    "limit cannot be {l} (use None for unlimited)"
                )));
            }
        }
        let maxdepth = if !recurse {
            " -maxdepth 1".to_string()
        } else if let Some(d) = depth {
            format!(" -maxdepth {d}")
        } else {
            String::new()
        };
        let mut body = String::from("date +@@now=%s.%N\n");
        for p in &paths {
            body.push_str(&format!(
                "if [ -d {p} ]; then find {f}{p} -mindepth 1{maxdepth} -printf '%y|%m|%s|%U|%G|%u|%g|%i|%D|%n|%A@|%T@|%C@|%p\\n' 2>/dev/null; else echo @@notdir={p}; fi\n",
                p = q(p),
                f = if follow { "-L " } else { "" },
            ));
        }
        let out = ctx.run_script(&body, None).await?;
        if let Some(f) = &out.failed {
            return Ok(ModuleResult::fail(f.clone()));
        }
        let now: f64 = out.get("now").and_then(|n| n.parse().ok()).unwrap_or(0.0);
        let mut skipped = Map::new();
        for (k, v) in &out.kv {
            if k == "notdir" {
                skipped.insert(v.clone(), json!(format!("'{v}' is not a directory")));
            }
        }
        let mut files: Vec<Map<String, Json>> = Vec::new();
        let mut examined = 0u64;
        for line in out.stdout.lines() {
            let f: Vec<&str> = line.splitn(14, '|').collect();
            if f.len() < 14 {
                continue;
            }
            examined += 1;
            let path = f[13].trim_end_matches('/');
            let base = path.rsplit('/').next().unwrap_or(path);
            if base.starts_with('.') && !hidden {
                continue;
            }
            let kind = if follow && f[0] == "l" { "l" } else { f[0] };
            let type_ok = match ftype.as_str() {
                "any" => true,
                "file" => kind == "f",
                "directory" => kind == "d",
                _ => kind == "l",
            };
            if !type_ok || !matcher.matches(base) {
                continue;
            }
            let num = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
            let stamp = match age_stamp.as_str() {
                "atime" => num(10),
                "ctime" => num(12),
                _ => num(11),
            };
            if let Some(a) = age {
                let d = now - stamp;
                if (a >= 0 && d < a as f64) || (a < 0 && d > a.unsigned_abs() as f64) {
                    continue;
                }
            }
            let st_size = num(2) as i64;
            if let Some(s) = size {
                if kind == "f"
                    && ftype != "directory"
                    && ftype != "link"
                    && ((s >= 0 && st_size < s) || (s < 0 && st_size > -s))
                {
                    continue;
                }
            }
            let m = u32::from_str_radix(f[1], 8).unwrap_or(0) & 0o7777;
            if let Some(want) = mode {
                if (exact_mode && m != want) || (!exact_mode && m & want == 0) {
                    continue;
                }
            }
            files.push(statinfo(path, kind, m, &f));
        }
        // Content checks and checksums: one more round trip, regular files only.
        let needs_content = contains.is_some() && ftype == "file";
        if needs_content || get_checksum {
            let mut body = String::new();
            let sum = format!("{algo}sum");
            for (i, file) in files.iter().enumerate() {
                let p = q(file["path"].as_str().unwrap_or(""));
                let is_reg = file["isreg"] == json!(true);
                let mut line = String::new();
                if needs_content {
                    let pat = contains.clone().unwrap_or_default(); // PCRE reads Python syntax
                    if whole {
                        line.push_str(&format!(
                            "grep -Pzq -- {} {p} 2>/dev/null || continue_{i}=1; ",
                            q(&pat)
                        ));
                    } else {
                        line.push_str(&format!(
                            "grep -Pq -- {} {p} 2>/dev/null || continue_{i}=1; ",
                            q(&format!("^(?:{pat})"))
                        ));
                    }
                }
                line.push_str(&format!("[ -n \"$continue_{i}\" ] || echo @@keep={i}; "));
                if get_checksum && is_reg {
                    line.push_str(&format!(
                        "[ -n \"$continue_{i}\" ] || echo \"@@sum={i} $({sum} {p} | cut -d' ' -f1)\"; "
                    ));
                }
                body.push_str(&line);
                body.push('\n');
            }
            let out = ctx.run_script(&body, None).await?;
            if let Some(f) = &out.failed {
                return Ok(ModuleResult::fail(f.clone()));
            }
            let keep: std::collections::HashSet<usize> = out
                .kv
                .iter()
                .filter(|(k, _)| k == "keep")
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            for (k, v) in &out.kv {
                if k == "sum" {
                    if let Some((i, s)) = v.split_once(' ') {
                        if let Some(f) = i.parse::<usize>().ok().and_then(|i| files.get_mut(i)) {
                            f.insert("checksum".into(), json!(s));
                        }
                    }
                }
            }
            let mut i = 0;
            files.retain(|_| {
                i += 1;
                keep.contains(&(i - 1))
            });
        }
        if let Some(l) = limit {
            files.truncate(l as usize);
        }
        let n = files.len();
        Ok(ModuleResult::ok()
            .with(
                "files",
                Json::Array(files.into_iter().map(Json::Object).collect()),
            )
            .with("matched", n)
            .with("examined", examined)
            .with("skipped_paths", Json::Object(skipped))
            .msg("All paths examined"))
    }
}

/// ansible's `statinfo` keys from one `find -printf` record.
fn statinfo(path: &str, kind: &str, m: u32, f: &[&str]) -> Map<String, Json> {
    let n = |i: usize| f[i].parse::<u64>().map_or(json!(0), |v| json!(v));
    let t = |i: usize| f[i].parse::<f64>().map_or(json!(0.0), |v| json!(v));
    let bit = |b: u32| json!(m & b != 0);
    let mut r = Map::new();
    r.insert("path".into(), json!(path));
    r.insert("mode".into(), json!(format!("{m:04o}")));
    r.insert("isdir".into(), json!(kind == "d"));
    r.insert("ischr".into(), json!(kind == "c"));
    r.insert("isblk".into(), json!(kind == "b"));
    r.insert("isreg".into(), json!(kind == "f"));
    r.insert("isfifo".into(), json!(kind == "p"));
    r.insert("islnk".into(), json!(kind == "l"));
    r.insert("issock".into(), json!(kind == "s"));
    r.insert("uid".into(), n(3));
    r.insert("gid".into(), n(4));
    r.insert("size".into(), n(2));
    r.insert("inode".into(), n(7));
    r.insert("dev".into(), n(8));
    r.insert("nlink".into(), n(9));
    r.insert("atime".into(), t(10));
    r.insert("mtime".into(), t(11));
    r.insert("ctime".into(), t(12));
    r.insert("gr_name".into(), json!(f[6]));
    r.insert("pw_name".into(), json!(f[5]));
    r.insert("wusr".into(), bit(0o200));
    r.insert("rusr".into(), bit(0o400));
    r.insert("xusr".into(), bit(0o100));
    r.insert("wgrp".into(), bit(0o020));
    r.insert("rgrp".into(), bit(0o040));
    r.insert("xgrp".into(), bit(0o010));
    r.insert("woth".into(), bit(0o002));
    r.insert("roth".into(), bit(0o004));
    r.insert("xoth".into(), bit(0o001));
    r.insert("isuid".into(), bit(0o4000));
    r.insert("isgid".into(), bit(0o2000));
    r
}

/// `-?N[unit]` in base units (ansible's age and size syntax).
fn parse_unit(s: &str, units: &[(&str, i64)]) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let digits_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map_or(s.len(), |(i, _)| i);
    let n: i64 = s[..digits_end].parse().ok()?;
    let unit = &s[digits_end..];
    if unit.is_empty() {
        return Some(n);
    }
    units.iter().find(|(u, _)| *u == unit).map(|(_, m)| n * m)
}

/// Python `re` syntax in fancy-regex's (the differences that matter for
/// file names and lines): `\Z` and `(?P=name)`.
fn python_re(p: &str) -> String {
    p.replace(r"\Z", r"\z").replace("(?P=", r"\k<")
}

/// Base-name patterns as ansible's `pfilter`.
struct Matcher {
    patterns: Vec<Regex>,
    excludes: Vec<Regex>,
}

impl Matcher {
    fn new(patterns: &[String], excludes: &[String], use_regex: bool) -> Result<Self, ModuleError> {
        let compile = |p: &String| -> Result<Regex, ModuleError> {
            let src = if use_regex {
                format!("^(?:{})", fix_named_backrefs(&python_re(p)))
            } else {
                fnmatch_to_regex(p)
            };
            Regex::new(&src).map_err(|e| ModuleError::Arg(format!("find: bad pattern `{p}`: {e}")))
        };
        Ok(Matcher {
            patterns: patterns.iter().map(compile).collect::<Result<_, _>>()?,
            excludes: excludes.iter().map(compile).collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, name: &str) -> bool {
        let m = |r: &Regex| r.is_match(name).unwrap_or(false);
        self.patterns.iter().any(m) && !self.excludes.iter().any(m)
    }
}

/// `\k<name` from `(?P=name)` needs its closing `>` instead of `)`.
fn fix_named_backrefs(p: &str) -> String {
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find(r"\k<") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        if let Some(j) = rest.find(')') {
            if !rest[..j].contains('>') {
                out.push_str(&rest[..j]);
                out.push('>');
                rest = &rest[j + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python's `fnmatch.translate`: `*`, `?`, `[seq]`, `[!seq]`, the whole
/// name, case-sensitive.
fn fnmatch_to_regex(p: &str) -> String {
    let mut out = String::from("(?s)^");
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str(r"\[");
                } else {
                    let mut set: String = chars[i..j].iter().collect();
                    set = set.replace('\\', r"\\");
                    if let Some(rest) = set.strip_prefix('!') {
                        set = format!("^{rest}");
                    } else if set.starts_with('^') {
                        set = format!("\\{set}");
                    }
                    out.push('[');
                    out.push_str(&set.replace('[', r"\["));
                    out.push(']');
                    i = j + 1;
                }
            }
            c => out.push_str(&fancy_regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str], e: &[&str], re: bool, name: &str) -> bool {
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        let e: Vec<String> = e.iter().map(|s| s.to_string()).collect();
        Matcher::new(&p, &e, re).unwrap().matches(name)
    }

    #[test]
    fn python_regex_semantics() {
        assert!(m(&[r"(?i).*\.log$"], &[], true, "Syslog.LOG"));
        assert!(m(&[r".*[0-9z]$"], &[], true, "syslog.1"));
        assert!(m(&[r".*[0-9z]$"], &[], true, "dpkg.log.2.gz"));
        assert!(!m(&[r".*[0-9z]$"], &[], true, "syslog"));
        // re.match anchors at the start only.
        assert!(m(&["sys"], &[], true, "syslog"));
        assert!(!m(&["log"], &[], true, "syslog"));
        assert!(m(&[r"(?P<a>x)(?P=a)"], &[], true, "xx"));
        assert!(m(&[r"a(?=b)"], &[], true, "ab"));
        assert!(!m(&[".*"], &[r".*\.gz"], true, "a.gz"));
    }

    #[test]
    fn fnmatch_semantics() {
        assert!(m(&["*.conf"], &[], false, "a.conf"));
        assert!(!m(&["*.conf"], &[], false, "a.conf.bak"));
        assert!(m(&["file[!0-9]"], &[], false, "filex"));
        assert!(!m(&["file[!0-9]"], &[], false, "file1"));
        assert!(!m(&["*.CONF"], &[], false, "a.conf"));
        assert!(!m(&["*"], &["*.bak"], false, "x.bak"));
        assert!(m(&["a+b"], &[], false, "a+b"));
    }

    #[test]
    fn units() {
        let age = [
            ("s", 1),
            ("m", 60),
            ("h", 3600),
            ("d", 86400),
            ("w", 604800),
        ];
        assert_eq!(parse_unit("2d", &age), Some(172800));
        assert_eq!(parse_unit("-1h", &age), Some(-3600));
        assert_eq!(parse_unit("30", &age), Some(30));
        assert_eq!(parse_unit("3x", &age), None);
    }
}
