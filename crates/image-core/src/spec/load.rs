//! The I/O around the pure definition: reading the definition and var files
//! ([`load`]: everything a command line names, all problems at once) and
//! checking that the files a plan names exist ([`check_files`]).

use std::path::{Path, PathBuf};

use super::{tidy, Plan, Resolved, Selection, Spec, VarInputs};
use crate::builtin;
use crate::diag::{Diagnostic, Diagnostics};

/// What a command line asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The definition; `None` = the built-in one.
    pub spec: Option<PathBuf>,
    /// `--var-file`s, in order.
    pub var_files: Vec<PathBuf>,
    /// `--var NAME=VALUE`s, in order.
    pub vars: Vec<String>,
    /// `--only` / `--except`.
    pub selection: Selection,
}

/// A loaded definition and its resolved builds.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The definition.
    pub spec: Spec,
    /// Its resolution.
    pub resolved: Resolved,
}

impl Spec {
    /// Reads and parses the definition at `path` (named as given in
    /// diagnostics; relative paths in it resolved against its directory,
    /// made absolute).
    pub fn load(path: &Path) -> Result<Spec, Diagnostics> {
        let spec = read_spec(path)?;
        if spec.diags.has_errors() {
            return Err(spec.diags.sorted());
        }
        Ok(spec)
    }
}

/// Reads everything `req` names and resolves it with `timestamp` = `now`.
/// Every problem of every file comes back at once, sorted.
pub fn load(req: &Request, now: i64) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::default();
    let spec = match &req.spec {
        Some(path) => read_spec(path),
        None => builtin::spec_lenient(),
    };
    let mut files = Vec::new();
    for path in &req.var_files {
        match crate::yaml::read_file(path) {
            Ok(src) => files.push((path.display().to_string(), src)),
            Err(e) => diags.push(read_error("var file", path, &e)),
        }
    }
    let spec = match spec {
        Ok(s) => s,
        Err(d) => {
            diags.extend(d);
            // Still report what is wrong with the var files themselves.
            for (name, src) in &files {
                super::values::parse_var_file(name, src, &mut diags);
            }
            return Err(tidy(diags));
        }
    };
    let inputs = VarInputs {
        files,
        cli: req.vars.clone(),
    };
    match spec.resolve(&inputs, &req.selection, now) {
        Ok(resolved) if !diags.has_errors() => Ok(Loaded { spec, resolved }),
        Ok(resolved) => {
            diags.extend(resolved.warnings);
            Err(tidy(diags))
        }
        Err(d) => {
            diags.extend(d);
            Err(tidy(diags))
        }
    }
}

/// Errors for files the plans name that do not exist: provision step lists,
/// goss files, `ssh_private_key_file`, `user_data_file`.
pub fn check_files(plans: &[Plan]) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for p in plans {
        let named = p
            .provision
            .iter()
            .map(|f| ("provision file", f))
            .chain(p.verify.iter().map(|f| ("verify file", f)))
            .chain(
                // By default test_verify is verify: report each file once.
                p.test_verify
                    .iter()
                    .filter(|f| !p.verify.iter().any(|v| v.path == f.path))
                    .map(|f| ("test_verify file", f)),
            )
            .chain(
                p.ssh_private_key_file
                    .iter()
                    .map(|f| ("ssh_private_key_file", f)),
            )
            .chain(p.user_data_file.iter().map(|f| ("user_data_file", f)));
        for (what, f) in named {
            if !f.path.is_file() {
                let why = if f.path.exists() {
                    "is not a file"
                } else {
                    "not found"
                };
                diags.push(
                    Diagnostic::error(f.loc.clone(), format!("{what} `{}` {why}", f.given))
                        .with_help("relative paths are relative to the definition's directory"),
                );
            }
        }
    }
    tidy(diags)
}

fn read_spec(path: &Path) -> Result<Spec, Diagnostics> {
    let src = crate::yaml::read_file(path)
        .map_err(|e| Diagnostics::from(read_error("image definition", path, &e)))?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().unwrap_or(Path::new("")).to_path_buf();
    Spec::parse_lenient(&path.display().to_string(), &src, &dir)
}

fn read_error(what: &str, path: &Path, e: &std::io::Error) -> Diagnostic {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    Diagnostic::error(
        None,
        format!("cannot read {what} `{}`: {reason}", path.display()),
    )
    .with_help("check the path (relative paths are relative to the current directory)")
}
