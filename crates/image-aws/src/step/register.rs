//! `boot_mode` and `tpm_support`: EC2 sets them only when an AMI is
//! registered (CreateImage inherits the instance's boot mode; NitroTPM
//! "cannot be configured later"), so with either set the AMI CreateImage
//! made is registered again from its own snapshots, under its name: the
//! snapshots are kept, the first AMI is deregistered, RegisterImage gets
//! the same devices, architecture, ENA and SR-IOV support with the boot
//! mode and TPM asked for. packer registers from snapshots the same way in
//! its ebssurrogate and chroot builders (amazon-ebs has neither option).
//! The copies are made from the registered AMI, so they have both too.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, BootModeValues, EbsBlockDevice, ResourceType, TpmSupportValues,
};

use super::image::{wait_available, ImageInfo};
use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::{AmiOptions, BuildRequest};
use crate::resource::Resource;

/// Registers the AMI again with `boot_mode` / `tpm_support`.
pub(crate) struct Register;

#[async_trait]
impl Stage for Register {
    fn name(&self) -> Step {
        Step::new("register")
    }

    fn applies(&self, req: &BuildRequest) -> bool {
        req.ami_options.needs_register()
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:DescribeImages");
        a.insert("ec2:DeregisterImage");
        a.insert("ec2:RegisterImage");
        // The registered AMI is tagged at creation.
        a.insert("ec2:CreateTags");
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        st.would_create(format!(
            "AMI `{}` registered again from its snapshots ({})",
            cx.req.ami_name,
            what(&cx.req.ami_options)
        ));
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let first = State::need(&st.image, "image")?;
        let req = cx.req;
        let region = req.region.as_str();
        let c = cx.ec2.client(region);
        let old = first.image_id.as_str();
        let out = c.describe_images().image_ids(old).send().await.ctx(
            "DescribeImages",
            region,
            Some(old),
        )?;
        let Some(ami) = out.images().first() else {
            return Err(StepError::Invalid(vec![format!(
                "image {old} in {region} is gone before it could be registered again"
            )]));
        };
        cx.check_cancel()?;
        // The snapshots stay: the stack's record of the first AMI still
        // deletes them if anything below fails.
        c.deregister_image().image_id(old).send().await.ctx(
            "DeregisterImage",
            region,
            Some(old),
        )?;
        let opts = &req.ami_options;
        let new = c
            .register_image()
            .name(&req.ami_name)
            .set_description(req.ami_description.clone())
            .set_architecture(ami.architecture().cloned())
            .set_root_device_name(ami.root_device_name().map(str::to_string))
            .set_virtualization_type(ami.virtualization_type().map(|v| v.as_str().to_string()))
            .set_ena_support(ami.ena_support())
            .set_sriov_net_support(ami.sriov_net_support().map(str::to_string))
            .set_block_device_mappings(Some(devices(ami.block_device_mappings())))
            .set_boot_mode(opts.boot_mode.map(|b| BootModeValues::from(b.as_str())))
            .set_tpm_support(opts.tpm_support.map(|t| TpmSupportValues::from(t.as_str())))
            .tag_specifications(cx.tag_spec(ResourceType::Image, &req.tags))
            .send()
            .await
            .ctx("RegisterImage", region, Some(&req.ami_name))?;
        let id = new.image_id().unwrap_or_default().to_string();
        cx.stack.push(Resource::Image {
            region: region.to_string(),
            id: id.clone(),
            snapshots: first.snapshots.clone(),
        });
        cx.stack.remove(&Resource::Image {
            region: region.to_string(),
            id: old.to_string(),
            snapshots: first.snapshots.clone(),
        });
        wait_available(cx, &c, region, &id).await?;
        let _ = st.registered.set(ImageInfo {
            region: region.to_string(),
            image_id: id.clone(),
            snapshots: first.snapshots.clone(),
        });
        Ok(format!("{old} registered again as {id} ({})", what(opts)))
    }
}

/// `boot_mode …, tpm_support …` for messages.
fn what(opts: &AmiOptions) -> String {
    format!(
        "boot_mode {}, tpm_support {}",
        opts.boot_mode.map_or("unset", |b| b.as_str()),
        opts.tpm_support.map_or("unset", |t| t.as_str())
    )
}

/// The devices of the first AMI for RegisterImage: each EBS volume from
/// its snapshot (encryption comes with the snapshot and cannot be given).
fn devices(mappings: &[BlockDeviceMapping]) -> Vec<BlockDeviceMapping> {
    mappings
        .iter()
        .map(|m| {
            let ebs = m.ebs().map(|e| {
                EbsBlockDevice::builder()
                    .set_snapshot_id(e.snapshot_id().map(str::to_string))
                    .set_volume_size(e.volume_size())
                    .set_volume_type(e.volume_type().cloned())
                    .set_iops(e.iops())
                    .set_throughput(e.throughput())
                    .set_delete_on_termination(e.delete_on_termination())
                    .build()
            });
            BlockDeviceMapping::builder()
                .set_device_name(m.device_name().map(str::to_string))
                .set_virtual_name(m.virtual_name().map(str::to_string))
                .set_ebs(ebs)
                .build()
        })
        .collect()
}
