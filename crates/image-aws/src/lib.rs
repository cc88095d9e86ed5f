//! `image-aws`: the EC2 backend of `image-cli` (packer `amazon-ebs`).
//!
//! [`build`] turns a [`BuildRequest`] into AMIs:
//!
//! (source AMI | key pair | security group, concurrently) -> instance ->
//! SSH connect -> [`ProvisionHook`] -> stop -> (ENA support) -> image ->
//! (register again: boot mode, TPM) -> (copies | terminate the instance) ->
//! (IMDS support) -> permissions -> deprecation -> finalize
//!
//! one module per step under [`step`], each behind one trait; the lists of
//! steps a build and a test run are in one place (`step/mod.rs`, next to
//! the step modules; the loops in `stages.rs`), and the
//! build, the dry run, [`test_instance`], cleanup and the IAM policy
//! ([`required_actions`], [`policy`]) are loops over them. Everything is tagged at creation
//! ([`cleanup::TAG_BUILD_ID`]; the key pair, group and instance also
//! [`cleanup::TAG_TEMPORARY`]) and pushed on a cleanup stack that unwinds
//! on success (key pair, group, instance), on failure and on cancellation
//! (everything, AMIs and copies too) — or, with [`OnError::Abort`], is left
//! and reported in [`BuildError::left`]. Cleanup retries throttling for
//! [`WaitSettings::cleanup_timeout_secs`]. [`cleanup::find_leftovers`]
//! finds what crashed builds left.
//!
//! A temporary security group without source CIDRs opens SSH to this
//! machine's public address only (/32), learned before the first EC2 call
//! ([`public_ip`]); if it cannot be learned the build fails, asking for
//! CIDRs. 0.0.0.0/0 is never assumed.
//!
//! The settings of a build are image-core's [`BuildSettings`], the struct
//! a definition is read into, with the rules on its values: a
//! [`BuildRequest`] holds it (and dereferences to it) beside what only a
//! run has. [`BuildRequest::for_run`] makes the requests of a definition's
//! builds with a run's [`RunOptions`], as `image-cli build` and `test` do.
//!
//! [`batch::Batch`] runs several builds at once (a limit, one cancel token,
//! one run id, the manifest appended as each finishes), as `image-cli build`.
//!
//! [`test_instance`] launches an instance from an existing AMI the same way
//! (key pair, security group, instance, SSH), runs a hook that tests it, and
//! always deletes everything it made; no image is created.
//!
//! This crate knows nothing of provisioning: it calls the hook with an
//! `Arc<dyn Target>` once SSH is up. The SSH client comes through a
//! [`Connector`]: [`build`] uses [`SshConnector`] (`image_core::ssh`),
//! [`build_with`] takes any.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use image_aws::*;
//! let ec2 = Ec2Clients::from_env(&ClientOptions::default()).await;
//! let mut req = BuildRequest::new("ubuntu", "us-east-1",
//!     SourceAmi::Id("ami-123".into()), "t3.large", "ubuntu-k8s-1");
//! req.security_group = SecurityGroupSpec::Temporary { source_cidrs: vec!["198.51.100.7/32".into()] };
//! req.ami_regions = vec!["eu-west-1".to_string()].into();
//! # let connector = NoConnector;
//! let res = build_with(&ec2, &req, &NoProvisioning, &connector,
//!     &image_core::events::NoEvents, CancelToken::new()).await?;
//! println!("{}", ami_table::markdown_table(&res));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod ami_table;
pub mod batch;
pub mod cleanup;
mod clients;
mod dry_run_report;
mod error;
mod from_plan;
mod hook;
mod launch;
pub mod manifest;
mod mark;
pub mod policy;
pub mod public_ip;
pub mod region_check;
pub mod regions;
mod request;
mod resource;
mod stages;
pub mod step;
mod wait;
pub mod wait_env;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use image_core::events::{Event, EventSink, NoEvents, Outcome};
use serde::Serialize;

pub use cleanup::{CleanupFailure, Leftover, Resource};
pub use clients::{ClientOptions, Ec2Clients};
pub use error::{AwsError, BuildError, Step, StepError};
pub use from_plan::{PlanError, RunOptions};
pub use hook::{HookError, NoProvisioning, NotConnected, ProvisionHook};
pub use launch::{test_actions, test_instance, TestResult};
pub use request::{
    ami_options, AmiFilter, AmiOptions, AmiRegions, Architecture, BuildRequest, BuildSettings,
    KeyPairSpec, MetadataOptions, OnError, RootDevice, SecurityGroupSpec, SourceAmi, SpotOptions,
    SshInterface, SshSpec, VolumeType, WaitSettings,
};
pub use step::connect::{Connector, NoConnector, SshConnector, SshSettings};
pub use step::image::ImageInfo;
pub use step::instance::InstanceInfo;
pub use step::key_pair::PrivateKey;
pub use step::source_ami::SourceImage;
pub use step::KMS_ACTIONS;

/// Cancels a build: the CLI wires SIGINT/SIGTERM to it.
pub type CancelToken = tokio_util::sync::CancellationToken;

/// The EC2 SDK this crate is built on ([`Ec2Clients::client`] returns its client).
pub use aws_sdk_ec2;

use step::{Ctx, State};

/// What a successful build made.
#[derive(Debug, Serialize)]
pub struct BuildResult {
    /// The build's name.
    pub build: String,
    /// The build id (`image-builder:build-id` tag on everything it made).
    pub build_id: String,
    /// The run uuid (manifest `packer_run_uuid`).
    pub run_uuid: String,
    /// Unix time the build finished.
    pub build_time: i64,
    /// The source AMI.
    pub source: SourceImage,
    /// The instance that was imaged (terminated by now).
    pub instance_id: String,
    /// AMI id per region (build region and copies).
    pub amis: BTreeMap<String, String>,
    /// AMI and snapshots per region.
    pub images: BTreeMap<String, ImageInfo>,
    /// The request's `custom_data`.
    pub custom_data: BTreeMap<String, String>,
    /// Temporary resources that could not be deleted (the AMIs are fine).
    #[serde(skip)]
    pub cleanup_failures: Vec<CleanupFailure>,
    /// `ami_regions: all` only: regions whose copy failed (and was deleted),
    /// with why. The AMIs in `amis` are complete.
    pub failed_regions: BTreeMap<String, String>,
}

/// The actions (`ec2:`, and `kms:`/`iam:` where the settings need them) a
/// build, its dry run and a test with these settings may call: the union of
/// what each stage declares (for an IAM policy).
pub fn required_actions(req: &BuildRequest) -> BTreeSet<&'static str> {
    stages::actions(req)
}

/// Runs a build, reaching the instance with [`SshConnector`]
/// (`image_core::ssh`). See [`build_with`].
pub async fn build(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    hook: &dyn ProvisionHook,
    events: &dyn EventSink,
    cancel: CancelToken,
) -> Result<BuildResult, BuildError> {
    build_with(ec2, req, hook, &SshConnector, events, cancel).await
}

/// What a run's steps share that is not the request.
pub(crate) struct RunParts<'a> {
    pub hook: Option<&'a dyn ProvisionHook>,
    pub connector: &'a dyn Connector,
    pub learned_address: bool,
}

fn new_ctx<'a>(
    ec2: &'a Ec2Clients,
    req: &'a BuildRequest,
    events: &'a dyn EventSink,
    cancel: CancelToken,
    parts: RunParts<'a>,
) -> Ctx<'a> {
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ctx {
        ec2,
        req,
        events,
        cancel,
        build_id: uuid::Uuid::new_v4().to_string(),
        created,
        stack: Default::default(),
        failed_regions: Default::default(),
        hook: parts.hook,
        connector: parts.connector,
        learned_address: parts.learned_address,
    }
}

/// Runs a build: creates the temporary resources, calls `hook` once the
/// instance is reachable through `connector`, makes the AMI and its copies,
/// and cleans up. On failure or cancellation everything is deleted, unless
/// `req.on_error` is [`OnError::Abort`], in which case everything is left
/// and listed in the error.
pub async fn build_with(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    hook: &dyn ProvisionHook,
    connector: &dyn Connector,
    events: &dyn EventSink,
    cancel: CancelToken,
) -> Result<BuildResult, BuildError> {
    // Before any EC2 call: no CIDRs = this machine's public address.
    let learned = public_ip::fill_source_cidrs(ec2, req, events).await?;
    let req = learned.as_ref().unwrap_or(req);
    let resolved = resolve_regions(ec2, req, events).await?;
    let req = resolved.as_ref().unwrap_or(req);
    let parts = RunParts {
        hook: Some(hook),
        connector,
        learned_address: learned.is_some(),
    };
    let ctx = new_ctx(ec2, req, events, cancel, parts);
    let st = State::default();
    let outcome = match stages::run(&ctx, &st, stages::BUILD).await {
        Ok(()) => result(&ctx, &st).map_err(|e| (Step::Finalize, e)),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(mut res) => {
            let tmp = ctx.stack.take_temporary();
            res.cleanup_failures = run_cleanup(&ctx, tmp).await;
            // A temporary resource left behind would mark the (complete)
            // AMIs as partial for `find_leftovers`: say they are kept.
            let stuck: Vec<Resource> = res
                .cleanup_failures
                .iter()
                .map(|f| f.resource.clone())
                .filter(|r| !r.is_artifact())
                .collect();
            for (r, e) in mark::mark(ec2, &stuck, cleanup::TAG_IMAGES_KEPT, &req.wait).await {
                ctx.message(format!("could not tag {r} as done: {e}"));
            }
            Ok(res)
        }
        Err((step, error)) => {
            let (left, cleanup_failures) = match req.on_error {
                OnError::Abort => {
                    let mut left = ctx.stack.take();
                    mark::complete_snapshots(ec2, &mut left).await;
                    if !left.is_empty() {
                        ctx.message(format!(
                            "on_error=abort: leaving {} resource(s) of build {}",
                            left.len(),
                            ctx.build_id
                        ));
                    }
                    (left, Vec::new())
                }
                OnError::Cleanup => {
                    let all = ctx.stack.take();
                    let failures = run_cleanup(&ctx, all).await;
                    // AMIs that could not be deleted: tagged temporary, so
                    // `find_leftovers` finds them once the instance is gone.
                    let artifacts: Vec<Resource> = failures
                        .iter()
                        .map(|f| f.resource.clone())
                        .filter(Resource::is_artifact)
                        .collect();
                    for (r, e) in
                        mark::mark(ec2, &artifacts, cleanup::TAG_TEMPORARY, &req.wait).await
                    {
                        ctx.message(format!("could not tag {r} as temporary: {e}"));
                    }
                    (
                        failures.iter().map(|f| f.resource.clone()).collect(),
                        failures,
                    )
                }
            };
            Err(BuildError {
                build: req.name.clone(),
                build_id: ctx.build_id.clone(),
                step,
                region: error.region().map(str::to_string),
                error,
                left,
                cleanup_failures,
            })
        }
    }
}

/// `ami_regions: all`: the request with the account's regions filled in.
async fn resolve_regions(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    events: &dyn EventSink,
) -> Result<Option<BuildRequest>, BuildError> {
    if !req.ami_regions.is_all() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let step = Step::Regions.as_str();
    events.emit(&Event::StepStarted {
        build: req.name.clone(),
        step: step.to_string(),
    });
    match regions::resolve(ec2, req).await {
        Ok(r) => {
            let n = r.as_ref().map_or(0, |r| r.ami_regions.list().len());
            events.emit(&Event::finished(
                &req.name,
                step,
                Outcome::Ok,
                started.elapsed(),
                format!("ami_regions: all = {n} copy region(s)"),
            ));
            Ok(r)
        }
        Err(e) => {
            events.emit(&Event::finished(
                &req.name,
                step,
                Outcome::Failed,
                started.elapsed(),
                e.to_string(),
            ));
            Err(BuildError {
                build: req.name.clone(),
                build_id: String::new(),
                step: Step::Regions,
                region: Some(req.region.clone()),
                error: StepError::Aws(e),
                left: Vec::new(),
                cleanup_failures: Vec::new(),
            })
        }
    }
}

async fn run_cleanup(ctx: &Ctx<'_>, resources: Vec<Resource>) -> Vec<CleanupFailure> {
    if resources.is_empty() {
        return Vec::new();
    }
    let started = std::time::Instant::now();
    ctx.events.emit(&Event::StepStarted {
        build: ctx.req.name.clone(),
        step: Step::Cleanup.as_str().to_string(),
    });
    let n = resources.len();
    let failures = cleanup::unwind(ctx.ec2, resources, &ctx.req.wait).await;
    let (outcome, msg) = if failures.is_empty() {
        (Outcome::Changed, format!("deleted {n} resource(s)"))
    } else {
        (
            Outcome::Failed,
            failures
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    ctx.events.emit(&Event::finished(
        &ctx.req.name,
        Step::Cleanup.as_str(),
        outcome,
        started.elapsed(),
        msg,
    ));
    failures
}

/// The result of a build whose stages all ran.
fn result(ctx: &Ctx<'_>, st: &State) -> Result<BuildResult, StepError> {
    let req = ctx.req;
    let source = State::need(&st.source, "source AMI")?.clone();
    let instance_id = State::need(&st.instance, "instance")?.id.clone();
    let images = st.images();
    Ok(BuildResult {
        build: req.name.clone(),
        build_id: ctx.build_id.clone(),
        run_uuid: req.run_uuid.clone().unwrap_or_else(|| ctx.build_id.clone()),
        build_time: time::OffsetDateTime::now_utc().unix_timestamp(),
        source,
        instance_id,
        amis: images
            .iter()
            .map(|(r, i)| (r.clone(), i.image_id.clone()))
            .collect(),
        images,
        custom_data: req.custom_data.clone(),
        cleanup_failures: Vec::new(),
        failed_regions: ctx
            .failed_regions
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default(),
    })
}

/// What a build would do, found with read-only calls.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The build's name.
    pub build: String,
    /// The resolved source AMI.
    pub source: SourceImage,
    /// The root device name the instance and AMI get.
    pub root_device_name: String,
    /// Root volume size in GiB.
    pub root_volume_size_gib: Option<i32>,
    /// Existing AMIs with the name that `force_deregister` would remove, by region.
    pub would_deregister: BTreeMap<String, Vec<String>>,
    /// What the build would create, in order.
    pub would_create: Vec<String>,
    /// The actions it needs.
    pub actions: BTreeSet<&'static str>,
}

/// Runs every build stage's read-only checks (the source AMI, the AMI
/// name, the instance type, the subnet, the copy regions) and says what a
/// build would create.
pub async fn dry_run(ec2: &Ec2Clients, req: &BuildRequest) -> Result<DryRun, BuildError> {
    // Before any EC2 call: no CIDRs = this machine's public address.
    let learned = public_ip::fill_source_cidrs(ec2, req, &NoEvents).await?;
    let req = learned.as_ref().unwrap_or(req);
    let resolved = resolve_regions(ec2, req, &NoEvents).await?;
    let req = resolved.as_ref().unwrap_or(req);
    let parts = RunParts {
        hook: None,
        connector: &NoConnector,
        learned_address: learned.is_some(),
    };
    let ctx = new_ctx(ec2, req, &NoEvents, CancelToken::new(), parts);
    let st = State::default();
    let checked = match stages::check(&ctx, &st, stages::BUILD).await {
        Ok(()) => State::need(&st.source, "source AMI")
            .cloned()
            .map_err(|e| (Step::SourceAmi, e)),
        Err(e) => Err(e),
    };
    let source = checked.map_err(|(step, error)| BuildError {
        build: req.name.clone(),
        build_id: ctx.build_id.clone(),
        step,
        region: error.region().map(str::to_string),
        error,
        left: Vec::new(),
        cleanup_failures: Vec::new(),
    })?;
    let would_create =
        std::mem::take(&mut *st.would_create.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(DryRun {
        build: req.name.clone(),
        root_device_name: step::instance::root_device_name(req, &source),
        root_volume_size_gib: req
            .root_device
            .volume_size
            .and_then(|n| i32::try_from(n).ok())
            .or(source.root_volume_size_gib),
        source,
        would_deregister: st
            .existing
            .get()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(r, v)| (r, v.into_iter().map(|(id, _)| id).collect()))
            .collect(),
        would_create,
        actions: required_actions(req),
    })
}

/// Convenience: a hook from an async closure-like function object.
pub struct FnHook<F>(pub F);

#[async_trait::async_trait]
impl<F, Fut> ProvisionHook for FnHook<F>
where
    F: Fn(String, Arc<dyn image_core::target::Target>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<(), HookError>> + Send,
{
    async fn provision(
        &self,
        build: &str,
        target: Arc<dyn image_core::target::Target>,
    ) -> Result<(), HookError> {
        (self.0)(build.to_string(), target).await
    }
}
