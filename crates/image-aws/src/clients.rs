//! [`Ec2Clients`]: one EC2 client per region, all from one `SdkConfig`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::Client;

/// How to build the shared client configuration.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A named profile (else `AWS_PROFILE` / default).
    pub profile: Option<String>,
    /// The default region (else the standard chain).
    pub region: Option<String>,
    /// An endpoint URL for EC2 (else `AWS_ENDPOINT_URL(_EC2)` if set).
    pub endpoint_url: Option<String>,
    /// Attempts per call, including the first (default 8; adaptive retry).
    pub max_attempts: Option<u32>,
    /// First retry backoff (default: the SDK's, 1 s).
    pub initial_backoff: Option<Duration>,
    /// Use the SDK's standard retry mode instead of adaptive. Adaptive
    /// mode adds a client-side rate limiter that, after throttling, slows
    /// every later call of the client (waits included) for a long time.
    pub standard_retry: bool,
    /// Where a build learns this machine's public address when its
    /// temporary security group has no source CIDRs (see
    /// [`crate::public_ip`]); `None`: <https://checkip.amazonaws.com>.
    /// `image-cli` sets it from `IMAGE_BUILDER_CHECKIP_URL`.
    pub checkip_url: Option<String>,
}

/// Per-region EC2 clients built from one `SdkConfig`.
#[derive(Debug)]
pub struct Ec2Clients {
    conf: SdkConfig,
    cache: Mutex<BTreeMap<String, Client>>,
    snapshot_tag_specs: bool,
    checkip_url: Option<String>,
    /// This machine's public address, asked once ([`crate::public_ip`]).
    learned: tokio::sync::OnceCell<Result<std::net::IpAddr, crate::public_ip::PublicIpError>>,
}

impl Ec2Clients {
    /// From an existing configuration.
    pub fn new(conf: SdkConfig) -> Self {
        // AWS tags the snapshots of CreateImage from its tag specifications;
        // stand-ins behind a custom endpoint may not (moto 5 fails the call).
        let snapshot_tag_specs = conf.endpoint_url().is_none();
        Ec2Clients {
            conf,
            cache: Mutex::new(BTreeMap::new()),
            snapshot_tag_specs,
            checkip_url: None,
            learned: tokio::sync::OnceCell::new(),
        }
    }

    /// Learn this machine's public address from `url` (see
    /// [`ClientOptions::checkip_url`]).
    pub fn with_checkip_url(mut self, url: impl Into<String>) -> Self {
        self.checkip_url = Some(url.into());
        self
    }

    /// This machine's public address once learned (or why it could not be).
    pub(crate) fn learned_address(
        &self,
    ) -> &tokio::sync::OnceCell<Result<std::net::IpAddr, crate::public_ip::PublicIpError>> {
        &self.learned
    }

    /// The configured public-address URL, if any ([`ClientOptions::checkip_url`]).
    pub fn checkip_url(&self) -> Option<&str> {
        self.checkip_url.as_deref()
    }

    /// Whether CreateImage tags the new snapshots from a `snapshot` tag
    /// specification (saving a CreateTags call). Default: yes with AWS's
    /// own endpoints, no with a custom endpoint URL, where the snapshots
    /// are tagged with CreateTags once the image is available.
    pub fn with_snapshot_tag_specs(mut self, yes: bool) -> Self {
        self.snapshot_tag_specs = yes;
        self
    }

    pub(crate) fn snapshot_tag_specs(&self) -> bool {
        self.snapshot_tag_specs
    }

    /// The standard chain (profile, region, credentials, `AWS_ENDPOINT_URL`
    /// and `AWS_ENDPOINT_URL_EC2`) with adaptive retries.
    pub async fn from_env(opts: &ClientOptions) -> Self {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config(opts));
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &opts.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        Self::new(loader.load().await).with_opts(opts)
    }

    /// An explicit endpoint with static test credentials (`testing`), for
    /// moto and other stand-ins. The SDK reads nothing from the environment.
    pub async fn for_endpoint(url: &str, region: &str, opts: &ClientOptions) -> Self {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(url)
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
            .retry_config(retry_config(opts))
            .load()
            .await;
        Self::new(conf).with_opts(opts)
    }

    /// What of `opts` is ours rather than the SDK's.
    fn with_opts(mut self, opts: &ClientOptions) -> Self {
        self.checkip_url.clone_from(&opts.checkip_url);
        self
    }

    /// The client for `region`.
    pub fn client(&self, region: &str) -> Client {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_ec2::config::Builder::from(&self.conf)
                    .region(Region::new(region.to_string()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }

    /// The configuration's default region.
    pub fn default_region(&self) -> Option<String> {
        self.conf.region().map(|r| r.to_string())
    }

    /// The shared configuration.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.conf
    }
}

fn retry_config(opts: &ClientOptions) -> RetryConfig {
    let base = if opts.standard_retry {
        RetryConfig::standard()
    } else {
        RetryConfig::adaptive()
    };
    let mut rc = base.with_max_attempts(opts.max_attempts.unwrap_or(8));
    if let Some(b) = opts.initial_backoff {
        rc = rc.with_initial_backoff(b);
    }
    rc
}
