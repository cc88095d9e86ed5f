//! Connecting to the instance over SSH, retrying until `ssh.timeout_secs`;
//! with `ssh.host_key_from_console` only to the host key the instance's
//! console shows ([`super::console`]).
//!
//! The SSH client itself is behind [`Connector`] so this crate does not
//! depend on a particular implementation: the CLI passes one built on
//! `image_core::ssh::SshTarget`; tests pass their own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use image_core::ssh::{HostKeyPolicy, SshAuth, SshConfig, SshTarget};
use image_core::target::{Target, TargetError};
use tokio::time::Instant;

use super::instance::InstanceInfo;
use super::key_pair::{KeyMaterial, PrivateKey};
use super::{Actions, Ctx, Stage, State};
use crate::error::{Step, StepError};
use crate::hook::NotConnected;
use crate::request::{BuildRequest, SshInterface};
use crate::wait::{self, Backoff};

/// The connect step: the connection goes to [`State::target`].
pub(crate) struct Connect;

#[async_trait]
impl Stage for Connect {
    fn name(&self) -> Step {
        Step::Connect
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        super::console::actions(req, a);
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let inst = State::need(&st.instance, "instance")?;
        let key = State::need(&st.key, "key pair")?;
        let (target, msg) = run(cx, cx.connector, inst, key).await?;
        *st.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(target);
        Ok(msg)
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub username: String,
    /// The private key (OpenSSH or PEM text; never logged).
    pub private_key: PrivateKey,
    /// Timeout of one connection attempt.
    pub attempt_timeout: Duration,
    /// The connector may keep retrying for this long (what is left of
    /// `ssh.timeout_secs`); the connect step retries too, so a connector
    /// that tries once is fine.
    pub retry_until: Duration,
    /// Accept only a host key with this SHA256 fingerprint (`SHA256:…`,
    /// from the console with `ssh.host_key_from_console`); `None`: any.
    pub host_key: Option<String>,
}

/// Opens an SSH connection as a [`Target`].
#[async_trait]
pub trait Connector: Send + Sync {
    /// Connects. Errors other than [`TargetError::HostKeyMismatch`] are retried.
    async fn connect(&self, settings: &SshSettings) -> Result<Arc<dyn Target>, TargetError>;
}

/// The connector of [`crate::build`]: `image_core::ssh::SshTarget` (ssh2),
/// the host key pinned when [`SshSettings::host_key`] says so (else any:
/// a fresh instance's key is unknown), the key held in memory.
#[derive(Debug, Default, Clone, Copy)]
pub struct SshConnector;

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self, s: &SshSettings) -> Result<Arc<dyn Target>, TargetError> {
        let mut cfg = SshConfig::new(
            s.host.clone(),
            s.port,
            s.username.clone(),
            SshAuth::key_memory(s.private_key.expose()),
        );
        cfg.connect_timeout = s.attempt_timeout;
        cfg.retry_until = s.retry_until;
        if let Some(fp) = &s.host_key {
            cfg.host_key = HostKeyPolicy::Fingerprint(fp.clone());
        }
        let t = SshTarget::connect(cfg).await?;
        Ok(Arc::new(t))
    }
}

/// A connector that always fails: for builds with `ssh.connect` off, or
/// embedders that have no SSH client.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoConnector;

#[async_trait]
impl Connector for NoConnector {
    async fn connect(&self, s: &SshSettings) -> Result<Arc<dyn Target>, TargetError> {
        Err(TargetError::Unreachable {
            host: format!("{}@{}:{}", s.username, s.host, s.port),
            detail: "no SSH connector configured (pass one to image_aws::build_with)".to_string(),
        })
    }
}

/// The host to connect to: the override, else the configured interface.
pub(crate) fn host_for(req: &BuildRequest, inst: &InstanceInfo) -> Result<String, StepError> {
    if let Some(h) = &req.ssh.host {
        return Ok(h.clone());
    }
    let v = match req.ssh.interface {
        SshInterface::PublicIp => &inst.public_ip,
        SshInterface::PrivateIp => &inst.private_ip,
        SshInterface::PublicDns => &inst.public_dns,
        SshInterface::PrivateDns => &inst.private_dns,
    };
    let name = req.ssh.interface.as_str();
    v.clone().ok_or_else(|| StepError::NoAddress {
        region: req.region.clone(),
        instance: inst.id.clone(),
        interface: name.to_string(),
    })
}

/// Connects (with retries), or hands out a [`NotConnected`] target when
/// `ssh.connect` is off.
async fn run(
    ctx: &Ctx<'_>,
    connector: &dyn Connector,
    inst: &InstanceInfo,
    key: &KeyMaterial,
) -> Result<(Arc<dyn Target>, String), StepError> {
    let req = ctx.req;
    if !req.ssh.connect {
        let t = NotConnected {
            name: format!("instance {} (not connected)", inst.id),
        };
        return Ok((Arc::new(t), "skipped (ssh.connect is off)".to_string()));
    }
    let host = host_for(req, inst)?;
    let timeout = Duration::from_secs(req.ssh.timeout_secs);
    let deadline = Instant::now() + timeout;
    let host_key = if req.ssh.host_key_from_console {
        let fp = super::console::host_key(ctx, &inst.id, timeout).await?;
        ctx.message(format!(
            "pinning the host key of {} to {fp} (from its console)",
            inst.id
        ));
        Some(fp)
    } else {
        None
    };
    let mut settings = SshSettings {
        host,
        port: req.ssh.port,
        username: req.ssh.username.clone(),
        private_key: key.private_key.clone(),
        attempt_timeout: Duration::from_secs(10).min(timeout.max(Duration::from_secs(1))),
        retry_until: timeout,
        host_key,
    };
    let mut backoff = Backoff::new(&crate::request::WaitSettings {
        initial_interval_ms: 500,
        max_interval_ms: 5_000,
        ..req.wait.clone()
    });
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        ctx.check_cancel()?;
        settings.retry_until = deadline.saturating_duration_since(Instant::now());
        let budget = settings.retry_until + settings.attempt_timeout * 2;
        let attempt = tokio::time::timeout(budget, connector.connect(&settings));
        let r = tokio::select! {
            r = attempt => r,
            _ = ctx.cancel.cancelled() => return Err(StepError::Cancelled),
        };
        let err = match r {
            Ok(Ok(t)) => {
                let msg = format!("connected to {} after {attempts} attempt(s)", t.name());
                return Ok((t, msg));
            }
            Ok(Err(e @ TargetError::HostKeyMismatch { .. })) => return Err(StepError::Connect(e)),
            Ok(Err(e)) => e,
            Err(_) => TargetError::Unreachable {
                host: format!("{}@{}:{}", settings.username, settings.host, settings.port),
                detail: format!("no answer within {budget:?}"),
            },
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(StepError::Connect(err));
        }
        tracing::debug!(error = %err, attempts, "SSH not ready yet");
        wait::sleep(backoff.next_interval().min(deadline - now), &ctx.cancel).await?;
    }
}
