//! `copy`: writes `content` or a local `src` file to the target (sent on
//! the script's stdin, written only when its sha256 differs), or copies a
//! file already on the target (`remote_src`). Mode, owner, group, backup,
//! validate, force. A local `src` directory is copied by [`copy_dir`].

use async_trait::async_trait;

use super::{
    copy_dir, file_spec, write_content, Args, Module, ModuleCtx, ModuleError, ModuleResult,
};
use crate::script::q;

/// The `copy` module.
pub struct Copy;

#[async_trait]
impl Module for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "src",
            "content",
            "dest",
            "mode",
            "owner",
            "group",
            "backup",
            "force",
            "remote_src",
            "validate",
            "directory_mode",
            "follow",
            "local_follow",
            "decrypt",
            "checksum",
            "unsafe_writes",
            "attributes",
            "setype",
            "seuser",
            "serole",
            "selevel",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["dest"]
    }
    /// Every effect sets `C` (a symbolic mode excepted).
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode", "directory_mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let dest = args.str("dest")?;
        let mut spec = file_spec(args, dest.clone())?;
        if args.bool_or("remote_src", false)? {
            let src = args.str("src")?;
            let body = format!(
                "s={}; d={}\n[ -d \"$d\" ] && d=\"$d/$(basename \"$s\")\"\n[ -f \"$s\" ] || fail \"src $s does not exist on the target\"\nif ! cmp -s \"$s\" \"$d\" && {{ [ ! -e \"$d\" ] || [ {} = 1 ]; }}; then C=1; before \"$d\"; if [ {} = 1 ] && [ -e \"$d\" ] && [ \"$CHECK\" != 1 ]; then _bk=\"$d.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"; cp -p \"$d\" \"$_bk\" && echo \"@@backup_file=$_bk\"; fi; do_ cp \"$s\" \"$d\"; [ \"$CHECK\" = 1 ] && return 0; fi\nattrs \"$d\" {} {} {}\necho \"@@dest=$d\"; sum_ sha1sum \"$d\"; echo \"@@checksum=$_h\"; sum_ md5sum \"$d\"; echo \"@@md5sum=$_h\"; fattrs \"$d\" c",
                q(&src),
                q(&dest),
                u8::from(spec.force),
                u8::from(spec.backup),
                q(spec.mode.as_deref().unwrap_or("")),
                q(spec.owner.as_deref().unwrap_or("")),
                q(spec.group.as_deref().unwrap_or("")),
            );
            let out = ctx.run_script(&body, None).await?;
            let mut r = ModuleResult::from_script(&out, &dest);
            r.data.insert("dest".into(), dest.into());
            r.data.insert("src".into(), src.into());
            for k in ["dest", "checksum", "md5sum", "backup_file"] {
                if let Some(v) = out.get(k) {
                    r.data.insert(k.into(), v.into());
                }
            }
            super::path_info::insert(&out, &mut r.data);
            return Ok(r);
        }
        let content: Vec<u8> = if let Some(c) = args.get("content") {
            match c {
                serde_json::Value::String(s) => s.clone().into_bytes(),
                // ansible writes str() of a scalar (`True`, as Python
                // prints it) and json.dumps() of a list or dict.
                serde_json::Value::Bool(b) => if *b { "True" } else { "False" }.into(),
                other => serde_json::to_string(other)
                    .unwrap_or_default()
                    .into_bytes(),
            }
        } else {
            let src = args.str("src")?;
            let path = ctx.find_local(&src, "files")?;
            if path.is_dir() {
                return copy_dir::run(ctx, args, &src, &path, &spec).await;
            }
            spec.basename = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if dest.ends_with('/') {
                spec.dest = format!("{dest}{}", spec.basename.clone().unwrap_or_default());
                let made =
                    copy_dir::make_dirs(ctx, args, &[dest.trim_end_matches('/').to_string()])
                        .await?;
                if let Some(f) = made.failed {
                    return Ok(ModuleResult::fail(f));
                }
            }
            tokio::fs::read(&path)
                .await
                .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", path.display())))?
        };
        write_content(ctx, &spec, &content, None).await
    }
}
