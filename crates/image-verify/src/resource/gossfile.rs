//! `gossfile`: includes. Each key is a path or a glob (`*`, `?`, `[...]`,
//! `**`), relative to the including file's directory, with an optional
//! `skip: true` that skips every resource of the included files. Includes
//! are expanded when a gossfile is loaded ([`crate::suite`]), with the same
//! template variables; nothing is observed on the target.

use std::path::{Path, PathBuf};

/// True when `s` has glob metacharacters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files an include key names, sorted. A plain path is returned as is
/// (its absence is reported when it is read); a glob matching nothing is an
/// error.
pub fn resolve(base_dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let joined = base_dir.join(pattern);
    if !is_glob(pattern) {
        return Ok(vec![joined]);
    }
    // The longest leading part without metacharacters is the walk root.
    let full = joined.to_string_lossy().into_owned();
    let cut = full.find(['*', '?', '[']).unwrap_or(full.len());
    let root_end = full[..cut].rfind('/').map_or(0, |i| i + 1);
    let root = if root_end == 0 {
        PathBuf::from(".")
    } else {
        PathBuf::from(&full[..root_end])
    };
    let rel_pattern = &full[root_end..];
    let glob = globset::GlobBuilder::new(rel_pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("bad glob `{pattern}`: {e}"))?
        .compile_matcher();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(rel) = path.strip_prefix(&root) else {
                continue;
            };
            let ft = e
                .file_type()
                .map_err(|err| format!("{}: {err}", path.display()))?;
            if ft.is_dir() {
                stack.push(path.clone());
            } else if glob.is_match(rel) {
                out.push(path.clone());
            }
        }
    }
    if out.is_empty() {
        return Err(format!("no file matches `{pattern}`"));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        for f in ["a.yaml", "b.yaml", "c.txt", "sub/d.yaml"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let got = resolve(d.path(), "*.yaml").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(resolve(d.path(), "**/*.yaml").unwrap().len(), 3);
        assert!(resolve(d.path(), "*.json").is_err());
        assert_eq!(
            resolve(d.path(), "x.yaml").unwrap(),
            vec![d.path().join("x.yaml")]
        );
    }
}
