//! `get_url`: downloads a URL to `dest` ON THE TARGET with curl, wget or
//! python3 (`script::DL`); on a host with none of them the controller
//! fetches it and uploads it (`ModuleCtx::run_script_dl`). Verified against
//! `checksum` (`<algo>:<hex>` or `<algo>:<url of a sums file>`). When `dest`
//! exists and matches the checksum (or exists and `force` is false) nothing
//! is downloaded, so a re-run costs one round trip. Returns ansible's keys:
//! `dest`, `url`, `msg`, `status_code`, `checksum_src` (sha1 of what was
//! downloaded), `checksum_dest` (sha1 of `dest` before the download, null
//! when it did not exist or nothing was downloaded), `md5sum`, `backup_file`, `elapsed`, and the file's `owner`,
//! `group`, `uid`, `gid`, `mode`, `size`, `state`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use super::{http, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{self, q};

/// The `get_url` module.
pub struct GetUrl;

/// Parameters set to a value other than their default that image-cli does
/// not implement: refused with this message instead of being ignored.
const REFUSED: &[(&str, &str)] = &[
    ("client_cert", "client certificates are not supported"),
    ("client_key", "client certificates are not supported"),
    ("ciphers", "choosing TLS ciphers is not supported"),
    ("use_gssapi", "GSSAPI authentication is not supported"),
    (
        "tmp_dest",
        "`tmp_dest` is not supported (the file is staged next to `dest`)",
    ),
    (
        "unredirected_headers",
        "`unredirected_headers` is not supported",
    ),
];

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
            "attr",
            "unsafe_writes",
            "sha256sum",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["url", "dest"]
    }
    /// A probe: the check downloads nothing when `dest` exists and matches (or `force` is off); every other case reports a change, so the task runs for real.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        for (k, why) in REFUSED {
            let set = match args.get(k) {
                None => false,
                Some(Json::Bool(b)) => *b,
                Some(Json::Array(a)) => !a.is_empty(),
                Some(Json::String(s)) => {
                    !s.is_empty() && super::json_bool(&json!(s)) != Some(false)
                }
                Some(_) => true,
            };
            if set {
                return Err(ModuleError::Arg(format!("get_url: {why}")));
            }
        }
        if !args.bool_or("use_proxy", true)? {
            return Err(ModuleError::Arg(
                "get_url: `use_proxy: false` is not supported (the target's proxy environment is used as it is)".into(),
            ));
        }
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
                return Ok(ModuleResult::fail(
                    "The checksum parameter has to be in format <algorithm>:<checksum>",
                ))
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
                return Ok(ModuleResult::fail(format!(
                    "Could not hash file with algorithm '{other}'. Available algorithms: md5, sha1, sha224, sha256, sha384, sha512"
                )))
            }
        };
        let headers = headers(args, "get_url")?;
        let user = args.opt_str_any(&["url_username", "username"]);
        let pass = args.opt_str_any(&["url_password", "password"]);
        let body = format!(
            r#"{hints}{env}u={url}; d={dest}; algo={sum_cmd}; want={want}
[ -d "$d" ] && d="${{d%/}}/$(basename "${{u%%\?*}}")"
echo "@@dest=$d"
case $want in http://*|https://*|ftp://*|file://*)
  s=$(mktemp) || fail "mktemp failed"
  dl "$want" "$s" 2>"$s.err" || {{ e=$(cat "$s.err"); rm -f "$s" "$s.err"; fail "Request failed: $e ($want)"; }}
  rm -f "$s.err"
  f=$(basename "${{u%%\?*}}")
  w=$(awk -v f="$f" '{{n=$2; sub(/^\*/,"",n); sub(/^\.\//,"",n); if (n==f) {{print $1; exit}}}}' "$s")
  [ -z "$w" ] && [ "$(grep -c . "$s")" -le 1 ] && [ "$(awk '{{print NF; exit}}' "$s")" = 1 ] && w=$(awk '{{print $1; exit}}' "$s")
  rm -f "$s"
  [ -n "$w" ] || fail "Unable to find a checksum for file '$f' in '$want'"
  want=$w;;
esac
case $want in *[!0-9a-f]*) want=$(printf '%s' "$want" | tr -cd '[:alnum:]_' | tr 'A-F' 'a-f');; esac
if [ -n "$algo" ]; then case $want in ''|*[!0-9a-f]*) fail "The checksum format is invalid";; esac; fi
info() {{ if stc "$d"; then echo "@@fst=$_sui $_sgi $_su $_sg $_sa $_ss"; else stat -c '@@fst=%u %g %U %G %a %s' "$d" 2>/dev/null; fi; [ -f "$d" ] && sum_ md5sum "$d" && echo "@@md5=$_h"; }}
if [ -f "$d" ] && [ {force} = 0 ]; then
  if [ -n "$algo" ]; then
    sum_ "$algo" "$d"; if [ "$_h" = "$want" ]; then attrs "$d" {mode} {owner} {group}; echo "@@msg=file already exists"; info; return 0; fi
  else attrs "$d" {mode} {owner} {group}; echo "@@msg=file already exists"; info; return 0; fi
fi
dn "$d"; [ -d "$_dn" ] || fail "Destination $_dn does not exist"
[ -f "$d" ] && sum_ sha1sum "$d" && echo "@@sha1_dest=$_h"
C=1
if [ "$CHECK" = 1 ]; then info; return 0; fi
t=$(mktemp "$_dn/.image-cli.XXXXXX") || fail "Destination $_dn is not writable"
dl "$u" "$t" 2>"$t.err" || {{ e=$(cat "$t.err"); rm -f "$t" "$t.err"; fail "Request failed: $e"; }}
rm -f "$t.err"
sum_ sha1sum "$t"; echo "@@sha1_src=$_h"
echo "@@msg=OK ($(wc -c < "$t") bytes)"
if [ -n "$algo" ]; then sum_ "$algo" "$t"; got=$_h; [ "$got" = "$want" ] || {{ rm -f "$t"; fail "The checksum for $t did not match $want; it was $got."; }}; fi
if [ -f "$d" ] && cmp -s "$t" "$d"; then rm -f "$t"; C=0; else
  if [ {backup} = 1 ] && [ -f "$d" ]; then b="$d.$$.$(date +%Y-%m-%d@%H:%M:%S)~"; cp -p "$d" "$b" && echo "@@backup_file=$b"; fi
  if [ -e "$d" ]; then chmod --reference="$d" "$t"; chown --reference="$d" "$t" 2>/dev/null; else chmod "$(printf %o $((0666 & ~$(umask))))" "$t"; fi
  if ! mv -f "$t" "$d" 2>/dev/null; then
    if [ {unsafe} = 1 ] && cat "$t" > "$d"; then rm -f "$t"; else rm -f "$t"; fail "failed to copy $t to $d"; fi
  fi
fi
attrs "$d" {mode} {owner} {group}
info
"#,
            hints = script::hint_stat(&dest)
                + &script::hint_sum(sum_cmd, &dest)
                + &script::hint_sum("md5sum", &dest),
            env = script::dl_env(timeout, insecure, &headers, user.as_deref(), pass.as_deref()),
            url = q(&url),
            dest = q(&dest),
            want = q(&want),
            force = u8::from(force),
            backup = u8::from(args.bool_or("backup", false)?),
            unsafe = u8::from(args.bool_or("unsafe_writes", false)?),
            mode = q(args.mode("mode")?.as_deref().unwrap_or("")),
            owner = q(args.opt_str("owner").as_deref().unwrap_or("")),
            group = q(args.opt_str("group").as_deref().unwrap_or("")),
        );
        let started = std::time::Instant::now();
        let req = http::Request {
            method: "GET".into(),
            url: url.clone(),
            headers: auth_headers(&headers, user.as_deref(), pass.as_deref()),
            body: None,
            timeout: Duration::from_secs(timeout.max(1) as u64 * 6),
            validate_certs: !insecure,
            redirects: http::Redirects::All,
        };
        let out = ctx.run_script_dl(&body, None, &req).await?;
        let d = out.get("dest").unwrap_or(&dest).to_string();
        let mut r = ModuleResult::from_script(&out, &d);
        r.data.insert("dest".into(), d.into());
        r.data.insert("url".into(), url.into());
        r.data
            .insert("elapsed".into(), json!(started.elapsed().as_secs()));
        r.data.insert(
            "checksum_src".into(),
            out.get("sha1_src").map_or(Json::Null, |s| json!(s)),
        );
        r.data.insert(
            "checksum_dest".into(),
            out.get("sha1_dest").map_or(Json::Null, |s| json!(s)),
        );
        if let Some(m) = out.get("md5") {
            r.data.insert("md5sum".into(), json!(m));
        }
        if let Some(b) = out.get("backup_file") {
            r.data.insert("backup_file".into(), json!(b));
        }
        if out.failed.is_none() {
            if let Some(m) = out.get("msg") {
                r.msg = Some(m.to_string());
            }
            if out.get("sha1_src").is_some() {
                r.data.insert("status_code".into(), json!(200));
            }
        }
        if let Some(st) = out.get("fst") {
            add_file_info(&mut r, st);
        }
        Ok(r)
    }
}

/// `headers:` as (name, value) pairs (a dict; ansible also takes a
/// `key=value,...` string, deprecated, refused here).
pub fn headers(args: &Args, module: &str) -> Result<Vec<(String, String)>, ModuleError> {
    match args.get("headers") {
        None => Ok(Vec::new()),
        Some(Json::Object(h)) => Ok(h
            .iter()
            .map(|(k, v)| (k.clone(), super::json_to_string(v)))
            .collect()),
        Some(v) => Err(ModuleError::Arg(format!(
            "{module}: `headers` must be a dictionary, got {v}"
        ))),
    }
}

/// The headers with basic authentication added (controller-side requests).
pub fn auth_headers(
    headers: &[(String, String)],
    user: Option<&str>,
    pass: Option<&str>,
) -> Vec<(String, String)> {
    use base64::Engine as _;
    let mut h = headers.to_vec();
    if let Some(u) = user {
        let tok =
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", pass.unwrap_or("")));
        h.push(("Authorization".into(), format!("Basic {tok}")));
    }
    h
}

/// ansible's path info (`add_path_info`) from `@@fst=UID GID USER GROUP MODE SIZE`.
pub fn add_file_info(r: &mut ModuleResult, st: &str) {
    let f: Vec<&str> = st.split_whitespace().collect();
    if f.len() < 6 {
        return;
    }
    let num = |s: &str| s.parse::<u64>().map_or(Json::Null, |n| json!(n));
    r.data.insert("uid".into(), num(f[0]));
    r.data.insert("gid".into(), num(f[1]));
    r.data.insert("owner".into(), json!(f[2]));
    r.data.insert("group".into(), json!(f[3]));
    r.data.insert("mode".into(), json!(format!("{:0>4}", f[4])));
    r.data.insert("size".into(), num(f[5]));
    r.data.insert("state".into(), json!("file"));
}
