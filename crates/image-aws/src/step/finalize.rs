//! The last step of a build: nothing to call (the AMIs and snapshots were
//! never tagged temporary), it reports how many AMIs are kept.

use async_trait::async_trait;

use super::{Actions, Ctx, Stage, State};
use crate::error::{Step, StepError};
use crate::request::BuildRequest;

/// Reports the AMIs kept.
pub(crate) struct Finalize;

#[async_trait]
impl Stage for Finalize {
    fn name(&self) -> Step {
        Step::Finalize
    }

    fn actions(&self, _req: &BuildRequest, _a: &mut Actions) {}

    async fn run(&self, _cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        Ok(format!("{} AMI(s) kept", st.images().len()))
    }
}
