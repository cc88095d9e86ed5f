//! Launch permissions (users, groups, organizations, OUs) on every AMI and
//! createVolumePermission on every snapshot, in every region.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    LaunchPermission, LaunchPermissionModifications, OperationType, PermissionGroup,
    SnapshotAttributeName,
};

use super::image::ImageInfo;
use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;

/// The permissions step.
pub(crate) struct Permissions;

#[async_trait]
impl Stage for Permissions {
    fn name(&self) -> Step {
        Step::Permissions
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        if has_launch(req) {
            a.insert("ec2:ModifyImageAttribute");
        }
        if has_snapshot(req) {
            a.insert("ec2:ModifySnapshotAttribute");
        }
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let images: Vec<ImageInfo> = st.images().into_values().collect();
        run(cx, &images).await
    }
}

fn has_launch(req: &BuildRequest) -> bool {
    !(req.ami_users.is_empty()
        && req.ami_groups.is_empty()
        && req.ami_org_arns.is_empty()
        && req.ami_ou_arns.is_empty())
}

fn has_snapshot(req: &BuildRequest) -> bool {
    !(req.snapshot_users.is_empty() && req.snapshot_groups.is_empty())
}

async fn in_region(ctx: &Ctx<'_>, img: &ImageInfo) -> Result<(), StepError> {
    let req = ctx.req;
    let region = img.region.as_str();
    let c = ctx.ec2.client(region);
    if has_launch(req) {
        let mut perms = Vec::new();
        for u in &req.ami_users {
            perms.push(LaunchPermission::builder().user_id(u).build());
        }
        for g in &req.ami_groups {
            perms.push(
                LaunchPermission::builder()
                    .group(PermissionGroup::from(g.as_str()))
                    .build(),
            );
        }
        for o in &req.ami_org_arns {
            perms.push(LaunchPermission::builder().organization_arn(o).build());
        }
        for o in &req.ami_ou_arns {
            perms.push(
                LaunchPermission::builder()
                    .organizational_unit_arn(o)
                    .build(),
            );
        }
        c.modify_image_attribute()
            .image_id(&img.image_id)
            .launch_permission(
                LaunchPermissionModifications::builder()
                    .set_add(Some(perms))
                    .build(),
            )
            .send()
            .await
            .ctx("ModifyImageAttribute", region, Some(&img.image_id))?;
    }
    if has_snapshot(req) {
        for s in &img.snapshots {
            c.modify_snapshot_attribute()
                .snapshot_id(s)
                .attribute(SnapshotAttributeName::CreateVolumePermission)
                .operation_type(OperationType::Add)
                .set_user_ids((!req.snapshot_users.is_empty()).then(|| req.snapshot_users.clone()))
                .set_group_names(
                    (!req.snapshot_groups.is_empty()).then(|| req.snapshot_groups.clone()),
                )
                .send()
                .await
                .ctx("ModifySnapshotAttribute", region, Some(s))?;
        }
    }
    Ok(())
}

/// Sets permissions on every image, all regions concurrently.
async fn run(ctx: &Ctx<'_>, images: &[ImageInfo]) -> Result<String, StepError> {
    if !has_launch(ctx.req) && !has_snapshot(ctx.req) {
        return Ok("no permissions to set".to_string());
    }
    super::each_image(images, |i| in_region(ctx, i)).await?;
    Ok(format!("set in {} region(s)", images.len()))
}
