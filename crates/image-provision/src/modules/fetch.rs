//! `fetch`: copies a file from the target to the controller. `dest` is a
//! directory under which the file lands as `<inventory_hostname>/<src>`,
//! or with `flat: true` the file itself (`dest/` + the file's name when
//! `dest` ends with a slash). Written only when its sha1 differs; returns
//! ansible's `checksum`, `dest`, `md5sum` (and `remote_checksum` when it
//! changed, `file` when it did not). A missing source fails unless
//! `fail_on_missing: false`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value as Json;

use super::{md5_hex, sha1_hex, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Largest file fetched (bytes).
const MAX_BYTES: u64 = 256 << 20;

/// The `fetch` module.
pub struct Fetch;

#[async_trait]
impl Module for Fetch {
    fn name(&self) -> &'static str {
        "fetch"
    }
    fn reads_vars(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "src",
            "dest",
            "flat",
            "fail_on_missing",
            "validate_checksum",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["src", "dest"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let src = args.str("src")?;
        let dest = args.str("dest")?;
        let host = ctx
            .vars
            .get("inventory_hostname")
            .map(|v| super::json_to_string(&v))
            .unwrap_or_else(|| "localhost".into());
        let local = local_dest(&src, &dest, args.bool_or("flat", false)?, &host);
        let body = format!(
            r#"p={p}
if [ ! -e "$p" ]; then echo @@missing=1; return 0; fi
[ -d "$p" ] && fail "remote file is a directory, fetch cannot work on directories"
[ -r "$p" ] || fail "file is not readable: $p"
[ "$(wc -c < "$p")" -le {max} ] || fail "$p is larger than {max} bytes"
printf '@@content='; b64 "$p"; echo
"#,
            p = q(&src),
            max = MAX_BYTES
        );
        let out = ctx.run_script(&body, None).await?;
        if let Some(f) = out.failed {
            return Ok(ModuleResult::fail(f));
        }
        if out.get("missing").is_some() {
            let msg = "the remote file does not exist, not transferring, ignored";
            if args.bool_or("fail_on_missing", true)? {
                return Ok(ModuleResult::fail(msg).with("file", src));
            }
            let mut r = ModuleResult::ok().msg(msg).with("file", src);
            r.data.insert("changed".into(), false.into());
            return Ok(r);
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(out.get("content").unwrap_or("").trim())
            .map_err(|e| ModuleError::Arg(format!("fetch {src}: bad data from the target: {e}")))?;
        let sum = sha1_hex(&data);
        let md5 = md5_hex(&data);
        let current = tokio::fs::read(&local).await.ok();
        let shown = local.display().to_string();
        if current.as_deref().map(sha1_hex).as_deref() == Some(sum.as_str()) {
            return Ok(ModuleResult::ok()
                .with("checksum", sum)
                .with("dest", shown)
                .with("file", src)
                .with("md5sum", md5));
        }
        if !ctx.check {
            write_local(&local, &data).await?;
        }
        Ok(ModuleResult::changed(true)
            .with("checksum", sum.clone())
            .with("dest", shown)
            .with("md5sum", md5)
            .with("remote_checksum", sum)
            .with("remote_md5sum", Json::Null))
    }
}

/// Where the file lands on the controller.
fn local_dest(src: &str, dest: &str, flat: bool, host: &str) -> PathBuf {
    if flat {
        if dest.ends_with('/') {
            let name = Path::new(src)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Path::new(dest).join(name);
        }
        return PathBuf::from(dest);
    }
    Path::new(dest).join(host).join(src.trim_start_matches('/'))
}

/// Writes `data` to `path` (parents made), through a temporary file and a
/// rename.
async fn write_local(path: &Path, data: &[u8]) -> Result<(), ModuleError> {
    let err =
        |e: std::io::Error| ModuleError::Arg(format!("fetch: writing {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(err)?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.image-cli-fetch",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    tokio::fs::write(&tmp, data).await.map_err(err)?;
    tokio::fs::rename(&tmp, path).await.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_flat_and_per_host() {
        assert_eq!(
            local_dest("/srv/x/f", "/tmp/out/", true, "h"),
            PathBuf::from("/tmp/out/f")
        );
        assert_eq!(
            local_dest("/srv/x/f", "/tmp/out/g", true, "h"),
            PathBuf::from("/tmp/out/g")
        );
        assert_eq!(
            local_dest("/srv/x/f", "/tmp/out", false, "web1"),
            PathBuf::from("/tmp/out/web1/srv/x/f")
        );
    }
}
