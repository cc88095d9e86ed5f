//! `skip_region_validation` (packer's option): the run's region check and
//! the dry run's copy-region check make no DescribeRegions call (moto's
//! recorder), so a region EC2 does not list is not refused up front; the
//! policy then leaves DescribeRegions out.

mod aws_support;

use aws_support::*;
use image_aws::*;

#[tokio::test]
async fn no_region_lookup_when_skipped() {
    let env = Env::start().await;
    let mut req = request("skip-regions");
    req.ami_regions = AmiRegions::List(vec!["xx-nowhere-1".into()]);

    // Checked: the unknown region is refused, by one DescribeRegions.
    env.moto.start_recording().unwrap();
    let bad = regions::check(&env.ec2, std::slice::from_ref(&req))
        .await
        .unwrap();
    env.moto.stop_recording().unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].region, "xx-nowhere-1");
    assert_eq!(recorded_bodies(&env.moto, "DescribeRegions").len(), 1);
    assert!(required_actions(&req).contains("ec2:DescribeRegions"));

    // Skipped: nothing asked, nothing refused, and the dry run plans the copy.
    req.skip_region_validation = true;
    env.moto.start_recording().unwrap();
    let bad = regions::check(&env.ec2, std::slice::from_ref(&req))
        .await
        .unwrap();
    // (The dry run calls every copy region, so it gets one moto has.)
    let mut dry = req.clone();
    dry.ami_regions = AmiRegions::List(vec!["us-west-2".into()]);
    let plan = dry_run(&env.ec2, &dry)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(
        plan.would_create
            .iter()
            .any(|l| l == "copy of the AMI in us-west-2"),
        "{:#?}",
        plan.would_create
    );
    assert!(recorded_bodies(&env.moto, "DescribeRegions").is_empty());
    assert!(!required_actions(&req).contains("ec2:DescribeRegions"));
}
