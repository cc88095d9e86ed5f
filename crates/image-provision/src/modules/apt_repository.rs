//! `apt_repository`: a one-line APT source in
//! `/etc/apt/sources.list.d/<filename>.list`, then `apt-get update` when
//! it changed (`update_cache`, default true). Returns ansible's `repo`,
//! `state`, and `sources_added` / `sources_removed`: the file, when the
//! task gives it its first line or takes its last (a file without lines is
//! no source file to ansible).

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{edit_file, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{q, FileSpec};

/// The `apt_repository` module.
pub struct AptRepository;

#[async_trait]
impl Module for AptRepository {
    fn name(&self) -> &'static str {
        "apt_repository"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "repo",
            "state",
            "filename",
            "update_cache",
            "update-cache",
            "mode",
            "codename",
            "install_python_apt",
            "validate_certs",
            "update_cache_retries",
            "update_cache_retry_max_delay",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["repo"]
    }
    /// A probe: the check edits nothing and updates no cache; an unchanged source file returns what a real run does.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let repo = args
            .str("repo")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if repo.starts_with("ppa:") {
            return Err(ModuleError::Arg(
                "PPAs are not supported; give the deb line".into(),
            ));
        }
        let state = args.choice("state", &["present", "absent"], "present")?;
        let filename = args
            .opt_str("filename")
            .unwrap_or_else(|| derive_name(&repo));
        let dest = format!("/etc/apt/sources.list.d/{filename}.list");
        let spec = FileSpec {
            dest: dest.clone(),
            mode: args.mode("mode")?.or(Some("644".into())),
            force: true,
            ..Default::default()
        };
        let present = state == "present";
        let line = repo.clone();
        let edit = move |cur: Option<&str>| -> Result<Option<String>, String> {
            let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
            let cur_s = cur.unwrap_or("");
            let has = cur_s.lines().any(|l| norm(l) == line);
            match (present, has) {
                (true, true) => Ok(cur.map(str::to_string)),
                (true, false) => Ok(Some(format!(
                    "{cur_s}{}{line}\n",
                    if cur_s.is_empty() || cur_s.ends_with('\n') {
                        ""
                    } else {
                        "\n"
                    }
                ))),
                (false, true) => Ok(Some(
                    cur_s
                        .lines()
                        .filter(|l| norm(l) != line)
                        .map(|l| format!("{l}\n"))
                        .collect(),
                )),
                (false, false) => Ok(None),
            }
        };
        // Whether the file held any line before and after the edit: ansible
        // counts a file with no line as no source file (`sources_added`,
        // `sources_removed`).
        let had_lines = AtomicBool::new(false);
        let has_lines = AtomicBool::new(false);
        let mut r = edit_file(ctx, &spec, |cur| {
            had_lines.store(cur.is_some_and(|c| !c.is_empty()), Ordering::Relaxed);
            let new = edit(cur)?;
            has_lines.store(
                new.as_deref().or(cur).is_some_and(|c| !c.is_empty()),
                Ordering::Relaxed,
            );
            Ok(new)
        })
        .await?;
        let (had, has) = (had_lines.into_inner(), has_lines.into_inner());
        let listed = |yes: bool| {
            Json::Array(if yes && r.changed && !r.failed {
                vec![Json::String(dest.clone())]
            } else {
                Vec::new()
            })
        };
        let (added, removed) = (listed(!had && has), listed(had && !has));
        // ansible deletes a sources file its removal left with no line.
        if !present && had && !has && r.changed && !r.failed && !ctx.check {
            let out = ctx
                .run_script(
                    &format!("rm -f {} || fail \"removing {dest} failed\"", q(&dest)),
                    None,
                )
                .await?;
            if let Some(f) = out.failed {
                r.failed = true;
                r.msg = Some(f);
            }
        }
        let update = args.bool_or("update_cache", true)? && args.bool_or("update-cache", true)?;
        if r.changed && update && !ctx.check && !r.failed {
            let out = ctx
                .run_script(
                    "_o=$(apt-get update -q 2>&1) || fail \"apt-get update: $_o\"",
                    None,
                )
                .await?;
            if let Some(f) = out.failed {
                r.failed = true;
                r.msg = Some(f);
            }
        }
        r.data.insert("repo".into(), repo.into());
        r.data.insert("state".into(), state.into());
        r.data.insert("sources_added".into(), added);
        r.data.insert("sources_removed".into(), removed);
        Ok(r)
    }
}

fn derive_name(repo: &str) -> String {
    let url = repo
        .split_whitespace()
        .find(|w| w.contains("://"))
        .unwrap_or(repo);
    let url = url.split("://").nth(1).unwrap_or(url);
    let s: String = url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    s.trim_matches('_').to_string()
}
