//! [`AmiOptions`]: the AMI's optional EC2 attributes (packer amazon-ebs
//! options), each applied by one step of the EC2 backend (image-aws
//! `step/<key>.rs`). The struct, its reading from the definition (with
//! file:line:col errors) and its checks live here only: the plan and the
//! EC2 request both hold this struct, so a new option is one field here,
//! its step's file and the step's place in the stage list.

use serde::{Deserialize, Serialize};

use super::build::Reader;
use crate::yaml::MapReader;

/// Optional attributes of the AMI, unset by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmiOptions {
    /// `v2.0`: instances launched from the AMI must use IMDSv2 (packer
    /// `imds_support`; ModifyImageAttribute on every AMI of the build).
    pub imds_support: Option<ImdsSupport>,
    /// Enhanced networking (ENA) on the AMI (packer `ena_support`):
    /// ModifyInstanceAttribute `EnaSupport` on the stopped instance before
    /// CreateImage, which the AMI inherits. `None` = the source AMI's.
    pub ena_support: Option<bool>,
    /// The AMI's boot mode. EC2 sets it only when an AMI is registered
    /// (CreateImage inherits the instance's), so the AMI is registered again
    /// from its snapshots with it, as packer's ebssurrogate and chroot
    /// builders register theirs (amazon-ebs has no such option). `None` =
    /// the source AMI's.
    pub boot_mode: Option<BootMode>,
    /// `v2.0`: NitroTPM on the AMI; like `boot_mode`, set by registering the
    /// AMI again. Needs `boot_mode: uefi`.
    pub tpm_support: Option<TpmSupport>,
    /// Packer's `ami_product_codes`, accepted empty only (image-builder's
    /// packer.json passes `""`): EC2's ModifyImageAttribute no longer sets
    /// product codes ("Not supported" in its reference); AWS Marketplace
    /// gives them to the AMIs it ingests. A code is an error at the key.
    pub ami_product_codes: Vec<String>,
}

/// The definition keys of [`AmiOptions`].
pub const KEYS: &[&str] = &[
    "imds_support",
    "ena_support",
    "boot_mode",
    "tpm_support",
    "ami_product_codes",
];

/// The value of `imds_support`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImdsSupport {
    /// `v2.0`: IMDSv2 only.
    #[serde(rename = "v2.0")]
    V2,
}

impl ImdsSupport {
    /// The EC2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImdsSupport::V2 => "v2.0",
        }
    }
}

/// The value of `boot_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// `legacy-bios`.
    LegacyBios,
    /// `uefi`.
    Uefi,
    /// `uefi-preferred`: UEFI where the instance type supports it.
    UefiPreferred,
}

impl BootMode {
    const ALL: [BootMode; 3] = [
        BootMode::LegacyBios,
        BootMode::Uefi,
        BootMode::UefiPreferred,
    ];

    /// The EC2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::LegacyBios => "legacy-bios",
            BootMode::Uefi => "uefi",
            BootMode::UefiPreferred => "uefi-preferred",
        }
    }
}

/// The value of `tpm_support`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TpmSupport {
    /// `v2.0`: NitroTPM 2.0.
    #[serde(rename = "v2.0")]
    V2,
}

impl TpmSupport {
    /// The EC2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TpmSupport::V2 => "v2.0",
        }
    }
}

impl AmiOptions {
    /// Reads the keys of [`KEYS`] from a build's mapping
    /// ([`AmiOptions::problems`] are reported with the other settings').
    pub(super) fn read(r: &mut Reader<'_>, m: &mut MapReader<'_>) -> AmiOptions {
        let modes = BootMode::ALL.map(BootMode::as_str);
        AmiOptions {
            imds_support: r
                .one_of(m, "imds_support", &["v2.0"])
                .map(|_| ImdsSupport::V2),
            ena_support: r.opt_bool(m.get("ena_support"), "ena_support"),
            boot_mode: r
                .one_of(m, "boot_mode", &modes)
                .and_then(|s| BootMode::ALL.into_iter().find(|b| b.as_str() == s)),
            tpm_support: r
                .one_of(m, "tpm_support", &["v2.0"])
                .map(|_| TpmSupport::V2),
            // (`""`, as image-builder passes it, is no code.)
            ami_product_codes: r.list(m.get("ami_product_codes"), "ami_product_codes", |_| Ok(())),
        }
    }

    /// What is wrong with these options together, each as (key, message,
    /// help): the one place of these rules, for the definition (at the
    /// key's line) and for requests built in code.
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if self.tpm_support.is_some() && self.boot_mode != Some(BootMode::Uefi) {
            out.push((
                "tpm_support",
                format!(
                    "tpm_support needs boot_mode uefi, found {}",
                    self.boot_mode.map_or("none", BootMode::as_str)
                ),
                "NitroTPM boots with UEFI only: set `boot_mode: uefi`".to_string(),
            ));
        }
        if let Some(c) = self.ami_product_codes.first() {
            out.push((
                "ami_product_codes",
                format!("ami_product_codes `{c}`: EC2 no longer sets product codes on an AMI (ModifyImageAttribute ProductCodes is not supported)"),
                "leave ami_product_codes empty; AWS Marketplace gives product codes to the AMIs it ingests"
                    .to_string(),
            ));
        }
        out
    }

    /// True when the AMI must be registered again (`boot_mode`,
    /// `tpm_support`).
    pub fn needs_register(&self) -> bool {
        self.boot_mode.is_some() || self.tpm_support.is_some()
    }
}
