//! Terminating the build instance as soon as its AMI is available, while the
//! copies run (packer terminates it only after every copy, so on AWS its
//! builds pay the terminate wait, 30–60 s, on top of the copies).
//!
//! The AMI no longer needs the instance once it is available: copies read
//! the AMI's snapshots. What the instance was for [`crate::cleanup`] — the
//! marker that says the build's AMIs are still partial should this process
//! die — is then carried by the build's temporary key pair or security
//! group, which live until the build ends. A build with neither (given key
//! pair and given groups) keeps its instance until the end, as before.
//!
//! Termination is never cancelled (it is cleanup); if it fails, the
//! instance stays on the cleanup stack and the final cleanup retries it.

use async_trait::async_trait;

use super::{Actions, Ctx, Stage, State};
use crate::error::{Step, StepError};
use crate::request::{BuildRequest, KeyPairSpec, SecurityGroupSpec};
use crate::resource::Resource;

/// Terminates the instance once the AMI is available (reports through
/// messages; never fails the build).
pub(crate) struct TerminateEarly;

#[async_trait]
impl Stage for TerminateEarly {
    fn name(&self) -> Step {
        Step::new("terminate")
    }

    fn reported(&self) -> bool {
        false
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:TerminateInstances");
        a.insert("ec2:DescribeInstances");
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let inst = State::need(&st.instance, "instance")?;
        early(cx, &inst.id).await;
        Ok(String::new())
    }
}

/// True when the build has another temporary resource to mark its AMIs as
/// partial until it ends, so the instance can go early.
pub(crate) fn can_terminate_early(req: &BuildRequest) -> bool {
    req.key_pair == KeyPairSpec::Generate
        || matches!(req.security_group, SecurityGroupSpec::Temporary { .. })
}

/// Terminates instance `id` (waiting until it is gone) and takes it off the
/// cleanup stack; on failure leaves it there for the final cleanup. Does
/// nothing when [`can_terminate_early`] says no.
async fn early(ctx: &Ctx<'_>, id: &str) {
    if !can_terminate_early(ctx.req) {
        return;
    }
    let instance = Resource::Instance {
        region: ctx.req.region.clone(),
        id: id.to_string(),
    };
    ctx.message(format!(
        "terminating {id} now that the AMI is available (the copies go on)"
    ));
    let settings = ctx.req.wait.for_cleanup();
    match super::instance::terminate(ctx.ec2, &ctx.req.region, id, &settings).await {
        Ok(()) => {
            ctx.stack.remove(&instance);
            ctx.message(format!("{id} terminated"));
        }
        Err(e) => ctx.message(format!(
            "could not terminate {id} yet ({e}); trying again at the end"
        )),
    }
}
