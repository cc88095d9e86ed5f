//! Generated `sh` scripts: the shared prelude every module script runs with,
//! the `@@` result protocol, and the scripts shared by several modules
//! (write a file if its content differs, read a file).
//!
//! A module's body sets `C=1` when something changes (or would, in check
//! mode), calls `fail MSG` to stop with an error, and runs changing
//! commands through `do_` (which does nothing in check mode). The wrapper
//! then prints `@@changed` or `@@ok`. Other result lines: `@@key=value`,
//! `@@before BASE64` (the old content, for `--diff`).

use base64::Engine as _;
use image_core::target::{shell_quote, Output};

/// Functions every module script can use: `fail`, `do_`, `b64`, `before`,
/// `putc`, `rmf`, `attrs PATH MODE OWNER GROUP [RECURSE]`, `mkd DIR MODE
/// OWNER GROUP` (creates DIR and its missing parents, each with the
/// attributes, as ansible's file and copy do), `fattrs PATH [c]` (the file
/// keys of [`crate::modules::path_info`]; with `c`, from the `stat` of an
/// `attrs PATH` that ran just before, when nothing came between).
///
/// Each process costs 1–2 ms on a target (issue #16), so the common steps
/// start none of their own: `dn PATH` (`dirname` into `$_dn`), `sum_ CMD
/// FILE` (the hash of `CMD FILE` into `$_h`, without `cut`), `drain` (reads
/// standard input to its end only when it is a pipe, which a writer may
/// block on; not a file or /dev/null, and not in a batch of checks, which
/// sets `_NODRAIN`: there the writer is the batch's own here-document or
/// `base64 -d`, which ends when the check ends), `st_ PATH` (one `stat` for mode,
/// owner, group, size and links into `$_sa $_su $_sui $_sg $_sgi $_ss $_sh`;
/// `$_sp` names PATH), `stc PATH` (true when those are PATH's and `attrs`
/// changed nothing after them: it clears `$_sp` first and stats again after
/// each change).
///
/// In check mode, `st_` and `sum_` first look in what a batch of checks
/// gathered before its checks ran (see [`hint_stat`], [`hint_sum`] and
/// `engine/coalesce.rs`): one `stat` and one hash command per algorithm
/// for all the batch's files, instead of one each per check. A path the
/// batch did not gather (or any path, in a script run alone) costs its own
/// `stat` or hash as before.
pub const PRELUDE: &str = r#"C=0
fail() { printf '@@fail %s\n' "$(printf '%s' "$*" | tr '\n' ' ')"; exit 1; }
do_() { [ "$CHECK" = 1 ] && return 0; _o=$("$@" 2>&1) || fail "$*: $_o"; }
b64() { base64 -w0 "$1" 2>/dev/null || base64 "$1" | tr -d '\n'; }
before() { [ "$DIFF" = 1 ] || return 0; if [ -f "$1" ] && [ "$(wc -c <"$1")" -le 262144 ]; then printf '@@before '; b64 "$1"; echo; else echo '@@before '; fi; }
putc() { if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then C=1; before "$1"; [ "$CHECK" = 1 ] || printf '%s\n' "$2" > "$1" || fail "writing $1 failed"; fi; }
rmf() { if [ -e "$1" ] || [ -L "$1" ]; then C=1; before "$1"; do_ rm -rf "$1"; fi; }
dn() { _dn=$1; while :; do case $_dn in */) [ "$_dn" = / ] && break; _dn=${_dn%/};; *) break;; esac; done
  case $_dn in */*) _dn=${_dn%/*}; while :; do case $_dn in ?*/) _dn=${_dn%/};; *) break;; esac; done; _dn=${_dn:-/};; /) ;; *) _dn=.;; esac; }
sum_() {
  if [ "$CHECK" = 1 ]; then case $1 in md5sum|sha1sum|sha224sum|sha256sum|sha384sum|sha512sum) eval "_shh=\${_SUMH_$1-} _shc=\${_SUM_$1-}"
    case $_shh in *"
$2
"*) case $_shc in *"  $2
"*) _h=${_shc%%"  $2
"*}; _h=${_h##*"
"};; *) _h=;; esac; return 0;; esac;; esac; fi
  _h=$("$1" "$2"); _h=${_h%% *}; }
drain() { [ -n "${_NODRAIN-}" ] || [ -f /dev/stdin ] || [ -c /dev/stdin ] || cat >/dev/null; }
st_() { _sp=$1
  if [ "$CHECK" = 1 ]; then case ${_STH-} in *"
$1
"*) case $_STC in *"
$1|"*) _stx=${_STC#*"
$1|"}; set -- ${_stx%%"
"*};; *) set --;; esac; _sa=$1 _su=$2 _sui=$3 _sg=$4 _sgi=$5 _ss=$6 _sh=$7; return 0;; esac; fi
  set -- $(stat -c '%a %U %u %G %g %s %h' "$1" 2>/dev/null); _sa=$1 _su=$2 _sui=$3 _sg=$4 _sgi=$5 _ss=$6 _sh=$7; }
stc() { [ "$_sp" = "$1" ] && [ -n "$_sa" ]; }
mkd() { [ -d "$1" ] && return 0; { [ -e "$1" ] || [ -L "$1" ]; } && fail "$1 exists and is not a directory"; dn "$1"; mkd "$_dn" "$2" "$3" "$4"; C=1; [ "$CHECK" = 1 ] && return 0; mkdir "$1" || fail "mkdir $1 failed"; attrs "$1" "$2" "$3" "$4"; }
fattrs() {
  [ -e "$1" ] || return 0
  if [ -L "$1" ]; then _t=link; elif [ -d "$1" ]; then _t=directory; else _t=file; fi
  if [ "$2" = c ] && stc "$1"; then echo "@@fattrs=$_t $_sa $_sui $_sgi $_ss $_sh $_su $_sg"; return 0; fi
  stat -c "@@fattrs=$_t %a %u %g %s %h %U %G" "$1" 2>/dev/null || echo "@@fattrs=$_t"
}
attrs() {
  _p=$1; _m=$2; _o=$3; _g=$4; _r=${5:-0}; _sp=
  [ "$_r" = 1 ] || st_ "$_p"
  if [ -n "$_o$_g" ]; then
    _bad=0
    if [ "$_r" = 1 ]; then
      _f=""; [ -n "$_o" ] && _f="! -user $_o"; [ -n "$_g" ] && _f="${_f:+$_f -o }! -group $_g"
      [ -n "$(eval "find \"\$_p\" \\( $_f \\) -print -quit")" ] && _bad=1
    else
      [ -n "$_o" ] && [ "$_su" != "$_o" ] && [ "$_sui" != "$_o" ] && _bad=1
      [ -n "$_g" ] && [ "$_sg" != "$_g" ] && [ "$_sgi" != "$_g" ] && _bad=1
    fi
    if [ $_bad = 1 ]; then C=1; if [ "$_r" = 1 ]; then do_ chown -R "$_o${_g:+:$_g}" "$_p"; else do_ chown -h "$_o${_g:+:$_g}" "$_p"; [ "$CHECK" = 1 ] || st_ "$_p"; fi; fi
  fi
  if [ -n "$_m" ] && [ ! -L "$_p" ]; then
    case $_m in
      *[!0-7]*) [ "$_r" = 1 ] && st_ "$_p"; _b=$_sa
        if [ "$CHECK" != 1 ]; then if [ "$_r" = 1 ]; then chmod -R "$_m" "$_p"; else chmod "$_m" "$_p"; fi || fail "chmod $_m $_p failed"; st_ "$_p"; fi
        [ "$_sa" != "$_b" ] && C=1 ;;
      *) if [ "$_r" = 1 ]; then
           if [ -n "$(find "$_p" ! -perm "$_m" -print -quit)" ]; then C=1; do_ chmod -R "$_m" "$_p"; fi
         elif [ "$_sa" != "$_m" ]; then C=1; do_ chmod "$_m" "$_p"; [ "$CHECK" = 1 ] || st_ "$_p"; fi ;;
    esac
  fi
}
"#;

/// `dl URL FILE`: downloads on the target with curl, else wget, else
/// python3 (ansible itself needs none of them; python3 is what ansible's
/// own modules use). Options come from `DL_TIMEOUT` (seconds),
/// `DL_INSECURE=1`, `DL_HEADERS` (`Name: value` lines), `DL_USER`,
/// `DL_PASS`. A URL listed in `DL_CACHE` (`URL<TAB>PATH` lines: fetched by
/// the controller and uploaded, see `ModuleCtx::run_script_dl`) is copied
/// from there. With no downloader at all it prints `@@nodl=URL` and exits
/// 3, so the controller can fetch it and run the script again. One try,
/// as ansible's `fetch_url` (a task retries with `retries`/`until`).
pub const DL: &str = r#"dl() {
  _u=$1; _out=$2
  if [ -n "$DL_CACHE" ]; then
    _c=$(printf '%s\n' "$DL_CACHE" | awk -F'\t' -v u="$_u" '$1==u {print $2; exit}')
    if [ -n "$_c" ]; then cp "$_c" "$_out"; return; fi
  fi
  if command -v curl >/dev/null 2>&1; then
    set -- -fsSL --max-time "$(( ${DL_TIMEOUT:-10} * 6 ))" -o "$_out"
    [ "$DL_INSECURE" = 1 ] && set -- "$@" -k
    [ -n "$DL_USER" ] && set -- "$@" -u "$DL_USER:$DL_PASS"
    while IFS= read -r _h; do [ -n "$_h" ] && set -- "$@" -H "$_h"; done <<DLEOF
$DL_HEADERS
DLEOF
    curl "$@" "$_u"
  elif command -v wget >/dev/null 2>&1; then
    set -- -q --tries=1 "--timeout=${DL_TIMEOUT:-10}" -O "$_out"
    [ "$DL_INSECURE" = 1 ] && set -- "$@" --no-check-certificate
    [ -n "$DL_USER" ] && set -- "$@" "--user=$DL_USER" "--password=$DL_PASS"
    while IFS= read -r _h; do [ -n "$_h" ] && set -- "$@" "--header=$_h"; done <<DLEOF
$DL_HEADERS
DLEOF
    wget "$@" "$_u"
  elif command -v python3 >/dev/null 2>&1; then
    DL_URL=$_u DL_OUT=$_out python3 -c '
import base64, os, ssl, sys, urllib.request
e = os.environ
r = urllib.request.Request(e["DL_URL"])
for h in e.get("DL_HEADERS", "").splitlines():
    if ":" in h:
        k, v = h.split(":", 1)
        r.add_header(k.strip(), v.strip())
if e.get("DL_USER"):
    r.add_header("Authorization", "Basic " + base64.b64encode((e["DL_USER"] + ":" + e.get("DL_PASS", "")).encode()).decode())
c = ssl._create_unverified_context() if e.get("DL_INSECURE") == "1" else None
try:
    with urllib.request.urlopen(r, timeout=float(e.get("DL_TIMEOUT") or 10), context=c) as f, open(e["DL_OUT"], "wb") as w:
        while True:
            b = f.read(1 << 16)
            if not b:
                break
            w.write(b)
except Exception as x:
    sys.stderr.write(str(x) + "\n")
    sys.exit(1)
'
  else
    echo "@@nodl=$_u"; exit 3
  fi
}
"#;

/// Shell assignments for [`DL`]'s options.
pub fn dl_env(
    timeout: i64,
    insecure: bool,
    headers: &[(String, String)],
    user: Option<&str>,
    pass: Option<&str>,
) -> String {
    let h: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "DL_TIMEOUT={}; DL_INSECURE={}; DL_HEADERS={}; DL_USER={}; DL_PASS={}\n",
        timeout.max(1),
        u8::from(insecure),
        q(&h.join("\n")),
        q(user.unwrap_or("")),
        q(pass.unwrap_or(""))
    )
}

/// The full script: prelude, the body as a function, the result line.
pub fn wrap(body: &str, check: bool, diff: bool) -> String {
    format!(
        "CHECK={}; DIFF={}\n{PRELUDE}main() {{\n{body}\n}}\nmain\nif [ \"$C\" = 1 ]; then echo @@changed; else echo @@ok; fi\n",
        u8::from(check),
        u8::from(diff)
    )
}

/// A script's parsed result.
#[derive(Debug, Clone, Default)]
pub struct ScriptOut {
    /// `@@changed` seen.
    pub changed: bool,
    /// `@@fail` message (or stderr when the script died without one).
    pub failed: Option<String>,
    /// `@@key=value` lines in order.
    pub kv: Vec<(String, String)>,
    /// Decoded `@@before`.
    pub before: Option<String>,
    /// Set by modules that know the new content.
    pub after: Option<String>,
    /// Exit status.
    pub status: i32,
    /// Output lines that are not `@@` lines.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ScriptOut {
    /// Parses the output of a script made by [`wrap`].
    pub fn parse(out: &Output) -> Self {
        let text = out.stdout_str();
        let mut r = ScriptOut {
            status: out.status,
            stderr: out.stderr_str(),
            ..Default::default()
        };
        let mut done = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("@@") {
                if rest == "changed" {
                    r.changed = true;
                    done = true;
                } else if rest == "ok" {
                    done = true;
                } else if let Some(m) = rest.strip_prefix("fail ") {
                    r.failed = Some(m.trim().to_string());
                } else if let Some(b) = rest
                    .strip_prefix("before ")
                    .or((rest == "before").then_some(""))
                {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .unwrap_or_default();
                    r.before = Some(String::from_utf8_lossy(&bytes).into_owned());
                } else if let Some((k, v)) = rest.split_once('=') {
                    r.kv.push((k.to_string(), v.to_string()));
                }
            } else {
                r.stdout.push_str(line);
                r.stdout.push('\n');
            }
        }
        if r.failed.is_none() && (!done || out.status != 0) {
            let err = r.stderr.trim();
            r.failed = Some(if err.is_empty() {
                format!("script exited with status {}", out.status)
            } else {
                err.to_string()
            });
        }
        r
    }

    /// The value of `@@key=value` (the last one).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.kv
            .iter()
            .rev()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Quoting for scripts.
pub fn q(s: &str) -> String {
    shell_quote(s)
}

/// A file to write with [`write_file_body`].
#[derive(Debug, Clone, Default)]
pub struct FileSpec {
    /// When `dest` is a directory, write `dest/<this>` instead.
    pub basename: Option<String>,
    /// Destination path.
    pub dest: String,
    /// Octal mode text (`644`) or symbolic.
    pub mode: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Group.
    pub group: Option<String>,
    /// Keep a timestamped copy of the old file.
    pub backup: bool,
    /// Replace an existing file whose content differs (copy's `force`).
    pub force: bool,
    /// A command checking the new file; `%s` is its path.
    pub validate: Option<String>,
    /// When the atomic rename fails (a bind-mounted file such as
    /// `/etc/resolv.conf`), write the file in place instead (ansible's
    /// `unsafe_writes`).
    pub unsafe_writes: bool,
}

/// The hash commands `sum_` can take from a batch's gathered answers.
pub const HINT_SUMS: &[&str] = &[
    "md5sum",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
];

/// Whether a path can be gathered for a batch: one line (no newline), and
/// nothing that would make its `stat` or hash line ambiguous (`|`, two
/// spaces) or escaped (a backslash).
fn hintable(path: &str) -> bool {
    !path.is_empty() && !path.contains(['\n', '\\', '|']) && !path.contains("  ")
}

/// A comment line telling a batch of checks (`engine/coalesce.rs`) that
/// this script will `st_ PATH` in check mode, so the batch stats it with
/// its other checks' paths in one `stat`; empty for a path that cannot be
/// gathered. The shell ignores it when the script runs alone.
pub fn hint_stat(path: &str) -> String {
    if hintable(path) {
        format!("#@@st {path}\n")
    } else {
        String::new()
    }
}

/// As [`hint_stat`], for `sum_ CMD PATH` (CMD one of [`HINT_SUMS`]).
pub fn hint_sum(cmd: &str, path: &str) -> String {
    if hintable(path) && HINT_SUMS.contains(&cmd) {
        format!("#@@sum {cmd} {path}\n")
    } else {
        String::new()
    }
}

/// The sha256 of some bytes, as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A script body that writes standard input to `spec.dest` when its sha256
/// differs from `sha`, atomically (temp file + rename in the same
/// directory), then applies mode and ownership. Always reads all of stdin.
pub fn write_file_body(spec: &FileSpec, sha: &str) -> String {
    let validate = spec
        .validate
        .as_ref()
        .map(|v| {
            format!(
                "_v=$(t=\"$t\" sh -c {} 2>&1) || {{ rm -f \"$t\"; fail \"validation failed: $_v\"; }}",
                q(&v.replace("%s", "\"$t\""))
            )
        })
        .unwrap_or_default();
    format!(
        r#"{hints}d={dest}; want={sha}
{into_dir}
if [ -d "$d" ]; then drain; fail "$d is a directory"; fi
dn "$d"; _dd=$_dn
[ -d "$_dd" ] || {{ drain; if [ "$CHECK" = 1 ]; then C=1; return 0; fi; fail "destination directory $_dd does not exist"; }}
sum_ sha256sum "$d" 2>/dev/null; cur=$_h
if [ "$cur" != "$want" ] && {{ [ -z "$cur" ] || [ {force} = 1 ]; }}; then
  C=1; before "$d"
  if [ "$CHECK" = 1 ]; then drain; else
    t=$(mktemp "$_dd/.image-cli.XXXXXX") || {{ drain; fail "cannot create a file in $_dd"; }}
    cat > "$t" || {{ rm -f "$t"; fail "writing $d failed"; }}
    if [ -e "$d" ]; then chmod --reference="$d" "$t"; chown --reference="$d" "$t" 2>/dev/null
      {backup}
    else chmod "$(printf %o $((0666 & ~$(umask))))" "$t"; fi
    {validate}
    mv -f "$t" "$d" 2>/dev/null || {{ if [ {unsafe} = 1 ] && cat "$t" > "$d"; then rm -f "$t"; else rm -f "$t"; fail "renaming to $d failed"; fi; }}
  fi
else drain; fi
[ -e "$d" ] && attrs "$d" {mode} {owner} {group}
echo "@@dest=$d"; fattrs "$d" c
"#,
        hints = hint_stat(&spec.dest) + &hint_sum("sha256sum", &spec.dest),
        dest = q(&spec.dest),
        into_dir = spec
            .basename
            .as_ref()
            .map(|b| format!("[ -d \"$d\" ] && d=\"$d\"/{}", q(b)))
            .unwrap_or_default(),
        force = u8::from(spec.force),
        // Only when asked: a script without `$$` may run in a subshell.
        backup = if spec.backup {
            "_bk=\"$d.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"; cp -p \"$d\" \"$_bk\" && echo \"@@backup_file=$_bk\""
        } else {
            ":"
        },
        unsafe = u8::from(spec.unsafe_writes),
        mode = q(spec.mode.as_deref().unwrap_or("")),
        owner = q(spec.owner.as_deref().unwrap_or("")),
        group = q(spec.group.as_deref().unwrap_or("")),
    )
}

/// A script body that prints `@@exists=0|1` and the file's content as
/// `@@content=BASE64`.
pub fn read_file_body(path: &str) -> String {
    format!(
        "{}p={}\nif [ -f \"$p\" ]; then echo @@exists=1; st_ \"$p\"; [ -n \"$_sa\" ] && {{ echo \"@@stat=$_sa $_su $_sg $_sui $_sgi\"; }}; printf '@@content='; b64 \"$p\"; echo; fattrs \"$p\" c; else echo @@exists=0; fi\n",
        hint_stat(path),
        q(path)
    )
}

/// Decodes the `@@content=` of [`read_file_body`]; `None` when absent.
pub fn read_content(out: &ScriptOut) -> Option<String> {
    if out.get("exists") != Some("1") {
        return None;
    }
    let b = base64::engine::general_purpose::STANDARD
        .decode(out.get("content").unwrap_or("").trim())
        .unwrap_or_default();
    Some(String::from_utf8_lossy(&b).into_owned())
}

/// True when a `@@stat=MODE USER GROUP UID GID` line already matches the
/// wanted numeric mode and ownership (so no write is needed).
pub fn stat_matches(stat: &str, spec: &FileSpec) -> bool {
    let f: Vec<&str> = stat.split_whitespace().collect();
    if f.len() < 5 {
        return false;
    }
    let mode_ok = match &spec.mode {
        None => true,
        Some(m) if m.bytes().all(|b| b.is_ascii_digit()) => f[0] == m,
        Some(_) => false,
    };
    let owner_ok = spec.owner.as_ref().is_none_or(|o| o == f[1] || o == f[3]);
    let group_ok = spec.group.as_ref().is_none_or(|g| g == f[2] || g == f[4]);
    mode_ok && owner_ok && group_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_starting_with_before_are_keys_not_the_old_content() {
        let out = Output {
            status: 0,
            stdout: b"@@before_state=file\n@@before aGk=\n@@changed\n".to_vec(),
            stderr: Vec::new(),
        };
        let r = ScriptOut::parse(&out);
        assert_eq!(r.get("before_state"), Some("file"));
        assert_eq!(r.before.as_deref(), Some("hi"));
        let empty = Output {
            status: 0,
            stdout: b"@@before \n@@ok\n".to_vec(),
            stderr: Vec::new(),
        };
        assert_eq!(ScriptOut::parse(&empty).before.as_deref(), Some(""));
    }
}
