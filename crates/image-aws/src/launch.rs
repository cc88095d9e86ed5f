//! Testing an existing AMI: the launch half of a build's stages
//! (`crate::stages::TEST`), then a hook that checks the instance.
//!
//! (source AMI | key pair | security group, concurrently) -> instance ->
//! SSH connect -> hook
//!
//! [`test_instance`] launches an instance from an existing AMI
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

use image_core::events::EventSink;
use serde::Serialize;

use crate::error::{BuildError, CleanupFailure};
use crate::hook::ProvisionHook;
use crate::request::BuildRequest;
use crate::stages;
use crate::step::connect::Connector;
use crate::step::instance::InstanceInfo;
use crate::step::source_ami::SourceImage;
use crate::step::State;
use crate::{CancelToken, Ec2Clients, RunParts};

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

/// The actions [`test_instance`] calls with these settings.
pub fn test_actions(req: &BuildRequest) -> BTreeSet<&'static str> {
    stages::actions_of(stages::TEST, req)
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
/// A failing hook is a [`BuildError`] at [`crate::Step::Test`] with
/// [`crate::StepError::Test`]; its `left` lists only what could not be deleted.
pub async fn test_instance(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    hook: &dyn ProvisionHook,
    connector: &dyn Connector,
    events: &dyn EventSink,
    cancel: CancelToken,
) -> Result<TestResult, BuildError> {
    // Before any EC2 call: no CIDRs = this machine's public address.
    let learned = crate::public_ip::fill_source_cidrs(ec2, req, events).await?;
    let learned_address = learned.is_some();
    let mut req = learned.unwrap_or_else(|| req.clone());
    let name = format!("image-builder test {}", req.name);
    req.run_tags.entry("Name".to_string()).or_insert(name);
    let parts = RunParts {
        hook: Some(hook),
        connector,
        learned_address,
    };
    let ctx = crate::new_ctx(ec2, &req, events, cancel, parts);
    let st = State::default();
    let outcome = stages::run(&ctx, &st, stages::TEST).await;
    // Everything goes, whatever happened: the instance, the group, the key.
    let all = ctx.stack.take();
    let failures = crate::run_cleanup(&ctx, all).await;
    let done = match outcome {
        Ok(()) => match (
            State::need(&st.source, "source AMI"),
            State::need(&st.instance, "instance"),
        ) {
            (Ok(s), Ok(i)) => Ok((s.clone(), i.clone())),
            (Err(e), _) | (_, Err(e)) => Err((crate::Step::Test, e)),
        },
        Err(e) => Err(e),
    };
    match done {
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
