//! `unarchive`: unpacks a tar (any compression GNU tar reads) or zip
//! archive into `dest`. A local `src` is uploaded once to a cache path
//! named by its sha256 (`/var/tmp/.image-cli-<sha>`); `remote_src` uses a
//! path or URL on the target. The archive's listing is compared with
//! `dest` (regular files by size, directories by existence) and nothing is
//! extracted when everything is there.

use async_trait::async_trait;
use image_core::target::FileMeta;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;
use serde_json::json;

/// The `unarchive` module.
pub struct Unarchive;

#[async_trait]
impl Module for Unarchive {
    fn name(&self) -> &'static str {
        "unarchive"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "src",
            "dest",
            "remote_src",
            "copy",
            "creates",
            "extra_opts",
            "mode",
            "owner",
            "group",
            "include",
            "exclude",
            "list_files",
            "keep_newer",
            "validate_certs",
            "decrypt",
            "io_buffer_size",
            "attributes",
            "unsafe_writes",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["src", "dest"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let src = args.str("src")?;
        let dest = args.str("dest")?;
        let remote = args.bool_or("remote_src", false)? || !args.bool_or("copy", true)?;
        let extra: Vec<String> = args.list("extra_opts");
        let strip: usize = extra
            .iter()
            .find_map(|o| {
                o.strip_prefix("--strip-components=")
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0);
        let extra_q = extra.iter().map(|o| q(o)).collect::<Vec<_>>().join(" ");
        let mut upload: Option<(String, Vec<u8>)> = None;
        let src_on_target = if remote {
            if src.starts_with("http://") || src.starts_with("https://") {
                format!(
                    "/var/tmp/.image-cli-{}",
                    &crate::script::sha256_hex(src.as_bytes())[..16]
                )
            } else {
                src.clone()
            }
        } else {
            let path = ctx.find_local(&src, "files")?;
            let data = tokio::fs::read(&path)
                .await
                .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", path.display())))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cache = format!(
                "/var/tmp/.image-cli-{}-{}",
                &crate::script::sha256_hex(&data)[..16],
                name
            );
            upload = Some((cache.clone(), data));
            cache
        };
        let zip = src.to_lowercase().ends_with(".zip");
        // tar's options after the compression flag, as ansible passes them.
        let mut tar_opts: Vec<String> = Vec::new();
        if !extra.is_empty() {
            tar_opts.push("--show-transformed-names".into());
            tar_opts.extend(extra.iter().cloned());
        }
        for (key, flag) in [("owner", "--owner="), ("group", "--group=")] {
            if let Some(v) = args.opt_str(key) {
                tar_opts.push(format!("{flag}{v}"));
            }
        }
        let body = format!(
            r#"s={s}; d={dest}; u={url}
c={creates}
if [ -n "$c" ] && [ -e "$c" ]; then return 0; fi
if [ ! -f "$s" ]; then
  case $u in http://*|https://*) if [ "$CHECK" = 1 ]; then C=1; return 0; fi; dl "$u" "$s" 2>"$s.err" || {{ e=$(cat "$s.err"); rm -f "$s" "$s.err"; fail "Failure downloading $u, $e"; }}; rm -f "$s.err";;
  *) if [ {local} = 1 ]; then echo @@need_upload=1; return 0; fi; if [ "$CHECK" = 1 ]; then C=1; return 0; fi; fail "src $s does not exist on the target";; esac
fi
[ -d "$d" ] || {{ [ "$CHECK" = 1 ] && {{ C=1; return 0; }}; fail "dest $d is not a directory"; }}
if [ {zip} = 1 ]; then lst=$(unzip -Z -l "$s" 2>/dev/null | awk 'NR>2 && NF>=9 {{ t=substr($1,1,1); n=$NF; print (t=="d"?"d":"-") "\t" $4 "\t" n }}')
else lst=$(tar -tvf "$s" 2>/dev/null | awk -v n={strip} '{{ t=substr($1,1,1); size=$3; name=$6; for(i=7;i<=NF;i++){{ if($i=="->") break; name=name" "$i }}; k=split(name, p, "/"); out=""; c=0; for(j=1;j<=k;j++){{ if(p[j]=="" || p[j]==".") continue; c++; if(c>n) out=out (out==""?"":"/") p[j] }}; if(out!="") print t "\t" size "\t" out }}') || fail "cannot list $s"; fi
[ -n "$lst" ] || fail "cannot list archive $s (is it a tar or zip file?)"
miss=$(printf '%s\n' "$lst" | while IFS="$(printf '\t')" read -r t size name; do
  case $t in
    d) [ -d "$d/$name" ] || {{ echo "$name"; break; }};;
    -) [ -f "$d/$name" ] && [ "$(stat -c %s "$d/$name")" = "$size" ] || {{ echo "$name"; break; }};;
  esac
done)
case $(od -An -tx1 -N6 "$s" 2>/dev/null | tr -d ' \n') in
  504b0304*|504b0506*) h=ZipArchive; zf=;;
  1f8b*) h=TgzArchive; zf=-z;;
  425a68*) h=TarBzipArchive; zf=-j;;
  fd377a585a00*) h=TarXzArchive; zf=-J;;
  28b52ffd*) h=TarZstdArchive; zf=--use-compress-program=zstd;;
  *) h=TarArchive; zf=;;
esac
echo "@@handler=$h"
if [ -n "$miss" ]; then
  C=1
  if [ "$CHECK" != 1 ]; then
    _t=$(mktemp -d) || fail "cannot make a temporary directory"
    if [ {zip} = 1 ]; then x=$(command -v unzip); (cd "$d" && "$x" -o {extra} "$s" -d "$d") >"$_t/o" 2>"$_t/e"; _rc=$?
    else x=$(command -v gtar || command -v tar); (cd "$d" && "$x" --extract -C "$d" $zf {topts} -f "$s") >"$_t/o" 2>"$_t/e"; _rc=$?; fi
    echo "@@x_bin=$x"; echo "@@x_zf=$zf"; echo "@@x_rc=$_rc"
    printf '@@x_out='; b64 "$_t/o"; echo; printf '@@x_err='; b64 "$_t/e"; echo
    _m=$(cat "$_t/e"); rm -rf "$_t"
    [ "$_rc" = 0 ] || fail "failed to unpack $s to $d: $_m"
  fi
fi
[ "$CHECK" = 1 ] || {{ [ -n {owner}{group} ] && attrs "$d" '' {owner} {group} 1; [ -n {mode} ] && [ "$C" = 1 ] && attrs "$d" {mode} '' '' 0; }}
fattrs "$d"
true
"#,
            s = q(&src_on_target),
            dest = q(&dest),
            url = q(if remote { &src } else { "" }),
            creates = q(args.opt_str("creates").as_deref().unwrap_or("")),
            local = u8::from(upload.is_some()),
            zip = u8::from(zip),
            strip = strip,
            extra = extra_q,
            topts = tar_opts.iter().map(|o| q(o)).collect::<Vec<_>>().join(" "),
            owner = q(args.opt_str("owner").as_deref().unwrap_or("")),
            group = q(args.opt_str("group").as_deref().unwrap_or("")),
            mode = q(args.mode("mode")?.as_deref().unwrap_or("")),
        );
        let mut out = ctx
            .run_script_dl(&body, None, &super::http::Request::get(&src))
            .await?;
        if out.get("need_upload") == Some("1") {
            if let Some((path, data)) = &upload {
                if ctx.check {
                    let mut r = ModuleResult::changed(true);
                    r.data.insert("dest".into(), dest.into());
                    return Ok(r);
                }
                ctx.target
                    .put(
                        path,
                        data,
                        &FileMeta {
                            mode: Some(0o600),
                            ..Default::default()
                        },
                        ctx.become_.as_ref(),
                    )
                    .await?;
                out = ctx
                    .run_script_dl(&body, None, &super::http::Request::get(&src))
                    .await?;
            }
        }
        let mut r = ModuleResult::from_script(&out, &dest);
        if r.failed {
            return Ok(r);
        }
        // ansible's result: the handler, the extraction command and what
        // it said (when it ran), `dest`'s path info, and `src` as the
        // archive's path on the target.
        if let Some(h) = out.get("handler") {
            r.data.insert("handler".into(), h.into());
        }
        if let Some(bin) = out.get("x_bin") {
            let src_abs = src_on_target.clone();
            let mut cmd: Vec<String> = vec![bin.to_string()];
            if zip {
                cmd.push("-o".into());
                cmd.extend(extra.iter().cloned());
                cmd.extend([src_abs, "-d".into(), dest.clone()]);
            } else {
                cmd.extend(["--extract".into(), "-C".into(), dest.clone()]);
                if let Some(zf) = out.get("x_zf").filter(|z| !z.is_empty()) {
                    cmd.push(zf.to_string());
                }
                cmd.extend(tar_opts.iter().cloned());
                cmd.extend(["-f".into(), src_abs]);
            }
            let text = |k: &str| super::apt::decode_b64(out.get(k).unwrap_or(""));
            r.data.insert(
                "extract_results".into(),
                json!({
                    "cmd": cmd,
                    "rc": out.get("x_rc").and_then(|c| c.parse::<i64>().ok()).unwrap_or(0),
                    "out": text("x_out"),
                    "err": text("x_err"),
                }),
            );
        }
        super::path_info::insert(&out, &mut r.data);
        r.data.insert("dest".into(), dest.into());
        r.data.insert("src".into(), src_on_target.into());
        Ok(r)
    }
}
