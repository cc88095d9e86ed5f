//! Launching an instance and handing it to a hook: the part of the pipeline
//! a build and a test share.
//!
//! (source AMI | key pair | security group, concurrently) -> instance ->
//! SSH connect -> hook
//!
//! [`crate::build_with`] goes on to stop the instance and image it;
//! [`test_instance`] does not: it launches an instance from an existing AMI
//! (the request's `source_ami`), runs a [`ProvisionHook`] that checks it, and
//! then always unwinds the cleanup stack — instance terminated, security
//! group and key pair deleted — on success, on failure and on cancellation,
//! whatever `on_error` says. Everything it creates is tagged like a build's
//! ([`crate::cleanup::TAG_BUILD_ID`], [`crate::cleanup::TAG_TEMPORARY`]), so
//! `image-cli cleanup` finds it should the process die.
//!
//! ```no_run
//! # async fn demo(ec2: &image_aws::Ec2Clients) -> Result<(), Box<dyn std::error::Error>> {
//! use image_aws::*;
//! let mut req = BuildRequest::new("node", "us-east-1",
//!     SourceAmi::Id("ami-0123456789abcdef0".into()), "t3.large", "unused");
//! req.security_group = SecurityGroupSpec::Temporary { source_cidrs: vec!["198.51.100.7/32".into()] };
//! let res = test_instance(ec2, &req, &NoProvisioning, &SshConnector,
//!     &image_core::events::NoEvents, CancelToken::new()).await?;
//! println!("tested {} on {}", res.source.image_id, res.instance.id);
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use image_core::events::EventSink;
use image_core::target::Target;
use serde::Serialize;

use crate::cleanup::CleanupFailure;
use crate::error::{BuildError, Step, StepError};
use crate::hook::{HookError, ProvisionHook};
use crate::request::BuildRequest;
use crate::step::connect::Connector;
use crate::step::instance::InstanceInfo;
use crate::step::key_pair::KeyMaterial;
use crate::step::source_ami::SourceImage;
use crate::step::{self, Ctx};
use crate::{CancelToken, Ec2Clients};

/// What a successful [`test_instance`] did.
#[derive(Debug, Serialize)]
pub struct TestResult {
    /// The build's name.
    pub build: String,
    /// The id tagged on everything the test created (`image-builder:build-id`).
    pub build_id: String,
    /// The AMI that was tested.
    pub source: SourceImage,
    /// The instance it ran on (terminated by now).
    pub instance: InstanceInfo,
    /// Temporary resources that could not be deleted.
    #[serde(skip)]
    pub cleanup_failures: Vec<CleanupFailure>,
}

/// The instance of a launch, reachable.
pub(crate) struct Launched {
    pub inst: InstanceInfo,
    pub target: Arc<dyn Target>,
}

/// Runs `first` (resolving the source AMI) and creates the key pair and
/// the security group at the same time, each as its step. Waits for all
/// three, so whatever they created is on `ctx.stack`, and returns the first
/// error in pipeline order.
pub(crate) async fn prepare<T>(
    ctx: &Ctx<'_>,
    first: impl std::future::Future<Output = Result<T, (Step, StepError)>>,
) -> Result<(T, KeyMaterial, Vec<String>), (Step, StepError)> {
    let (first, key, groups) = tokio::join!(
        first,
        ctx.step(Step::KeyPair, step::key_pair::run(ctx)),
        ctx.step(Step::SecurityGroup, step::security_group::run(ctx)),
    );
    Ok((first?, key?, groups?))
}

/// Instance and SSH connection from `source`, each as its step; everything
/// created is on `ctx.stack`.
pub(crate) async fn launch(
    ctx: &Ctx<'_>,
    connector: &dyn Connector,
    source: &SourceImage,
    key: &KeyMaterial,
    groups: &[String],
) -> Result<Launched, (Step, StepError)> {
    let inst = ctx
        .step(
            Step::Instance,
            step::instance::run(ctx, source, key, groups),
        )
        .await?;
    let target = ctx
        .step(
            Step::Connect,
            step::connect::run(ctx, connector, &inst, key),
        )
        .await?;
    Ok(Launched { inst, target })
}

/// Runs `hook` on the launched instance as step `step` (`Provision` or
/// `Test`), stopping at cancellation.
pub(crate) async fn run_hook(
    ctx: &Ctx<'_>,
    step: Step,
    hook: &dyn ProvisionHook,
    target: Arc<dyn Target>,
) -> Result<(), (Step, StepError)> {
    let wrap = |e: HookError| match step {
        Step::Test => StepError::Test(e),
        _ => StepError::Hook(e),
    };
    let verb = if step == Step::Test {
        "tested"
    } else {
        "provisioned"
    };
    ctx.step(step, async {
        let fut = hook.provision(&ctx.req.name, target.clone());
        tokio::select! {
            r = fut => r.map_err(wrap)?,
            _ = ctx.cancel.cancelled() => return Err(StepError::Cancelled),
        }
        Ok(((), format!("{verb} {}", target.name())))
    })
    .await
}

/// The EC2 actions [`test_instance`] calls with these settings.
pub fn test_actions(req: &BuildRequest) -> BTreeSet<&'static str> {
    let mut a = BTreeSet::new();
    crate::regions::actions(req, &mut a);
    step::source_ami::actions(req, &mut a);
    step::key_pair::actions(req, &mut a);
    step::security_group::actions(req, &mut a);
    step::instance::actions(req, &mut a);
    step::connect::actions(req, &mut a);
    a
}

/// Launches an instance from `req.source_ami` (the AMI under test) with a
/// temporary key pair and security group, as a build would, calls `hook`
/// once SSH is up, and then terminates the instance and deletes everything
/// it created — also when the hook fails or `cancel` fires (`on_error` is
/// not consulted: a test never leaves anything). No image is made; the
/// request's image settings (`ami_name`, copies, permissions) are ignored.
/// Without source CIDRs, this machine's public address is learned first, as
/// in [`crate::build_with`].
///
/// A failing hook is a [`BuildError`] at [`Step::Test`] with
/// [`StepError::Test`]; its `left` lists only what could not be deleted.
pub async fn test_instance(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    hook: &dyn ProvisionHook,
    connector: &dyn Connector,
    events: &dyn EventSink,
    cancel: CancelToken,
) -> Result<TestResult, BuildError> {
    // Before any EC2 call: no CIDRs = this machine's public address.
    let mut req = crate::public_ip::fill_source_cidrs(ec2, req, events)
        .await?
        .unwrap_or_else(|| req.clone());
    req.run_tags
        .entry("Name".to_string())
        .or_insert_with(|| format!("image-builder test {}", req.name));
    let ctx = crate::new_ctx(ec2, &req, events, cancel);
    let outcome = test_pipeline(&ctx, hook, connector).await;
    // Everything goes, whatever happened: the instance, the group, the key.
    let all = ctx.stack.take();
    let failures = crate::run_cleanup(&ctx, all).await;
    match outcome {
        Ok((source, instance)) => Ok(TestResult {
            build: req.name.clone(),
            build_id: ctx.build_id.clone(),
            source,
            instance,
            cleanup_failures: failures,
        }),
        Err((step, error)) => Err(BuildError {
            build: req.name.clone(),
            build_id: ctx.build_id.clone(),
            step,
            region: error.region().map(str::to_string),
            error,
            left: failures.iter().map(|f| f.resource.clone()).collect(),
            cleanup_failures: failures,
        }),
    }
}

async fn test_pipeline(
    ctx: &Ctx<'_>,
    hook: &dyn ProvisionHook,
    connector: &dyn Connector,
) -> Result<(SourceImage, InstanceInfo), (Step, StepError)> {
    let req = ctx.req;
    let region = req.region.as_str();
    ctx.step(Step::Validate, async {
        req.validate_launch().map_err(StepError::Invalid)?;
        Ok(((), format!("test id {}", ctx.build_id)))
    })
    .await?;
    let (source, key, groups) = prepare(
        ctx,
        ctx.step(Step::SourceAmi, async {
            let c = ctx.ec2.client(region);
            let src = step::source_ami::resolve(&c, region, &req.source_ami).await?;
            let msg = format!(
                "{} ({})",
                src.image_id,
                src.name.as_deref().unwrap_or("unnamed")
            );
            Ok((src, msg))
        }),
    )
    .await?;
    let Launched { inst, target } = launch(ctx, connector, &source, &key, &groups).await?;
    let r = run_hook(ctx, Step::Test, hook, target).await;
    r.map(|()| (source, inst))
}
