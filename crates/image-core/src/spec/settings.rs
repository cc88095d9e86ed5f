//! [`BuildSettings`]: the EC2 settings of one build, declared once for
//! the definition's [`Plan`](super::Plan) and the EC2 backend's request
//! (image-aws `BuildRequest`), which both hold this struct (and
//! dereference to it, so `plan.ami_name` and `req.ami_name` read the same
//! field).
//!
//! The rules on the values are here too, in [`BuildSettings::problems`]:
//! the definition reader (`build.rs`) reports each at the key (or list
//! item) it is about, with file:line:col; a request built in code gets the
//! same messages from its `validate`. A new setting is one field here, its
//! rule in `problems`, and its reading in `build.rs`.
//!
//! Field names are the definition's keys (see [`crate::spec`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ami_options::AmiOptions;
use super::check;
use super::plan::{AmiRegions, MetadataOptions, RootDevice, SourceAmi};
use super::spot::SpotOptions;
use super::subnet_filter::SubnetFilter;

/// The EC2 settings of one build: what the instance is launched with and
/// what the AMI becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSettings {
    /// The build region: the instance runs and the AMI is created there.
    pub region: String,
    /// The AMI to start from.
    pub source_ami: SourceAmi,
    /// EC2 instance type of the build instance, e.g. `t3.large`.
    pub instance_type: String,
    /// Subnet to launch in (its VPC is used for the temporary security
    /// group).
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// VPC of the temporary security group when no subnet is given
    /// (default: the region's default VPC).
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// Find the subnet with DescribeSubnets filters instead (exclusive
    /// with `subnet_id`).
    #[serde(default)]
    pub subnet_filter: Option<SubnetFilter>,
    /// Whether to give the instance a public IP; `None` = the subnet's
    /// default.
    #[serde(default)]
    pub associate_public_ip_address: Option<bool>,
    /// Instance profile name of the build instance.
    #[serde(default)]
    pub iam_instance_profile: Option<String>,
    /// IMDS settings of the build instance.
    #[serde(default)]
    pub metadata_options: MetadataOptions,
    /// The root volume of the build instance and the image.
    #[serde(default)]
    pub root_device: RootDevice,
    /// Encrypt the root volume, the AMI's snapshots and the copies (with
    /// the region's KMS key if listed, else the default key); true by
    /// default.
    #[serde(default = "yes")]
    pub encrypted: bool,
    /// KMS key of the root volume (and so the AMI) in the build region;
    /// `None` = the AWS default key.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// The AMI's name (rendered). It must not exist unless
    /// `force_deregister`.
    pub ami_name: String,
    /// The AMI's description.
    #[serde(default)]
    pub ami_description: Option<String>,
    /// Regions to copy the AMI to (the build region is skipped if listed),
    /// or `all`: every region enabled for the account, resolved when the
    /// build starts; with `all` a copy that fails in one region is deleted
    /// and reported, the others are kept.
    #[serde(default)]
    pub ami_regions: AmiRegions,
    /// KMS key per copy region; a copy to a listed region is encrypted
    /// with it.
    #[serde(default)]
    pub region_kms_key_ids: BTreeMap<String, String>,
    /// Account ids allowed to launch the AMIs.
    #[serde(default)]
    pub ami_users: Vec<String>,
    /// Groups allowed to launch the AMIs (`all` makes them public).
    #[serde(default)]
    pub ami_groups: Vec<String>,
    /// Organization ARNs allowed to launch the AMIs.
    #[serde(default)]
    pub ami_org_arns: Vec<String>,
    /// Organizational unit ARNs allowed to launch the AMIs.
    #[serde(default)]
    pub ami_ou_arns: Vec<String>,
    /// Account ids allowed to create volumes from the snapshots.
    #[serde(default)]
    pub snapshot_users: Vec<String>,
    /// Groups allowed to create volumes from the snapshots.
    #[serde(default)]
    pub snapshot_groups: Vec<String>,
    /// Deregister (and delete the snapshots of) existing AMIs with the
    /// same name, in every target region, instead of failing.
    #[serde(default)]
    pub force_deregister: bool,
    /// RFC 3339 time at which the AMIs are deprecated.
    #[serde(default)]
    pub deprecate_at: Option<String>,
    /// Do not stop the instance before creating the image (packer
    /// `disable_stop_instance`; the image is then made from a running
    /// instance).
    #[serde(default)]
    pub disable_stop_instance: bool,
    /// The AMI's optional EC2 attributes, one step each (`imds_support`,
    /// `boot_mode`, `tpm_support`, `ena_support`).
    #[serde(default)]
    pub ami_options: AmiOptions,
    /// `spot_price`, `spot_instance_types`, `spot_tags`: the build
    /// instance as a spot instance.
    #[serde(default)]
    pub spot: SpotOptions,
    /// Do not ask EC2 whether the regions exist and are enabled before the
    /// build (packer `skip_region_validation`; for regions or endpoints
    /// `DescribeRegions` does not list).
    #[serde(default)]
    pub skip_region_validation: bool,
    /// Tags of the AMIs (every region).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Tags of the build instance while it runs.
    #[serde(default)]
    pub run_tags: BTreeMap<String, String>,
    /// Tags of the build instance's volumes while it runs (`volume_tags`,
    /// or packer's `run_volume_tags`).
    #[serde(default)]
    pub volume_tags: BTreeMap<String, String>,
    /// Tags of the AMIs' snapshots (every region).
    #[serde(default)]
    pub snapshot_tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// One problem of a [`BuildSettings`], named by the definition key it is
/// about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The definition key, dotted for a nested one (`root_device.iops`).
    pub key: &'static str,
    /// The list item, or the mapping's key, of `key` it is about.
    pub item: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl Problem {
    fn new(key: &'static str, message: impl Into<String>, help: impl Into<String>) -> Self {
        Problem {
            key,
            item: None,
            message: message.into(),
            help: help.into(),
        }
    }

    fn item(mut self, item: &str) -> Self {
        self.item = Some(item.to_string());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.help)
    }
}

impl BuildSettings {
    /// Settings with the defaults for everything but the essentials.
    ///
    /// ```
    /// use image_core::spec::{BuildSettings, SourceAmi};
    ///
    /// let mut s = BuildSettings::new("us-east-1", SourceAmi::Id("ami-0123456789abcdef0".into()),
    ///                                "t3.small", "node-1");
    /// assert!(s.problems().is_empty());
    /// s.ami_options.ena_support = Some(true);
    /// s.disable_stop_instance = true;
    /// assert_eq!(s.problems()[0].key, "ena_support");
    /// ```
    pub fn new(
        region: impl Into<String>,
        source_ami: SourceAmi,
        instance_type: impl Into<String>,
        ami_name: impl Into<String>,
    ) -> Self {
        BuildSettings {
            region: region.into(),
            source_ami,
            instance_type: instance_type.into(),
            subnet_id: None,
            vpc_id: None,
            subnet_filter: None,
            associate_public_ip_address: None,
            iam_instance_profile: None,
            metadata_options: MetadataOptions::default(),
            root_device: RootDevice::default(),
            encrypted: true,
            kms_key_id: None,
            ami_name: ami_name.into(),
            ami_description: None,
            ami_regions: AmiRegions::default(),
            region_kms_key_ids: BTreeMap::new(),
            ami_users: Vec::new(),
            ami_groups: Vec::new(),
            ami_org_arns: Vec::new(),
            ami_ou_arns: Vec::new(),
            snapshot_users: Vec::new(),
            snapshot_groups: Vec::new(),
            force_deregister: false,
            deprecate_at: None,
            disable_stop_instance: false,
            ami_options: AmiOptions::default(),
            spot: SpotOptions::default(),
            skip_region_validation: false,
            tags: BTreeMap::new(),
            run_tags: BTreeMap::new(),
            volume_tags: BTreeMap::new(),
            snapshot_tags: BTreeMap::new(),
        }
    }

    /// The copy regions: `ami_regions` without the build region and
    /// duplicates.
    pub fn copy_regions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.ami_regions.list() {
            if *r != self.region && !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    /// The build region followed by the copy regions, without duplicates.
    pub fn all_regions(&self) -> Vec<String> {
        let mut out = vec![self.region.clone()];
        out.extend(self.copy_regions());
        out
    }

    /// The regions the image ends up in ([`BuildSettings::all_regions`]);
    /// `None` for `ami_regions: all` not yet resolved, which only AWS can
    /// enumerate.
    pub fn image_regions(&self) -> Option<Vec<String>> {
        (!self.ami_regions.is_all()).then(|| self.all_regions())
    }

    /// Every problem of the values, alone and together: the one place of
    /// these rules. What needs the definition itself (types, unknown keys,
    /// region names, files) is checked where it is read; what needs AWS,
    /// by the build's checks.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (key, id, prefix) in [
            ("subnet_id", &self.subnet_id, "subnet"),
            ("vpc_id", &self.vpc_id, "vpc"),
        ] {
            if let Some(s) = id.as_deref().filter(|s| !check::is_resource_id(s, prefix)) {
                out.push(Problem::new(
                    key,
                    format!("invalid {key} `{s}`"),
                    format!("{key} looks like `{prefix}-0123456789abcdef0`"),
                ));
            }
        }
        for (key, message, help) in self.root_device.problems() {
            out.push(Problem::new(key, message, help));
        }
        if !self.encrypted && self.kms_key_id.is_some() {
            out.push(Problem::new(
                "kms_key_id",
                "kms_key_id is set but encrypted is false",
                "set `encrypted: true` or remove kms_key_id",
            ));
        }
        if let Some(p) = check::ami_name_problem(&self.ami_name) {
            out.push(Problem::new(
                "ami_name",
                format!("invalid ami_name `{}`: {p}", self.ami_name),
                check::AMI_NAME_HELP,
            ));
        }
        for region in self.region_kms_key_ids.keys() {
            let listed = self.ami_regions.from_all()
                || self.ami_regions.list().contains(region)
                || *region == self.region;
            // A name that is no region is the definition reader's error.
            if !listed && check::is_region(region) {
                out.push(
                    Problem::new(
                        "region_kms_key_ids",
                        format!("region_kms_key_ids names `{region}`, which is not in ami_regions"),
                        "add the region to ami_regions or remove its key",
                    )
                    .item(region),
                );
            }
        }
        self.sharing_problems(&mut out);
        if let Some(d) = self
            .deprecate_at
            .as_deref()
            .filter(|d| !check::is_rfc3339(d))
        {
            out.push(Problem::new(
                "deprecate_at",
                format!("invalid deprecate_at `{d}`"),
                "use an RFC 3339 time like `2026-01-31T00:00:00Z`",
            ));
        }
        for (key, message, help) in self.ami_options.problems() {
            out.push(Problem::new(key, message, help));
        }
        if self.ami_options.ena_support.is_some() && self.disable_stop_instance {
            out.push(Problem::new(
                "ena_support",
                "ena_support needs a stopped instance, but disable_stop_instance is true",
                "EC2 changes EnaSupport on a stopped instance only: remove ena_support or disable_stop_instance",
            ));
        }
        for (key, tags) in [
            ("tags", &self.tags),
            ("run_tags", &self.run_tags),
            ("volume_tags", &self.volume_tags),
            ("snapshot_tags", &self.snapshot_tags),
            ("spot_tags", &self.spot.spot_tags),
        ] {
            tag_problems(key, tags, &mut out);
        }
        out
    }

    /// Who may launch the AMIs and use the snapshots.
    fn sharing_problems(&self, out: &mut Vec<Problem>) {
        const ACCOUNT: (&str, &str) = ("invalid account id", "account ids are 12 digits");
        const GROUP: (&str, &str) = ("invalid group", "the only group is `all` (public)");
        const ARN: (&str, &str) = (
            "invalid ARN",
            "organization ARNs look like `arn:aws:organizations::123456789012:organization/o-abc`",
        );
        let account: fn(&str) -> bool = check::is_account_id;
        let group: fn(&str) -> bool = |s| s == "all";
        let arn: fn(&str) -> bool = |s| s.starts_with("arn:");
        let lists: [SharingRule<'_>; 6] = [
            ("ami_users", &self.ami_users, account, ACCOUNT),
            ("ami_groups", &self.ami_groups, group, GROUP),
            ("ami_org_arns", &self.ami_org_arns, arn, ARN),
            ("ami_ou_arns", &self.ami_ou_arns, arn, ARN),
            ("snapshot_users", &self.snapshot_users, account, ACCOUNT),
            ("snapshot_groups", &self.snapshot_groups, group, GROUP),
        ];
        for (key, items, ok, (message, help)) in lists {
            for s in items.iter().filter(|s| !ok(s)) {
                out.push(Problem::new(key, format!("{message} `{s}` in {key}"), help).item(s));
            }
        }
    }
}

/// A sharing list's rule: its key, its items, which item is valid, and the
/// message and help for one that is not.
type SharingRule<'a> = (
    &'static str,
    &'a [String],
    fn(&str) -> bool,
    (&'static str, &'static str),
);

/// EC2's rules on tag keys and values.
fn tag_problems(key: &'static str, tags: &BTreeMap<String, String>, out: &mut Vec<Problem>) {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || k.starts_with("aws:") {
            out.push(
                Problem::new(
                    key,
                    format!("invalid tag key `{k}` in {key}"),
                    "tag keys are 1 to 128 characters and may not start with `aws:`",
                )
                .item(k),
            );
        }
        if v.chars().count() > 256 {
            out.push(
                Problem::new(
                    key,
                    format!("tag `{k}` in {key} is longer than 256 characters"),
                    "tag values are at most 256 characters",
                )
                .item(k),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_names_its_key_and_item() {
        let mut s = BuildSettings::new(
            "us-east-1",
            SourceAmi::Id("ami-1".into()),
            "t3.small",
            "node-1",
        );
        assert!(s.problems().is_empty());
        s.subnet_id = Some("sub-1".into());
        s.encrypted = false;
        s.kms_key_id = Some("alias/k".into());
        s.region_kms_key_ids
            .insert("eu-west-1".into(), "alias/k".into());
        s.snapshot_groups = vec!["all".into(), "team".into()];
        s.deprecate_at = Some("soon".into());
        s.tags.insert("aws:x".into(), "v".into());
        let got: Vec<(&str, Option<String>)> =
            s.problems().into_iter().map(|p| (p.key, p.item)).collect();
        let item = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            [
                ("subnet_id", None),
                ("kms_key_id", None),
                ("region_kms_key_ids", item("eu-west-1")),
                ("snapshot_groups", item("team")),
                ("deprecate_at", None),
                ("tags", item("aws:x")),
            ]
        );
        // `all` copies to every region: any region may have a key.
        s.ami_regions = AmiRegions::All;
        assert!(!s.problems().iter().any(|p| p.key == "region_kms_key_ids"));
    }
}
