//! The steps of a build, one file each, each behind the `Stage` trait:
//! the actions it may call (for the IAM policy), its read-only checks (for
//! `--dry-run`), what it does, and how to undo what it created. The lists of
//! stages a build and a test run (`BUILD`, `TEST`) are below, next to the
//! step modules; the loops over them in `crate::stages`; shared values (the
//! source AMI, the instance, the AMI, ...) pass through `State`.
//!
//! Adding a step touches three files (see `ena_support.rs`): the step's
//! file here, a unit struct implementing `Stage` (naming itself with
//! [`Step::new`], saying when it `applies`); its `mod` line and its place in
//! `BUILD` / `TEST` below; its setting, declared once in image-core
//! (`spec/ami_options.rs` for an AMI attribute: the field, its reading from
//! the definition with file:line:col errors, its checks), which the plan
//! and [`BuildRequest`] share. The IAM policy, the dry run, the events and
//! cleanup follow from the trait; the loops are in `crate::stages`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use image_core::events::{Event, EventSink, Outcome};
use image_core::target::Target;

use crate::clients::Ec2Clients;
use crate::error::{Step, StepError};
use crate::hook::ProvisionHook;
use crate::request::{BuildRequest, WaitSettings};
use crate::resource::{
    CleanupStack, Resource, TAG_BUILD_ID, TAG_BUILD_NAME, TAG_CREATED, TAG_TEMPORARY,
};
use crate::CancelToken;

pub mod connect;
pub mod console;
pub mod copy;
pub mod deprecate;
pub(crate) mod finalize;
pub mod image;
pub mod instance;
pub mod key_pair;
pub mod permissions;
pub(crate) mod provision;
pub mod security_group;
pub mod source_ami;
pub mod spot;
pub mod stop;
pub(crate) mod subnet;
pub mod terminate;
pub(crate) mod validate;

// Optional AMI attributes (image-core `AmiOptions`), one step each.
pub(crate) mod ena_support;
pub(crate) mod imds_support;
pub(crate) mod register;

/// Stages that run at once.
pub(crate) type Phase = &'static [&'static dyn Stage];

/// A build: subnet (`subnet_filter`) -> (source AMI | key pair |
/// security group) -> instance -> SSH ->
/// provision -> stop -> ENA support -> image -> register again (boot mode,
/// TPM) -> (copies | terminate the instance) -> IMDS support -> permissions
/// -> deprecation -> finalize.
pub(crate) static BUILD: &[Phase] = &[
    &[&validate::Validate::BUILD],
    &[&subnet::Subnet],
    &[
        &source_ami::SourceAmi::BUILD,
        &key_pair::KeyPair,
        &security_group::SecurityGroup,
    ],
    &[&instance::Instance, &spot::SpotInstance],
    &[&connect::Connect],
    &[&provision::Hook::PROVISION],
    &[&stop::Stop],
    &[&ena_support::EnaSupport],
    &[&image::Image],
    &[&register::Register],
    &[&copy::Copy, &terminate::TerminateEarly],
    &[&imds_support::ImdsSupport],
    &[&permissions::Permissions],
    &[&deprecate::Deprecate],
    &[&finalize::Finalize],
];

/// A test of an existing AMI: the launch half of a build, then the test hook.
pub(crate) static TEST: &[Phase] = &[
    &[&validate::Validate::LAUNCH],
    &[&subnet::Subnet],
    &[
        &source_ami::SourceAmi::LAUNCH,
        &key_pair::KeyPair,
        &security_group::SecurityGroup,
    ],
    &[&instance::Instance, &spot::SpotInstance],
    &[&connect::Connect],
    &[&provision::Hook::TEST],
];

/// The IAM actions (`ec2:…`, `kms:…`, `iam:…`) a step may call.
pub(crate) type Actions = BTreeSet<&'static str>;

/// What a customer-managed KMS key needs for encrypted volumes, images and
/// copies.
pub const KMS_ACTIONS: [&str; 6] = [
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKeyWithoutPlainText",
    "kms:ReEncrypt*",
];

/// One step of a build or test.
#[async_trait]
pub(crate) trait Stage: Send + Sync {
    /// Its name in events and errors.
    fn name(&self) -> Step;

    /// False for a step that reports through messages only (no start and
    /// finish events of its own).
    fn reported(&self) -> bool {
        true
    }

    /// False when these settings do not ask for the step: it is then not
    /// run, checked nor reported (its actions are not declared either).
    fn applies(&self, _req: &BuildRequest) -> bool {
        true
    }

    /// Every action its `run`, `check` and `undo` may call with these
    /// settings. The IAM policy is the union over the stages.
    fn actions(&self, req: &BuildRequest, a: &mut Actions);

    /// The dry run: checks what it can with read-only calls, sets in `st`
    /// what later checks need, and notes what it would create
    /// ([`State::would_create`]).
    async fn check(&self, _cx: &Ctx<'_>, _st: &State) -> Result<(), StepError> {
        Ok(())
    }

    /// Does the step; sets in `st` what it made; pushes what it created on
    /// the cleanup stack at once. Returns the message of its finish event.
    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError>;

    /// True when `r` is of a kind this step creates (and `undo` deletes).
    fn creates(&self, _r: &Resource) -> bool {
        false
    }

    /// Deletes `r` (one [`Stage::creates`] accepts), retrying transient
    /// failures for `u.settings.cleanup_timeout_secs`; gone already is fine.
    async fn undo(&self, _u: &Undo<'_>, _r: &Resource) -> Result<(), StepError> {
        Ok(())
    }
}

/// What an `undo` needs.
pub(crate) struct Undo<'a> {
    /// The clients.
    pub ec2: &'a Ec2Clients,
    /// Retry and wait settings (cleanup's: no poll cap).
    pub settings: &'a WaitSettings,
    /// False: one try where deletion waits on another resource (a group
    /// whose instance could not be terminated).
    pub patient: bool,
}

/// AMIs found under the build's name, by region: (id, snapshots).
pub(crate) type Existing = BTreeMap<String, Vec<(String, Vec<String>)>>;

/// What the steps of one run hand each other. Each value is set once, by
/// the step that makes it; steps of one phase run at once and set
/// different values.
#[derive(Default)]
pub(crate) struct State {
    /// The source AMI (`source_ami`).
    pub source: OnceLock<source_ami::SourceImage>,
    /// AMIs `force_deregister` removes (`source_ami`).
    pub existing: OnceLock<Existing>,
    /// The key pair (`key_pair`).
    pub key: OnceLock<key_pair::KeyMaterial>,
    /// The subnet `subnet_filter` found (`subnet`).
    pub subnet: OnceLock<subnet::Placement>,
    /// The instance's security groups (`security_group`).
    pub groups: OnceLock<Vec<String>>,
    /// The running instance (`instance`).
    pub instance: OnceLock<instance::InstanceInfo>,
    /// The connection (`connect`), taken by the hook.
    pub target: Mutex<Option<Arc<dyn Target>>>,
    /// The AMI in the build region (`image`).
    pub image: OnceLock<image::ImageInfo>,
    /// The AMI registered again in its place (`register`).
    pub registered: OnceLock<image::ImageInfo>,
    /// The copies by region (`copy`).
    pub copies: OnceLock<BTreeMap<String, image::ImageInfo>>,
    /// Dry run: what the build would create, in order.
    pub would_create: Mutex<Vec<String>>,
}

impl State {
    /// The value a former step set, or an error naming it.
    pub fn need<'s, T>(cell: &'s OnceLock<T>, what: &str) -> Result<&'s T, StepError> {
        cell.get().ok_or_else(|| {
            StepError::Invalid(vec![format!(
                "internal: no {what} (the step making it did not run)"
            )])
        })
    }

    /// Dry run: notes something the build would create.
    pub fn would_create(&self, what: String) {
        self.would_create
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    /// The AMI and its copies, by region.
    pub fn images(&self) -> BTreeMap<String, image::ImageInfo> {
        let mut all = self.copies.get().cloned().unwrap_or_default();
        if let Ok(i) = self.ami() {
            all.insert(i.region.clone(), i.clone());
        }
        all
    }

    /// The AMI in the build region: the registered one if `register` ran.
    pub fn ami(&self) -> Result<&image::ImageInfo, StepError> {
        match self.registered.get() {
            Some(i) => Ok(i),
            None => State::need(&self.image, "image"),
        }
    }
}

/// Everything a running build shares between its steps.
pub(crate) struct Ctx<'a> {
    pub ec2: &'a Ec2Clients,
    pub req: &'a BuildRequest,
    pub events: &'a dyn EventSink,
    pub cancel: CancelToken,
    pub build_id: String,
    pub created: String,
    pub stack: CleanupStack,
    /// `ami_regions: all`: regions whose copy failed, with why.
    pub failed_regions: std::sync::Mutex<BTreeMap<String, String>>,
    /// The provisioning (or test) hook; `None` in a dry run.
    pub hook: Option<&'a dyn ProvisionHook>,
    /// How SSH connections are made.
    pub connector: &'a dyn connect::Connector,
    /// The temporary group's source is this machine's learned address.
    pub learned_address: bool,
}

impl Ctx<'_> {
    /// `Err(Cancelled)` once the build is cancelled. Steps call it between
    /// mutating calls; they never drop a mutating call half-way, so whatever
    /// it created is on the stack.
    pub fn check_cancel(&self) -> Result<(), StepError> {
        if self.cancel.is_cancelled() {
            Err(StepError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub fn message(&self, text: impl Into<String>) {
        self.events.emit(&Event::Message {
            build: self.req.name.clone(),
            text: text.into(),
        });
    }

    /// Runs one step with start/finish events; errors get the step.
    pub async fn step<T, F>(&self, step: Step, fut: F) -> Result<T, (Step, StepError)>
    where
        F: std::future::Future<Output = Result<(T, String), StepError>>,
    {
        let started = Instant::now();
        self.events.emit(&Event::StepStarted {
            build: self.req.name.clone(),
            step: step.as_str().to_string(),
        });
        let r = match self.check_cancel() {
            Ok(()) => fut.await,
            Err(e) => Err(e),
        };
        match r {
            Ok((v, msg)) => {
                self.events.emit(&Event::finished(
                    &self.req.name,
                    step.as_str(),
                    Outcome::Changed,
                    started.elapsed(),
                    msg,
                ));
                Ok(v)
            }
            Err(e) => {
                self.events.emit(&Event::finished(
                    &self.req.name,
                    step.as_str(),
                    Outcome::Failed,
                    started.elapsed(),
                    e.to_string(),
                ));
                Err((step, e))
            }
        }
    }

    /// Our bookkeeping tags: build id, build name, creation time.
    pub fn our_tags(&self) -> Vec<Tag> {
        vec![
            tag(TAG_BUILD_ID, &self.build_id),
            tag(TAG_BUILD_NAME, &self.req.name),
            tag(TAG_CREATED, &self.created),
        ]
    }

    /// Our tags plus `user` tags (user tags cannot override ours).
    pub fn tags_with(&self, user: &BTreeMap<String, String>) -> Vec<Tag> {
        let mut out: Vec<Tag> = user
            .iter()
            .filter(|(k, _)| !k.starts_with("image-builder:"))
            .map(|(k, v)| tag(k, v))
            .collect();
        out.extend(self.our_tags());
        out
    }

    /// A tag specification for `rt` with our tags plus `user` tags: what
    /// AMIs and snapshots get. They are never tagged temporary (that would
    /// cost a DeleteTags per region when the build succeeds): while the
    /// build runs, its temporary resources mark them as partial
    /// for [`crate::cleanup::find_leftovers`].
    pub fn tag_spec(&self, rt: ResourceType, user: &BTreeMap<String, String>) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(self.tags_with(user)))
            .build()
    }

    /// A tag specification for a temporary resource (key pair, security
    /// group, instance, volume): our tags, `user` tags and [`TAG_TEMPORARY`].
    pub fn temp_tag_spec(
        &self,
        rt: ResourceType,
        user: &BTreeMap<String, String>,
    ) -> TagSpecification {
        let mut tags = self.tags_with(user);
        tags.push(tag(TAG_TEMPORARY, "true"));
        TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(tags))
            .build()
    }

    /// A short name for temporary resources: `image-builder-<build id>`.
    pub fn temp_name(&self) -> String {
        format!("image-builder-{}", self.build_id)
    }
}

pub(crate) fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// Runs `f` on every image at once; the failures, by region (sorted), are
/// one [`StepError::Regions`].
pub(crate) async fn each_image<'a, I, F, Fut>(images: I, f: F) -> Result<(), StepError>
where
    I: IntoIterator<Item = &'a image::ImageInfo>,
    F: Fn(&'a image::ImageInfo) -> Fut,
    Fut: std::future::Future<Output = Result<(), StepError>>,
{
    let futs = images.into_iter().map(|i| {
        let fut = f(i);
        async move { (i.region.clone(), fut.await) }
    });
    let mut failed: Vec<(String, StepError)> = futures::future::join_all(futs)
        .await
        .into_iter()
        .filter_map(|(r, res)| res.err().map(|e| (r, e)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort_by(|a, b| a.0.cmp(&b.0));
    Err(StepError::Regions(failed))
}
