//! `ami_regions: all`: the regions enabled for the account, found with
//! `DescribeRegions` when a build starts (opt-in status
//! `opt-in-not-required` or `opted-in`), minus the build region.
//!
//! [`resolve`] turns a request with [`BuildRequest::ami_regions_all`] into
//! one with a concrete `ami_regions` list, so every later step (name checks,
//! copies, permissions) sees plain regions.

use std::collections::BTreeSet;

use crate::error::{AwsContext, AwsError};
use crate::request::BuildRequest;
use crate::Ec2Clients;

/// Opt-in states of regions the account can use.
const ENABLED: [&str; 2] = ["opt-in-not-required", "opted-in"];

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

/// With `ami_regions_all`, a copy of `req` whose `ami_regions` are the
/// account's enabled regions without the build region; else `None`.
pub(crate) async fn resolve(
    ec2: &Ec2Clients,
    req: &BuildRequest,
) -> Result<Option<BuildRequest>, AwsError> {
    if !req.ami_regions_all {
        return Ok(None);
    }
    let mut out = req.clone();
    out.ami_regions = enabled_regions(ec2, &req.region)
        .await?
        .into_iter()
        .filter(|r| *r != req.region)
        .collect();
    Ok(Some(out))
}
