//! The provisioning point: [`ProvisionHook`] is called once the instance is
//! reachable. image-aws knows nothing of what provisioning does.

use std::sync::Arc;

use async_trait::async_trait;
use image_core::target::{Become, Exec, FileMeta, Output, Target, TargetError};

/// Why a hook failed: a message for people, and the underlying error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HookError {
    /// What failed (host, task, ...).
    pub message: String,
    /// The cause.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl HookError {
    /// A hook error with a message only.
    pub fn msg(message: impl Into<String>) -> Self {
        HookError {
            message: message.into(),
            source: None,
        }
    }

    /// A hook error wrapping a cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        HookError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Called after SSH connects, before the instance is stopped and imaged.
/// If it fails, no AMI is made.
#[async_trait]
pub trait ProvisionHook: Send + Sync {
    /// Provisions (and verifies) the instance behind `target`.
    async fn provision(&self, build: &str, target: Arc<dyn Target>) -> Result<(), HookError>;
}

/// A hook that does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProvisioning;

#[async_trait]
impl ProvisionHook for NoProvisioning {
    async fn provision(&self, _build: &str, _target: Arc<dyn Target>) -> Result<(), HookError> {
        Ok(())
    }
}

/// The target handed to the hook when `ssh.connect` is off: it names the
/// instance and refuses every operation.
#[derive(Debug, Clone)]
pub struct NotConnected {
    /// `instance i-... (203.0.113.7)`.
    pub name: String,
}

impl NotConnected {
    fn err(&self) -> TargetError {
        TargetError::Other {
            host: self.name.clone(),
            detail: "not connected (ssh.connect is off)".to_string(),
        }
    }
}

#[async_trait]
impl Target for NotConnected {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn exec(&self, _cmd: &Exec) -> Result<Output, TargetError> {
        Err(self.err())
    }

    async fn put(
        &self,
        _path: &str,
        _content: &[u8],
        _meta: &FileMeta,
        _become_: Option<&Become>,
    ) -> Result<(), TargetError> {
        Err(self.err())
    }

    async fn get(&self, _path: &str, _become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        Err(self.err())
    }
}
