//! Creating the AMI: the name check (and `force_deregister`), CreateImage
//! tagged at creation (the AMI, and its snapshots where EC2 supports it),
//! the wait for `available` (tolerating `InvalidAMIID.NotFound` just after
//! creation), and snapshot tags for endpoints that did not apply them.
//!
//! AMIs and snapshots are never tagged temporary, so a successful build
//! needs no untagging call: while the build runs, its temporary resources
//! mark them as partial (see [`crate::cleanup::find_leftovers`]).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, Image, ImageState, ResourceType};
use aws_sdk_ec2::Client;
use serde::Serialize;

use super::Ctx;
use crate::cleanup::{self, Resource, TAG_BUILD_ID};
use crate::error::{AwsContext, StepError};
use crate::request::BuildRequest;
use crate::wait;

pub(crate) fn actions(req: &BuildRequest, a: &mut BTreeSet<&'static str>) {
    a.insert("ec2:DescribeImages");
    a.insert("ec2:CreateImage");
    a.insert("ec2:CreateTags");
    // On failure: the partial AMI goes.
    a.insert("ec2:DeregisterImage");
    a.insert("ec2:DeleteSnapshot");
    if req.force_deregister {
        a.insert("ec2:DeregisterImage");
    }
}

/// An AMI in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// The region.
    pub region: String,
    /// `ami-...`.
    pub image_id: String,
    /// Its snapshots.
    pub snapshots: Vec<String>,
}

/// The EBS snapshot ids of an image.
pub(crate) fn snapshot_ids(img: &Image) -> Vec<String> {
    img.block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_string)
        .collect()
}

/// AMIs of this account named `name` in `region`: (id, snapshots).
pub(crate) async fn find_by_name(
    c: &Client,
    region: &str,
    name: &str,
) -> Result<Vec<(String, Vec<String>)>, StepError> {
    let out = c
        .describe_images()
        .owners("self")
        .filters(Filter::builder().name("name").values(name).build())
        .send()
        .await
        .ctx("DescribeImages", region, Some(name))?;
    Ok(out
        .images()
        .iter()
        .filter(|i| i.name() == Some(name))
        .filter_map(|i| i.image_id().map(|id| (id.to_string(), snapshot_ids(i))))
        .collect())
}

/// Checks that `ami_name` is free in every target region. With
/// `force_deregister` returns the AMIs to deregister before creating.
pub(crate) async fn check_names(
    ctx: &Ctx<'_>,
) -> Result<BTreeMap<String, Vec<(String, Vec<String>)>>, StepError> {
    let req = ctx.req;
    let regions = req.all_regions();
    let futs = regions.iter().map(|r| async move {
        let c = ctx.ec2.client(r);
        (r.clone(), find_by_name(&c, r, &req.ami_name).await)
    });
    let mut taken = BTreeMap::new();
    for (region, res) in futures::future::join_all(futs).await {
        let found = res?;
        if found.is_empty() {
            continue;
        }
        if !req.force_deregister {
            return Err(StepError::NameTaken {
                region,
                name: req.ami_name.clone(),
                image_id: found[0].0.clone(),
            });
        }
        taken.insert(region, found);
    }
    Ok(taken)
}

/// Deregisters the AMIs `check_names` found (with `force_deregister`).
pub(crate) async fn deregister_existing(
    ctx: &Ctx<'_>,
    existing: &BTreeMap<String, Vec<(String, Vec<String>)>>,
) -> Result<(), StepError> {
    for (region, list) in existing {
        let c = ctx.ec2.client(region);
        for (id, snaps) in list {
            ctx.message(format!(
                "deregistering existing {id} in {region} (force_deregister)"
            ));
            cleanup::deregister_with_snapshots(&c, region, id, snaps, &ctx.req.wait, &ctx.cancel)
                .await?;
        }
    }
    Ok(())
}

/// Waits for `id` in `region` to be available and returns it.
pub(crate) async fn wait_available(
    ctx: &Ctx<'_>,
    c: &Client,
    region: &str,
    id: &str,
) -> Result<Image, StepError> {
    let w = &ctx.req.wait;
    // Called right after the CreateImage / CopyImage call.
    wait::until_after(
        w,
        w.image_first_poll(),
        w.image_timeout(),
        &ctx.cancel,
        region,
        "image available",
        id,
        || async {
            let out = match c.describe_images().image_ids(id).send().await.ctx(
                "DescribeImages",
                region,
                Some(id),
            ) {
                Ok(o) => o,
                // Eventual consistency right after CreateImage/CopyImage.
                Err(e) if e.is("InvalidAMIID.NotFound") => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(img) = out.images().first() else {
                return Ok(None);
            };
            match img.state() {
                Some(ImageState::Available) => Ok(Some(img.clone())),
                Some(ImageState::Pending) | None => Ok(None),
                Some(s) => Err(StepError::BadState {
                    region: region.to_string(),
                    id: id.to_string(),
                    state: s.as_str().to_string(),
                    reason: img
                        .state_reason()
                        .and_then(|r| r.message())
                        .map(str::to_string),
                }),
            }
        },
    )
    .await
}

/// True when `img` carries this build's id tag (its tag specifications
/// were applied).
pub(crate) fn tagged_by_us(ctx: &Ctx<'_>, img: &Image) -> bool {
    img.tags()
        .iter()
        .any(|t| t.key() == Some(TAG_BUILD_ID) && t.value() == Some(ctx.build_id.as_str()))
}

/// Records an available image's snapshots on the cleanup stack and, unless
/// they were tagged at creation, tags them (snapshot tags + ours).
pub(crate) async fn record_snapshots(
    ctx: &Ctx<'_>,
    c: &Client,
    region: &str,
    image_id: &str,
    snaps: &[String],
    tagged_at_creation: bool,
) -> Result<(), StepError> {
    ctx.stack.set_snapshots(region, image_id, snaps);
    if snaps.is_empty() || tagged_at_creation {
        return Ok(());
    }
    c.create_tags()
        .set_resources(Some(snaps.to_vec()))
        .set_tags(Some(ctx.tags_with(&ctx.req.snapshot_tags)))
        .send()
        .await
        .ctx("CreateTags", region, Some(&snaps.join(",")))?;
    Ok(())
}

/// Creates the AMI from the (stopped) instance and waits for it.
pub(crate) async fn run(
    ctx: &Ctx<'_>,
    instance_id: &str,
) -> Result<(ImageInfo, String), StepError> {
    let req = ctx.req;
    let region = req.region.as_str();
    let c = ctx.ec2.client(region);
    let snapshot_specs = ctx.ec2.snapshot_tag_specs();
    let mut create = c
        .create_image()
        .instance_id(instance_id)
        .name(&req.ami_name)
        .set_description(req.ami_description.clone())
        .tag_specifications(ctx.tag_spec(ResourceType::Image, &req.tags));
    if snapshot_specs {
        create =
            create.tag_specifications(ctx.tag_spec(ResourceType::Snapshot, &req.snapshot_tags));
    }
    let out = create
        .send()
        .await
        .ctx("CreateImage", region, Some(instance_id))?;
    let id = out.image_id().unwrap_or_default().to_string();
    ctx.stack.push(Resource::Image {
        region: region.to_string(),
        id: id.clone(),
        snapshots: Vec::new(),
    });
    ctx.message(format!("created image {id} in {region}"));
    let img = wait_available(ctx, &c, region, &id).await?;
    let snaps = snapshot_ids(&img);
    ctx.check_cancel()?;
    record_snapshots(ctx, &c, region, &id, &snaps, snapshot_specs).await?;
    let msg = format!("{id} available in {region}");
    Ok((
        ImageInfo {
            region: region.to_string(),
            image_id: id,
            snapshots: snaps,
        },
        msg,
    ))
}
