//! `ini_file`: sets, adds or removes an option in a section of an INI file
//! (or the whole section); edited locally after one read.

use async_trait::async_trait;

use super::{edit_file, file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `ini_file` module.
pub struct IniFile;

#[async_trait]
impl Module for IniFile {
    fn name(&self) -> &'static str {
        "ini_file"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path",
            "dest",
            "section",
            "option",
            "value",
            "values",
            "state",
            "no_extra_spaces",
            "create",
            "backup",
            "mode",
            "owner",
            "group",
            "allow_no_value",
            "exclusive",
            "ignore_spaces",
            "modify_inactive_option",
            "follow",
            "unsafe_writes",
            "attributes",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["path|dest"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let path = args.str_any(&["path", "dest"])?;
        let spec = file_spec(args, path.clone())?;
        let section = args.opt_str("section").filter(|s| !s.is_empty());
        let option = args.opt_str("option");
        let value = args.opt_str("value");
        let state = args.choice("state", &["present", "absent"], "present")?;
        let sep = if args.bool_or("no_extra_spaces", false)? {
            "="
        } else {
            " = "
        };
        let create = args.bool_or("create", true)?;
        let allow_no_value = args.bool_or("allow_no_value", false)?;
        edit_file(ctx, &spec, |cur| {
            let cur = match cur {
                Some(c) => c.to_string(),
                None if state == "absent" => return Ok(None),
                None if !create => return Err(format!("destination {path} does not exist")),
                None => String::new(),
            };
            let mut lines: Vec<String> = cur.lines().map(str::to_string).collect();
            let header = section.as_ref().map(|s| format!("[{s}]"));
            // The section's range: [start, end) of its body lines.
            let (start, end) = match &header {
                None => (
                    0,
                    lines
                        .iter()
                        .position(|l| l.trim_start().starts_with('['))
                        .unwrap_or(lines.len()),
                ),
                Some(h) => match lines.iter().position(|l| l.trim() == h) {
                    Some(i) => {
                        let e = lines[i + 1..]
                            .iter()
                            .position(|l| l.trim_start().starts_with('['))
                            .map(|p| i + 1 + p)
                            .unwrap_or(lines.len());
                        (i + 1, e)
                    }
                    None => {
                        if state == "absent" {
                            return Ok(Some(cur));
                        }
                        if !lines.is_empty() && !lines.last().is_some_and(|l| l.trim().is_empty()) {
                            lines.push(String::new());
                        }
                        lines.push(h.clone());
                        (lines.len(), lines.len())
                    }
                },
            };
            let Some(opt) = &option else {
                if state == "absent" {
                    if let Some(h) = &header {
                        let s = start.saturating_sub(1);
                        if lines.get(s).map(|l| l.trim()) == Some(h.as_str()) {
                            lines.drain(s..end);
                        }
                    }
                }
                return Ok(Some(join(&lines)));
            };
            let is_opt = |l: &str| {
                let t = l.trim_start();
                let name = t.split(['=', ':']).next().unwrap_or("").trim();
                name == opt && !t.starts_with('#') && !t.starts_with(';')
            };
            let new_line = match &value {
                Some(v) => format!("{opt}{sep}{v}"),
                None if allow_no_value => opt.clone(),
                None => format!("{opt}{sep}"),
            };
            let found: Vec<usize> = (start..end).filter(|i| is_opt(&lines[*i])).collect();
            if state == "absent" {
                for i in found.into_iter().rev() {
                    lines.remove(i);
                }
            } else if let Some(&i) = found.first() {
                lines[i] = new_line;
                for j in found[1..].iter().rev() {
                    lines.remove(*j);
                }
            } else {
                let mut pos = end;
                while pos > start && lines[pos - 1].trim().is_empty() {
                    pos -= 1;
                }
                lines.insert(pos, new_line);
            }
            Ok(Some(join(&lines)))
        })
        .await
    }
}

fn join(lines: &[String]) -> String {
    let mut s = lines.join("\n");
    if !lines.is_empty() {
        s.push('\n');
    }
    s
}
