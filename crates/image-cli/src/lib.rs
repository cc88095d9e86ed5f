//! `image_cli`: what the `image-cli` binary composes and an embedder would
//! otherwise copy.
//!
//! - [`pipeline`]: [`pipeline::PlanHook`], the image-aws provisioning hook
//!   that runs a plan's step lists (image-provision) and then its goss files
//!   (image-verify); a failed check means no AMI. [`pipeline::TestHook`]:
//!   the hook of `image-cli test`, an [`image_verify::host_test::HostTest`]
//!   on an instance of the AMI (gossfiles, commands, node conformance).
//! - [`progress`]: event sinks — per-build progress lines (indicatif) and
//!   one JSON event per line.
//! - [`signals`]: SIGINT/SIGTERM to a cancel token, with the cleanup told
//!   apart from a hard exit.
//!
//! Several builds at once, as `image-cli build`: [`image_aws::batch::Batch`]
//! with a [`pipeline::PlanHook`] (`examples/build_plans.rs`).
//!
//! ```no_run
//! # async fn demo(plans: Vec<image_core::spec::Plan>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use image_aws::{build, BuildRequest, CancelToken, ClientOptions, Ec2Clients};
//! use image_cli::{pipeline::PlanHook, progress::Progress};
//! let events = Arc::new(Progress::stderr(false));
//! let hook = PlanHook::prepare(&plans, events.clone())?;
//! let ec2 = Ec2Clients::from_env(&ClientOptions::default()).await;
//! let req = BuildRequest::from_plan(&plans[0])?;
//! let res = build(&ec2, &req, &hook, events.as_ref(), CancelToken::new()).await?;
//! println!("{}", image_aws::ami_table::markdown_table(&res));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod pipeline;
pub mod progress;
pub mod signals;
