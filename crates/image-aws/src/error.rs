//! Errors: every AWS failure names the operation, the region and the
//! resource it was about; a [`BuildError`] adds the step and what was left.

use std::fmt;
use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use image_core::target::TargetError;

use crate::hook::HookError;
use crate::resource::Resource;

/// One failed EC2 call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} in {region}{}: {}{message}", resource.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(), code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    /// The API operation, e.g. `CreateImage`.
    pub operation: &'static str,
    /// The region called.
    pub region: String,
    /// The resource the call was about (AMI id, instance id, ...).
    pub resource: Option<String>,
    /// The EC2 error code (`InvalidAMIID.NotFound`, `DependencyViolation`, ...).
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// Worth retrying: throttling, a 5xx answer, a timeout or a connection
    /// failure (after the SDK's own attempts).
    pub transient: bool,
}

impl AwsError {
    pub(crate) fn from_sdk<E>(
        operation: &'static str,
        region: &str,
        resource: Option<&str>,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(s) => {
                s.raw().status().is_server_error() || code.as_deref().is_some_and(is_transient_code)
            }
            _ => false,
        };
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => DisplayErrorContext(&err).to_string(),
        };
        AwsError {
            operation,
            region: region.to_string(),
            resource: resource.map(str::to_string),
            code,
            message,
            transient,
        }
    }

    /// True when the error code is `code` or starts with `code.`.
    pub fn is(&self, code: &str) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c == code || c.starts_with(&format!("{code}.")))
    }
}

/// EC2 error codes of throttling and of its own failures: worth retrying.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "Unavailable"
    )
}

/// Adds operation, region and resource to an SDK result.
pub(crate) trait AwsContext<T> {
    fn ctx(
        self,
        operation: &'static str,
        region: &str,
        resource: Option<&str>,
    ) -> Result<T, AwsError>;
}

impl<T, E> AwsContext<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn ctx(
        self,
        operation: &'static str,
        region: &str,
        resource: Option<&str>,
    ) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::from_sdk(operation, region, resource, e))
    }
}

/// A step of a build or test, by name (events, errors). Each step's file
/// names its own ([`Step::new`]); the constants are the built-in steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Step(&'static str);

#[allow(non_upper_case_globals)]
impl Step {
    /// Checking the request.
    pub const Validate: Step = Step("validate");
    /// Resolving the source AMI and checking the AMI name is free.
    pub const SourceAmi: Step = Step("source_ami");
    /// Creating the temporary key pair.
    pub const KeyPair: Step = Step("key_pair");
    /// Creating the temporary security group.
    pub const SecurityGroup: Step = Step("security_group");
    /// Launching the instance and waiting for it to run.
    pub const Instance: Step = Step("instance");
    /// Connecting over SSH.
    pub const Connect: Step = Step("connect");
    /// The provisioning hook.
    pub const Provision: Step = Step("provision");
    /// The test hook of [`crate::test_instance`] (no image is made).
    pub const Test: Step = Step("test");
    /// Stopping the instance.
    pub const Stop: Step = Step("stop");
    /// Creating the AMI and waiting for it.
    pub const Image: Step = Step("image");
    /// Copying the AMI to other regions.
    pub const Copy: Step = Step("copy");
    /// Launch and snapshot permissions.
    pub const Permissions: Step = Step("permissions");
    /// Deprecation time.
    pub const Deprecate: Step = Step("deprecate");
    /// Marking the AMIs as kept.
    pub const Finalize: Step = Step("finalize");
    /// Deleting temporary resources.
    pub const Cleanup: Step = Step("cleanup");
    /// `ami_regions: all`: finding the account's regions.
    pub const Regions: Step = Step("regions");

    /// A step named `name` (snake case).
    pub const fn new(name: &'static str) -> Step {
        Step(name)
    }

    /// Snake-case name (events, messages).
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The request is unusable.
    #[error("invalid build request: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// An EC2 call failed (after the SDK's retries).
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// No AMI matches the source filter.
    #[error("no source AMI in {region} matches {filter}")]
    SourceAmiNotFound {
        /// Region searched.
        region: String,
        /// The filter, as text.
        filter: String,
    },
    /// Several AMIs match and `most_recent` is off.
    #[error("{} source AMIs in {region} match {filter} ({}); set most_recent or narrow the filter", ids.len(), ids.join(", "))]
    SourceAmiAmbiguous {
        /// Region searched.
        region: String,
        /// The filter, as text.
        filter: String,
        /// The matching ids.
        ids: Vec<String>,
    },
    /// An AMI with the name exists already.
    #[error("an AMI named `{name}` already exists in {region} ({image_id}); pick another name or set force_deregister")]
    NameTaken {
        /// The region.
        region: String,
        /// The name.
        name: String,
        /// The existing AMI.
        image_id: String,
    },
    /// A wait ran out of time.
    #[error("{what} {id} in {region}: not done after {after:?}")]
    Timeout {
        /// The region.
        region: String,
        /// What was awaited (`image available`, `instance running`, ...).
        what: String,
        /// The resource id.
        id: String,
        /// The timeout.
        after: Duration,
    },
    /// A resource reached a state it cannot come back from.
    #[error("{id} in {region} is {state}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    BadState {
        /// The region.
        region: String,
        /// The resource id.
        id: String,
        /// The state.
        state: String,
        /// EC2's state reason.
        reason: Option<String>,
    },
    /// A temporary security group without source CIDRs, and this
    /// machine's public address could not be learned.
    #[error(
        "{0}; set `temporary_security_group_source_cidrs` (or `--ssh-source-cidr`) to the CIDRs \
         allowed to reach SSH"
    )]
    PublicAddress(PublicIpError),
    /// `ssh.host_key_from_console`: the console never showed the host keys.
    #[error(
        "no SSH host key fingerprints on the console of {instance} in {region} after {after:?}: \
         cloud-init prints them at first boot; raise ssh_timeout, or set \
         ssh_host_key_from_console: false for an AMI without cloud-init"
    )]
    NoHostKeyOnConsole {
        /// The region.
        region: String,
        /// The instance.
        instance: String,
        /// How long the console was polled.
        after: Duration,
    },
    /// The instance has no address of the configured kind.
    #[error(
        "instance {instance} in {region} has no {interface} address; set ssh.interface or ssh.host"
    )]
    NoAddress {
        /// The region.
        region: String,
        /// The instance.
        instance: String,
        /// The interface asked for.
        interface: String,
    },
    /// The given private key file cannot be used.
    #[error("private key file {path}: {detail}")]
    KeyFile {
        /// The path.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// SSH never came up.
    #[error("connecting to the instance: {0}")]
    Connect(#[source] TargetError),
    /// The provisioning hook failed.
    #[error("provisioning failed: {0}")]
    Hook(#[source] HookError),
    /// The test hook of [`crate::test_instance`] failed.
    #[error("test failed: {0}")]
    Test(#[source] HookError),
    /// Some copies (or per-region operations) failed; the others succeeded.
    #[error("{} region(s) failed: {}", .0.len(), .0.iter().map(|(r, e)| format!("[{r}] {e}")).collect::<Vec<_>>().join("; "))]
    Regions(Vec<(String, StepError)>),
    /// The build was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl StepError {
    /// The region the error is about, when there is one.
    pub fn region(&self) -> Option<&str> {
        match self {
            StepError::Aws(e) => Some(&e.region),
            StepError::SourceAmiNotFound { region, .. }
            | StepError::SourceAmiAmbiguous { region, .. }
            | StepError::NameTaken { region, .. }
            | StepError::Timeout { region, .. }
            | StepError::BadState { region, .. }
            | StepError::NoAddress { region, .. }
            | StepError::NoHostKeyOnConsole { region, .. } => Some(region),
            StepError::Regions(v) if v.len() == 1 => Some(&v[0].0),
            _ => None,
        }
    }

    /// True for [`StepError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, StepError::Cancelled)
    }
}

/// A resource that could not be deleted, and why.
#[derive(Debug, thiserror::Error)]
#[error("deleting {resource}: {error}")]
pub struct CleanupFailure {
    /// The resource (still in AWS).
    pub resource: Resource,
    /// Why.
    #[source]
    pub error: StepError,
}

/// The address could not be learned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not learn this machine's public address from {url} ({reason})")]
pub struct PublicIpError {
    /// The URL asked.
    pub url: String,
    /// What went wrong (refused, timed out, status, not an address).
    pub reason: String,
}

/// A failed build: the step, the region, the cause, and what is left.
#[derive(Debug, thiserror::Error)]
pub struct BuildError {
    /// The build's name.
    pub build: String,
    /// The build id (the `image-builder:build-id` tag value).
    pub build_id: String,
    /// The step that failed.
    pub step: Step,
    /// The region it failed in, if it was about one.
    pub region: Option<String>,
    /// The cause.
    #[source]
    pub error: StepError,
    /// Resources still in AWS: everything created with `OnError::Abort`,
    /// else those whose deletion failed.
    pub left: Vec<Resource>,
    /// Why deleting some temporary resources failed.
    pub cleanup_failures: Vec<CleanupFailure>,
}

impl BuildError {
    /// True when the build was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.error.is_cancelled()
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "build `{}` failed at step {}", self.build, self.step)?;
        if let Some(r) = &self.region {
            write!(f, " in {r}")?;
        }
        write!(f, ": {}", self.error)?;
        if !self.left.is_empty() {
            write!(f, "; left in AWS (build id {}): ", self.build_id)?;
            let list: Vec<String> = self.left.iter().map(|r| r.to_string()).collect();
            write!(f, "{}", list.join(", "))?;
        }
        for c in &self.cleanup_failures {
            write!(f, "; cleanup: {c}")?;
        }
        Ok(())
    }
}
