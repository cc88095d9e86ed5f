//! `image-verify`: the goss-equivalent verifier. It reads gossfiles (goss's
//! YAML, rendered first as Go templates with `--vars`), checks a host
//! through the [`image_core::target::Target`] trait, and reports structured
//! results that the image build uses to refuse an AMI and that
//! [`output`] renders as goss does.
//!
//! - [`template`]: the Go `text/template` engine (lexer, parser, evaluator).
//! - [`suite`]: loading a gossfile and its includes into resources, with
//!   `file:line` diagnostics.
//! - [`matcher`]: goss matchers, line patterns and type conversions;
//!   [`re2`]: Go's RE2 regular-expression syntax on the `regex` crate.
//! - [`resource`]: one file per resource type behind one trait, each
//!   observing all its resources in one round trip.
//! - [`gather`]: the probes of all resource types in one script, so a run
//!   costs a few round trips whatever its size.
//! - [`runner`]: concurrency, retries; [`report`]: results and exit codes.
//! - [`output`]: documentation, rspecish, json, junit, tap, silent.
//! - [`options`]: [`VerifyOptions`] and option parsing for the CLI.
//! - [`add`]: goss's `add` / `autoadd`, gossfile entries from a live host.
//! - [`plan`]: a plan's gossfiles loaded with its vars and run as pipeline
//!   steps (the build's and the test's).
//! - [`host_test`]: the test of a booted instance (`image-cli test`):
//!   gossfiles, commands, and the node [`conformance`] suite.
//!
//! ```no_run
//! # async fn demo(target: &dyn image_core::target::Target) {
//! use image_verify::{options::VerifyOptions, output::{self, OutputFormat}};
//! let opts = VerifyOptions { gossfile: "goss/goss.yaml".into(), ..Default::default() };
//! match image_verify::verify(&opts, target).await {
//!     Ok(report) => {
//!         print!("{}", output::render(&report, OutputFormat::Documentation));
//!         std::process::exit(report.exit_code().code());
//!     }
//!     Err(diags) => eprint!("{diags}"), // exit 78
//! }
//! # }
//! ```

#![deny(missing_docs)]

pub mod add;
pub mod conformance;
pub mod dnswire;
pub mod gather;
pub mod host_test;
pub mod matcher;
pub mod options;
pub mod output;
pub mod plan;
pub mod re2;
pub mod report;
pub mod resource;
pub mod runner;
pub mod suite;
pub mod template;

use image_core::diag::{Diagnostic, Diagnostics};
use image_core::target::Target;

pub use options::{TargetSpec, VerifyOptions};
pub use output::OutputFormat;
pub use report::{ExitCode, Report, Status, TestResult};
pub use runner::RunOptions;
pub use suite::Suite;

/// Loads the gossfile of `opts` (on the blocking pool) and runs it against
/// `target`. `Err` means a bad spec (exit code 78); the report's
/// [`Report::exit_code`] says the rest.
pub async fn verify(opts: &VerifyOptions, target: &dyn Target) -> Result<Report, Diagnostics> {
    let suite = load(opts).await?;
    Ok(runner::run(&suite, target, &opts.run_options()).await)
}

/// Loads the gossfile of `opts` on the blocking pool.
pub async fn load(opts: &VerifyOptions) -> Result<Suite, Diagnostics> {
    let o = opts.clone();
    tokio::task::spawn_blocking(move || o.load())
        .await
        .map_err(|e| {
            Diagnostics::from(Diagnostic::error(
                None,
                format!("loading the gossfile panicked: {e}"),
            ))
        })?
}
