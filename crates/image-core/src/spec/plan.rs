//! [`Plan`]: one build of an image definition, fully resolved — every
//! template rendered, defaults applied, values typed and checked, paths made
//! absolute. This is what the EC2 pipeline, the step engine and the verifier
//! consume; nothing in it needs the spec file any more.
//!
//! Field names follow the YAML keys of the definition (see [`crate::spec`]),
//! so the definition's documentation is the documentation of these fields.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::diag::Location;

/// One resolved build.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The build's name (a key of `builds`).
    pub name: String,
    /// The definition it came from, as the user named it (`<builtin>` for the
    /// built-in one).
    pub spec: String,
    /// The AMI to start from.
    pub source_ami: SourceAmi,
    /// EC2 instance type of the build instance.
    pub instance_type: String,
    /// The build region.
    pub region: String,
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
    /// Subnet to launch in.
    pub subnet_id: Option<String>,
    /// VPC to launch in.
    pub vpc_id: Option<String>,
    /// Whether to give the instance a public IP; `None` = the subnet's default.
    pub associate_public_ip_address: Option<bool>,
    /// Existing security groups; empty = a temporary one.
    pub security_group_ids: Vec<String>,
    /// CIDRs allowed to SSH into the temporary security group (empty = this
    /// machine's public address as a /32, learned when the build starts;
    /// never `0.0.0.0/0`).
    pub temporary_security_group_source_cidrs: Vec<String>,
    /// Instance profile name for the build instance.
    pub iam_instance_profile: Option<String>,
    /// Literal user data.
    pub user_data: Option<String>,
    /// User data read from this file (exclusive with `user_data`).
    pub user_data_file: Option<FileRef>,
    /// IMDS settings of the build instance.
    pub metadata_options: MetadataOptions,
    /// The root volume of the build instance and the image.
    pub root_device: RootDevice,
    /// Encrypt the image's snapshots (true by default).
    pub encrypted: bool,
    /// KMS key for the build region's snapshots; `None` = the AWS default key.
    pub kms_key_id: Option<String>,
    /// The AMI's name.
    pub ami_name: String,
    /// The AMI's description.
    pub ami_description: Option<String>,
    /// Regions to copy the AMI to (besides the build region).
    pub ami_regions: AmiRegions,
    /// KMS key per copy region.
    pub region_kms_key_ids: BTreeMap<String, String>,
    /// Accounts allowed to launch the AMI.
    pub ami_users: Vec<String>,
    /// Groups allowed to launch the AMI (`all` = public).
    pub ami_groups: Vec<String>,
    /// Organizations allowed to launch the AMI.
    pub ami_org_arns: Vec<String>,
    /// Organizational units allowed to launch the AMI.
    pub ami_ou_arns: Vec<String>,
    /// Accounts allowed to create volumes from the snapshots.
    pub snapshot_users: Vec<String>,
    /// Groups allowed to create volumes from the snapshots.
    pub snapshot_groups: Vec<String>,
    /// Deregister an existing AMI of the same name first.
    pub force_deregister: bool,
    /// When the AMI is deprecated (RFC 3339, as given).
    pub deprecate_at: Option<String>,
    /// `v2.0`: instances launched from the AMI must use IMDSv2.
    pub imds_support: Option<String>,
    /// Do not ask EC2 whether the build's regions exist before building.
    pub skip_region_validation: bool,
    /// Tags of the AMI.
    pub tags: BTreeMap<String, String>,
    /// Tags of the build instance.
    pub run_tags: BTreeMap<String, String>,
    /// Tags of the build instance's volumes.
    pub volume_tags: BTreeMap<String, String>,
    /// Tags of the AMI's snapshots.
    pub snapshot_tags: BTreeMap<String, String>,
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

impl Plan {
    /// The regions the image ends up in: the build region first, then the
    /// `ami_regions` copies (without the build region). `None` for
    /// `ami_regions: all`, which only AWS can enumerate.
    pub fn image_regions(&self) -> Option<Vec<String>> {
        match &self.ami_regions {
            AmiRegions::All => None,
            AmiRegions::List(list) => {
                let mut out = vec![self.region.clone()];
                for r in list {
                    if !out.contains(r) {
                        out.push(r.clone());
                    }
                }
                Some(out)
            }
        }
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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceAmi {
    /// An AMI id.
    Id(String),
    /// The AMI found by a filter.
    Filter(AmiFilter),
}

/// A `DescribeImages` filter.
#[derive(Debug, Clone, Serialize)]
pub struct AmiFilter {
    /// Account ids or aliases (`amazon`, `self`, `aws-marketplace`).
    pub owners: Vec<String>,
    /// Name glob.
    pub name: String,
    /// CPU architecture.
    pub architecture: Architecture,
    /// `hvm` by default.
    pub virtualization_type: String,
    /// `ebs` by default.
    pub root_device_type: String,
    /// Take the newest match (true by default); false = more than one match is
    /// an error.
    pub most_recent: bool,
}

/// CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Architecture {
    /// `x86_64`.
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
#[derive(Debug, Clone, Serialize)]
pub struct MetadataOptions {
    /// `required` (IMDSv2 only, the default) or `optional`.
    pub http_tokens: String,
    /// Hop limit, 1..=64 (2 by default, so containers reach IMDS).
    pub http_put_response_hop_limit: u8,
    /// `enabled` (default) or `disabled`.
    pub http_endpoint: String,
}

/// The root EBS volume.
#[derive(Debug, Clone, Serialize)]
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

/// EBS volume type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeType {
    /// General purpose SSD, older generation.
    Gp2,
    /// General purpose SSD (default).
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

/// Where the AMI is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiRegions {
    /// Every region enabled in the account (`ami_regions: all`).
    All,
    /// These regions; empty = the build region only.
    List(Vec<String>),
}

impl Serialize for AmiRegions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AmiRegions::All => s.serialize_str("all"),
            AmiRegions::List(l) => l.serialize(s),
        }
    }
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn ser_display<S: Serializer>(l: &Location, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(l)
}
