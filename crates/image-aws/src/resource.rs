//! What a build creates in AWS ([`Resource`]), the tags that mark it, and
//! the stack that remembers it until the build ends (`CleanupStack`).
//!
//! Plain data, no calls: the steps push what they create here, and
//! [`crate::cleanup`] (through each step's `undo`) deletes it.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Tag key holding the build id (a UUID) on everything a build creates.
pub const TAG_BUILD_ID: &str = "image-builder:build-id";
/// Tag key (value `true`) on everything that must not outlive its build:
/// key pair, security group, instance (and volumes), a spot build's
/// launch template. AMIs and snapshots get
/// it only when a failed build could not delete them (and from image-cli
/// versions that tagged them until the build succeeded).
pub const TAG_TEMPORARY: &str = "image-builder:temporary";
/// Tag key (value `true`) on a temporary instance, security group or key
/// pair that a *successful* build could not delete: its AMIs are complete,
/// [`crate::cleanup::find_leftovers`] does not list them with it.
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
    /// The temporary launch template of a spot build's EC2 Fleet.
    LaunchTemplate {
        /// Region.
        region: String,
        /// `lt-...`.
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
            | Resource::Snapshot { region, .. }
            | Resource::LaunchTemplate { region, .. } => region,
        }
    }

    /// The id (the name for key pairs).
    pub fn id(&self) -> &str {
        match self {
            Resource::KeyPair { name, .. } => name,
            Resource::SecurityGroup { id, .. }
            | Resource::Instance { id, .. }
            | Resource::Image { id, .. }
            | Resource::Snapshot { id, .. }
            | Resource::LaunchTemplate { id, .. } => id,
        }
    }

    /// `key_pair`, `security_group`, `instance`, `image`, `snapshot`,
    /// `launch_template`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::KeyPair { .. } => "key_pair",
            Resource::SecurityGroup { .. } => "security_group",
            Resource::Instance { .. } => "instance",
            Resource::Image { .. } => "image",
            Resource::Snapshot { .. } => "snapshot",
            Resource::LaunchTemplate { .. } => "launch_template",
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

/// The EBS snapshot ids of an image.
pub(crate) fn snapshot_ids(img: &aws_sdk_ec2::types::Image) -> Vec<String> {
    img.block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_string)
        .collect()
}
