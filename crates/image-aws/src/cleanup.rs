//! The cleanup stack and the leftovers finder.
//!
//! Every resource a build creates is tagged at creation
//! ([`TAG_BUILD_ID`], and [`TAG_TEMPORARY`] until the build succeeds) and
//! pushed on a [`CleanupStack`]. On failure or cancellation the stack
//! unwinds in reverse: AMIs and copies deregistered with their snapshots,
//! the instance terminated (and waited for), the security group deleted
//! (retrying while the instance still holds it), the key pair deleted. On
//! success only the key pair, security group and instance go, and the AMIs
//! lose their temporary tag.
//!
//! [`find_leftovers`] lists, in any set of regions, what still carries the
//! temporary tag (crashed or aborted builds); [`delete_leftovers`] removes it.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use aws_sdk_ec2::Client;
use serde::{Deserialize, Serialize};

use crate::error::{AwsContext, AwsError, StepError};
use crate::request::WaitSettings;
use crate::{wait, CancelToken, Ec2Clients};

/// Tag key holding the build id (a UUID) on everything a build creates.
pub const TAG_BUILD_ID: &str = "image-builder:build-id";
/// Tag key (value `true`) on everything that must not outlive its build:
/// key pair, security group, instance, and AMIs/snapshots until the build succeeds.
pub const TAG_TEMPORARY: &str = "image-builder:temporary";
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

    // Deletion order when unwinding: lower first.
    fn delete_rank(&self) -> u8 {
        match self {
            Resource::Instance { .. } => 0,
            Resource::Image { .. } => 1,
            Resource::Snapshot { .. } => 2,
            Resource::SecurityGroup { .. } => 3,
            Resource::KeyPair { .. } => 4,
        }
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

/// Deletes `resources` (given in creation order) in reverse order. Returns
/// what could not be deleted. Never cancelled: it runs because of a cancel.
pub(crate) async fn unwind(
    ec2: &Ec2Clients,
    resources: Vec<Resource>,
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let never = CancelToken::new();
    let mut failures = Vec::new();
    for r in resources.into_iter().rev() {
        if let Err(error) = delete_one(ec2, &r, settings, &never).await {
            failures.push(CleanupFailure { resource: r, error });
        }
    }
    failures
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

/// Deletes one resource, waiting where deletion must complete (instances).
pub async fn delete_one(
    ec2: &Ec2Clients,
    r: &Resource,
    settings: &WaitSettings,
    cancel: &CancelToken,
) -> Result<(), StepError> {
    let region = r.region();
    let c = ec2.client(region);
    match r {
        Resource::Instance { id, .. } => {
            match c.terminate_instances().instance_ids(id).send().await.ctx(
                "TerminateInstances",
                region,
                Some(id),
            ) {
                Err(e) if e.is("InvalidInstanceID") => return Ok(()),
                r => r?,
            };
            wait_instance_gone(&c, region, id, settings, cancel).await
        }
        Resource::SecurityGroup { id, .. } => {
            wait::until(
                settings,
                settings.instance_timeout(),
                cancel,
                region,
                "security group deletable",
                id,
                || async {
                    match c.delete_security_group().group_id(id).send().await.ctx(
                        "DeleteSecurityGroup",
                        region,
                        Some(id),
                    ) {
                        Ok(_) => Ok(Some(())),
                        Err(e) if e.is("InvalidGroup") => Ok(Some(())),
                        Err(e) if e.is("DependencyViolation") => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                },
            )
            .await
        }
        Resource::KeyPair { name, .. } => {
            // By name: unique per region, and understood by every EC2 stand-in.
            let req = c.delete_key_pair().key_name(name);
            match req.send().await.ctx("DeleteKeyPair", region, Some(name)) {
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

/// Deregisters an AMI and deletes its snapshots (looked up if not given).
pub(crate) async fn deregister_with_snapshots(
    c: &Client,
    region: &str,
    id: &str,
    known_snapshots: &[String],
    settings: &WaitSettings,
    cancel: &CancelToken,
) -> Result<(), StepError> {
    let mut snaps = known_snapshots.to_vec();
    if snaps.is_empty() {
        match c
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .ctx("DescribeImages", region, Some(id))
        {
            Ok(out) => {
                for img in out.images() {
                    snaps.extend(crate::step::image::snapshot_ids(img));
                }
            }
            Err(e) if e.is("InvalidAMIID") => {}
            Err(e) => return Err(e.into()),
        }
    }
    match c
        .deregister_image()
        .image_id(id)
        .send()
        .await
        .ctx("DeregisterImage", region, Some(id))
    {
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
        settings.instance_timeout(),
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
        settings.instance_timeout(),
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
}

fn tag_view<'a>(tags: impl IntoIterator<Item = &'a aws_sdk_ec2::types::Tag>) -> TagView {
    let mut v = TagView {
        build_id: None,
        build_name: None,
        created: None,
    };
    for t in tags {
        let val = t.value().map(str::to_string);
        match t.key() {
            Some(TAG_BUILD_ID) => v.build_id = val,
            Some(TAG_BUILD_NAME) => v.build_name = val,
            Some(TAG_CREATED) => v.created = val,
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

/// Lists what carries the temporary tag in `regions`: instances (not yet
/// terminated), AMIs and snapshots owned by the account, security groups
/// and key pairs. With `older_than`, only resources whose creation tag is
/// older (resources without one are included).
pub async fn find_leftovers(
    ec2: &Ec2Clients,
    regions: &[String],
    older_than: Option<Duration>,
) -> Result<Vec<Leftover>, AwsError> {
    let futs = regions.iter().map(|r| find_in_region(ec2, r));
    let mut out = Vec::new();
    for r in futures::future::join_all(futs).await {
        out.extend(r?);
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

async fn find_in_region(ec2: &Ec2Clients, region: &str) -> Result<Vec<Leftover>, AwsError> {
    let c = ec2.client(region);
    let mut out = Vec::new();
    let mut push = |resource: Resource, tv: TagView| {
        out.push(Leftover {
            resource,
            build_id: tv.build_id,
            build_name: tv.build_name,
            created: tv.created,
        })
    };
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
                push(
                    Resource::Instance {
                        region: region_s.clone(),
                        id: id.to_string(),
                    },
                    tag_view(i.tags()),
                );
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
        .filters(temporary_filter())
        .send()
        .await
        .ctx("DescribeImages", region, None)?;
    for i in o.images() {
        if let Some(id) = i.image_id() {
            push(
                Resource::Image {
                    region: region_s.clone(),
                    id: id.to_string(),
                    snapshots: crate::step::image::snapshot_ids(i),
                },
                tag_view(i.tags()),
            );
        }
    }

    let mut token = None;
    loop {
        let o = c
            .describe_snapshots()
            .owner_ids("self")
            .filters(temporary_filter())
            .set_next_token(token)
            .send()
            .await
            .ctx("DescribeSnapshots", region, None)?;
        for s in o.snapshots() {
            if let Some(id) = s.snapshot_id() {
                push(
                    Resource::Snapshot {
                        region: region_s.clone(),
                        id: id.to_string(),
                    },
                    tag_view(s.tags()),
                );
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
                push(
                    Resource::SecurityGroup {
                        region: region_s.clone(),
                        id: id.to_string(),
                    },
                    tag_view(g.tags()),
                );
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
            push(
                Resource::KeyPair {
                    region: region_s.clone(),
                    name: name.to_string(),
                    id: k.key_pair_id().map(str::to_string),
                },
                tag_view(k.tags()),
            );
        }
    }
    Ok(out)
}

/// Deletes leftovers: instances first (waiting for them to terminate), then
/// AMIs with their snapshots, snapshots, security groups, key pairs.
/// Snapshots of a listed AMI are deleted with it. Returns the failures.
pub async fn delete_leftovers(
    ec2: &Ec2Clients,
    resources: &[Resource],
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let mut sorted: Vec<Resource> = resources.to_vec();
    let image_snaps: Vec<(String, String)> = sorted
        .iter()
        .filter_map(|r| match r {
            Resource::Image {
                region, snapshots, ..
            } => Some(snapshots.iter().map(move |s| (region.clone(), s.clone()))),
            _ => None,
        })
        .flatten()
        .collect();
    sorted.retain(|r| match r {
        Resource::Snapshot { region, id } => !image_snaps.contains(&(region.clone(), id.clone())),
        _ => true,
    });
    // unwind deletes in reverse: sort by descending rank.
    sorted.sort_by_key(|r| std::cmp::Reverse(r.delete_rank()));
    unwind(ec2, sorted, settings).await
}

/// Groups resources by region.
pub fn by_region(resources: &[Resource]) -> std::collections::BTreeMap<String, Vec<Resource>> {
    let mut m: std::collections::BTreeMap<String, Vec<Resource>> = Default::default();
    for r in resources {
        m.entry(r.region().to_string()).or_default().push(r.clone());
    }
    m
}
