//! Finding and deleting what crashed or aborted builds left: whatever
//! carries the temporary tag, and the AMIs and snapshots of a build whose
//! temporary instance, security group or key pair is still there. Listed
//! with the SDK's paginators.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::Filter;
use serde::{Deserialize, Serialize};

use crate::clients::Ec2Clients;
use crate::error::{AwsContext, AwsError, CleanupFailure};
use crate::request::WaitSettings;
use crate::resource::{
    snapshot_ids, Resource, TAG_BUILD_ID, TAG_BUILD_NAME, TAG_CREATED, TAG_IMAGES_KEPT,
    TAG_TEMPORARY,
};

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
/// pairs, spot launch templates; AMIs and snapshots a failed build could not delete), and the
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

    let reservations: Vec<_> = c
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
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .ctx("DescribeInstances", region, None)?;
    for i in reservations.iter().flat_map(|r| r.instances()) {
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

    let images: Vec<_> = c
        .describe_images()
        .owners("self")
        .filters(ours_filter())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .ctx("DescribeImages", region, None)?;
    for i in &images {
        if let Some(id) = i.image_id() {
            let tv = tag_view(i.tags());
            let resource = Resource::Image {
                region: region_s.clone(),
                id: id.to_string(),
                snapshots: snapshot_ids(i),
            };
            out.artifacts.push((leftover(resource, &tv), tv.temporary));
        }
    }

    let snapshots: Vec<_> = c
        .describe_snapshots()
        .owner_ids("self")
        .filters(ours_filter())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .ctx("DescribeSnapshots", region, None)?;
    for s in &snapshots {
        if let Some(id) = s.snapshot_id() {
            let tv = tag_view(s.tags());
            let resource = Resource::Snapshot {
                region: region_s.clone(),
                id: id.to_string(),
            };
            out.artifacts.push((leftover(resource, &tv), tv.temporary));
        }
    }

    let groups: Vec<_> = c
        .describe_security_groups()
        .filters(temporary_filter())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .ctx("DescribeSecurityGroups", region, None)?;
    for g in &groups {
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

    let templates: Vec<_> = c
        .describe_launch_templates()
        .filters(temporary_filter())
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .ctx("DescribeLaunchTemplates", region, None)?;
    for t in &templates {
        if let Some(id) = t.launch_template_id() {
            let tv = tag_view(t.tags());
            out.note_live(&tv);
            out.temporary.push(leftover(
                Resource::LaunchTemplate {
                    region: region_s.clone(),
                    id: id.to_string(),
                },
                &tv,
            ));
        }
    }

    // Not paginated: DescribeKeyPairs answers with every key pair.
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

/// Deletes leftovers (see the [module docs](super) for the order: AMIs with their
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
    super::unwind::unwind(ec2, list, settings).await
}

/// Groups resources by region.
pub fn by_region(resources: &[Resource]) -> BTreeMap<String, Vec<Resource>> {
    let mut m: BTreeMap<String, Vec<Resource>> = Default::default();
    for r in resources {
        m.entry(r.region().to_string()).or_default().push(r.clone());
    }
    m
}
