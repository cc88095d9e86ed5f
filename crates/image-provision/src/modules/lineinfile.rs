//! `lineinfile`: ensures a line is present (replacing the last line that
//! matches `regexp` / `search_string`, or inserting after/before a match)
//! or absent. The file is read in one round trip and edited locally with
//! the `regex` crate (Python `re` syntax for the common cases).

use async_trait::async_trait;
use regex::Regex;

use super::{edit_file, file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `lineinfile` module.
pub struct LineInFile;

#[async_trait]
impl Module for LineInFile {
    fn name(&self) -> &'static str {
        "lineinfile"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path",
            "dest",
            "destfile",
            "name",
            "regexp",
            "regex",
            "search_string",
            "line",
            "value",
            "state",
            "insertafter",
            "insertbefore",
            "create",
            "backup",
            "backrefs",
            "firstmatch",
            "mode",
            "owner",
            "group",
            "validate",
            "unsafe_writes",
            "others",
            "attributes",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["path|dest|destfile|name"]
    }
    /// Reads, edits here, writes only a change (a symbolic mode excepted).
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let path = args.str_any(&["path", "dest", "destfile", "name"])?;
        let spec = file_spec(args, path.clone())?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let re = match args.opt_str_any(&["regexp", "regex"]) {
            Some(r) => Some(
                Regex::new(&r).map_err(|e| ModuleError::Arg(format!("bad regexp `{r}`: {e}")))?,
            ),
            None => None,
        };
        let search = args.opt_str("search_string");
        let line = args.opt_str_any(&["line", "value"]);
        let create = args.bool_or("create", false)?;
        let backrefs = args.bool_or("backrefs", false)?;
        let firstmatch = args.bool_or("firstmatch", false)?;
        let after = args.opt_str("insertafter");
        let before = args.opt_str("insertbefore");
        if state == "present" && line.is_none() {
            return Err(ModuleError::Arg("state=present needs `line`".into()));
        }
        let ins_re = |s: &Option<String>| -> Result<Option<Regex>, ModuleError> {
            match s.as_deref() {
                None | Some("EOF") | Some("BOF") => Ok(None),
                Some(r) => Regex::new(r).map(Some).map_err(|e| {
                    ModuleError::Arg(format!("bad insertafter/insertbefore `{r}`: {e}"))
                }),
            }
        };
        let after_re = ins_re(&after)?;
        let before_re = ins_re(&before)?;
        // ansible's `msg` and, for state=absent, `found`.
        let mut msg = "";
        let mut removed = 0usize;
        let mut created = false;
        let mut r = edit_file(ctx, &spec, |cur| {
            let Some(cur) = cur else {
                if state == "absent" {
                    return Ok(None);
                }
                if !create && !backrefs {
                    return Err(format!("destination {path} does not exist"));
                }
                if backrefs {
                    return Ok(None);
                }
                msg = "line added";
                created = true;
                return Ok(Some(format!("{}\n", line.clone().unwrap_or_default())));
            };
            let mut lines: Vec<String> = cur.lines().map(str::to_string).collect();
            let matches = |l: &str| -> bool {
                if let Some(r) = &re {
                    r.is_match(l)
                } else if let Some(s) = &search {
                    l.contains(s.as_str())
                } else {
                    Some(l) == line.as_deref()
                }
            };
            if state == "absent" {
                let n = lines.len();
                lines.retain(|l| !matches(l));
                removed = n - lines.len();
            } else {
                let line = line.clone().unwrap_or_default();
                let idxs: Vec<usize> = (0..lines.len()).filter(|i| matches(&lines[*i])).collect();
                let found = if firstmatch {
                    idxs.first()
                } else {
                    idxs.last()
                }
                .copied();
                if let Some(i) = found {
                    let new = match (&re, backrefs) {
                        (Some(r), true) => {
                            let caps = r.captures(&lines[i]);
                            let mut out = String::new();
                            if let Some(c) = caps {
                                c.expand(&crate::template::py_replacement(&line), &mut out);
                            }
                            out
                        }
                        _ => line.clone(),
                    };
                    if lines[i] != new {
                        msg = "line replaced";
                    }
                    lines[i] = new;
                } else if !backrefs && !lines.contains(&line) {
                    msg = "line added";
                    let pos = if before.as_deref() == Some("BOF") {
                        0
                    } else if let Some(r) = &before_re {
                        let m: Vec<usize> = (0..lines.len())
                            .filter(|i| r.is_match(&lines[*i]))
                            .collect();
                        match if firstmatch { m.first() } else { m.last() } {
                            Some(i) => *i,
                            None => lines.len(),
                        }
                    } else if let Some(r) = &after_re {
                        let m: Vec<usize> = (0..lines.len())
                            .filter(|i| r.is_match(&lines[*i]))
                            .collect();
                        match if firstmatch { m.first() } else { m.last() } {
                            Some(i) => i + 1,
                            None => lines.len(),
                        }
                    } else {
                        lines.len()
                    };
                    lines.insert(pos, line);
                }
            }
            let mut out = lines.join("\n");
            if !lines.is_empty() {
                out.push('\n');
            }
            // Keep a file without a final newline as it is when unchanged.
            if out.trim_end_matches('\n') == cur.trim_end_matches('\n') {
                return Ok(Some(cur.to_string()));
            }
            Ok(Some(out))
        })
        .await?;
        if r.failed {
            return Ok(r);
        }
        let mut text = if state == "absent" {
            r.data.insert("found".into(), removed.into());
            if removed > 0 {
                format!("{removed} line(s) removed")
            } else {
                String::new()
            }
        } else {
            msg.to_string()
        };
        // The mode/ownership changed too (a new file gets the default mode
        // first, as ansible creates it).
        let attrs_changed = if created {
            spec.mode.as_deref().is_some_and(|m| m != "644")
        } else {
            r.changed && text.is_empty() && removed == 0
        };
        if attrs_changed {
            let and = if text.is_empty() { "" } else { " and " };
            text = format!("{text}{and}ownership, perms or SE linux context changed");
        }
        r.msg = Some(text.clone());
        r.data.insert("msg".into(), text.into());
        r.data.entry("backup").or_insert_with(|| "".into());
        Ok(r)
    }
}
