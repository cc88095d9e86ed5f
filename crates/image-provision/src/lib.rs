//! `image-provision`: the ansible-equivalent step engine.
//!
//! Reads ansible task lists and playbooks (plays, roles, blocks, includes,
//! handlers, loops, tags, check and diff mode) and runs them against an
//! [`image_core::target::Target`] with no Python on the target: facts come
//! in one round trip, and every module checks and applies its change in one
//! generated `sh` script. Templates are rendered locally with minijinja.
//!
//! - [`parse`]: YAML -> typed [`task::Steps`], all errors with `file:line:col`
//!   before anything runs; files reached through `include_*` are loaded
//!   when a run reaches them, as ansible does.
//! - [`engine`]: runs the steps, emits [`image_core::events::Event`]s,
//!   returns a [`Report`].
//! - [`modules`]: one file per ansible module behind [`modules::Module`].
//! - [`template`]: ansible's filters, tests and lookups on minijinja.
//! - [`facts`], [`script`], [`diff`]: the remote fact script, the script
//!   protocol, diffs.
//!
//! ```no_run
//! # async fn demo(target: &dyn image_core::target::Target) -> Result<(), image_core::diag::Diagnostics> {
//! use image_provision::{parse, run, Options};
//! let steps = parse::load(std::path::Path::new("node.yaml"), &[])?;
//! let report = run(target, &steps, &Options::default(), &image_core::events::NoEvents).await;
//! println!("{}", report.recap);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod diff;
pub mod engine;
pub mod extra_vars;
pub mod facts;
pub mod modules;
pub mod parse;
pub mod print;
pub mod round_trips;
pub mod script;
pub mod task;
pub mod template;
pub mod when;

use std::fmt;
use std::time::Duration;

use image_core::diag::Location;
use image_core::events::Outcome;
use serde::Serialize;
use serde_json::{Map, Value as Json};

pub use engine::run;
pub use task::Steps;

/// How to run a step list.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-e` variables (highest precedence).
    pub extra_vars: Map<String, Json>,
    /// Report what would change, change nothing.
    pub check: bool,
    /// Show diffs of changed files.
    pub diff: bool,
    /// Run only tasks with these tags.
    pub tags: Vec<String>,
    /// Skip tasks with these tags.
    pub skip_tags: Vec<String>,
    /// Skip tasks until one with this name.
    pub start_at_task: Option<String>,
    /// Become root unless a play or task says otherwise.
    pub become_: bool,
    /// The default become user.
    pub become_user: Option<String>,
    /// The build name put in events.
    pub build: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_vars: Map::new(),
            check: false,
            diff: false,
            tags: Vec::new(),
            skip_tags: Vec::new(),
            start_at_task: None,
            become_: false,
            become_user: None,
            build: String::new(),
        }
    }
}

/// What one task (or one loop item) did.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    /// The task's name.
    pub task: String,
    /// Where it is written.
    #[serde(serialize_with = "ser_loc")]
    pub loc: Location,
    /// The loop item's label.
    pub item: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The message (error, debug output); hidden for `no_log`.
    pub msg: String,
    /// Diffs (empty for `no_log`).
    pub diff: Vec<diff::Diff>,
    /// Failed with `ignore_errors`.
    pub ignored: bool,
    /// The host could not be reached.
    pub unreachable: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// The module's return values (censored for `no_log`).
    pub result: Json,
}

fn ser_loc<S: serde::Serializer>(l: &Location, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&l.to_string())
}

/// Counts per outcome, as ansible's PLAY RECAP (`ok` includes `changed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Recap {
    /// Tasks that ran fine (changed or not).
    pub ok: usize,
    /// Tasks that changed something.
    pub changed: usize,
    /// Tasks that could not reach the host.
    pub unreachable: usize,
    /// Tasks that failed (not rescued, not ignored).
    pub failed: usize,
    /// Tasks skipped.
    pub skipped: usize,
    /// Blocks whose failure was rescued.
    pub rescued: usize,
    /// Failures ignored by `ignore_errors`.
    pub ignored: usize,
}

impl fmt::Display for Recap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok={} changed={} unreachable={} failed={} skipped={} rescued={} ignored={}",
            self.ok,
            self.changed,
            self.unreachable,
            self.failed,
            self.skipped,
            self.rescued,
            self.ignored
        )
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The host.
    pub host: String,
    /// Every task (one entry per loop item).
    pub results: Vec<TaskResult>,
    /// The counts.
    pub recap: Recap,
}

impl Report {
    /// True when a task failed or the host was unreachable.
    pub fn failed(&self) -> bool {
        self.recap.failed > 0 || self.recap.unreachable > 0
    }
}

/// The message shown for values of `no_log` tasks.
pub const CENSORED: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";
