//! `apt_repository`: a one-line APT source in
//! `/etc/apt/sources.list.d/<filename>.list` (`state: present`), or that
//! line taken out of every sources file that has it, a file left with no
//! line deleted (`state: absent`, as ansible's), then `apt-get update` when
//! something changed (`update_cache`, default true). Returns ansible's
//! `repo`, `state`, and `sources_added` / `sources_removed`: the file, when
//! the task gives it its first line or takes its last (a file without
//! lines is no source file to ansible).

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
        let spec = FileSpec {
            dest: format!("/etc/apt/sources.list.d/{filename}.list"),
            mode: args.mode("mode")?.or(Some("644".into())),
            force: true,
            ..Default::default()
        };
        let update = args.bool_or("update_cache", true)? && args.bool_or("update-cache", true)?;
        let mut r = if state == "absent" {
            remove_everywhere(ctx, &repo).await?
        } else {
            add(ctx, &repo, spec).await?
        };
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
        Ok(r)
    }
}

/// A source line with its blanks collapsed, as ansible compares them.
fn norm(l: &str) -> String {
    l.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `state: present`: the line appended to the task's file unless there.
async fn add(ctx: &ModuleCtx<'_>, repo: &str, spec: FileSpec) -> Result<ModuleResult, ModuleError> {
    // Whether the file held any line before the edit: ansible counts
    // a file with no line as no source file (`sources_added`).
    let mut had_lines = false;
    let mut r = edit_file(ctx, &spec, |cur| {
        let cur_s = cur.unwrap_or("");
        had_lines = !cur_s.is_empty();
        if cur_s.lines().any(|l| norm(l) == repo) {
            return Ok(cur.map(str::to_string));
        }
        let sep = if cur_s.is_empty() || cur_s.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        Ok(Some(format!("{cur_s}{sep}{repo}\n")))
    })
    .await?;
    let added = if !had_lines && r.changed && !r.failed {
        vec![Json::String(spec.dest)]
    } else {
        Vec::new()
    };
    r.data.insert("sources_added".into(), Json::Array(added));
    r.data
        .insert("sources_removed".into(), Json::Array(Vec::new()));
    Ok(r)
}

/// `state: absent`: as ansible, the line goes from every sources file
/// that has it (whatever `filename` says), and a file left with no line
/// at all is deleted (`sources_removed`). One round trip reads them all;
/// each changed file is one more.
async fn remove_everywhere(ctx: &ModuleCtx<'_>, repo: &str) -> Result<ModuleResult, ModuleError> {
    let out = ctx
        .run_script(
            "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f \"$f\" ] || continue; echo \"@@f=$f\"; printf '@@c='; b64 \"$f\"; echo; done",
            None,
        )
        .await?;
    if let Some(f) = out.failed {
        return Ok(ModuleResult::fail(f));
    }
    let mut r = ModuleResult::ok();
    let mut removed = Vec::new();
    let mut path = None;
    for (k, v) in &out.kv {
        match k.as_str() {
            "f" => path = Some(v.clone()),
            "c" => {
                let Some(dest) = path.take() else { continue };
                let cur = super::apt::decode_b64(v);
                if !cur.lines().any(|l| norm(l) == repo) {
                    continue;
                }
                let new: String = cur
                    .lines()
                    .filter(|l| norm(l) != repo)
                    .map(|l| format!("{l}\n"))
                    .collect();
                r.changed = true;
                if new.is_empty() {
                    removed.push(Json::String(dest.clone()));
                    let step = ctx
                        .run_script(&format!("do_ rm -f {}", q(&dest)), None)
                        .await?;
                    if let Some(f) = step.failed {
                        return Ok(ModuleResult::fail(f));
                    }
                } else {
                    let spec = FileSpec {
                        dest,
                        force: true,
                        ..Default::default()
                    };
                    let w = super::write_content(ctx, &spec, new.as_bytes(), Some(cur)).await?;
                    if w.failed {
                        return Ok(w);
                    }
                }
            }
            _ => {}
        }
    }
    r.data
        .insert("sources_added".into(), Json::Array(Vec::new()));
    r.data
        .insert("sources_removed".into(), Json::Array(removed));
    Ok(r)
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
