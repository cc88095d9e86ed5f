//! `ami_regions: all` (issue #7) in image-aws: the copy regions are the
//! account's enabled regions, found when the build starts; a copy failing in
//! one region is deleted and reported while the other regions' AMIs are kept.

mod aws_support;

use aws_support::*;
use image_aws::*;

#[tokio::test]
async fn one_failed_region_is_reported_and_the_others_kept() {
    let env = Env::start().await;
    // One attempt per call, so exactly one copy fails.
    let opts = ClientOptions {
        max_attempts: Some(1),
        standard_retry: true,
        ..Default::default()
    };
    let ec2 = Ec2Clients::for_endpoint(&env.proxy.url(), REGION, &opts).await;
    let mut req = request("all");
    req.ami_regions = AmiRegions::default();
    req.ami_regions = AmiRegions::All;
    req.copy_concurrency = 1;
    env.proxy.fail("CopyImage", 1, Fault::ServerError);
    let hook = RecordingHook::default();
    let res = build(
        &ec2,
        &req,
        &hook.hook(),
        &CancelOn::never(),
        CancelToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let enabled = regions::enabled_regions(&env.direct, REGION).await.unwrap();
    assert!(enabled.len() > 10, "{enabled:?}");
    assert_eq!(res.failed_regions.len(), 1, "{:?}", res.failed_regions);
    let (failed, why) = res.failed_regions.iter().next().unwrap();
    assert!(why.contains("CopyImage"), "{why}");
    assert!(!res.amis.contains_key(failed));
    assert_eq!(
        res.amis.len(),
        enabled.len() - 1,
        "every other region has its AMI"
    );
    assert!(res.amis.contains_key(REGION));
    // Nothing of the failed copy (or anything temporary) is left.
    let left = cleanup::find_leftovers(&env.direct, &enabled, None)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let in_failed = env
        .direct
        .client(failed)
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap();
    assert!(
        in_failed.images().is_empty(),
        "{failed}: {:?}",
        in_failed.images()
    );
}
