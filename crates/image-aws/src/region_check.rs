//! Regions checked against the account before the first mutating call
//! ([`crate::regions::check`], one `DescribeRegions`), as diagnostics at the
//! place the definition names each region: a region that does not exist or
//! is not enabled is an error there, with a "did you mean" from the
//! account's regions. When the regions cannot be asked (no permission), a
//! warning, and the build goes on.
//!
//! ```no_run
//! # async fn demo(ec2: &image_aws::Ec2Clients, plans: &[image_core::spec::Plan]) -> Result<(), Box<dyn std::error::Error>> {
//! use image_aws::region_check::{check_regions, region_locs};
//! let reqs = plans.iter().map(image_aws::BuildRequest::from_plan).collect::<Result<Vec<_>, _>>()?;
//! let diags = check_regions(ec2, &reqs, &region_locs(plans)).await;
//! eprint!("{diags}");
//! if diags.has_errors() {
//!     std::process::exit(2); // nothing was created
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use image_core::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use image_core::spec::Plan;

use crate::{AmiRegions, BuildRequest, Ec2Clients};

/// Where each build names each region: build name -> region -> location.
pub type RegionLocs = BTreeMap<String, BTreeMap<String, Location>>;

/// The regions of `plans` by build, for [`check_regions`].
pub fn region_locs(plans: &[Plan]) -> RegionLocs {
    plans
        .iter()
        .map(|p| (p.name.clone(), p.region_locs.clone()))
        .collect()
}

/// Checks every region `reqs` name (build region and copy regions) with
/// one `DescribeRegions`: errors for regions that cannot be used, at the
/// place `locs` gives, or a warning when the account cannot be asked.
pub async fn check_regions(
    ec2: &Ec2Clients,
    reqs: &[BuildRequest],
    locs: &RegionLocs,
) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let bad = match crate::regions::check(ec2, reqs).await {
        Ok(bad) => bad,
        Err(e) => {
            diags.push(
                Diagnostic::warning(None, format!("could not check the regions with DescribeRegions: {e}"))
                    .with_help("allow ec2:DescribeRegions to have bad regions refused before anything is created"),
            );
            return diags;
        }
    };
    for b in bad {
        let loc = locs.get(&b.build).and_then(|l| l.get(&b.region)).cloned();
        let help = match did_you_mean(&b.region, b.enabled.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the account's regions: {}", b.enabled.join(", ")),
        };
        diags.push(
            Diagnostic::error(
                loc,
                format!("build `{}`: region `{}` {}", b.build, b.region, b.why),
            )
            .with_help(help),
        );
    }
    diags
}

/// [`check_regions`] for a test instance of `req`: only its build region
/// matters (nothing is copied).
pub async fn check_test_region(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    locs: &RegionLocs,
) -> Diagnostics {
    let mut launch = req.clone();
    launch.ami_regions = AmiRegions::default();
    launch.region_kms_key_ids.clear();
    check_regions(ec2, std::slice::from_ref(&launch), locs).await
}
