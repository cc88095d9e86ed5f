//! `tempfile`: creates a temporary file or directory (`mktemp`), readable
//! by its creator only, and returns its `path`. Always changed; like
//! ansible (no check-mode support) it is skipped in check mode.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `tempfile` module.
pub struct Tempfile;

#[async_trait]
impl Module for Tempfile {
    fn name(&self) -> &'static str {
        "tempfile"
    }
    fn params(&self) -> &'static [&'static str] {
        &["state", "path", "prefix", "suffix"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let state = args.choice("state", &["file", "directory"], "file")?;
        let prefix = args.opt_str("prefix").unwrap_or_else(|| "ansible.".into());
        let suffix = args.opt_str("suffix").unwrap_or_default();
        for (k, v) in [("prefix", &prefix), ("suffix", &suffix)] {
            if v.contains('/') {
                return Ok(ModuleResult::fail(format!(
                    "{k} must be a valid file name component, got '{v}'"
                )));
            }
        }
        if ctx.check {
            return Ok(ModuleResult::no_check_mode(self.name()));
        }
        // mktemp wants the X's last: the suffix goes through --suffix.
        let dir = args.opt_str("path");
        let body = format!(
            "d={dir}; [ -n \"$d\" ] || d=${{TMPDIR:-/tmp}}\n_p=$(mktemp {flag}--suffix={suffix} -p \"$d\" {tmpl} 2>&1) || fail \"$_p\"\necho \"@@path=$_p\"; C=1; fattrs \"$_p\"\n",
            dir = q(dir.as_deref().unwrap_or("")),
            flag = if state == "directory" { "-d " } else { "" },
            suffix = q(&suffix),
            tmpl = q(&format!("{prefix}XXXXXXXX")),
        );
        let out = ctx.run_script(&body, None).await?;
        if let Some(f) = out.failed {
            return Ok(ModuleResult::fail(f));
        }
        let mut r =
            ModuleResult::changed(true).with("path", out.get("path").unwrap_or("").to_string());
        super::path_info::insert(&out, &mut r.data);
        Ok(r)
    }
}
