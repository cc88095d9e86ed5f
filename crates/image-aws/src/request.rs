//! [`BuildRequest`]: everything one EC2 build needs, as plain data.
//!
//! It is independent of the spec file format, but not a second model of
//! the settings: it holds image-core's [`BuildSettings`], the struct a
//! definition is read into, with its value types ([`SourceAmi`],
//! [`RootDevice`], [`AmiRegions`], [`AmiOptions`], …) and the rules on its
//! values ([`BuildSettings::problems`]). Besides, it holds what only a run
//! has (key pair, security group and SSH choices, waits, `on_error`), which
//! [`BuildRequest::from_plan`] maps from the definition. Durations are plain
//! integers with their unit in the field name, so the struct serialises to
//! obvious JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use image_core::spec::spot::SpotOptions;
pub use image_core::spec::{
    ami_options, AmiFilter, AmiOptions, AmiRegions, Architecture, BuildSettings, MetadataOptions,
    RootDevice, SourceAmi, SshInterface, VolumeType,
};

/// One EC2 build (packer `amazon-ebs` equivalent): a name, the build's
/// [`BuildSettings`] (image-core's, the ones a definition is read into),
/// and what only a run has.
///
/// A `BuildRequest` dereferences to its settings, so `req.ami_name` is
/// `req.settings.ami_name`. In JSON the settings' keys sit beside the
/// request's own (`{"name": …, "region": …, "ami_name": …, "wait": …}`).
///
/// ```
/// use image_aws::{BuildRequest, SourceAmi};
///
/// let mut req = BuildRequest::new("node", "us-east-1",
///     SourceAmi::Id("ami-0123456789abcdef0".into()), "t3.small", "node-1");
/// req.ami_users.push("123456789012".into());
/// req.tags.insert("team".into(), "nodes".into());
/// assert!(req.validate().is_ok());
/// req.ami_users.push("everyone".into());
/// assert!(req.validate().unwrap_err()[0].contains("invalid account id `everyone`"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// The build's name (events, manifest, error messages).
    pub name: String,
    /// What the instance is launched with and what the AMI becomes.
    #[serde(flatten)]
    pub settings: BuildSettings,
    /// User data, as text (base64-encoded by us).
    #[serde(default)]
    pub user_data: Option<String>,
    /// The SSH key pair.
    #[serde(default)]
    pub key_pair: KeyPairSpec,
    /// The security group(s) of the instance.
    #[serde(default)]
    pub security_group: SecurityGroupSpec,
    /// How to reach the instance.
    #[serde(default)]
    pub ssh: SshSpec,
    /// Polling and timeouts.
    #[serde(default)]
    pub wait: WaitSettings,
    /// At most this many copies run at once.
    #[serde(default = "default_copy_concurrency")]
    pub copy_concurrency: usize,
    /// What to do with temporary resources when the build fails.
    #[serde(default)]
    pub on_error: OnError,
    /// Free-form data for the manifest's `custom_data`.
    #[serde(default)]
    pub custom_data: BTreeMap<String, String>,
    /// The run this build belongs to (the manifest's `packer_run_uuid`;
    /// several builds of one CLI run share it). Default: the build id.
    #[serde(default)]
    pub run_uuid: Option<String>,
}

impl std::ops::Deref for BuildRequest {
    type Target = BuildSettings;

    fn deref(&self) -> &BuildSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for BuildRequest {
    fn deref_mut(&mut self) -> &mut BuildSettings {
        &mut self.settings
    }
}

fn default_copy_concurrency() -> usize {
    4
}

impl BuildRequest {
    /// A request with defaults for everything but the essentials.
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        source_ami: SourceAmi,
        instance_type: impl Into<String>,
        ami_name: impl Into<String>,
    ) -> Self {
        Self::with_settings(
            name,
            BuildSettings::new(region, source_ami, instance_type, ami_name),
        )
    }

    /// A request for `settings`, with the defaults for the rest.
    pub fn with_settings(name: impl Into<String>, settings: BuildSettings) -> Self {
        BuildRequest {
            name: name.into(),
            settings,
            user_data: None,
            key_pair: KeyPairSpec::default(),
            security_group: SecurityGroupSpec::default(),
            ssh: SshSpec::default(),
            wait: WaitSettings::default(),
            copy_concurrency: default_copy_concurrency(),
            on_error: OnError::default(),
            custom_data: BTreeMap::new(),
            run_uuid: None,
        }
    }

    /// Checks what can be checked without calling AWS. Returns every
    /// problem: the settings' ([`BuildSettings::problems`], the rules a
    /// definition is checked with) and the run's.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = self.launch_problems();
        errs.extend(self.settings.problems().iter().map(ToString::to_string));
        if self.copy_concurrency == 0 {
            errs.push("copy_concurrency must be at least 1".to_string());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Checks only what launching an instance needs (name, region, security
    /// group), not the image settings: what [`crate::test_instance`] uses.
    pub fn validate_launch(&self) -> Result<(), Vec<String>> {
        let errs = self.launch_problems();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    fn launch_problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() {
            errs.push("build name is empty".to_string());
        }
        if self.region.trim().is_empty() {
            errs.push("region is empty".to_string());
        }
        errs.extend(self.spot.problems());
        if let SecurityGroupSpec::Temporary { source_cidrs } = &self.security_group {
            // Empty: this machine's public address, which reaches public
            // addresses only.
            if source_cidrs.is_empty() && self.ssh.host.is_none() && self.ssh.interface.is_private()
            {
                errs.push(format!(
                    "temporary_security_group_source_cidrs is empty and ssh_interface is {}: \
                     this machine's public address (the default source) cannot reach a private \
                     address; set `temporary_security_group_source_cidrs` to the CIDRs allowed \
                     to reach SSH (e.g. the VPC's CIDR), or `security_group_ids`",
                    self.ssh.interface.as_str()
                ));
            }
        }
        if let SecurityGroupSpec::Ids(ids) = &self.security_group {
            if ids.is_empty() {
                errs.push("security_group_ids is empty".to_string());
            }
        }
        errs
    }
}

/// The SSH key pair of the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyPairSpec {
    /// Generate an ed25519 key in memory and import its public half as a
    /// temporary key pair (the default).
    #[default]
    Generate,
    /// Use a key pair that exists in EC2, with its private key from a file.
    Existing {
        /// The EC2 key pair name.
        name: String,
        /// Path of the OpenSSH/PEM private key.
        private_key_file: String,
    },
}

/// The security group(s) of the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityGroupSpec {
    /// Existing security group ids.
    Ids(Vec<String>),
    /// A temporary group allowing SSH from these CIDRs only.
    Temporary {
        /// `temporary_security_group_source_cidrs` (IPv4 or IPv6). Empty:
        /// this machine's public address as a /32 (IPv6: /128), learned
        /// before the build's first EC2 call ([`crate::public_ip`]); the
        /// build fails if it cannot be learned. Never 0.0.0.0/0 by default.
        source_cidrs: Vec<String>,
    },
}

impl Default for SecurityGroupSpec {
    fn default() -> Self {
        SecurityGroupSpec::Temporary {
            source_cidrs: Vec::new(),
        }
    }
}

/// How to reach the instance over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshSpec {
    /// Connect at all. Without it the hook gets a target that refuses every
    /// operation (for tests and image-only builds).
    pub connect: bool,
    /// Which instance address to use.
    pub interface: SshInterface,
    /// Override the host (packer `ssh_host`).
    pub host: Option<String>,
    /// Port (22).
    pub port: u16,
    /// User name.
    pub username: String,
    /// Keep trying to connect for this long.
    pub timeout_secs: u64,
    /// Pin the host key to the fingerprints cloud-init prints to the
    /// instance's console at first boot (`GetConsoleOutput`, polled within
    /// `timeout_secs`). Off: any host key is accepted, as packer does.
    pub host_key_from_console: bool,
}

impl Default for SshSpec {
    fn default() -> Self {
        SshSpec {
            connect: true,
            interface: SshInterface::PublicIp,
            host: None,
            port: 22,
            username: "ubuntu".to_string(),
            timeout_secs: 300,
            host_key_from_console: false,
        }
    }
}

/// Polling intervals and timeouts of waits (instance running/stopped/
/// terminated, image available), and how long cleanup keeps retrying.
///
/// The default is late by at most a fifth of the time waited, with few
/// calls: an image wait polls at once after the CreateImage / CopyImage
/// call (an endpoint like moto makes images at once), then 10 s after it
/// (on AWS an AMI or a copy is pending for minutes, so a poll in between
/// would only cost a call), then every fifth of the time waited so far
/// (2 s, 2.4 s, 2.9 s, … ±10% jitter) up to one poll every 30 s. Instance
/// waits follow the same schedule from their first, immediate poll.
/// Compared with packer's fixed 15 s (first poll at once): an image pending
/// 20 s costs 6 polls instead of 3 and is seen about 1 s late instead of
/// 10 s; a 5-minute AMI costs about as many polls as packer's (22); 15-minute
/// copies 42 polls each instead of 61, seen 15 s late on average instead of
/// 7.5 s (the cap trades a few seconds on long waits for a third fewer
/// calls, which 50 builds at once share with the account's rate limit).
///
/// [`WaitSettings::fixed`] polls at a constant interval from the start
/// (packer's `AWS_POLL_DELAY_SECONDS`), [`WaitSettings::max_polls`] caps
/// the polls of a build's waits (packer's `AWS_MAX_ATTEMPTS`). This crate
/// reads no environment: the CLI maps those variables onto these fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaitSettings {
    /// First poll interval.
    pub initial_interval_ms: u64,
    /// Longest poll interval.
    pub max_interval_ms: u64,
    /// Growth factor of the interval.
    pub multiplier: f64,
    /// Randomise each interval by up to ±this fraction.
    pub jitter: f64,
    /// An image wait (after CreateImage / CopyImage) polls at once, then
    /// this long after the call, then from an interval of this times
    /// `multiplier - 1` (at least `initial_interval_ms`); 0: backs off from
    /// the first poll like any wait.
    pub image_first_poll_ms: u64,
    /// Give up waiting for an image (or copy) after this long.
    pub image_timeout_secs: u64,
    /// Give up waiting for an instance state after this long.
    pub instance_timeout_secs: u64,
    /// Give up a build's wait after this many polls (packer's
    /// `AWS_MAX_ATTEMPTS`); `None`: only the timeouts. Cleanup waits
    /// ignore it: they never give up early on a running instance.
    pub max_polls: Option<u32>,
    /// Cleanup (and `delete_leftovers`) retries throttling and 5xx answers
    /// of each deletion, beyond the SDK's own attempts, for this long.
    pub cleanup_timeout_secs: u64,
}

impl Default for WaitSettings {
    fn default() -> Self {
        WaitSettings {
            initial_interval_ms: 2_000,
            max_interval_ms: 30_000,
            multiplier: 1.2,
            jitter: 0.1,
            image_first_poll_ms: 10_000,
            image_timeout_secs: 3_600,
            instance_timeout_secs: 900,
            max_polls: None,
            cleanup_timeout_secs: 300,
        }
    }
}

impl WaitSettings {
    /// Fast polling for tests against moto.
    pub fn fast() -> Self {
        WaitSettings {
            initial_interval_ms: 20,
            max_interval_ms: 200,
            multiplier: 1.5,
            jitter: 0.2,
            image_first_poll_ms: 0,
            image_timeout_secs: 30,
            instance_timeout_secs: 30,
            max_polls: None,
            cleanup_timeout_secs: 30,
        }
    }

    /// These settings polling every `interval` from the start (image waits
    /// too), without backoff or jitter (packer's `AWS_POLL_DELAY_SECONDS`).
    pub fn fixed(mut self, interval: Duration) -> Self {
        let ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.initial_interval_ms = ms;
        self.max_interval_ms = ms;
        self.multiplier = 1.0;
        self.jitter = 0.0;
        self.image_first_poll_ms = 0;
        self
    }

    pub(crate) fn image_first_poll(&self) -> Duration {
        Duration::from_millis(self.image_first_poll_ms)
    }

    pub(crate) fn image_timeout(&self) -> Duration {
        Duration::from_secs(self.image_timeout_secs)
    }

    pub(crate) fn instance_timeout(&self) -> Duration {
        Duration::from_secs(self.instance_timeout_secs)
    }

    pub(crate) fn cleanup_timeout(&self) -> Duration {
        Duration::from_secs(self.cleanup_timeout_secs)
    }

    /// The settings of cleanup waits: no poll cap.
    pub(crate) fn for_cleanup(&self) -> WaitSettings {
        WaitSettings {
            max_polls: None,
            ..self.clone()
        }
    }
}

/// What happens to temporary resources when a build fails or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Delete everything the build created (default).
    #[default]
    Cleanup,
    /// Leave everything for debugging and report what was left. (Once the
    /// AMI is available the instance is terminated as part of the build,
    /// see [`crate::step::terminate`]; a later failure leaves the rest.)
    Abort,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_json_gets_safe_defaults() {
        let req: BuildRequest = serde_json::from_value(serde_json::json!({
            "name": "ubuntu",
            "region": "us-east-1",
            "source_ami": {"filter": {"owners": ["099720109477"], "name": "ubuntu-noble-*"}},
            "instance_type": "t3.large",
            "ami_name": "ubuntu-k8s-1",
            "security_group": {"temporary": {"source_cidrs": ["198.51.100.7/32"]}},
            "ami_regions": ["us-east-1", "eu-west-1", "eu-west-1"]
        }))
        .unwrap();
        assert_eq!(req.metadata_options.http_tokens, "required");
        assert!(req.encrypted);
        assert_eq!(req.key_pair, KeyPairSpec::Generate);
        assert_eq!(req.on_error, OnError::Cleanup);
        assert_eq!(req.copy_regions(), ["eu-west-1"]);
        assert!(req.validate().is_ok());
        // `all`, and the spec's rules on the shared types.
        let mut all: serde_json::Value = serde_json::to_value(&req).unwrap();
        all["ami_regions"] = "all".into();
        all["root_device"]["volume_type"] = "io1".into();
        let all: BuildRequest = serde_json::from_value(all).unwrap();
        assert!(all.ami_regions.is_all());
        let errs = all.validate().unwrap_err();
        assert!(errs[0].contains("io1 volumes need `iops`"), "{errs:?}");
    }

    #[test]
    fn settings_keys_sit_beside_the_requests_and_typos_are_refused() {
        let req = BuildRequest::new(
            "b",
            "us-east-1",
            SourceAmi::Id("ami-1".into()),
            "t3.micro",
            "node-1",
        );
        let mut v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["ami_name"], "node-1");
        assert_eq!(v["name"], "b");
        assert!(v.get("settings").is_none(), "{v}");
        assert_eq!(
            serde_json::from_value::<BuildRequest>(v.clone()).unwrap(),
            req
        );
        v["ami_nmae"] = "x".into();
        let e = serde_json::from_value::<BuildRequest>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `ami_nmae`"), "{e}");
    }

    #[test]
    fn no_open_ssh_by_default_and_all_problems_reported() {
        let mut req = BuildRequest::new(
            "b",
            "us-east-1",
            SourceAmi::Id("ami-1".into()),
            "t3.micro",
            "x!",
        );
        // By default: this machine's public address, learned at build time.
        assert_eq!(
            req.security_group,
            SecurityGroupSpec::Temporary {
                source_cidrs: Vec::new()
            }
        );
        req.deprecate_at = Some("tomorrow".into());
        let errs = req.validate().unwrap_err();
        // The name (too short, and `!`) and the time.
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(!errs
            .iter()
            .any(|e| e.contains("temporary_security_group_source_cidrs")));
    }

    #[test]
    fn a_private_interface_needs_source_cidrs() {
        let mut req = BuildRequest::new(
            "b",
            "us-east-1",
            SourceAmi::Id("ami-1".into()),
            "t3.micro",
            "node-1",
        );
        for interface in [SshInterface::PrivateIp, SshInterface::PrivateDns] {
            req.ssh.interface = interface;
            let errs = req.validate_launch().unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].contains("`temporary_security_group_source_cidrs`")
                    && errs[0].contains(interface.as_str()),
                "{errs:?}"
            );
        }
        // Given CIDRs, an `ssh_host` override or existing groups are fine.
        req.security_group = SecurityGroupSpec::Temporary {
            source_cidrs: vec!["10.0.0.0/16".into()],
        };
        assert!(req.validate().is_ok());
        req.security_group = SecurityGroupSpec::default();
        req.ssh.host = Some("bastion.example.com".into());
        assert!(req.validate().is_ok());
        req.ssh.host = None;
        req.security_group = SecurityGroupSpec::Ids(vec!["sg-1".into()]);
        assert!(req.validate().is_ok());
    }
}
