//! `ena_support` (packer amazon-ebs `ena_support`): enhanced networking on
//! the AMI. As packer does, ModifyInstanceAttribute `EnaSupport` on the
//! stopped instance before CreateImage; the AMI inherits the attribute
//! (and so do its copies). `false` turns it off; unset = the source AMI's.
//! EC2 changes the attribute on a stopped instance only: with
//! `disable_stop_instance` the request is refused before any call
//! (image-core's `BuildSettings::problems`).
//!
//! The model of an optional step: this file, its line in [`super`]'s stage
//! list, its setting in image-core's `AmiOptions`.

use async_trait::async_trait;
use aws_sdk_ec2::types::AttributeBooleanValue;

use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;

/// Sets `EnaSupport` on the stopped build instance.
pub(crate) struct EnaSupport;

#[async_trait]
impl Stage for EnaSupport {
    fn name(&self) -> Step {
        Step::new("ena_support")
    }

    fn applies(&self, req: &BuildRequest) -> bool {
        req.ami_options.ena_support.is_some()
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:ModifyInstanceAttribute");
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let Some(on) = cx.req.ami_options.ena_support else {
            return Ok("not set".to_string());
        };
        let inst = State::need(&st.instance, "instance")?;
        let region = cx.req.region.as_str();
        cx.ec2
            .client(region)
            .modify_instance_attribute()
            .instance_id(&inst.id)
            .ena_support(AttributeBooleanValue::builder().value(on).build())
            .send()
            .await
            .ctx("ModifyInstanceAttribute", region, Some(&inst.id))?;
        Ok(format!("ena_support {on} on {}", inst.id))
    }
}
