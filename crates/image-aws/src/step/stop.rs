//! Stopping the instance before imaging it (unless `disable_stop_instance`).

use async_trait::async_trait;
use aws_sdk_ec2::types::InstanceStateName;

use super::instance::state;
use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;
use crate::wait;

/// The stop step.
pub(crate) struct Stop;

#[async_trait]
impl Stage for Stop {
    fn name(&self) -> Step {
        Step::Stop
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        if !req.disable_stop_instance {
            a.insert("ec2:StopInstances");
            a.insert("ec2:DescribeInstances");
        }
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let inst = State::need(&st.instance, "instance")?;
        run(cx, &inst.id).await
    }
}

/// Stops `id` and waits until it is stopped.
async fn run(ctx: &Ctx<'_>, id: &str) -> Result<String, StepError> {
    let req = ctx.req;
    if req.disable_stop_instance {
        return Ok("skipped (disable_stop_instance)".to_string());
    }
    let region = req.region.as_str();
    let c = ctx.ec2.client(region);
    c.stop_instances()
        .instance_ids(id)
        .send()
        .await
        .ctx("StopInstances", region, Some(id))?;
    wait::until(
        &req.wait,
        req.wait.instance_timeout(),
        &ctx.cancel,
        region,
        "instance stopped",
        id,
        || async {
            match state(&c, region, id).await? {
                Some((InstanceStateName::Stopped, _)) => Ok(Some(())),
                Some((InstanceStateName::Stopping, _))
                | Some((InstanceStateName::Running, _))
                | None => Ok(None),
                Some((s, reason)) => Err(StepError::BadState {
                    region: region.to_string(),
                    id: id.to_string(),
                    state: s.as_str().to_string(),
                    reason,
                }),
            }
        },
    )
    .await?;
    Ok(format!("{id} stopped"))
}
