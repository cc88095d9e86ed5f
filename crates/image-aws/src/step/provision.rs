//! The hook on the reachable instance: provisioning in a build
//! ([`Step::Provision`]), the checks in a test ([`Step::Test`]). The hook
//! takes the connection, so it is closed before the instance stops; a
//! cancellation stops the hook.

use async_trait::async_trait;

use super::{Actions, Ctx, Stage, State};
use crate::error::{Step, StepError};
use crate::request::BuildRequest;

/// Runs [`Ctx::hook`] on the connection [`super::connect`] made.
pub(crate) struct Hook {
    step: Step,
}

impl Hook {
    /// A build's provisioning.
    pub const PROVISION: Hook = Hook {
        step: Step::Provision,
    };
    /// A test's checks.
    pub const TEST: Hook = Hook { step: Step::Test };
}

#[async_trait]
impl Stage for Hook {
    fn name(&self) -> Step {
        self.step
    }

    fn actions(&self, _req: &BuildRequest, _a: &mut Actions) {}

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let target = st
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| StepError::Invalid(vec!["internal: no connection".to_string()]))?;
        let Some(hook) = cx.hook else {
            return Ok("no hook".to_string());
        };
        let test = self.step == Step::Test;
        let name = target.name();
        tokio::select! {
            r = hook.provision(&cx.req.name, target) => r.map_err(|e| {
                if test { StepError::Test(e) } else { StepError::Hook(e) }
            })?,
            _ = cx.cancel.cancelled() => return Err(StepError::Cancelled),
        }
        let verb = if test { "tested" } else { "provisioned" };
        Ok(format!("{verb} {name}"))
    }
}
