//! Printing diagnostics: everything the user has to fix goes to stderr,
//! sorted by file and position, errors and warnings interleaved.

use image_core::diag::Diagnostics;

/// Prints `diags` (sorted, duplicates removed) to stderr.
pub fn diagnostics(diags: &Diagnostics) {
    let text = diags.clone().sorted().to_string();
    eprint!("{text}");
}
