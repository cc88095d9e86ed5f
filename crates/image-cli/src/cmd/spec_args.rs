//! The flags every command that works on an image definition takes — the
//! definition itself, `--var`, `--var-file`, `--only`, `--except` — and
//! turning them into resolved [`Plan`](image_core::spec::Plan)s with
//! [`image_core::spec::load`].
//!
//! Use it in a command's `Args` with `#[command(flatten)]`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use image_core::diag::Diagnostics;
use image_core::spec::load::{self, Loaded, Request};
use image_core::spec::Selection;

/// Which definition, which variables, which builds.
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// The image definition (YAML). Omitted: the built-in Kubernetes node
    /// definition.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,

    /// Set a variable (repeatable). Lists are comma-separated
    /// (`--var ami_regions=us-east-1,eu-west-1`); booleans and numbers are
    /// converted by the variable's type.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// Read variables from a JSON or YAML file (repeatable; later files
    /// win, `--var` wins over all files).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,

    /// Only these builds: comma-separated names or globs.
    #[arg(long, value_name = "LIST")]
    pub only: Vec<String>,

    /// All builds but these: comma-separated names or globs.
    #[arg(long, value_name = "LIST")]
    pub except: Vec<String>,
}

impl SpecArgs {
    /// The library request these flags describe.
    pub fn request(&self) -> Request {
        Request {
            spec: self.spec.clone(),
            var_files: self.var_files.clone(),
            vars: self.vars.clone(),
            selection: Selection::from_lists(&self.only, &self.except),
        }
    }

    /// Reads the definition and var files and resolves the selected builds,
    /// with `timestamp` = now (or `SOURCE_DATE_EPOCH` when set, for
    /// reproducible names).
    pub fn load(&self) -> Result<Loaded, Diagnostics> {
        let req = self.request();
        let now = now();
        tracing::info!(
            spec = %req.spec.as_ref().map_or("<builtin>".into(), |p| p.display().to_string()),
            var_files = req.var_files.len(),
            vars = req.vars.len(),
            now,
            "loading image definition"
        );
        let loaded = load::load(&req, now)?;
        // From here on every output of the process masks the definition's
        // sensitive values (logs, events, reports, JSON lines).
        image_core::redact::global().absorb(&loaded.resolved.redactor);
        for p in &loaded.resolved.plans {
            tracing::debug!(build = %p.name, ami_name = %loaded.resolved.mask(&p.ami_name), "resolved");
        }
        Ok(loaded)
    }
}

/// Unix seconds: `SOURCE_DATE_EPOCH` when set to a number, else the clock.
pub fn now() -> i64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    {
        return epoch;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
