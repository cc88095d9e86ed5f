//! `assemble`: concatenates the files of a directory (sorted by name) into
//! `dest`, as ansible does: a newline between fragments when the previous
//! one does not end with one, `delimiter` (escapes decoded, newline added)
//! between fragments, `regexp` filtering the names (a search), hidden files
//! skipped with `ignore_hidden`. The fragments are read from the target
//! (`remote_src`, the default) or from the controller's `files/`; the
//! result is written like `copy` (mode, owner, group, backup, validate).
//! Returns `src`, `dest`, `checksum`, `md5sum`, `msg: OK` and the file keys.
//!
//! With `remote_src`, the script that reads the fragments also reports the
//! destination's sha256 and attributes, so an unchanged `dest` costs that
//! one round trip (the write script runs only when something differs).

use async_trait::async_trait;
use base64::Engine as _;
use fancy_regex::Regex;
use serde_json::Value as Json;

use super::{file_spec, write_content, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Largest fragment read (bytes).
const MAX_FRAGMENT: u64 = 16 << 20;
/// Most fragments read.
const MAX_FRAGMENTS: usize = 10_000;

/// The `assemble` module.
pub struct Assemble;

#[async_trait]
impl Module for Assemble {
    fn name(&self) -> &'static str {
        "assemble"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "src",
            "dest",
            "delimiter",
            "regexp",
            "ignore_hidden",
            "remote_src",
            "backup",
            "validate",
            "decrypt",
            "mode",
            "owner",
            "group",
            "unsafe_writes",
            "attributes",
            "seuser",
            "serole",
            "setype",
            "selevel",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["src", "dest"]
    }
    /// A probe: the check reads the fragments and `dest` and writes nothing (`write_content` in check mode).
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let src = args.str("src")?;
        let dest = args.str("dest")?;
        let re = match args.opt_str("regexp") {
            Some(r) => Some(
                Regex::new(&r)
                    .map_err(|e| ModuleError::Arg(format!("Invalid Regexp ({e}) in \"{r}\"")))?,
            ),
            None => None,
        };
        if let Some(v) = args.opt_str("validate") {
            if !v.contains("%s") {
                return Ok(ModuleResult::fail(format!("validate must contain %s: {v}")));
            }
        }
        let mut dest_state = None;
        let fragments = if args.bool_or("remote_src", true)? {
            match remote_fragments(ctx, &src, &dest).await? {
                Ok((f, out)) => {
                    dest_state = Some(out);
                    f
                }
                Err(msg) => return Ok(ModuleResult::fail(msg)),
            }
        } else {
            let dir = ctx.find_local(&src, "files")?;
            tokio::task::spawn_blocking(move || local_fragments(&dir))
                .await
                .map_err(|e| ModuleError::Arg(format!("reading {src}: {e}")))??
        };
        let content = assemble(
            fragments,
            args.opt_str("delimiter").as_deref(),
            re.as_ref(),
            args.bool_or("ignore_hidden", false)?,
        );
        let spec = file_spec(args, dest)?;
        let mut r = match dest_state.and_then(|out| unchanged(&out, &spec, &content)) {
            Some(r) => r,
            None => write_content(ctx, &spec, &content, None).await?,
        };
        if !r.failed {
            r.data.insert("src".into(), Json::String(src));
            r.data.insert("msg".into(), "OK".into());
        }
        Ok(r)
    }
}

/// The result [`write_content`] gives for an unchanged file, when the
/// fragments script found `dest` already holding `content` with the
/// wanted mode and ownership; `None` when it did not.
fn unchanged(
    out: &crate::script::ScriptOut,
    spec: &crate::script::FileSpec,
    content: &[u8],
) -> Option<ModuleResult> {
    let same = out.get("dest_sha256") == Some(crate::script::sha256_hex(content).as_str())
        && out
            .get("st")
            .is_some_and(|st| crate::script::stat_matches(st, spec));
    if !same {
        return None;
    }
    let mut r = ModuleResult::ok();
    r.data
        .insert("dest".into(), Json::String(spec.dest.clone()));
    r.data
        .insert("path".into(), Json::String(spec.dest.clone()));
    super::path_info::insert(out, &mut r.data);
    r.data
        .insert("checksum".into(), Json::String(super::sha1_hex(content)));
    r.data
        .insert("md5sum".into(), Json::String(super::md5_hex(content)));
    Some(r)
}

/// Fragments with their names, and the script's output (the state of
/// `dest`: `@@dest_sha256`, `@@st`, `@@fattrs`).
type Fragments = (Vec<(String, Vec<u8>)>, crate::script::ScriptOut);

/// The regular files of `src` on the target: (name, content), or the
/// failure message.
async fn remote_fragments(
    ctx: &ModuleCtx<'_>,
    src: &str,
    dest: &str,
) -> Result<Result<Fragments, String>, ModuleError> {
    let body = format!(
        r#"s={s}
[ -e "$s" ] || fail "Source ($s) does not exist"
[ -d "$s" ] || fail "Source ($s) is not a directory"
for f in "$s"/* "$s"/.*; do
  [ -f "$f" ] || continue
  [ "$(wc -c < "$f")" -le {max} ] || fail "fragment $f is larger than {max} bytes"
  printf '@@frag=%s ' "$(printf '%s' "${{f##*/}}" | base64 -w0)"; b64 "$f"; echo
done
d={d}
if [ -f "$d" ] && [ ! -L "$d" ]; then
  _h=$(sha256sum "$d" 2>/dev/null) && echo "@@dest_sha256=${{_h%% *}}"
  stat -c '@@st=%a %U %G %u %g' "$d" 2>/dev/null; fattrs "$d"
fi"#,
        s = q(src),
        d = q(dest),
        max = MAX_FRAGMENT
    );
    let out = ctx.run_script(&body, None).await?;
    if let Some(f) = out.failed {
        return Ok(Err(f));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut frags = Vec::new();
    for (k, v) in &out.kv {
        if k != "frag" {
            continue;
        }
        let (name, data) = v.split_once(' ').unwrap_or((v.as_str(), ""));
        let name = b64.decode(name.trim()).map_err(|e| {
            ModuleError::Arg(format!("assemble: bad fragment name from the target: {e}"))
        })?;
        let data = b64.decode(data.trim()).map_err(|e| {
            ModuleError::Arg(format!("assemble: bad fragment from the target: {e}"))
        })?;
        frags.push((String::from_utf8_lossy(&name).into_owned(), data));
        if frags.len() > MAX_FRAGMENTS {
            return Ok(Err(format!("{src}: more than {MAX_FRAGMENTS} fragments")));
        }
    }
    Ok(Ok((frags, out)))
}

/// The regular files of a controller directory: (name, content).
fn local_fragments(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>, ModuleError> {
    let err = |e: std::io::Error| ModuleError::Arg(format!("{}: {e}", dir.display()));
    let mut frags = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let p = entry.path();
        let meta = std::fs::metadata(&p).map_err(err)?;
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_FRAGMENT || frags.len() >= MAX_FRAGMENTS {
            return Err(ModuleError::Arg(format!(
                "{}: fragments too large or too many",
                dir.display()
            )));
        }
        let data = std::fs::read(&p).map_err(err)?;
        frags.push((entry.file_name().to_string_lossy().into_owned(), data));
    }
    Ok(frags)
}

/// ansible's `assemble_from_fragments` over (name, content) pairs.
fn assemble(
    mut fragments: Vec<(String, Vec<u8>)>,
    delimiter: Option<&str>,
    re: Option<&Regex>,
    ignore_hidden: bool,
) -> Vec<u8> {
    fragments.sort_by(|a, b| a.0.cmp(&b.0));
    let delim = delimiter.filter(|d| !d.is_empty()).map(unescape);
    let mut out = Vec::new();
    let (mut first, mut add_newline) = (true, false);
    for (name, data) in fragments {
        if re.is_some_and(|r| !r.is_match(&name).unwrap_or(false)) {
            continue;
        }
        if ignore_hidden && name.starts_with('.') {
            continue;
        }
        if add_newline {
            out.push(b'\n');
        }
        if !first {
            if let Some(d) = &delim {
                out.extend_from_slice(d);
                if d.last() != Some(&b'\n') {
                    out.push(b'\n');
                }
            }
        }
        out.extend_from_slice(&data);
        first = false;
        add_newline = !data.ends_with(b"\n");
    }
    out
}

/// Python's `codecs.escape_decode` for the usual escapes (`\n`, `\t`, `\r`,
/// `\\`, `\'`, `\"`, `\xHH`, octal `\NNN`); others are kept as written.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if i + 2 <= b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i..i + 2]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.extend_from_slice(b"\\x"),
                }
            }
            b'\\' | b'\'' | b'"' => out.push(c),
            b'\n' => {}
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frags(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, c)| (n.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn sorted_with_newlines_between_unterminated_fragments() {
        let out = assemble(
            frags(&[("b", "b\n"), ("a", "a"), ("c", "c")]),
            None,
            None,
            false,
        );
        assert_eq!(String::from_utf8(out).unwrap(), "a\nb\nc");
    }

    #[test]
    fn delimiters_regexp_and_hidden_files() {
        let re = Regex::new("^[0-9]").unwrap();
        let list = frags(&[
            ("10-x", "x\n"),
            ("20-y", "y\n"),
            ("skip", "s\n"),
            (".0h", "h\n"),
        ]);
        let out = assemble(list.clone(), Some("### \\x41"), Some(&re), false);
        assert_eq!(String::from_utf8(out).unwrap(), "x\n### A\ny\n");
        let out = assemble(list, Some("--\\n"), None, true);
        assert_eq!(String::from_utf8(out).unwrap(), "x\n--\ny\n--\ns\n");
    }
}
