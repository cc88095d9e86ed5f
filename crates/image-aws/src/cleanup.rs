//! The cleanup stack and the leftovers finder.
//!
//! Every resource a build creates is tagged at creation ([`TAG_BUILD_ID`],
//! and [`TAG_TEMPORARY`] on the key pair, security group and instance) and
//! pushed on a `CleanupStack`. On failure or cancellation the stack
//! unwinds: AMIs and copies deregistered with their snapshots first, then
//! the instance terminated (and waited for) while the key pair is deleted,
//! then the security group. On success only the key pair, security group
//! and instance go; the AMIs were never tagged temporary, so keeping them
//! costs no call. Every deletion retries throttling and 5xx answers until
//! [`WaitSettings::cleanup_timeout_secs`]: a throttling burst never
//! abandons a running instance.
//!
//! [`find_leftovers`] lists, in any set of regions, what crashed or aborted
//! builds left: whatever carries the temporary tag, and the AMIs and
//! snapshots of a build whose temporary instance, security group or key
//! pair is still there (a build deletes the last of them only once its AMIs
//! are complete or deleted; the instance may go earlier, see
//! [`crate::step::terminate`]). [`delete_leftovers`] removes them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::{Filter, InstanceStateName, Tag};
use aws_sdk_ec2::Client;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{AwsContext, AwsError, StepError};
use crate::request::WaitSettings;
use crate::{wait, CancelToken, Ec2Clients};

/// Tag key holding the build id (a UUID) on everything a build creates.
pub const TAG_BUILD_ID: &str = "image-builder:build-id";
/// Tag key (value `true`) on everything that must not outlive its build:
/// key pair, security group, instance (and volumes). AMIs and snapshots get
/// it only when a failed build could not delete them (and from image-cli
/// versions that tagged them until the build succeeded).
pub const TAG_TEMPORARY: &str = "image-builder:temporary";
/// Tag key (value `true`) on a temporary instance, security group or key
/// pair that a *successful* build could not delete: its AMIs are complete,
/// [`find_leftovers`] does not list them with it.
pub const TAG_IMAGES_KEPT: &str = "image-builder:images-kept";
/// Tag key holding the RFC 3339 creation time (for `older_than`).
pub const TAG_CREATED: &str = "image-builder:created";
/// Tag key holding the build's name.
pub const TAG_BUILD_NAME: &str = "image-builder:build";

/// Something a build created in AWS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// An EC2 key pair.
    KeyPair {
        /// Region.
        region: String,
        /// Key name.
        name: String,
        /// Key pair id (`key-...`), when known.
        id: Option<String>,
    },
    /// A security group.
    SecurityGroup {
        /// Region.
        region: String,
        /// `sg-...`.
        id: String,
    },
    /// An instance.
    Instance {
        /// Region.
        region: String,
        /// `i-...`.
        id: String,
    },
    /// An AMI (and its snapshots, when known).
    Image {
        /// Region.
        region: String,
        /// `ami-...`.
        id: String,
        /// Its snapshots (`snap-...`).
        snapshots: Vec<String>,
    },
    /// A snapshot on its own.
    Snapshot {
        /// Region.
        region: String,
        /// `snap-...`.
        id: String,
    },
}

impl Resource {
    /// The region.
    pub fn region(&self) -> &str {
        match self {
            Resource::KeyPair { region, .. }
            | Resource::SecurityGroup { region, .. }
            | Resource::Instance { region, .. }
            | Resource::Image { region, .. }
            | Resource::Snapshot { region, .. } => region,
        }
    }

    /// The id (the name for key pairs).
    pub fn id(&self) -> &str {
        match self {
            Resource::KeyPair { name, .. } => name,
            Resource::SecurityGroup { id, .. }
            | Resource::Instance { id, .. }
            | Resource::Image { id, .. }
            | Resource::Snapshot { id, .. } => id,
        }
    }

    /// `key_pair`, `security_group`, `instance`, `image`, `snapshot`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::KeyPair { .. } => "key_pair",
            Resource::SecurityGroup { .. } => "security_group",
            Resource::Instance { .. } => "instance",
            Resource::Image { .. } => "image",
            Resource::Snapshot { .. } => "snapshot",
        }
    }

    /// True for AMIs and snapshots (kept when the build succeeds).
    pub fn is_artifact(&self) -> bool {
        matches!(self, Resource::Image { .. } | Resource::Snapshot { .. })
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind(), self.id(), self.region())?;
        if let Resource::Image { snapshots, .. } = self {
            if !snapshots.is_empty() {
                write!(f, " with {}", snapshots.join(", "))?;
            }
        }
        Ok(())
    }
}

/// A resource that could not be deleted, and why.
#[derive(Debug, thiserror::Error)]
#[error("deleting {resource}: {error}")]
pub struct CleanupFailure {
    /// The resource (still in AWS).
    pub resource: Resource,
    /// Why.
    #[source]
    pub error: StepError,
}

/// What a build created, in creation order.
#[derive(Debug, Default)]
pub(crate) struct CleanupStack {
    items: Mutex<Vec<Resource>>,
}

impl CleanupStack {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Resource>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, r: Resource) {
        self.lock().push(r);
    }

    /// Records the snapshots of an image already on the stack.
    pub(crate) fn set_snapshots(&self, region: &str, image_id: &str, snaps: &[String]) {
        for r in self.lock().iter_mut() {
            if let Resource::Image {
                region: rg,
                id,
                snapshots,
            } = r
            {
                if rg == region && id == image_id {
                    *snapshots = snaps.to_vec();
                }
            }
        }
    }

    /// Takes `r` off the stack (it was deleted before the build ended).
    pub(crate) fn remove(&self, r: &Resource) {
        self.lock().retain(|x| x != r);
    }

    /// Takes everything, in creation order.
    pub(crate) fn take(&self) -> Vec<Resource> {
        std::mem::take(&mut *self.lock())
    }

    /// Takes the images (and lone snapshots) in `regions`: what failed
    /// copies made.
    pub(crate) fn take_images_in(&self, regions: &[String]) -> Vec<Resource> {
        let mut items = self.lock();
        let (taken, keep): (Vec<_>, Vec<_>) = items
            .drain(..)
            .partition(|r| r.is_artifact() && regions.iter().any(|g| g == r.region()));
        *items = keep;
        taken
    }

    /// Takes the temporary (non-artifact) resources, leaving the artifacts.
    pub(crate) fn take_temporary(&self) -> Vec<Resource> {
        let mut items = self.lock();
        let (tmp, keep): (Vec<_>, Vec<_>) = items.drain(..).partition(|r| !r.is_artifact());
        *items = keep;
        tmp
    }
}

/// At most this many deletions run at once.
const DELETE_CONCURRENCY: usize = 8;

/// Deletes `resources`; returns what could not be deleted. AMIs and
/// snapshots go first (while the build's temporary resources still mark
/// them as partial for [`find_leftovers`], should this process die); then instances (awaited
/// until terminated) and key pairs at once; then security groups, which
/// instances hold until terminated. Never cancelled: it runs because of a
/// cancel. Transient failures are retried for `settings.cleanup_timeout_secs`.
pub(crate) async fn unwind(
    ec2: &Ec2Clients,
    resources: Vec<Resource>,
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let settings = settings.for_cleanup();
    let (artifacts, rest): (Vec<_>, Vec<_>) = resources.into_iter().partition(|r| r.is_artifact());
    let mut failures = delete_all(ec2, artifacts, &settings).await;
    let (instances, rest): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|r| matches!(r, Resource::Instance { .. }));
    let (groups, others): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|r| matches!(r, Resource::SecurityGroup { .. }));
    let settings = &settings;
    let instances_then_groups = async move {
        let mut f = delete_all(ec2, instances, settings).await;
        // A group whose instance is still there cannot go: one try, no
        // waiting for DependencyViolation to clear.
        let stuck: BTreeSet<String> = f.iter().map(|x| x.resource.region().to_string()).collect();
        let (blocked, free): (Vec<_>, Vec<_>) =
            groups.into_iter().partition(|g| stuck.contains(g.region()));
        for g in blocked {
            if let Err(error) = delete_group(ec2, g.region(), g.id(), settings, false).await {
                f.push(CleanupFailure { resource: g, error });
            }
        }
        f.extend(delete_all(ec2, free, settings).await);
        f
    };
    let (a, b) = tokio::join!(instances_then_groups, delete_all(ec2, others, settings));
    failures.extend(a);
    failures.extend(b);
    failures
}

/// Deletes `resources` concurrently (a few at a time).
async fn delete_all(
    ec2: &Ec2Clients,
    resources: Vec<Resource>,
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let never = CancelToken::new();
    let never = &never;
    futures::stream::iter(resources.into_iter().map(|r| async move {
        delete_one(ec2, &r, settings, never)
            .await
            .err()
            .map(|error| CleanupFailure { resource: r, error })
    }))
    .buffer_unordered(DELETE_CONCURRENCY)
    .filter_map(|f| async move { f })
    .collect()
    .await
}

/// Tags `resources` with `key=true`, best effort (a failed build's AMIs and
/// snapshots that could not be deleted get [`TAG_TEMPORARY`], so
/// [`find_leftovers`] finds them once the instance is gone). Returns the
/// resources it could not tag, with why.
pub(crate) async fn mark(
    ec2: &Ec2Clients,
    resources: &[Resource],
    key: &str,
    settings: &WaitSettings,
) -> Vec<(Resource, AwsError)> {
    let mut ids: BTreeMap<&str, Vec<(&Resource, String)>> = BTreeMap::new();
    for r in resources {
        let e = ids.entry(r.region()).or_default();
        match r {
            Resource::Image { id, snapshots, .. } => {
                e.push((r, id.clone()));
                e.extend(snapshots.iter().map(|s| (r, s.clone())));
            }
            Resource::KeyPair { id: Some(id), .. } => e.push((r, id.clone())),
            Resource::KeyPair { id: None, .. } => {}
            _ => e.push((r, r.id().to_string())),
        }
    }
    let deadline = Instant::now() + settings.cleanup_timeout();
    let mut failed = Vec::new();
    for (region, list) in ids {
        let c = ec2.client(region);
        // One call per resource: a deregistered AMI must not fail the
        // tagging of its snapshots.
        for (r, id) in list {
            let res = wait::retry_transient(settings, deadline, || async {
                c.create_tags()
                    .resources(&id)
                    .tags(Tag::builder().key(key).value("true").build())
                    .send()
                    .await
                    .ctx("CreateTags", region, Some(&id))
            })
            .await;
            if let Err(e) = res {
                if !e.is("InvalidAMIID") && !e.is("InvalidSnapshot") {
                    failed.push((r.clone(), e));
                }
            }
        }
    }
    failed
}

/// Fills in the snapshots of images whose snapshots are not known yet
/// (cancelled before the image was available), with read-only calls, so a
/// list of what is left is complete. Best effort.
pub(crate) async fn complete_snapshots(ec2: &Ec2Clients, resources: &mut [Resource]) {
    for r in resources.iter_mut() {
        if let Resource::Image {
            region,
            id,
            snapshots,
        } = r
        {
            if !snapshots.is_empty() {
                continue;
            }
            let c = ec2.client(region);
            if let Ok(out) = c.describe_images().image_ids(id.as_str()).send().await {
                for img in out.images() {
                    snapshots.extend(crate::step::image::snapshot_ids(img));
                }
            }
        }
    }
}

/// Deletes one resource, waiting where deletion must complete (instances),
/// retrying throttling and 5xx answers for `settings.cleanup_timeout_secs`.
pub async fn delete_one(
    ec2: &Ec2Clients,
    r: &Resource,
    settings: &WaitSettings,
    cancel: &CancelToken,
) -> Result<(), StepError> {
    let region = r.region();
    let c = ec2.client(region);
    let deadline = Instant::now() + settings.cleanup_timeout();
    match r {
        Resource::Instance { id, .. } => {
            let res = wait::retry_transient(settings, deadline, || async {
                c.terminate_instances().instance_ids(id).send().await.ctx(
                    "TerminateInstances",
                    region,
                    Some(id),
                )
            })
            .await;
            match res {
                Err(e) if e.is("InvalidInstanceID") => return Ok(()),
                r => r?,
            };
            wait_instance_gone(&c, region, id, settings, cancel).await
        }
        Resource::SecurityGroup { id, .. } => delete_group(ec2, region, id, settings, true).await,
        Resource::KeyPair { name, .. } => {
            // By name: unique per region, and understood by every EC2 stand-in.
            let res = wait::retry_transient(settings, deadline, || async {
                c.delete_key_pair().key_name(name).send().await.ctx(
                    "DeleteKeyPair",
                    region,
                    Some(name),
                )
            })
            .await;
            match res {
                Ok(_) => Ok(()),
                Err(e) if e.is("InvalidKeyPair") => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Resource::Image { id, snapshots, .. } => {
            deregister_with_snapshots(&c, region, id, snapshots, settings, cancel).await
        }
        Resource::Snapshot { id, .. } => delete_snapshot(&c, region, id, settings, cancel).await,
    }
}

/// Deletes a security group; with `wait`, retries while an instance still
/// holds it (DependencyViolation) until the instance timeout.
async fn delete_group(
    ec2: &Ec2Clients,
    region: &str,
    id: &str,
    settings: &WaitSettings,
    wait: bool,
) -> Result<(), StepError> {
    let c = ec2.client(region);
    let attempt = || async {
        match c.delete_security_group().group_id(id).send().await.ctx(
            "DeleteSecurityGroup",
            region,
            Some(id),
        ) {
            Ok(_) => Ok(Some(())),
            Err(e) if e.is("InvalidGroup") => Ok(Some(())),
            Err(e) if wait && e.is("DependencyViolation") => Ok(None),
            Err(e) => Err(StepError::from(e)),
        }
    };
    let timeout = if wait {
        settings.instance_timeout()
    } else {
        settings.cleanup_timeout()
    };
    wait::until(
        settings,
        timeout.max(settings.cleanup_timeout()),
        &CancelToken::new(),
        region,
        "security group deletable",
        id,
        attempt,
    )
    .await
}

/// Deregisters an AMI and deletes its snapshots (looked up if not given).
pub(crate) async fn deregister_with_snapshots(
    c: &Client,
    region: &str,
    id: &str,
    known_snapshots: &[String],
    settings: &WaitSettings,
    cancel: &CancelToken,
) -> Result<(), StepError> {
    let deadline = Instant::now() + settings.cleanup_timeout();
    let mut snaps = known_snapshots.to_vec();
    if snaps.is_empty() {
        let res = wait::retry_transient(settings, deadline, || async {
            c.describe_images()
                .image_ids(id)
                .send()
                .await
                .ctx("DescribeImages", region, Some(id))
        })
        .await;
        match res {
            Ok(out) => {
                for img in out.images() {
                    snaps.extend(crate::step::image::snapshot_ids(img));
                }
            }
            Err(e) if e.is("InvalidAMIID") => {}
            Err(e) => return Err(e.into()),
        }
    }
    let res = wait::retry_transient(settings, deadline, || async {
        c.deregister_image()
            .image_id(id)
            .send()
            .await
            .ctx("DeregisterImage", region, Some(id))
    })
    .await;
    match res {
        Ok(_) => {}
        Err(e) if e.is("InvalidAMIID") => {}
        Err(e) => return Err(e.into()),
    }
    for s in &snaps {
        delete_snapshot(c, region, s, settings, cancel).await?;
    }
    Ok(())
}

async fn delete_snapshot(
    c: &Client,
    region: &str,
    id: &str,
    settings: &WaitSettings,
    cancel: &CancelToken,
) -> Result<(), StepError> {
    // Right after a deregister the snapshot can still be "in use" for a moment.
    wait::until(
        settings,
        settings.instance_timeout().max(settings.cleanup_timeout()),
        cancel,
        region,
        "snapshot deletable",
        id,
        || async {
            match c.delete_snapshot().snapshot_id(id).send().await.ctx(
                "DeleteSnapshot",
                region,
                Some(id),
            ) {
                Ok(_) => Ok(Some(())),
                Err(e) if e.is("InvalidSnapshot.NotFound") => Ok(Some(())),
                Err(e) if e.is("InvalidSnapshot.InUse") => Ok(None),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await
}

pub(crate) async fn wait_instance_gone(
    c: &Client,
    region: &str,
    id: &str,
    settings: &WaitSettings,
    cancel: &CancelToken,
) -> Result<(), StepError> {
    wait::until(
        settings,
        settings.instance_timeout().max(settings.cleanup_timeout()),
        cancel,
        region,
        "instance terminated",
        id,
        || async {
            match crate::step::instance::state(c, region, id).await {
                Ok(Some((InstanceStateName::Terminated, _))) | Ok(None) => Ok(Some(())),
                Ok(_) => Ok(None),
                Err(StepError::Aws(e)) if e.is("InvalidInstanceID") => Ok(Some(())),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

/// A tagged resource found by [`find_leftovers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    /// The resource.
    pub resource: Resource,
    /// Its `image-builder:build-id` tag.
    pub build_id: Option<String>,
    /// Its `image-builder:build` tag.
    pub build_name: Option<String>,
    /// Its `image-builder:created` tag (RFC 3339).
    pub created: Option<String>,
}

struct TagView {
    build_id: Option<String>,
    build_name: Option<String>,
    created: Option<String>,
    temporary: bool,
    images_kept: bool,
}

fn tag_view<'a>(tags: impl IntoIterator<Item = &'a aws_sdk_ec2::types::Tag>) -> TagView {
    let mut v = TagView {
        build_id: None,
        build_name: None,
        created: None,
        temporary: false,
        images_kept: false,
    };
    for t in tags {
        let val = t.value().map(str::to_string);
        match t.key() {
            Some(TAG_BUILD_ID) => v.build_id = val,
            Some(TAG_BUILD_NAME) => v.build_name = val,
            Some(TAG_CREATED) => v.created = val,
            Some(TAG_TEMPORARY) => v.temporary = t.value() == Some("true"),
            Some(TAG_IMAGES_KEPT) => v.images_kept = t.value() == Some("true"),
            _ => {}
        }
    }
    v
}

fn temporary_filter() -> Filter {
    Filter::builder()
        .name(format!("tag:{TAG_TEMPORARY}"))
        .values("true")
        .build()
}

fn ours_filter() -> Filter {
    Filter::builder()
        .name("tag-key")
        .values(TAG_BUILD_ID)
        .build()
}

/// What one region holds: leftovers for sure (temporary resources), and
/// AMIs/snapshots of some build, with whether they carry the temporary tag.
#[derive(Default)]
struct RegionFinds {
    temporary: Vec<Leftover>,
    artifacts: Vec<(Leftover, bool)>,
    /// Builds with a live temporary instance, security group or key pair:
    /// their AMIs are partial.
    live_builds: BTreeSet<String>,
}

impl RegionFinds {
    /// A temporary resource of a build that did not finish (unless a
    /// successful build marked it [`TAG_IMAGES_KEPT`]).
    fn note_live(&mut self, tv: &TagView) {
        if let (Some(b), false) = (&tv.build_id, tv.images_kept) {
            self.live_builds.insert(b.clone());
        }
    }
}

fn leftover(resource: Resource, tv: &TagView) -> Leftover {
    Leftover {
        resource,
        build_id: tv.build_id.clone(),
        build_name: tv.build_name.clone(),
        created: tv.created.clone(),
    }
}

/// Lists what crashed or aborted builds left in `regions`: everything with
/// the temporary tag (instances not yet terminated, security groups, key
/// pairs; AMIs and snapshots a failed build could not delete), and the
/// account's AMIs and snapshots whose build still has a temporary instance,
/// security group or key pair anywhere in `regions` (the build died before finishing; give
/// the build region along with the copy regions). With `older_than`, only
/// resources whose creation tag is older (resources without one are
/// included).
pub async fn find_leftovers(
    ec2: &Ec2Clients,
    regions: &[String],
    older_than: Option<Duration>,
) -> Result<Vec<Leftover>, AwsError> {
    let futs = regions.iter().map(|r| find_in_region(ec2, r));
    let mut finds = Vec::new();
    for r in futures::future::join_all(futs).await {
        finds.push(r?);
    }
    let live: BTreeSet<String> = finds
        .iter()
        .flat_map(|f| f.live_builds.iter().cloned())
        .collect();
    let mut out = Vec::new();
    for f in finds {
        out.extend(f.temporary);
        out.extend(
            f.artifacts
                .into_iter()
                .filter(|(l, temporary)| {
                    *temporary || l.build_id.as_ref().is_some_and(|b| live.contains(b))
                })
                .map(|(l, _)| l),
        );
    }
    if let Some(age) = older_than {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff = time::OffsetDateTime::from(cutoff);
        out.retain(|l| match &l.created {
            Some(c) => {
                time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339)
                    .map(|t| t < cutoff)
                    .unwrap_or(true)
            }
            None => true,
        });
    }
    Ok(out)
}

async fn find_in_region(ec2: &Ec2Clients, region: &str) -> Result<RegionFinds, AwsError> {
    let c = ec2.client(region);
    let mut out = RegionFinds::default();
    let region_s = region.to_string();

    let mut token = None;
    loop {
        let o = c
            .describe_instances()
            .filters(temporary_filter())
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "stopping", "stopped", "shutting-down"]
                            .map(String::from)
                            .to_vec(),
                    ))
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .ctx("DescribeInstances", region, None)?;
        for i in o.reservations().iter().flat_map(|r| r.instances()) {
            if let Some(id) = i.instance_id() {
                let tv = tag_view(i.tags());
                out.note_live(&tv);
                out.temporary.push(leftover(
                    Resource::Instance {
                        region: region_s.clone(),
                        id: id.to_string(),
                    },
                    &tv,
                ));
            }
        }
        token = o.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }

    let o = c
        .describe_images()
        .owners("self")
        .filters(ours_filter())
        .send()
        .await
        .ctx("DescribeImages", region, None)?;
    for i in o.images() {
        if let Some(id) = i.image_id() {
            let tv = tag_view(i.tags());
            let resource = Resource::Image {
                region: region_s.clone(),
                id: id.to_string(),
                snapshots: crate::step::image::snapshot_ids(i),
            };
            out.artifacts.push((leftover(resource, &tv), tv.temporary));
        }
    }

    let mut token = None;
    loop {
        let o = c
            .describe_snapshots()
            .owner_ids("self")
            .filters(ours_filter())
            .set_next_token(token)
            .send()
            .await
            .ctx("DescribeSnapshots", region, None)?;
        for s in o.snapshots() {
            if let Some(id) = s.snapshot_id() {
                let tv = tag_view(s.tags());
                let resource = Resource::Snapshot {
                    region: region_s.clone(),
                    id: id.to_string(),
                };
                out.artifacts.push((leftover(resource, &tv), tv.temporary));
            }
        }
        token = o.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }

    let mut token = None;
    loop {
        let o = c
            .describe_security_groups()
            .filters(temporary_filter())
            .set_next_token(token)
            .send()
            .await
            .ctx("DescribeSecurityGroups", region, None)?;
        for g in o.security_groups() {
            if let Some(id) = g.group_id() {
                let tv = tag_view(g.tags());
                out.note_live(&tv);
                out.temporary.push(leftover(
                    Resource::SecurityGroup {
                        region: region_s.clone(),
                        id: id.to_string(),
                    },
                    &tv,
                ));
            }
        }
        token = o.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }

    let o = c
        .describe_key_pairs()
        .filters(temporary_filter())
        .send()
        .await
        .ctx("DescribeKeyPairs", region, None)?;
    for k in o.key_pairs() {
        if let Some(name) = k.key_name() {
            let tv = tag_view(k.tags());
            out.note_live(&tv);
            out.temporary.push(leftover(
                Resource::KeyPair {
                    region: region_s.clone(),
                    name: name.to_string(),
                    id: k.key_pair_id().map(str::to_string),
                },
                &tv,
            ));
        }
    }
    Ok(out)
}

/// Deletes leftovers (see `unwind` for the order: AMIs with their
/// snapshots and lone snapshots first, then instances — awaited until
/// terminated — and key pairs, then security groups). Snapshots of a
/// listed AMI are deleted with it. Returns the failures.
pub async fn delete_leftovers(
    ec2: &Ec2Clients,
    resources: &[Resource],
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let mut list: Vec<Resource> = resources.to_vec();
    let image_snaps: Vec<(String, String)> = list
        .iter()
        .filter_map(|r| match r {
            Resource::Image {
                region, snapshots, ..
            } => Some(snapshots.iter().map(move |s| (region.clone(), s.clone()))),
            _ => None,
        })
        .flatten()
        .collect();
    list.retain(|r| match r {
        Resource::Snapshot { region, id } => !image_snaps.contains(&(region.clone(), id.clone())),
        _ => true,
    });
    unwind(ec2, list, settings).await
}

/// Groups resources by region.
pub fn by_region(resources: &[Resource]) -> BTreeMap<String, Vec<Resource>> {
    let mut m: BTreeMap<String, Vec<Resource>> = Default::default();
    for r in resources {
        m.entry(r.region().to_string()).or_default().push(r.clone());
    }
    m
}
