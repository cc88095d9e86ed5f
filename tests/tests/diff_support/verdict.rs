//! One playbook's verdict: every difference between its run under
//! ansible-core and under image-cli (tasks via [`compare`], the run's
//! outcome, the file trees below the playbook's paths via [`tree`]). The
//! differential, RPM and VM tests all judge a playbook with it.

use super::cli::CliRun;
use super::compare;
use super::observed::Observed;
use super::tree::{self, Tree};

/// The differences of one playbook; empty when image-cli did what
/// ansible-core did. `a_failed`: whether ansible-core's run of it failed.
pub fn differences(
    a_tasks: &[Observed],
    a_failed: bool,
    ours: Option<&CliRun>,
    tree_a: &Tree,
    tree_b: &Tree,
    paths: &[String],
) -> Vec<String> {
    let mut diffs = match ours {
        Some(CliRun::Refused(d)) => vec![format!("image-cli refused it: {}", d.trim())],
        Some(CliRun::Ran { tasks, failed }) => {
            let mut d = compare::compare(a_tasks, tasks);
            if *failed != a_failed {
                d.push(format!(
                    "the run {} under ansible-core, {} under image-cli",
                    if a_failed { "failed" } else { "succeeded" },
                    if *failed { "failed" } else { "succeeded" }
                ));
            }
            d
        }
        None => vec!["image-cli did not run it".into()],
    };
    diffs.extend(tree::diff(tree_a, tree_b, paths));
    diffs
}

/// Prints both results of every task side by side (the tests' `*_SHOW=1`).
pub fn show(a_tasks: &[Observed], tasks: &[Observed]) {
    for (x, y) in a_tasks.iter().zip(tasks) {
        println!(
            "{}\n  ansible:   {}\n  image-cli: {}",
            x.name, x.result, y.result
        );
    }
}
