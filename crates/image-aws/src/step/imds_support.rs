//! `imds_support: v2.0` (packer `imds_support`): marks every AMI of the
//! build so instances launched from it require IMDSv2 (ModifyImageAttribute
//! `ImdsSupport`), in every region at once. Skipped when unset.
//!
//! This file is the model of an optional step: the stage here, its place in
//! [`super`]'s stage list, its setting in image-core's `AmiOptions`.

use async_trait::async_trait;
use aws_sdk_ec2::types::AttributeValue;

use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;

/// Sets `ImdsSupport` on the AMI and its copies.
pub(crate) struct ImdsSupport;

#[async_trait]
impl Stage for ImdsSupport {
    fn name(&self) -> Step {
        Step::new("imds_support")
    }

    fn applies(&self, req: &BuildRequest) -> bool {
        req.ami_options.imds_support.is_some()
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:ModifyImageAttribute");
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let Some(v) = cx.req.ami_options.imds_support.map(|v| v.as_str()) else {
            return Ok("not set".to_string());
        };
        let images = st.images();
        super::each_image(images.values(), |i| async move {
            cx.ec2
                .client(&i.region)
                .modify_image_attribute()
                .image_id(&i.image_id)
                .imds_support(AttributeValue::builder().value(v).build())
                .send()
                .await
                .ctx("ModifyImageAttribute", &i.region, Some(&i.image_id))
                .map(|_| ())
                .map_err(StepError::Aws)
        })
        .await?;
        Ok(format!("imds_support {v} on {} AMI(s)", images.len()))
    }
}
