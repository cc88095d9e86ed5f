//! Optional deprecation time on every AMI.

use async_trait::async_trait;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use super::image::ImageInfo;
use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;

/// The deprecation step.
pub(crate) struct Deprecate;

#[async_trait]
impl Stage for Deprecate {
    fn name(&self) -> Step {
        Step::Deprecate
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        if req.deprecate_at.is_some() {
            a.insert("ec2:EnableImageDeprecation");
        }
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let images: Vec<ImageInfo> = st.images().into_values().collect();
        run(cx, &images).await
    }
}

/// Sets `deprecate_at` on every image.
async fn run(ctx: &Ctx<'_>, images: &[ImageInfo]) -> Result<String, StepError> {
    let Some(at) = &ctx.req.deprecate_at else {
        return Ok("no deprecation time".to_string());
    };
    let when = DateTime::from_str(at, Format::DateTime)
        .map_err(|e| StepError::Invalid(vec![format!("deprecate_at `{at}`: {e}")]))?;
    super::each_image(images, |i| async move {
        ctx.ec2
            .client(&i.region)
            .enable_image_deprecation()
            .image_id(&i.image_id)
            .deprecate_at(when)
            .send()
            .await
            .ctx("EnableImageDeprecation", &i.region, Some(&i.image_id))
            .map(|_| ())
            .map_err(StepError::Aws)
    })
    .await?;
    Ok(format!("deprecated at {at}"))
}
