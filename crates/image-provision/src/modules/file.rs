//! `file`: directories, files, symlinks, hard links, absence, touch, and
//! mode/owner/group (optionally recursive), in one script. The path is
//! returned as `path`, and also as `dest` for touch, link and hard (ansible
//! names it `dest` there).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::diff::Diff;
use crate::script::{self, q};

/// The `file` module.
pub struct File;

#[async_trait]
impl Module for File {
    fn name(&self) -> &'static str {
        "file"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path",
            "dest",
            "name",
            "state",
            "mode",
            "owner",
            "group",
            "recurse",
            "src",
            "force",
            "follow",
            "access_time",
            "modification_time",
            "access_time_format",
            "modification_time_format",
            "attributes",
            "seuser",
            "serole",
            "setype",
            "selevel",
            "unsafe_writes",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["path|dest|name"]
    }
    /// Every effect sets `C` (a symbolic mode excepted).
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let path = args.str_any(&["path", "dest", "name"])?;
        let state = args.opt_str("state").unwrap_or_default();
        let mode = args.mode("mode")?.unwrap_or_default();
        let owner = args.opt_str("owner").unwrap_or_default();
        let group = args.opt_str("group").unwrap_or_default();
        let recurse = args.bool_or("recurse", false)?;
        let force = args.bool_or("force", false)?;
        let follow = args.bool_or("follow", true)?;
        let src = args.opt_str("src");
        let attrs = |r: bool| {
            format!(
                "attrs \"$p\" {} {} {} {}",
                q(&mode),
                q(&owner),
                q(&group),
                u8::from(r)
            )
        };
        let body = match state.as_str() {
            // Every directory it creates gets the mode and ownership (as
            // ansible's file module does), not only the last one.
            "directory" => format!(
                "case $cur in absent) mkd \"$p\" {} {} {}; [ \"$CHECK\" = 1 ] && return 0;; directory) ;; *) fail \"$p exists and is not a directory\";; esac\n{}",
                q(&mode),
                q(&owner),
                q(&group),
                attrs(recurse)
            ),
            "file" | "" => format!(
                "if [ $cur = absent ]; then {}; fi\n{}",
                "fail \"file $p is absent, cannot continue\"",
                attrs(recurse && state.is_empty())
            ),
            "absent" => "if [ $cur != absent ]; then C=1; before \"$p\"; do_ rm -rf \"$p\"; fi".to_string(),
            "touch" => {
                let preserve = args.opt_str("modification_time").as_deref() == Some("preserve")
                    && args.opt_str("access_time").as_deref() == Some("preserve");
                format!(
                    "if [ $cur = absent ]; then C=1; do_ touch \"$p\"; [ \"$CHECK\" = 1 ] && return 0; elif [ {} = 0 ]; then C=1; do_ touch \"$p\"; fi\n{}",
                    u8::from(preserve),
                    attrs(false)
                )
            }
            "link" | "hard" => {
                let src = src.ok_or_else(|| ModuleError::Arg(format!("state={state} needs `src`")))?;
                let same = if state == "link" {
                    "[ $cur = link ] && [ \"$(readlink \"$p\")\" = \"$s\" ]"
                } else {
                    "[ \"$p\" -ef \"$s\" ]"
                };
                let ln = if state == "link" { "ln -sfn" } else { "ln -f" };
                format!(
                    "s={}\nif ! {{ {same}; }}; then\n  case $cur in directory) [ {f} = 1 ] || fail \"$p is a directory; use force: true to replace it\"; C=1; do_ rm -rf \"$p\";; file) [ {f} = 1 ] || [ {hard} = 1 ] || fail \"$p exists as a file; use force: true to replace it\";; esac\n  {chk}C=1; do_ {ln} \"$s\" \"$p\"; [ \"$CHECK\" = 1 ] && return 0\nfi\n[ -e \"$p\" ] || [ -L \"$p\" ] && attrs \"$p\" '' {} {}\n{follow_mode}",
                    q(&src),
                    q(&owner),
                    q(&group),
                    f = u8::from(force),
                    hard = u8::from(state == "hard"),
                    chk = if state == "hard" { "[ -e \"$s\" ] || fail \"src $s does not exist\"; " } else { "" },
                    // follow (the default): the mode goes to what the link
                    // points at, as chmod through a symlink does; with
                    // `follow: false` a symlink's mode is left alone (Linux
                    // has no lchmod), as ansible.
                    follow_mode = if follow && !mode.is_empty() {
                        format!("if [ -e \"$p\" ]; then _m={m}; case $_m in *[!0-7]*) _b=$(stat -L -c %a \"$p\"); do_ chmod \"$_m\" \"$p\"; [ \"$(stat -L -c %a \"$p\")\" != \"$_b\" ] && C=1;; *) [ \"$(stat -L -c %a \"$p\")\" != \"$_m\" ] && {{ C=1; do_ chmod \"$_m\" \"$p\"; }};; esac; fi", m = q(&mode))
                    } else {
                        String::new()
                    },
                )
            }
            other => {
                return Err(ModuleError::Arg(format!(
                    "state must be one of absent, directory, file, hard, link, touch; got `{other}`"
                )))
            }
        };
        let script = format!(
            "{}p={}\nif [ -L \"$p\" ]; then cur=link; elif [ -d \"$p\" ]; then cur=directory; elif [ -e \"$p\" ]; then cur=file; else cur=absent; fi\necho \"@@before_state=$cur\"\nbody() {{\n{body}\n}}\nbody\nfattrs \"$p\" {cached}",
            script::hint_stat(&path),
            q(&path),
            // These bodies end with `attrs "$p"`: its `stat` serves fattrs.
            cached = if matches!(state.as_str(), "directory" | "file" | "" | "touch") {
                "c"
            } else {
                ""
            }
        );
        let out = ctx.run_script(&script, None).await?;
        let mut r = ModuleResult::from_script(&out, &path);
        r.diff.clear();
        if out.changed && ctx.diff {
            let b = out.get("before_state").unwrap_or("").to_string();
            let a = if state.is_empty() {
                b.clone()
            } else {
                state.clone()
            };
            r.diff.push(Diff::new(
                &path,
                format!("state: {b}\n"),
                format!("state: {a}\n"),
            ));
        }
        r.data.insert("path".into(), path.into());
        if !state.is_empty() {
            r.data.insert("state".into(), state.clone().into());
        }
        // ansible stats the path in any mode; in check mode a path about to
        // change is still in its old state, which we do not report.
        if !ctx.check || !r.changed {
            super::path_info::insert(&out, &mut r.data);
        }
        if let (Some(s), true) = (
            args.opt_str("src"),
            matches!(state.as_str(), "link" | "hard"),
        ) {
            r.data.insert("src".into(), s.into());
            r.data.insert("dest".into(), r.data["path"].clone());
        }
        // ansible names the path `dest` for touch (and link/hard above).
        if state == "touch" {
            r.data.insert("dest".into(), r.data["path"].clone());
        }
        Ok(r)
    }
}
