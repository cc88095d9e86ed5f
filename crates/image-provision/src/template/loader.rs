//! `{% include %}`, `{% import %}` and `{% extends %}` in template files
//! (the `template` module, the `template` lookup): the named file is
//! searched next to the including template, then in each directory of the
//! search path (its `templates/` first), as ansible-core's template action
//! sets its loader's search path. As there, an included file's last
//! newline is dropped.

use std::path::{Path, PathBuf};

use minijinja::{Environment, Error, ErrorKind, Value};

/// The search path for a template file at `path`: its directory, then
/// `templates/` and the directory itself for each of `dirs`.
pub(super) fn search_path(path: Option<&Path>, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    for d in dirs {
        out.push(d.join("templates"));
        out.push(d.clone());
    }
    out
}

/// The directories in a context's `__search_dirs` (the engine's search
/// path of the task).
pub(super) fn dirs_of(v: Option<Value>) -> Vec<PathBuf> {
    v.and_then(|v| {
        v.try_iter()
            .ok()
            .map(|it| it.filter_map(|x| x.as_str().map(PathBuf::from)).collect())
    })
    .unwrap_or_default()
}

/// `base` with a loader reading included templates from `search`.
pub(super) fn file_env<'s>(base: &Environment<'s>, search: Vec<PathBuf>) -> Environment<'s> {
    let mut env = base.clone();
    env.set_loader(move |name| {
        let rel = Path::new(name);
        let found = if rel.is_absolute() {
            rel.is_file().then(|| rel.to_path_buf())
        } else {
            search.iter().map(|d| d.join(rel)).find(|p| p.is_file())
        };
        let Some(p) = found else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&p).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot read template {}: {e}", p.display()),
            )
        })?;
        // ansible's Jinja drops an included file's last newline (only the
        // top template keeps its own).
        let text = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        Ok(Some(
            super::syntax::percent_format_template(text).into_owned(),
        ))
    });
    env
}
