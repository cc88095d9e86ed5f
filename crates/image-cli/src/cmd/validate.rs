//! `image-cli validate`: every static check `build` makes, and nothing
//! more: load and resolve the definition, check that the files it names
//! exist, then parse every step list and load every goss file (its
//! `verify` and `test_verify` files, with the build's vars) with the same
//! loaders `build` uses — a definition `validate` accepts is one `build`
//! does not refuse as bad input ([`image_cli::pipeline::validate_plans`]).
//! All problems are printed at once.

use clap::Args as ClapArgs;
use image_cli::pipeline::validate_plans;

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
    let plans = &loaded.resolved.plans;
    let mut unique = loaded.resolved.warnings.clone();
    unique.extend(validate_plans(plans));
    report::diagnostics(&unique);
    if unique.has_errors() {
        return Exit::BadInput;
    }
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let noun = if names.len() == 1 { "build" } else { "builds" };
    report::out_line(&format!(
        "{}: {} {noun} valid: {}",
        loaded.spec.name(),
        names.len(),
        names.join(", ")
    ));
    Exit::Ok
}
