//! `replace`: replaces every match of a regular expression in a file
//! (multi-line mode, as ansible's), optionally only between `after` and
//! `before`; edited locally after one read.

use async_trait::async_trait;
use regex::Regex;

use super::{edit_file, file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `replace` module.
pub struct Replace;

#[async_trait]
impl Module for Replace {
    fn name(&self) -> &'static str {
        "replace"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path",
            "dest",
            "destfile",
            "name",
            "regexp",
            "replace",
            "after",
            "before",
            "backup",
            "mode",
            "owner",
            "group",
            "validate",
            "encoding",
            "unsafe_writes",
            "others",
            "attributes",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["path|dest|destfile|name", "regexp"]
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
        let pat = args.str("regexp")?;
        let re = Regex::new(&format!("(?m){pat}"))
            .map_err(|e| ModuleError::Arg(format!("bad regexp `{pat}`: {e}")))?;
        let rep = crate::template::py_replacement(&args.opt_str("replace").unwrap_or_default());
        let after = args
            .opt_str("after")
            .map(|a| Regex::new(&format!("(?m){a}")))
            .transpose()
            .map_err(|e| ModuleError::Arg(e.to_string()))?;
        let before = args
            .opt_str("before")
            .map(|a| Regex::new(&format!("(?m){a}")))
            .transpose()
            .map_err(|e| ModuleError::Arg(e.to_string()))?;
        let mut made = 0usize;
        let mut r = edit_file(ctx, &spec, |cur| {
            let Some(cur) = cur else {
                return Err(format!("path {path} does not exist"));
            };
            let start = after
                .as_ref()
                .and_then(|r| r.find(cur))
                .map(|m| m.end())
                .unwrap_or(0);
            let end = before
                .as_ref()
                .and_then(|r| r.find(&cur[start..]))
                .map(|m| start + m.start())
                .unwrap_or(cur.len());
            let section = &cur[start..end];
            let mid = re.replace_all(section, rep.as_str());
            if mid != section {
                made = re.find_iter(section).count();
            }
            Ok(Some(format!("{}{}{}", &cur[..start], mid, &cur[end..])))
        })
        .await?;
        if !r.failed {
            let msg = if made > 0 {
                format!("{made} replacements made")
            } else {
                String::new()
            };
            let text = super::attrs_msg(&msg, r.changed);
            r.msg = Some(text.clone());
            r.data.insert("msg".into(), text.into());
            r.data.insert("rc".into(), 0.into());
        }
        Ok(r)
    }
}
