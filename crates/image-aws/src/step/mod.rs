//! The build steps, one file each, in pipeline order. Each step declares the
//! EC2 actions it calls (`actions`), from which [`crate::required_actions`]
//! is assembled, so the IAM list cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use image_core::events::{Event, EventSink, Outcome};

use crate::cleanup::{CleanupStack, TAG_BUILD_ID, TAG_BUILD_NAME, TAG_CREATED, TAG_TEMPORARY};
use crate::error::{Step, StepError};
use crate::request::BuildRequest;
use crate::{CancelToken, Ec2Clients};

pub mod connect;
pub mod console;
pub mod copy;
pub mod deprecate;
pub mod image;
pub mod instance;
pub mod key_pair;
pub mod permissions;
pub mod security_group;
pub mod source_ami;
pub mod stop;
pub mod terminate;

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

/// The EC2 actions every step of a build with these settings calls.
pub(crate) fn all_actions(req: &BuildRequest) -> BTreeSet<&'static str> {
    let mut a = BTreeSet::new();
    crate::regions::actions(req, &mut a);
    source_ami::actions(req, &mut a);
    key_pair::actions(req, &mut a);
    security_group::actions(req, &mut a);
    instance::actions(req, &mut a);
    connect::actions(req, &mut a);
    console::actions(req, &mut a);
    stop::actions(req, &mut a);
    image::actions(req, &mut a);
    copy::actions(req, &mut a);
    permissions::actions(req, &mut a);
    deprecate::actions(req, &mut a);
    terminate::actions(req, &mut a);
    a
}
