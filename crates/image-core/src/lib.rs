//! `image-core`: the model every other crate of the workspace stands on.
//!
//! - [`spec`]: the image definition (variables, builds), loaded from YAML,
//!   templated with minijinja, validated into a resolved [`spec::Plan`] per
//!   selected build with no I/O.
//! - [`diag`]: `file:line:col` diagnostics, all problems of a file at once.
//! - [`yaml`]: YAML with positions, shared by the spec, step lists and goss files.
//! - [`target`]: the [`target::Target`] trait (run, put, get, sudo) with its
//!   [`ssh`] (ssh2) and [`local`] implementations; [`target_spec`]: this
//!   machine or a `--host`, and the one way to connect to it.
//! - [`stream`]: a command's output line by line while it runs, on any target.
//! - [`events`]: build events for progress and `--json` output.
//! - [`redact`]: the one layer sensitive values pass through on the way out.
//! - [`builtin`]: the built-in Kubernetes node image definition.

#![deny(missing_docs)]

mod become_shell;
pub mod builtin;
pub mod diag;
pub mod events;
pub mod local;
pub mod redact;
pub mod spec;
pub mod ssh;
pub mod stream;
pub mod target;
pub mod target_spec;
pub mod yaml;
