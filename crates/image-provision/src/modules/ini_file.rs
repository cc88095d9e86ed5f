//! `ini_file`: sets, adds or removes an option in a section of an INI file
//! (or the whole section); edited locally after one read, line by line as
//! community.general's module does: a new file starts with an empty line,
//! a missing section is appended at the end, a new option goes after the
//! section's last non-blank, non-comment line, a commented-out option is
//! reused (`modify_inactive_option`), other occurrences are dropped
//! (`exclusive`). Returns `msg` (`OK`, `option added`, `option changed`,
//! `section and option added`, `only section added`, `section removed`)
//! and `path`.

use async_trait::async_trait;
use regex::Regex;

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
            "section_has_values",
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
        let path = args.str_any(&["path", "dest"])?;
        let spec = file_spec(args, path.clone())?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let allow_no_value = args.bool_or("allow_no_value", false)?;
        let values: Vec<String> = match args.opt_str("value") {
            Some(v) => vec![v],
            None => args.list("values"),
        };
        let mut uniq: Vec<String> = Vec::new();
        for v in values {
            if !uniq.contains(&v) {
                uniq.push(v);
            }
        }
        if state == "present" && !allow_no_value && uniq.is_empty() {
            return Ok(ModuleResult::fail(
                "Parameter 'value(s)' must be defined if state=present and allow_no_value=False.",
            ));
        }
        let has_values = match args.get("section_has_values") {
            None => None,
            Some(serde_json::Value::Array(conds)) => Some(
                conds
                    .iter()
                    .map(|c| {
                        let a = Args(c.as_object().cloned().unwrap_or_default());
                        let vals = match a.opt_str("value") {
                            Some(v) => vec![v],
                            None => a.list("values"),
                        };
                        Ok((a.str("option")?, vals))
                    })
                    .collect::<Result<Vec<_>, ModuleError>>()?,
            ),
            Some(_) => {
                return Err(ModuleError::Arg(
                    "`section_has_values` must be a list of {option, value(s)}".into(),
                ))
            }
        };
        let p = Ini {
            section: args.opt_str("section").filter(|s| !s.is_empty()),
            has_values,
            option: args.opt_str("option"),
            values: uniq,
            present: state == "present",
            exclusive: args.bool_or("exclusive", true)?,
            no_extra_spaces: args.bool_or("no_extra_spaces", false)?,
            ignore_spaces: args.bool_or("ignore_spaces", false)?,
            allow_no_value,
            modify_inactive: args.bool_or("modify_inactive_option", true)?,
        };
        let create = args.bool_or("create", true)?;
        let mut msg = String::from("OK");
        let mut r = edit_file(ctx, &spec, |cur| {
            if cur.is_none() && !create {
                return Err(format!("Destination {path} does not exist!"));
            }
            let (text, m) = p.edit(cur.unwrap_or(""));
            msg = m;
            Ok(Some(text))
        })
        .await?;
        if !r.failed {
            r.data.insert("msg".into(), msg.clone().into());
            r.data.insert("path".into(), path.into());
            r.msg = Some(msg);
        }
        Ok(r)
    }
}

/// The parameters of one edit.
struct Ini {
    section: Option<String>,
    has_values: Option<Vec<(String, Vec<String>)>>,
    option: Option<String>,
    values: Vec<String>,
    present: bool,
    exclusive: bool,
    no_extra_spaces: bool,
    ignore_spaces: bool,
    allow_no_value: bool,
    modify_inactive: bool,
}

/// A stand-in header for the part before the first section.
const TOP: &str = "[ad01e11446efb704fcdbdb21f2c43757423d91c5]";

/// An option line: (commented-out marker, value); `active` refuses
/// commented-out lines.
fn opt_match(option: &str, line: &str, active: bool) -> Option<(bool, String)> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mark = if active { "()" } else { "([#;]?)" };
    let re = Regex::new(&format!(
        "^[ \t]*{mark}[ \t]*{}[ \t]*(=|$)[ \t]*(.*)",
        regex::escape(option)
    ))
    .ok()?;
    let c = re.captures(line)?;
    let commented = c.get(1).is_some_and(|m| !m.as_str().is_empty());
    Some((commented, c.get(3).map_or("", |m| m.as_str()).to_string()))
}

impl Ini {
    fn assign(&self, option: &str, value: &str) -> String {
        if self.no_extra_spaces {
            format!("{option}={value}\n")
        } else {
            format!("{option} = {value}\n")
        }
    }

    fn matches(&self, option: &str, line: &str) -> Option<(bool, String)> {
        opt_match(option, line, !self.modify_inactive)
    }

    fn has_values(&self, lines: &[String]) -> bool {
        let Some(conds) = &self.has_values else {
            return true;
        };
        conds.iter().all(|(opt, vals)| {
            lines.iter().any(|l| {
                opt_match(opt, l, false).is_some_and(|(_, v)| vals.is_empty() || vals.contains(&v))
            })
        })
    }

    /// Sets `lines[i]` to `new` (counting it as changed unless only the
    /// spacing differs, with `ignore_spaces`).
    fn update(&self, option: &str, lines: &mut [String], i: usize, new: String, msg: &mut String) {
        let mut differs = lines[i] != new;
        if self.ignore_spaces {
            if let (Some((false, old)), Some((_, nv))) = (
                opt_match(option, &lines[i], false),
                opt_match(option, &new, false),
            ) {
                differs = old != nv;
            }
        }
        if differs {
            lines[i] = new;
            *msg = "option changed".into();
        }
    }

    /// The new content and the message.
    fn edit(&self, cur: &str) -> (String, String) {
        let mut lines: Vec<String> = cur.split_inclusive('\n').map(str::to_string).collect();
        if lines.is_empty() {
            lines.push("\n".into());
        }
        if let Some(last) = lines.last_mut() {
            if !last.ends_with('\n') {
                last.push('\n');
            }
        }
        lines.insert(0, TOP.to_string());
        lines.push("[".into());
        let section = self
            .section
            .clone()
            .unwrap_or_else(|| TOP[1..TOP.len() - 1].to_string());
        let header = Regex::new(&format!(r"^\[\s*{}\s*]", regex::escape(section.trim())))
            .unwrap_or_else(|_| Regex::new("^$").expect("static regex"));
        let (mut within, mut start, mut end) = (false, 0usize, 0usize);
        for (i, l) in lines.iter().enumerate() {
            if within && l.starts_with('[') {
                if self.has_values(&lines[start..i]) {
                    end = i;
                    break;
                }
                (within, start, end) = (false, 0, 0);
            }
            if header.is_match(l) {
                within = true;
                start = i;
            }
        }
        let after = lines.split_off(end);
        let mut sec = lines.split_off(start);
        let before = lines;
        let mut done = vec![false; sec.len()];
        let mut values = self.values.clone();
        let mut msg = String::from("OK");
        let mut no_value_present = false;
        if let (true, Some(opt)) = (self.present, &self.option) {
            for i in 0..sec.len() {
                let Some((_, v)) = self.matches(opt, &sec[i]) else {
                    continue;
                };
                if let Some(k) = values.iter().position(|x| *x == v) {
                    let new = if v.is_empty() && self.allow_no_value {
                        no_value_present = true;
                        format!("{opt}\n")
                    } else {
                        self.assign(opt, &v)
                    };
                    self.update(opt, &mut sec, i, new, &mut msg);
                    done[i] = true;
                    values.remove(k);
                } else if values.is_empty() && self.allow_no_value {
                    self.update(opt, &mut sec, i, format!("{opt}\n"), &mut msg);
                    done[i] = true;
                    no_value_present = true;
                    break;
                }
            }
            if self.exclusive && !self.allow_no_value {
                if !values.is_empty() {
                    for i in 0..sec.len() {
                        if !done[i] && self.matches(opt, &sec[i]).is_some() {
                            let v = values.remove(0);
                            self.update(opt, &mut sec, i, self.assign(opt, &v), &mut msg);
                            done[i] = true;
                            if values.is_empty() {
                                break;
                            }
                        }
                    }
                }
                for i in (1..sec.len()).rev() {
                    if !done[i] && self.matches(opt, &sec[i]).is_some() {
                        sec.remove(i);
                        done.remove(i);
                        msg = "option changed".into();
                    }
                }
            }
        }
        if self.present {
            let blank = Regex::new(r"^[ \t]*([#;].*)?$").expect("static regex");
            if let Some(i) = (1..=sec.len())
                .rev()
                .find(|i| !blank.is_match(sec[i - 1].trim_end_matches('\n')))
            {
                if let Some(opt) = &self.option {
                    if !values.is_empty() {
                        for v in values.iter().rev() {
                            sec.insert(i, self.assign(opt, v));
                        }
                        msg = "option added".into();
                    } else if self.allow_no_value && !no_value_present {
                        sec.insert(i, format!("{opt}\n"));
                        msg = "option added".into();
                    }
                }
            }
        } else if let Some(opt) = &self.option {
            let before_len = sec.len();
            if self.exclusive {
                sec.retain(|l| opt_match(opt, l, true).is_none());
            } else if !values.is_empty() {
                sec.retain(|l| !opt_match(opt, l, true).is_some_and(|(_, v)| values.contains(&v)));
            }
            if sec.len() != before_len {
                msg = "option changed".into();
            }
        } else if !sec.is_empty() {
            sec.clear();
            msg = "section removed".into();
        }
        let mut out: Vec<String> = before.into_iter().chain(sec).chain(after).collect();
        out.remove(0);
        out.pop();
        if !within && self.present {
            out.push(format!("[{section}]\n"));
            msg = "section and option added".into();
            let mut values = values;
            if let Some(conds) = &self.has_values {
                for (copt, cvals) in conds {
                    if Some(copt) != self.option.as_ref() {
                        if !cvals.is_empty() {
                            out.extend(cvals.iter().map(|v| self.assign(copt, v)));
                        } else if self.allow_no_value {
                            out.push(format!("{copt}\n"));
                        }
                    } else if !self.exclusive {
                        for v in cvals {
                            if !values.contains(v) {
                                values.push(v.clone());
                            }
                        }
                    }
                }
            }
            match &self.option {
                Some(opt) if !values.is_empty() => {
                    out.extend(values.iter().map(|v| self.assign(opt, v)))
                }
                Some(opt) if self.allow_no_value => out.push(format!("{opt}\n")),
                _ => msg = "only section added".into(),
            }
        }
        (out.concat(), msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(section: &str, option: &str, value: Option<&str>, present: bool) -> Ini {
        Ini {
            section: Some(section.into()),
            has_values: None,
            option: Some(option.into()),
            values: value.map(|v| vec![v.to_string()]).unwrap_or_default(),
            present,
            exclusive: true,
            no_extra_spaces: false,
            ignore_spaces: false,
            allow_no_value: false,
            modify_inactive: true,
        }
    }

    #[test]
    fn a_new_file_and_sections_as_community_general_writes_them() {
        let (a, m) = ini("main", "key", Some("v1"), true).edit("");
        assert_eq!(
            (a.as_str(), m.as_str()),
            ("\n[main]\nkey = v1\n", "section and option added")
        );
        let (b, _) = ini("other", "flag", Some("yes"), true).edit(&a);
        assert_eq!(b, "\n[main]\nkey = v1\n[other]\nflag = yes\n");
        let (c, m) = ini("main", "key", None, false).edit(&b);
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("\n[main]\n[other]\nflag = yes\n", "option changed")
        );
    }

    #[test]
    fn options_are_added_after_the_last_line_changed_in_place_and_deduplicated() {
        let cur = "[main]\nx = 1\n\n# end\n[b]\n";
        let (a, m) = ini("main", "y", Some("2"), true).edit(cur);
        assert_eq!(
            (a.as_str(), m.as_str()),
            ("[main]\nx = 1\ny = 2\n\n# end\n[b]\n", "option added")
        );
        let (b, m) = ini("main", "x", Some("3"), true).edit("[main]\n#x = 0\nx = 1\n");
        assert_eq!(
            (b.as_str(), m.as_str()),
            ("[main]\nx = 3\n", "option changed")
        );
        let (c, m) = ini("main", "x", Some("1"), true).edit("[main]\nx = 1");
        assert_eq!((c.as_str(), m.as_str()), ("[main]\nx = 1\n", "OK"));
    }
}
