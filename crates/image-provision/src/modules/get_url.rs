//! `get_url`: downloads a URL ON THE TARGET (curl, else wget) to `dest`,
//! verified against `checksum` (`sha256:<hex>` or `sha256:<url of a sums
//! file>`). Skips the download when `dest` exists and matches the checksum
//! (or exists and `force` is false), so a re-run costs one round trip.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `get_url` module.
pub struct GetUrl;

#[async_trait]
impl Module for GetUrl {
    fn name(&self) -> &'static str {
        "get_url"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "url",
            "dest",
            "checksum",
            "mode",
            "owner",
            "group",
            "headers",
            "timeout",
            "force",
            "backup",
            "validate_certs",
            "url_username",
            "url_password",
            "username",
            "password",
            "force_basic_auth",
            "use_proxy",
            "http_agent",
            "tmp_dest",
            "decompress",
            "ciphers",
            "client_cert",
            "client_key",
            "unredirected_headers",
            "use_gssapi",
            "use_netrc",
            "attributes",
            "unsafe_writes",
            "sha256sum",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["url", "dest"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        let url = args.str("url")?;
        let dest = args.str("dest")?;
        let force = args.bool_or("force", false)?;
        let timeout = args.opt_i64("timeout")?.unwrap_or(10);
        let insecure = !args.bool_or("validate_certs", true)?;
        let mut checksum = args.opt_str("checksum").unwrap_or_default();
        if checksum.is_empty() {
            if let Some(s) = args.opt_str("sha256sum") {
                checksum = format!("sha256:{s}");
            }
        }
        let (algo, want) = match checksum.split_once(':') {
            Some((a, w)) => (a.to_lowercase(), w.to_string()),
            None if checksum.is_empty() => (String::new(), String::new()),
            None => {
                return Err(ModuleError::Arg(format!(
                    "checksum must be `algorithm:value`, got `{checksum}`"
                )))
            }
        };
        let sum_cmd = match algo.as_str() {
            "" => "",
            "sha256" => "sha256sum",
            "sha1" => "sha1sum",
            "sha512" => "sha512sum",
            "sha384" => "sha384sum",
            "sha224" => "sha224sum",
            "md5" => "md5sum",
            other => {
                return Err(ModuleError::Arg(format!(
                    "unknown checksum algorithm `{other}`"
                )))
            }
        };
        let mut curl = format!(
            "curl -fsSL --retry 3 --max-time {} -o \"$1\"",
            timeout.max(1) * 6
        );
        let mut wget = format!("wget -q --tries=3 --timeout={timeout} -O \"$1\"");
        if insecure {
            curl.push_str(" -k");
            wget.push_str(" --no-check-certificate");
        }
        if let Some(serde_json::Value::Object(h)) = args.get("headers") {
            for (k, v) in h {
                let hv = q(&format!("{k}: {}", super::json_to_string(v)));
                curl.push_str(&format!(" -H {hv}"));
                wget.push_str(&format!(" --header={hv}"));
            }
        }
        if let Some(u) = args.opt_str_any(&["url_username", "username"]) {
            let p = args
                .opt_str_any(&["url_password", "password"])
                .unwrap_or_default();
            curl.push_str(&format!(" -u {}", q(&format!("{u}:{p}"))));
            wget.push_str(&format!(" --user={} --password={}", q(&u), q(&p)));
        }
        let body = format!(
            r#"u={url}; d={dest}; algo={sum_cmd}; want={want}
fetch() {{ if command -v curl >/dev/null 2>&1; then {curl} "$2"; elif command -v wget >/dev/null 2>&1; then {wget} "$2"; else echo "neither curl nor wget on the target" >&2; return 1; fi; }}
[ -d "$d" ] && d="$d/$(basename "${{u%%\?*}}")"
echo "@@dest=$d"
case $want in http://*|https://*|file://*)
  s=$(mktemp) || fail "mktemp failed"
  fetch "$s" "$want" 2>/tmp/.image-cli-err.$$ || {{ e=$(cat /tmp/.image-cli-err.$$); rm -f "$s" /tmp/.image-cli-err.$$; fail "downloading checksum file $want failed: $e"; }}
  rm -f /tmp/.image-cli-err.$$
  f=$(basename "${{u%%\?*}}")
  w=$(awk -v f="$f" '{{n=$2; sub(/^\*/,"",n); sub(/^\.\//,"",n); if (n==f) {{print $1; exit}}}}' "$s")
  [ -z "$w" ] && [ "$(wc -l < "$s")" -le 1 ] && w=$(awk '{{print $1; exit}}' "$s")
  rm -f "$s"
  [ -n "$w" ] || fail "no checksum for $f in $want"
  want=$w;;
esac
want=$(printf '%s' "$want" | tr 'A-F' 'a-f')
if [ -f "$d" ]; then
  if [ -n "$algo" ]; then
    [ "$($algo "$d" | cut -d' ' -f1)" = "$want" ] && {{ attrs "$d" {mode} {owner} {group}; return 0; }}
  elif [ {force} = 0 ]; then attrs "$d" {mode} {owner} {group}; return 0; fi
fi
C=1
[ "$CHECK" = 1 ] && return 0
[ -d "$(dirname "$d")" ] || fail "destination directory $(dirname "$d") does not exist"
t=$(mktemp "$(dirname "$d")/.image-cli.XXXXXX") || fail "cannot create a file in $(dirname "$d")"
if ! e=$(fetch "$t" "$u" 2>&1); then rm -f "$t"; fail "downloading $u failed: $e"; fi
if [ -n "$algo" ]; then got=$($algo "$t" | cut -d' ' -f1); [ "$got" = "$want" ] || {{ rm -f "$t"; fail "checksum mismatch for $u: expected $want, got $got"; }}; fi
if [ -f "$d" ] && cmp -s "$t" "$d"; then rm -f "$t"; C=0; else
  [ {backup} = 1 ] && [ -f "$d" ] && cp -p "$d" "$d.$(date +%Y-%m-%d@%H:%M:%S)~"
  chmod "$(printf %o $((0666 & ~$(umask))))" "$t"; mv -f "$t" "$d" || fail "renaming to $d failed"
fi
attrs "$d" {mode} {owner} {group}
"#,
            url = q(&url),
            dest = q(&dest),
            want = q(&want),
            force = u8::from(force),
            backup = u8::from(args.bool_or("backup", false)?),
            mode = q(args.mode("mode")?.as_deref().unwrap_or("")),
            owner = q(args.opt_str("owner").as_deref().unwrap_or("")),
            group = q(args.opt_str("group").as_deref().unwrap_or("")),
        );
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, &dest);
        r.data
            .insert("dest".into(), out.get("dest").unwrap_or(&dest).into());
        r.data.insert("url".into(), url.into());
        Ok(r)
    }
}
