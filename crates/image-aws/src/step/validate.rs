//! Checking the request before any call: everything a build (or, for a
//! test, a launch) needs that can be known without AWS.

use async_trait::async_trait;

use super::{Actions, Ctx, Stage, State};
use crate::error::{Step, StepError};
use crate::request::BuildRequest;

/// Checks the request ([`BuildRequest::validate`], or
/// [`BuildRequest::validate_launch`] for a test).
pub(crate) struct Validate {
    launch_only: bool,
}

impl Validate {
    /// A build's checks.
    pub const BUILD: Validate = Validate { launch_only: false };
    /// A test's: the image settings are not used.
    pub const LAUNCH: Validate = Validate { launch_only: true };

    fn validate(&self, cx: &Ctx<'_>) -> Result<String, StepError> {
        let req = cx.req;
        if self.launch_only {
            req.validate_launch().map_err(StepError::Invalid)?;
            Ok(format!("test id {}", cx.build_id))
        } else {
            req.validate().map_err(StepError::Invalid)?;
            Ok(format!("build id {}", cx.build_id))
        }
    }
}

#[async_trait]
impl Stage for Validate {
    fn name(&self) -> Step {
        Step::Validate
    }

    fn actions(&self, _req: &BuildRequest, _a: &mut Actions) {}

    async fn check(&self, cx: &Ctx<'_>, _st: &State) -> Result<(), StepError> {
        self.validate(cx).map(|_| ())
    }

    async fn run(&self, cx: &Ctx<'_>, _st: &State) -> Result<String, StepError> {
        self.validate(cx)
    }
}
