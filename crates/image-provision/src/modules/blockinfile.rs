//! `blockinfile`: a block of lines between `# BEGIN/END ANSIBLE MANAGED
//! BLOCK` markers, inserted, replaced or removed; edited locally after one
//! read.

use async_trait::async_trait;
use regex::Regex;

use super::{edit_file, file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `blockinfile` module.
pub struct BlockInFile;

#[async_trait]
impl Module for BlockInFile {
    fn name(&self) -> &'static str {
        "blockinfile"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path",
            "dest",
            "destfile",
            "name",
            "block",
            "content",
            "marker",
            "marker_begin",
            "marker_end",
            "state",
            "insertafter",
            "insertbefore",
            "create",
            "backup",
            "mode",
            "owner",
            "group",
            "validate",
            "append_newline",
            "prepend_newline",
            "unsafe_writes",
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
        let block = args.opt_str_any(&["block", "content"]).unwrap_or_default();
        let marker = args
            .opt_str("marker")
            .unwrap_or_else(|| "# {mark} ANSIBLE MANAGED BLOCK".into());
        let begin = marker.replace(
            "{mark}",
            &args
                .opt_str("marker_begin")
                .unwrap_or_else(|| "BEGIN".into()),
        );
        let end = marker.replace(
            "{mark}",
            &args.opt_str("marker_end").unwrap_or_else(|| "END".into()),
        );
        let create = args.bool_or("create", false)?;
        let after = args.opt_str("insertafter");
        let before = args.opt_str("insertbefore");
        let rx = |s: &Option<String>| -> Result<Option<Regex>, ModuleError> {
            match s.as_deref() {
                None | Some("EOF") | Some("BOF") => Ok(None),
                Some(r) => Regex::new(r)
                    .map(Some)
                    .map_err(|e| ModuleError::Arg(format!("bad regex `{r}`: {e}"))),
            }
        };
        let (after_re, before_re) = (rx(&after)?, rx(&before)?);
        // ansible's `msg` for a content change.
        let mut msg = "";
        let mut r = edit_file(ctx, &spec, |cur| {
            let existed = cur.is_some();
            let cur = match cur {
                Some(c) => c.to_string(),
                None if state == "absent" => return Ok(None),
                None if !create => return Err(format!("path {path} does not exist")),
                None => String::new(),
            };
            let mut lines: Vec<String> = cur.lines().map(str::to_string).collect();
            let b = lines.iter().position(|l| *l == begin);
            let e = lines.iter().position(|l| *l == end);
            let mut new_block: Vec<String> = Vec::new();
            if state == "present" && !block.is_empty() {
                new_block.push(begin.clone());
                new_block.extend(block.trim_end_matches('\n').lines().map(str::to_string));
                new_block.push(end.clone());
            }
            match (b, e) {
                (Some(b), Some(e)) if b <= e => {
                    lines.splice(b..=e, new_block);
                }
                _ => {
                    if new_block.is_empty() {
                        return Ok(Some(cur));
                    }
                    let pos = if before.as_deref() == Some("BOF") {
                        0
                    } else if let Some(r) = &before_re {
                        lines
                            .iter()
                            .rposition(|l| r.is_match(l))
                            .unwrap_or(lines.len())
                    } else if let Some(r) = &after_re {
                        lines
                            .iter()
                            .rposition(|l| r.is_match(l))
                            .map(|i| i + 1)
                            .unwrap_or(lines.len())
                    } else {
                        lines.len()
                    };
                    lines.splice(pos..pos, new_block);
                }
            }
            let mut out = lines.join("\n");
            if !lines.is_empty() {
                out.push('\n');
            }
            msg = if !existed {
                "File created"
            } else if out == cur {
                ""
            } else if block.is_empty() || state == "absent" {
                "Block removed"
            } else {
                "Block inserted"
            };
            Ok(Some(out))
        })
        .await?;
        if !r.failed {
            let text = super::attrs_msg(msg, r.changed);
            r.msg = Some(text.clone());
            r.data.insert("msg".into(), text.into());
        }
        Ok(r)
    }
}
