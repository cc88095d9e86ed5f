//! `ami_regions: all`: the regions enabled for the account, found with
//! `DescribeRegions` when a build starts (opt-in status
//! `opt-in-not-required` or `opted-in`), minus the build region.
//!
//! [`check`]: every region a run names (build regions, copy regions,
//! per-region KMS keys) exists and is enabled for the account, asked with
//! one `DescribeRegions` before anything is created.
//!
//! `resolve` turns a request with `ami_regions: all`
//! ([`BuildSettings::ami_regions`](crate::BuildSettings::ami_regions)) into one with the concrete list
//! (`AmiRegions::Resolved`), so every later step (name checks, copies,
//! permissions) sees plain regions, and the copy step still knows that a
//! failed region is reported, not fatal.

use std::collections::BTreeSet;

use crate::error::{AwsContext, AwsError};
use crate::request::{AmiRegions, BuildRequest};
use crate::Ec2Clients;

/// Opt-in states of regions the account can use.
const ENABLED: [&str; 2] = ["opt-in-not-required", "opted-in"];

/// A region a request names that the account cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableRegion {
    /// The request's (build's) name.
    pub build: String,
    /// The region.
    pub region: String,
    /// Not enabled (with its opt-in status), or unknown to the partition.
    pub why: String,
    /// The account's enabled regions, for a "did you mean".
    pub enabled: Vec<String>,
}

/// Where to ask `DescribeRegions` for `reqs`: the first build region the
/// partition surely has, else the partition's first region.
fn home_region(reqs: &[BuildRequest]) -> String {
    let first = reqs.first().map_or("us-east-1", |r| r.region.as_str());
    if image_core::spec::check::is_known_region(first) {
        return first.to_string();
    }
    if first.starts_with("us-gov-") {
        "us-gov-west-1".into()
    } else if first.starts_with("cn-") {
        "cn-north-1".into()
    } else {
        "us-east-1".into()
    }
}

/// The regions the action [`check`] needs.
pub(crate) fn actions(req: &BuildRequest, a: &mut BTreeSet<&'static str>) {
    if !req.skip_region_validation || req.ami_regions.from_all() {
        a.insert("ec2:DescribeRegions");
    }
}

/// Every region of `reqs` (build region, `ami_regions`, the keys of
/// `region_kms_key_ids`) that is not enabled for the account, with one
/// `DescribeRegions` (all regions, with their opt-in status). Call it
/// before the first mutating call: a nonexistent region (`us-east-9`)
/// otherwise fails only after resources exist (or after long retries).
/// Requests with [`BuildSettings::skip_region_validation`](crate::BuildSettings::skip_region_validation) are left out.
pub async fn check(
    ec2: &Ec2Clients,
    reqs: &[BuildRequest],
) -> Result<Vec<UnusableRegion>, AwsError> {
    // `skip_region_validation` (packer's): not asked about.
    let reqs: Vec<BuildRequest> = reqs
        .iter()
        .filter(|r| !r.skip_region_validation)
        .cloned()
        .collect();
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let home = home_region(&reqs);
    let out = ec2
        .client(&home)
        .describe_regions()
        .all_regions(true)
        .send()
        .await
        .ctx("DescribeRegions", &home, None)?;
    let status: std::collections::BTreeMap<String, Option<String>> = out
        .regions()
        .iter()
        .filter_map(|r| {
            let name = r.region_name()?.to_string();
            Some((name, r.opt_in_status().map(str::to_string)))
        })
        .collect();
    let enabled: Vec<String> = status
        .iter()
        .filter(|(_, s)| s.as_deref().is_none_or(|s| ENABLED.contains(&s)))
        .map(|(n, _)| n.clone())
        .collect();
    let mut bad = Vec::new();
    for req in &reqs {
        let named = std::iter::once(&req.region)
            .chain(req.ami_regions.list())
            .chain(req.region_kms_key_ids.keys());
        let mut seen = BTreeSet::new();
        for region in named {
            if !seen.insert(region) {
                continue;
            }
            let why = match status.get(region) {
                None => "does not exist".to_string(),
                Some(Some(s)) if !ENABLED.contains(&s.as_str()) => {
                    format!("is not enabled for this account (opt-in status `{s}`)")
                }
                Some(_) => continue,
            };
            bad.push(UnusableRegion {
                build: req.name.clone(),
                region: region.clone(),
                why,
                enabled: enabled.clone(),
            });
        }
    }
    Ok(bad)
}

/// The regions enabled for the account (sorted), asked in `region`.
/// Regions without an opt-in status (older EC2 stand-ins) count as enabled.
pub async fn enabled_regions(ec2: &Ec2Clients, region: &str) -> Result<Vec<String>, AwsError> {
    let out = ec2
        .client(region)
        .describe_regions()
        .all_regions(false)
        .send()
        .await
        .ctx("DescribeRegions", region, None)?;
    let set: BTreeSet<String> = out
        .regions()
        .iter()
        .filter(|r| r.opt_in_status().is_none_or(|s| ENABLED.contains(&s)))
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    Ok(set.into_iter().collect())
}

/// With `ami_regions: all`, a copy of `req` whose `ami_regions` are the
/// account's enabled regions without the build region
/// ([`AmiRegions::Resolved`]); else `None`.
pub(crate) async fn resolve(
    ec2: &Ec2Clients,
    req: &BuildRequest,
) -> Result<Option<BuildRequest>, AwsError> {
    if !req.ami_regions.is_all() {
        return Ok(None);
    }
    let mut out = req.clone();
    out.ami_regions = AmiRegions::Resolved(
        enabled_regions(ec2, &req.region)
            .await?
            .into_iter()
            .filter(|r| *r != req.region)
            .collect(),
    );
    Ok(Some(out))
}
