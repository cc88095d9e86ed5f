//! [`Plan`]: one build of an image definition, fully resolved — every
//! template rendered, defaults applied, values typed and checked, paths made
//! absolute. This is what the EC2 pipeline, the step engine and the verifier
//! consume; nothing in it needs the spec file any more.
//!
//! Field names follow the YAML keys of the definition (see [`crate::spec`]),
//! so the definition's documentation is the documentation of these fields.
//!
//! The EC2 settings are one [`BuildSettings`], which the EC2 backend's
//! request (image-aws `BuildRequest`) holds too, with the value types here
//! ([`SourceAmi`], [`MetadataOptions`], [`RootDevice`], [`AmiRegions`],
//! [`SshInterface`], …): each setting is declared once, its defaults and
//! checks with it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use super::settings::BuildSettings;
use crate::diag::Location;

/// One resolved build: its EC2 [`BuildSettings`] (which the plan
/// dereferences to, so `plan.ami_name` is `plan.settings.ami_name`), how to
/// reach the instance, and what to provision and verify on it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The build's name (a key of `builds`).
    pub name: String,
    /// The definition it came from, as the user named it (`<builtin>` for the
    /// built-in one).
    pub spec: String,
    /// The EC2 settings, shared with the EC2 backend's request.
    #[serde(flatten)]
    pub settings: BuildSettings,
    /// Where each region the build names (build region, `ami_regions`,
    /// `region_kms_key_ids`) is first written, for errors found later (a
    /// region the account does not have).
    #[serde(skip)]
    pub region_locs: BTreeMap<String, Location>,
    /// User to SSH in as.
    pub ssh_username: String,
    /// Which address of the instance to connect to.
    pub ssh_interface: SshInterface,
    /// Connect to this host instead of the instance's address (a bastion
    /// forward, a test bed); `None` = the instance's address.
    pub ssh_host: Option<String>,
    /// SSH port (22 by default).
    pub ssh_port: u16,
    /// Pin the instance's SSH host key to the fingerprints cloud-init
    /// prints to the console at first boot (off by default: any key of the
    /// fresh instance is accepted).
    pub ssh_host_key_from_console: bool,
    /// How long to wait for SSH to come up (5m by default).
    #[serde(serialize_with = "ser_secs")]
    pub ssh_timeout: Duration,
    /// An existing key pair to launch with; `None` = a temporary one.
    pub ssh_keypair_name: Option<String>,
    /// The private key of `ssh_keypair_name`.
    pub ssh_private_key_file: Option<FileRef>,
    /// Existing security groups; empty = a temporary one.
    pub security_group_ids: Vec<String>,
    /// CIDRs allowed to SSH into the temporary security group (empty = this
    /// machine's public address as a /32, learned when the build starts;
    /// never `0.0.0.0/0`).
    pub temporary_security_group_source_cidrs: Vec<String>,
    /// Literal user data.
    pub user_data: Option<String>,
    /// User data read from this file (exclusive with `user_data`).
    pub user_data_file: Option<FileRef>,
    /// Step lists to run, in order.
    pub provision: Vec<FileRef>,
    /// Extra variables for the step engine.
    pub provision_vars: serde_json::Map<String, serde_json::Value>,
    /// Goss files to verify with, in order, after provisioning (before the AMI).
    pub verify: Vec<FileRef>,
    /// Goss files `image-cli test` checks on an instance launched from the
    /// AMI (default: `verify`). Image-hygiene checks belong in `verify` only:
    /// a booted instance has host keys and authorized_keys again.
    pub test_verify: Vec<FileRef>,
    /// Variables for the goss files.
    pub verify_vars: serde_json::Map<String, serde_json::Value>,
    /// How long to wait for the AMI (and its copies) to become available.
    #[serde(serialize_with = "ser_secs")]
    pub image_wait_timeout: Duration,
}

impl std::ops::Deref for Plan {
    type Target = BuildSettings;

    fn deref(&self) -> &BuildSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for Plan {
    fn deref_mut(&mut self) -> &mut BuildSettings {
        &mut self.settings
    }
}

/// A file named in the definition.
#[derive(Debug, Clone, Serialize)]
pub struct FileRef {
    /// The path as written (after templating).
    pub given: String,
    /// The path, relative to the definition's directory made absolute when
    /// the definition was loaded from a file.
    pub path: PathBuf,
    /// Where it is named.
    #[serde(serialize_with = "ser_display")]
    pub loc: Location,
}

/// The AMI to start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceAmi {
    /// An AMI id.
    Id(String),
    /// The AMI found by a filter.
    Filter(AmiFilter),
}

/// A `DescribeImages` filter (packer `source_ami_filter`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmiFilter {
    /// Account ids or aliases (`amazon`, `self`, `aws-marketplace`).
    pub owners: Vec<String>,
    /// Name glob (`*` and `?`), as EC2's `name` filter understands it.
    pub name: String,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: Architecture,
    /// `hvm` by default.
    #[serde(default = "hvm")]
    pub virtualization_type: String,
    /// `ebs` by default.
    #[serde(default = "ebs")]
    pub root_device_type: String,
    /// Take the newest match (true by default); false = more than one match is
    /// an error.
    #[serde(default = "yes")]
    pub most_recent: bool,
}

impl AmiFilter {
    /// A filter with the defaults: `x86_64`, `hvm`, `ebs`, the newest match.
    pub fn new(owners: Vec<String>, name: impl Into<String>) -> Self {
        AmiFilter {
            owners,
            name: name.into(),
            architecture: Architecture::default(),
            virtualization_type: hvm(),
            root_device_type: ebs(),
            most_recent: true,
        }
    }
}

fn hvm() -> String {
    "hvm".into()
}

fn ebs() -> String {
    "ebs".into()
}

fn yes() -> bool {
    true
}

/// CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Architecture {
    /// `x86_64` (default).
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// `arm64`.
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// The EC2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// Which address of the instance SSH connects to (the EC2 backend's
/// requests use the same type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SshInterface {
    /// The public IPv4 address (default).
    #[default]
    PublicIp,
    /// The private IPv4 address.
    PrivateIp,
    /// The public DNS name.
    PublicDns,
    /// The private DNS name.
    PrivateDns,
}

impl SshInterface {
    /// The definition's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SshInterface::PublicIp => "public_ip",
            SshInterface::PrivateIp => "private_ip",
            SshInterface::PublicDns => "public_dns",
            SshInterface::PrivateDns => "private_dns",
        }
    }

    /// `private_ip` or `private_dns`: reachable from inside the VPC only.
    pub fn is_private(self) -> bool {
        matches!(self, SshInterface::PrivateIp | SshInterface::PrivateDns)
    }
}

/// Instance metadata service settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataOptions {
    /// `required` (IMDSv2 only, the default) or `optional`.
    pub http_tokens: String,
    /// Hop limit, 1..=64 (2 by default, so containers reach IMDS).
    pub http_put_response_hop_limit: u8,
    /// `enabled` (default) or `disabled`.
    pub http_endpoint: String,
    /// `enabled` or `disabled` (instance tags in IMDS); `None` = EC2's
    /// default (disabled).
    pub instance_metadata_tags: Option<String>,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            http_tokens: "required".into(),
            http_put_response_hop_limit: 2,
            http_endpoint: "enabled".into(),
            instance_metadata_tags: None,
        }
    }
}

/// The root EBS volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RootDevice {
    /// Device name; `None` = the source AMI's root device name.
    pub device_name: Option<String>,
    /// Size in GiB; `None` = the source AMI's size.
    pub volume_size: Option<u32>,
    /// Volume type.
    pub volume_type: VolumeType,
    /// Provisioned IOPS (io1, io2, gp3).
    pub iops: Option<u32>,
    /// Throughput in MiB/s (gp3 only).
    pub throughput: Option<u32>,
    /// Delete with the instance (true by default).
    pub delete_on_termination: bool,
}

impl Default for RootDevice {
    fn default() -> Self {
        RootDevice {
            device_name: None,
            volume_size: None,
            volume_type: VolumeType::Gp3,
            iops: None,
            throughput: None,
            delete_on_termination: true,
        }
    }
}

impl RootDevice {
    /// What is wrong with these settings together (iops and throughput for
    /// the volume type), each as (dotted key, message, help): the one place
    /// of these rules, for the definition (at the key's line) and for
    /// requests built in code (through [`BuildSettings::problems`]).
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.volume_size.filter(|n| !(1..=65_536).contains(n)) {
            out.push((
                "root_device.volume_size",
                format!("volume_size must be between 1 and 65536 GiB, found {n}"),
                "choose a size from 1 to 65536".to_string(),
            ));
        }
        let vt = self.volume_type;
        match (self.iops, vt) {
            (Some(_), VolumeType::Gp2) => out.push((
                "root_device.iops",
                "iops is only valid for gp3, io1 and io2 volumes, not gp2".to_string(),
                "remove `iops` or change `volume_type`".to_string(),
            )),
            (Some(iops), _) => {
                let (lo, hi) = match vt {
                    VolumeType::Gp3 => (3000, 80_000),
                    VolumeType::Io1 => (100, 64_000),
                    _ => (100, 256_000),
                };
                if !(lo..=hi).contains(&iops) {
                    out.push((
                        "root_device.iops",
                        format!(
                            "iops for {} volumes must be between {lo} and {hi}, found {iops}",
                            vt.as_str()
                        ),
                        format!("choose iops from {lo} to {hi}"),
                    ));
                }
            }
            (None, VolumeType::Io1 | VolumeType::Io2) => out.push((
                "root_device.volume_type",
                format!("{} volumes need `iops`", vt.as_str()),
                "set `iops` (100 to 64000 for io1, 256000 for io2)".to_string(),
            )),
            (None, _) => {}
        }
        if let Some(tp) = self.throughput {
            if vt != VolumeType::Gp3 {
                out.push((
                    "root_device.throughput",
                    format!(
                        "throughput is only valid for gp3 volumes, not {}",
                        vt.as_str()
                    ),
                    "remove `throughput` or set `volume_type: gp3`".to_string(),
                ));
            } else if !(125..=2000).contains(&tp) {
                out.push((
                    "root_device.throughput",
                    format!(
                        "throughput for gp3 volumes must be between 125 and 2000 MiB/s, found {tp}"
                    ),
                    "choose a throughput from 125 to 2000".to_string(),
                ));
            }
        }
        out
    }
}

/// EBS volume type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VolumeType {
    /// General purpose SSD, older generation.
    Gp2,
    /// General purpose SSD (default).
    #[default]
    Gp3,
    /// Provisioned IOPS SSD.
    Io1,
    /// Provisioned IOPS SSD, newer generation.
    Io2,
}

impl VolumeType {
    /// The EC2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp2 => "gp2",
            VolumeType::Gp3 => "gp3",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
        }
    }
}

/// Where the AMI is copied: `all` or a list of regions (JSON and YAML
/// alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiRegions {
    /// Every region enabled in the account (`ami_regions: all`).
    All,
    /// These regions; empty = the build region only.
    List(Vec<String>),
    /// `all`, resolved to these regions when the build starts (EC2
    /// backend): a copy that fails in one of them is reported, not fatal.
    Resolved(Vec<String>),
}

impl Default for AmiRegions {
    fn default() -> Self {
        AmiRegions::List(Vec::new())
    }
}

impl From<Vec<String>> for AmiRegions {
    fn from(list: Vec<String>) -> Self {
        AmiRegions::List(list)
    }
}

impl FromIterator<String> for AmiRegions {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        AmiRegions::List(iter.into_iter().collect())
    }
}

impl AmiRegions {
    /// The listed regions (none for `all` before it is resolved).
    pub fn list(&self) -> &[String] {
        match self {
            AmiRegions::All => &[],
            AmiRegions::List(l) | AmiRegions::Resolved(l) => l,
        }
    }

    /// `ami_regions: all`, not yet resolved.
    pub fn is_all(&self) -> bool {
        matches!(self, AmiRegions::All)
    }

    /// `ami_regions: all`, resolved or not.
    pub fn from_all(&self) -> bool {
        matches!(self, AmiRegions::All | AmiRegions::Resolved(_))
    }
}

impl<'de> Deserialize<'de> for AmiRegions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(AmiRegions::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "ami_regions: expected `all` or a list of regions, found `{w}`"
            ))),
            Raw::List(l) => Ok(AmiRegions::List(l)),
        }
    }
}

impl Serialize for AmiRegions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AmiRegions::All => s.serialize_str("all"),
            AmiRegions::List(l) | AmiRegions::Resolved(l) => l.serialize(s),
        }
    }
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn ser_display<S: Serializer>(l: &Location, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(l)
}
