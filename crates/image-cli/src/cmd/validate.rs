//! `image-cli validate`: every static check `build` makes, and nothing
//! more: load and resolve the definition, check that the files it names
//! exist, then parse every step list and load every goss file (its
//! `verify` and `test_verify` files, with the build's vars) with the same
//! loaders `build` uses — a definition `validate` accepts is one `build`
//! does not refuse as bad input. All problems are printed at once.

use std::sync::Arc;

use clap::Args as ClapArgs;
use image_cli::pipeline::{load_verify_files, PlanHook};
use image_core::diag::Diagnostics;
use image_core::events::NoEvents;
use image_core::spec::load::check_files;
use image_core::spec::{FileRef, Plan};

use crate::cmd::spec_args::SpecArgs;
use crate::exit::Exit;
use crate::report;

/// Arguments of `validate`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// The problems of the plans' step lists and goss files, as `build` (and
/// `test`, for `test_verify`) would find them before any EC2 call.
pub fn check_plan_files(plans: &[Plan]) -> Diagnostics {
    let mut diags = Diagnostics::default();
    match PlanHook::prepare(plans, Arc::new(NoEvents)) {
        Ok(hook) => diags.extend(hook.warnings().clone()),
        Err(d) => diags.extend(d),
    }
    for p in plans {
        // By default test_verify is verify, already loaded above.
        let extra: Vec<FileRef> = p
            .test_verify
            .iter()
            .filter(|f| !p.verify.iter().any(|v| v.path == f.path))
            .cloned()
            .collect();
        if !extra.is_empty() {
            load_verify_files(p, &extra, &mut diags);
        }
    }
    diags
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
    let mut diags = loaded.resolved.warnings.clone();
    diags.extend(check_files(plans));
    if !diags.has_errors() {
        diags.extend(check_plan_files(plans));
    }
    // Builds sharing a file would report its problems once each.
    let mut unique = Diagnostics::default();
    for d in diags.0 {
        if !unique.0.contains(&d) {
            unique.push(d);
        }
    }
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
