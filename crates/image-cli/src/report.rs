//! Printing diagnostics: everything the user has to fix goes to stderr,
//! sorted by file and position, errors and warnings interleaved; and a
//! failed build or test: why, and what it left in AWS. Everything printed
//! here goes through [`image_core::redact::global`].

use image_aws::BuildError;
use image_core::diag::Diagnostics;
use image_core::redact;

/// Prints `diags` (sorted, duplicates removed) to stderr.
pub fn diagnostics(diags: &Diagnostics) {
    let text = diags.clone().sorted().to_string();
    eprint!("{}", redact::global().redact(&text));
}

/// Prints one line to stderr, sensitive values masked.
pub fn err_line(text: &str) {
    eprintln!("{}", redact::global().redact(text));
}

/// Prints one line to stdout, sensitive values masked.
pub fn out_line(text: &str) {
    println!("{}", redact::global().redact(text));
}

/// Prints why `e` failed (or where it was cancelled) and what it left in
/// AWS, to stderr. `what` names the run: `build`, `test of`.
pub fn build_error(what: &str, e: &BuildError) {
    if e.is_cancelled() {
        err_line(&format!(
            "{what} `{}`: cancelled at step {}",
            e.build, e.step
        ));
    } else {
        err_line(&format!("error: {e}"));
    }
    if !e.left.is_empty() {
        err_line(&format!(
            "{what} `{}` left in AWS (build id {}; delete with `image-cli cleanup --yes`):",
            e.build, e.build_id
        ));
        for r in &e.left {
            err_line(&format!("  - {r}"));
        }
    }
}
