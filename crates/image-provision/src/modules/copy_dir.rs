//! `copy` of a local directory, as ansible's copy action does it: `src:
//! files/tree` copies the directory itself into `dest` (`dest/tree/...`),
//! `src: files/tree/` (trailing slash) copies its contents (`dest/...`).
//! Directories are made first (one script: missing ones get
//! `directory_mode`, owner and group, and every directory of the source
//! tree gets them again, as ansible's per-directory `file` calls), then each
//! file is written like a single-file copy (`mode` applies to files only).
//! Symlinks in the source are followed (`local_follow`, the default).
//!
//! The directory script also reports the sha256 and the attributes of every
//! destination file (one `sha256sum`, one `stat`), so a file already as
//! wanted costs nothing more: an unchanged tree is one round trip, and only
//! files that differ are written (one round trip each).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::{write_content, Args, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{q, FileSpec, ScriptOut};

/// Most files one directory copy sends.
const MAX_FILES: usize = 5_000;
/// Most files whose state the directory script reports.
const MAX_CHECKED: usize = 256;
/// Deepest directory nesting followed.
const MAX_DEPTH: usize = 64;

/// A walked source tree: directories and files, relative to the copy's
/// destination directory, sorted.
#[derive(Debug, Default, PartialEq)]
struct Tree {
    dirs: Vec<String>,
    files: Vec<(String, PathBuf)>,
}

/// Copies the local directory `path` (given as `src`) under `spec.dest`.
pub async fn run(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    src: &str,
    path: &Path,
    spec: &FileSpec,
) -> Result<ModuleResult, ModuleError> {
    let prefix = if src.ends_with('/') {
        String::new()
    } else {
        path.file_name()
            .map(|n| format!("{}/", n.to_string_lossy()))
            .unwrap_or_default()
    };
    let root = path.to_path_buf();
    let pre = prefix.clone();
    let tree = tokio::task::spawn_blocking(move || walk(&root, &pre))
        .await
        .map_err(|e| ModuleError::Arg(format!("walking {}: {e}", path.display())))??;
    let base = spec.dest.trim_end_matches('/').to_string();
    let base = if base.is_empty() {
        "/".to_string()
    } else {
        base
    };
    let join = |rel: &str| format!("{}/{}", base.trim_end_matches('/'), rel);

    // The destination directory, the top of the copied tree, and every
    // source directory.
    let mut top = vec![base.clone()];
    if !prefix.is_empty() {
        top.push(join(prefix.trim_end_matches('/')));
    }
    let listed: Vec<String> = tree.dirs.iter().map(|d| join(d)).collect();
    let dests: Vec<String> = tree.files.iter().map(|(rel, _)| join(rel)).collect();
    let out = make_dirs_listed(ctx, args, &top, &listed, &state_body(&dests)).await?;
    let mut r = ModuleResult::changed(out.changed);
    if let Some(f) = out.failed {
        return Ok(ModuleResult::fail(f));
    }
    let state = State::parse(&out);
    for ((_, local), dest) in tree.files.iter().zip(&dests) {
        let content = tokio::fs::read(local)
            .await
            .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", local.display())))?;
        let file = FileSpec {
            basename: None,
            dest: dest.clone(),
            ..spec.clone()
        };
        if state.matches(dest, &crate::script::sha256_hex(&content), &file) {
            continue;
        }
        let one = write_content(ctx, &file, &content, None).await?;
        r.changed |= one.changed;
        r.diff.extend(one.diff);
        if one.failed {
            r.failed = true;
            r.msg = one.msg;
            break;
        }
    }
    r.data
        .insert("dest".into(), Json::String(format!("{base}/")));
    // ansible: the source as found on the controller, slash kept.
    let slash = if src.ends_with('/') { "/" } else { "" };
    let found = format!(
        "{}{slash}",
        path.display().to_string().trim_end_matches('/')
    );
    r.data.insert("src".into(), Json::String(found));
    Ok(r)
}

/// Makes `dirs` (and their missing parents) with `directory_mode`, owner
/// and group; `@@changed` when one was made.
pub async fn make_dirs(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    dirs: &[String],
) -> Result<ScriptOut, ModuleError> {
    make_dirs_listed(ctx, args, dirs, &[], "").await
}

/// Script lines reporting the destination files' sha256 (`sha256sum`
/// lines on standard output) and attributes (`@@st=MODE USER GROUP UID
/// GID|PATH`), one command each for all of them.
fn state_body(dests: &[String]) -> String {
    // The paths go on the command line: a large tree is not checked ahead
    // (each file's own write script checks it).
    if dests.is_empty() || dests.len() > MAX_CHECKED {
        return String::new();
    }
    let all: Vec<String> = dests.iter().map(|d| q(d)).collect();
    let all = all.join(" ");
    format!(
        "sha256sum -- {all} 2>/dev/null
stat -c '@@st=%a %U %G %u %g|%n' -- {all} 2>/dev/null
true
"
    )
}

/// What [`state_body`] found on the target.
#[derive(Debug, Default)]
struct State {
    /// Path -> sha256.
    sha: std::collections::HashMap<String, String>,
    /// Path -> `MODE USER GROUP UID GID`.
    stat: std::collections::HashMap<String, String>,
}

impl State {
    fn parse(out: &ScriptOut) -> Self {
        let mut st = State::default();
        for l in out.stdout.lines() {
            // `HASH  PATH`; a path sha256sum had to escape (`\HASH ...`)
            // is not recognised, so that file is written as usual.
            if let Some((h, p)) = l.split_once("  ") {
                if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    st.sha.insert(p.to_string(), h.to_string());
                }
            }
        }
        for (k, v) in &out.kv {
            if let ("st", Some((attrs, path))) = (k.as_str(), v.split_once('|')) {
                st.stat.insert(path.to_string(), attrs.to_string());
            }
        }
        st
    }

    /// True when `dest` is a file with content `sha` and the spec's mode
    /// and ownership (symbolic modes never match: the file is written).
    fn matches(&self, dest: &str, sha: &str, spec: &FileSpec) -> bool {
        self.sha.get(dest).is_some_and(|h| h == sha)
            && self
                .stat
                .get(dest)
                .is_some_and(|s| crate::script::stat_matches(s, spec))
    }
}

/// [`make_dirs`] of `made`, then of `listed`, whose attributes are applied
/// also when they exist, then the script lines `tail`.
async fn make_dirs_listed(
    ctx: &ModuleCtx<'_>,
    args: &Args,
    made: &[String],
    listed: &[String],
    tail: &str,
) -> Result<ScriptOut, ModuleError> {
    let attrs = format!(
        "{} {} {}",
        q(args.mode("directory_mode")?.as_deref().unwrap_or("")),
        q(args.opt_str("owner").as_deref().unwrap_or("")),
        q(args.opt_str("group").as_deref().unwrap_or(""))
    );
    let mut body = String::new();
    for d in made {
        body.push_str(&format!("mkd {} {attrs}\n", q(d)));
    }
    for d in listed {
        body.push_str(&format!(
            "mkd {d} {attrs}; if [ -d {d} ]; then attrs {d} {attrs}; fi\n",
            d = q(d)
        ));
    }
    body.push_str(tail);
    ctx.run_script(&body, None).await
}

/// The tree under `root`, paths prefixed with `prefix` (`tree/` or empty).
fn walk(root: &Path, prefix: &str) -> Result<Tree, ModuleError> {
    let mut tree = Tree::default();
    let mut stack = vec![(root.to_path_buf(), prefix.to_string(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(ModuleError::Arg(format!(
                "{}: nested deeper than {MAX_DEPTH} directories (a symlink loop?)",
                dir.display()
            )));
        }
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", dir.display())))?;
        for entry in rd {
            let entry =
                entry.map_err(|e| ModuleError::Arg(format!("reading {}: {e}", dir.display())))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = std::fs::metadata(&p)
                .map_err(|e| ModuleError::Arg(format!("cannot stat {}: {e}", p.display())))?;
            let r = format!("{rel}{name}");
            if meta.is_dir() {
                tree.dirs.push(r.clone());
                stack.push((p, format!("{r}/"), depth + 1));
            } else {
                tree.files.push((r, p));
                if tree.files.len() > MAX_FILES {
                    return Err(ModuleError::Arg(format!(
                        "{}: more than {MAX_FILES} files to copy",
                        root.display()
                    )));
                }
            }
        }
    }
    tree.dirs.sort();
    tree.files.sort();
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tree/sub/empty")).unwrap();
        std::fs::write(d.path().join("tree/a.txt"), "a").unwrap();
        std::fs::write(d.path().join("tree/sub/b.txt"), "b").unwrap();
        d
    }

    #[test]
    fn without_a_slash_the_directory_itself_is_copied() {
        let d = fixture();
        let t = walk(&d.path().join("tree"), "tree/").unwrap();
        assert_eq!(t.dirs, ["tree/sub", "tree/sub/empty"]);
        let files: Vec<&str> = t.files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(files, ["tree/a.txt", "tree/sub/b.txt"]);
    }

    #[test]
    fn with_a_slash_its_contents_are() {
        let d = fixture();
        let t = walk(&d.path().join("tree"), "").unwrap();
        assert_eq!(t.dirs, ["sub", "sub/empty"]);
        let files: Vec<&str> = t.files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(files, ["a.txt", "sub/b.txt"]);
    }
}
