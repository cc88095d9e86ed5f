//! Copying the AMI to `ami_regions`: concurrent with a cap, encrypted with
//! the region's KMS key when asked, each copy tagged at creation (AMI and
//! snapshots) and awaited in its region; failures collected per region.
//! Where EC2 ignored the tag specifications (moto), the available copy
//! shows no build tag and is tagged then.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use futures::StreamExt;

use super::image::{self, ImageInfo};
use super::{Actions, Ctx, Stage, State, Undo, KMS_ACTIONS};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;
use crate::resource::{Resource, TAG_TEMPORARY};

/// The copy step.
pub(crate) struct Copy;

#[async_trait]
impl Stage for Copy {
    fn name(&self) -> Step {
        Step::Copy
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        if req.ami_regions.from_all() {
            a.insert("ec2:DescribeRegions");
        }
        if req.ami_regions.from_all() || !req.copy_regions().is_empty() {
            if !req.skip_region_validation {
                // The dry run checks the copy regions exist.
                a.insert("ec2:DescribeRegions");
            }
            a.insert("ec2:CopyImage");
            a.insert("ec2:DescribeImages");
            a.insert("ec2:CreateTags");
            a.insert("ec2:DeregisterImage");
            a.insert("ec2:DeleteSnapshot");
        }
        if !req.region_kms_key_ids.is_empty() {
            a.extend(KMS_ACTIONS);
        }
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        let req = cx.req;
        let copy_regions = req.copy_regions();
        if req.skip_region_validation {
            for r in &copy_regions {
                st.would_create(format!("copy of the AMI in {r}"));
            }
            return Ok(());
        }
        if copy_regions.is_empty() {
            return Ok(());
        }
        let region = req.region.as_str();
        let out = cx
            .ec2
            .client(region)
            .describe_regions()
            .all_regions(true)
            .send()
            .await
            .ctx("DescribeRegions", region, None)?;
        let known: BTreeSet<&str> = out
            .regions()
            .iter()
            .filter_map(|r| r.region_name())
            .collect();
        let unknown: Vec<String> = copy_regions
            .iter()
            .filter(|r| !known.contains(r.as_str()))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(StepError::Invalid(vec![format!(
                "unknown copy region(s): {}",
                unknown.join(", ")
            )]));
        }
        for r in &copy_regions {
            st.would_create(format!("copy of the AMI in {r}"));
        }
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let image = st.ami()?;
        let (copies, msg) = run(cx, image).await?;
        let _ = st.copies.set(copies);
        Ok(msg)
    }
}

async fn copy_one(ctx: &Ctx<'_>, source: &ImageInfo, region: &str) -> Result<ImageInfo, StepError> {
    ctx.check_cancel()?;
    let req = ctx.req;
    let c = ctx.ec2.client(region);
    let kms = req.region_kms_key_ids.get(region).cloned();
    let encrypted = req.encrypted || kms.is_some();
    let out = c
        .copy_image()
        .source_region(&req.region)
        .source_image_id(&source.image_id)
        .name(&req.ami_name)
        .set_description(req.ami_description.clone())
        .set_encrypted(encrypted.then_some(true))
        .set_kms_key_id(kms)
        .client_token(format!("{}-copy-{region}", ctx.build_id))
        .tag_specifications(ctx.tag_spec(ResourceType::Image, &req.tags))
        .tag_specifications(ctx.tag_spec(ResourceType::Snapshot, &req.snapshot_tags))
        .send()
        .await
        .ctx("CopyImage", region, Some(&source.image_id))?;
    let id = out.image_id().unwrap_or_default().to_string();
    ctx.stack.push(Resource::Image {
        region: region.to_string(),
        id: id.clone(),
        snapshots: Vec::new(),
    });
    ctx.message(format!("copying {} to {region} as {id}", source.image_id));
    let img = image::wait_available(ctx, &c, region, &id).await?;
    let snaps = image::snapshot_ids(&img);
    ctx.check_cancel()?;
    let tagged = image::tagged_by_us(ctx, &img);
    if !tagged {
        // Not every EC2 implementation honours tag specifications on copies.
        c.create_tags()
            .resources(&id)
            .set_tags(Some(ctx.tags_with(&req.tags)))
            .send()
            .await
            .ctx("CreateTags", region, Some(&id))?;
    }
    image::record_snapshots(ctx, &c, region, &id, &snaps, tagged).await?;
    Ok(ImageInfo {
        region: region.to_string(),
        image_id: id,
        snapshots: snaps,
    })
}

/// Copies `source` to every copy region. Returns the copies by region, or
/// every failure (the successful copies are on the cleanup stack).
async fn run(
    ctx: &Ctx<'_>,
    source: &ImageInfo,
) -> Result<(BTreeMap<String, ImageInfo>, String), StepError> {
    let regions = ctx.req.copy_regions();
    if regions.is_empty() {
        return Ok((BTreeMap::new(), "no copy regions".to_string()));
    }
    let results: Vec<(String, Result<ImageInfo, StepError>)> =
        futures::stream::iter(regions.into_iter().map(|r| async move {
            let res = copy_one(ctx, source, &r).await;
            (r, res)
        }))
        .buffer_unordered(ctx.req.copy_concurrency.max(1))
        .collect()
        .await;
    let mut ok = BTreeMap::new();
    let mut failed = Vec::new();
    for (region, r) in results {
        match r {
            Ok(i) => {
                ok.insert(region, i);
            }
            Err(e) => failed.push((region, e)),
        }
    }
    if ctx.cancel.is_cancelled() {
        return Err(StepError::Cancelled);
    }
    if !failed.is_empty() {
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        if !ctx.req.ami_regions.from_all() {
            return Err(StepError::Regions(failed));
        }
        // `ami_regions: all`: keep the copies that worked; delete what the
        // failed ones made, like any failed copy, and report them.
        let regions: Vec<String> = failed.iter().map(|(r, _)| r.clone()).collect();
        let partial = ctx.stack.take_images_in(&regions);
        let failures = delete_partial(ctx, partial).await;
        // What could not be deleted outlives the build's instance: tag it
        // temporary so `find_leftovers` still finds it.
        let stuck: Vec<_> = failures.iter().map(|f| f.resource.clone()).collect();
        for (r, e) in crate::mark::mark(ctx.ec2, &stuck, TAG_TEMPORARY, &ctx.req.wait).await {
            ctx.message(format!("could not tag {r} as temporary: {e}"));
        }
        let mut record = ctx.failed_regions.lock().unwrap_or_else(|e| e.into_inner());
        for (region, e) in &failed {
            ctx.message(format!(
                "copy to {region} failed (kept the other regions): {e}"
            ));
            record.insert(region.clone(), e.to_string());
        }
        for f in failures {
            let region = f.resource.region().to_string();
            ctx.message(format!("cleaning up the failed copy in {region}: {f}"));
            ctx.stack.push(f.resource.clone());
            if let Some(m) = record.get_mut(&region) {
                m.push_str(&format!("; cleanup: {f}"));
            }
        }
    }
    let msg = ok
        .values()
        .map(|i| format!("{}:{}", i.region, i.image_id))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((ok, msg))
}

/// Deletes what failed copies made (AMIs, snapshots), all at once, as the
/// image step undoes them.
async fn delete_partial(ctx: &Ctx<'_>, partial: Vec<Resource>) -> Vec<crate::CleanupFailure> {
    let settings = ctx.req.wait.for_cleanup();
    let u = Undo {
        ec2: ctx.ec2,
        settings: &settings,
        patient: true,
    };
    let futs = partial.into_iter().map(|r| {
        let u = &u;
        async move {
            let res = image::Image.undo(u, &r).await;
            res.err()
                .map(|error| crate::CleanupFailure { resource: r, error })
        }
    });
    futures::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect()
}
