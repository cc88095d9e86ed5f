//! Creating the AMI: the name check (and `force_deregister`), CreateImage
//! tagged at creation (the AMI, and its snapshots where EC2 supports it),
//! the wait for `available` (tolerating `InvalidAMIID.NotFound` just after
//! creation), and snapshot tags for endpoints that did not apply them.
//!
//! AMIs and snapshots are never tagged temporary, so a successful build
//! needs no untagging call: while the build runs, its temporary resources
//! mark them as partial (see [`crate::cleanup::find_leftovers`]).

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Image as Ami, ImageState, ResourceType};
use aws_sdk_ec2::Client;
use serde::Serialize;
use tokio::time::Instant;

use super::{Actions, Ctx, Existing, Stage, State, Undo};
use crate::error::{AwsContext, Step, StepError};
use crate::request::{BuildRequest, WaitSettings};
pub(crate) use crate::resource::snapshot_ids;
use crate::resource::{Resource, TAG_BUILD_ID};
use crate::wait;
use crate::CancelToken;

/// The image step; it also deletes AMIs and snapshots (its own, the
/// copies', and what `force_deregister` replaces).
pub(crate) struct Image;

#[async_trait]
impl Stage for Image {
    fn name(&self) -> Step {
        Step::Image
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:DescribeImages");
        a.insert("ec2:CreateImage");
        a.insert("ec2:CreateTags");
        // On failure the partial AMI goes; `force_deregister` too.
        a.insert("ec2:DeregisterImage");
        a.insert("ec2:DeleteSnapshot");
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        st.would_create(format!("AMI `{}` in {}", cx.req.ami_name, cx.req.region));
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let inst = State::need(&st.instance, "instance")?;
        if let Some(existing) = st.existing.get() {
            deregister_existing(cx, existing).await?;
        }
        cx.check_cancel()?;
        let (info, msg) = run(cx, &inst.id).await?;
        let _ = st.image.set(info);
        Ok(msg)
    }

    fn creates(&self, r: &Resource) -> bool {
        r.is_artifact()
    }

    async fn undo(&self, u: &Undo<'_>, r: &Resource) -> Result<(), StepError> {
        let never = CancelToken::new();
        match r {
            Resource::Image { id, snapshots, .. } => {
                let c = u.ec2.client(r.region());
                deregister_with_snapshots(&c, r.region(), id, snapshots, u.settings, &never).await
            }
            _ => {
                let c = u.ec2.client(r.region());
                delete_snapshot(&c, r.region(), r.id(), u.settings, &never).await
            }
        }
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
pub(crate) async fn check_names(ctx: &Ctx<'_>) -> Result<Existing, StepError> {
    let req = ctx.req;
    let regions = req.all_regions();
    let futs = regions.iter().map(|r| async move {
        let c = ctx.ec2.client(r);
        (r.clone(), find_by_name(&c, r, &req.ami_name).await)
    });
    let mut taken = Existing::new();
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
async fn deregister_existing(ctx: &Ctx<'_>, existing: &Existing) -> Result<(), StepError> {
    for (region, list) in existing {
        let c = ctx.ec2.client(region);
        for (id, snaps) in list {
            ctx.message(format!(
                "deregistering existing {id} in {region} (force_deregister)"
            ));
            deregister_with_snapshots(&c, region, id, snaps, &ctx.req.wait, &ctx.cancel).await?;
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
) -> Result<Ami, StepError> {
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
pub(crate) fn tagged_by_us(ctx: &Ctx<'_>, img: &Ami) -> bool {
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
async fn run(ctx: &Ctx<'_>, instance_id: &str) -> Result<(ImageInfo, String), StepError> {
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

/// Deregisters an AMI and deletes its snapshots (looked up if not given),
/// retrying transient failures for `settings.cleanup_timeout_secs`.
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
                    snaps.extend(snapshot_ids(img));
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

/// Deletes a snapshot, waiting while it is still in use (right after its
/// AMI was deregistered).
async fn delete_snapshot(
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
