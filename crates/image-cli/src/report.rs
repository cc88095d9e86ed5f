//! Printing diagnostics: everything the user has to fix goes to stderr,
//! sorted by file and position, errors and warnings interleaved; and a
//! failed build or test: why, and what it left in AWS.

use image_aws::BuildError;
use image_core::diag::Diagnostics;

/// Prints `diags` (sorted, duplicates removed) to stderr.
pub fn diagnostics(diags: &Diagnostics) {
    let text = diags.clone().sorted().to_string();
    eprint!("{text}");
}

/// Prints why `e` failed (or where it was cancelled) and what it left in
/// AWS, to stderr. `what` names the run: `build`, `test of`.
pub fn build_error(what: &str, e: &BuildError) {
    if e.is_cancelled() {
        eprintln!("{what} `{}`: cancelled at step {}", e.build, e.step);
    } else {
        eprintln!("error: {e}");
    }
    if !e.left.is_empty() {
        eprintln!(
            "{what} `{}` left in AWS (build id {}; delete with `image-cli cleanup --yes`):",
            e.build, e.build_id
        );
        for r in &e.left {
            eprintln!("  - {r}");
        }
    }
}
