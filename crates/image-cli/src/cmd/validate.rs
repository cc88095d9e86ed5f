//! `image-cli validate`: load and resolve the definition, check that the
//! provision and verify files exist, print all problems at once.

use clap::Args as ClapArgs;
use image_core::spec::load::check_files;

use crate::cmd::spec_args::SpecArgs;
use crate::exit::Exit;
use crate::report;

/// Arguments of `validate`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Prints `<spec>: N builds valid: a, b` on stdout, or all problems on
/// stderr (exit 2). Warnings go to stderr either way.
pub fn run(args: &Args) -> Exit {
    let loaded = match args.spec.load() {
        Ok(l) => l,
        Err(diags) => {
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
    };
    let mut diags = loaded.resolved.warnings.clone();
    diags.extend(check_files(&loaded.resolved.plans));
    report::diagnostics(&diags);
    if diags.has_errors() {
        return Exit::BadInput;
    }
    let names: Vec<&str> = loaded
        .resolved
        .plans
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let noun = if names.len() == 1 { "build" } else { "builds" };
    println!(
        "{}: {} {noun} valid: {}",
        loaded.spec.name(),
        names.len(),
        names.join(", ")
    );
    Exit::Ok
}
