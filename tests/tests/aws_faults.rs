//! EC2 builds under injected faults (throttling, 5xx, slow images) and
//! failures (hook, copy, timeout): the build succeeds through transient
//! faults, a failed build leaves nothing behind, and cleanup outlasts more
//! throttling than the SDK's attempts.

mod aws_support;

use std::sync::atomic::Ordering;

use aws_support::*;
use image_aws::aws_sdk_ec2::types::Filter;
use image_aws::*;

#[tokio::test]
async fn throttling_5xx_and_pending_images_are_waited_out() {
    let env = Env::start().await;
    env.proxy.fail("CreateImage", 3, Fault::Throttle);
    env.proxy.fail("RunInstances", 2, Fault::ServerError);
    env.proxy.fail("DescribeImages", 2, Fault::Throttle);
    env.proxy.pending_polls(3);
    let req = request("throttled");
    let res = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.amis.len(), 4);
    assert_eq!(env.proxy.injected("CreateImage"), 3);
    assert_eq!(
        env.proxy.calls("CreateImage"),
        4,
        "3 throttled + 1 accepted"
    );
    assert_eq!(env.proxy.calls("RunInstances"), 3);
    // Each of the 4 AMIs was reported pending 3 times before available.
    assert!(
        env.proxy.rewritten() >= 4 * 3,
        "rewritten {}",
        env.proxy.rewritten()
    );
    // Exactly one AMI (no duplicate from a retried CreateImage) per region.
    for r in all_regions() {
        let o = env
            .direct
            .client(&r)
            .describe_images()
            .owners("self")
            .filters(
                Filter::builder()
                    .name("name")
                    .values("throttled-ami-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(o.images().len(), 1, "{r}");
    }
}

#[tokio::test]
async fn a_failing_hook_makes_no_ami_and_leaves_nothing() {
    let env = Env::start().await;
    let before = env.census().await;
    let hook = RecordingHook {
        fail: true,
        ..Default::default()
    };
    let err = env.build(&request("hookfail"), &hook).await.unwrap_err();
    assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.step, Step::Provision, "{err}");
    assert!(err.to_string().contains("install containerd"), "{err}");
    assert!(err.left.is_empty(), "{err}");
    assert_eq!(env.proxy.calls("CreateImage"), 0);
    assert_eq!(env.proxy.calls("CopyImage"), 0);
    env.assert_nothing_new(&before).await;
}

#[tokio::test]
async fn a_failed_copy_is_reported_by_region_and_everything_is_deleted() {
    let env = Env::start().await;
    let before = env.census().await;
    let mut req = request("copyfail");
    req.copy_concurrency = 1;
    // More 500s than the client's 6 attempts: the first copy fails for good.
    env.proxy.fail("CopyImage", 6, Fault::ServerError);
    let err = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_err();
    assert_eq!(err.step, Step::Copy, "{err}");
    let StepError::Regions(failed) = &err.error else {
        panic!("{err}");
    };
    assert_eq!(failed.len(), 1, "{err}");
    assert_eq!(failed[0].0, "us-west-2", "{err}");
    assert!(err.to_string().contains("CopyImage in us-west-2"), "{err}");
    // The other copies were made, then everything was deleted.
    assert!(
        env.proxy.calls("CopyImage") >= 8,
        "{}",
        env.proxy.calls("CopyImage")
    );
    assert!(err.left.is_empty(), "{err}");
    env.assert_nothing_new(&before).await;
}

#[tokio::test]
async fn an_image_that_never_becomes_available_times_out_and_is_deleted() {
    let env = Env::start().await;
    let before = env.census().await;
    env.proxy.pending_polls(usize::MAX);
    let mut req = request("slow");
    req.ami_regions = AmiRegions::default();
    req.wait.image_timeout_secs = 1;
    let err = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_err();
    assert_eq!(err.step, Step::Image, "{err}");
    assert!(matches!(err.error, StepError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("image available"), "{err}");
    env.assert_nothing_new(&before).await;
}

/// More throttling than the client's 6 attempts per call, twice over: the
/// cleanup keeps retrying (WaitSettings::cleanup_timeout_secs) instead of
/// abandoning a running instance, after a success and after a failure.
#[tokio::test]
async fn cleanup_outlasts_throttling_and_leaves_nothing() {
    let env = Env::start().await;
    let before = env.census().await;
    let throttle_cleanup = || {
        env.proxy.fail("TerminateInstances", 14, Fault::Throttle);
        env.proxy.fail("DeleteKeyPair", 8, Fault::Throttle);
        env.proxy.fail("DeleteSecurityGroup", 8, Fault::ServerError);
    };

    // A successful build: its instance, key pair and group still go.
    let mut req = request("throttled-cleanup");
    req.ami_regions = AmiRegions::default();
    throttle_cleanup();
    let res = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        res.cleanup_failures.is_empty(),
        "{:?}",
        res.cleanup_failures
    );
    assert_eq!(env.proxy.injected("TerminateInstances"), 14);
    assert_eq!(
        env.proxy.calls("TerminateInstances"),
        15,
        "14 throttled + 1"
    );
    assert_eq!(env.proxy.injected("DeleteKeyPair"), 8);
    assert_eq!(env.proxy.injected("DeleteSecurityGroup"), 8);
    let new = env.census().await.minus(&before);
    new.assert_no_temporaries();
    assert_eq!(new.images.len(), 1, "the AMI is kept: {new:?}");
    let left = env.leftovers().await;
    assert!(left.is_empty(), "{left:?}");

    // A failed build: everything goes.
    let before = env.census().await;
    throttle_cleanup();
    let err = env
        .build(
            &request("throttled-cleanup-fail"),
            &RecordingHook {
                fail: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.step, Step::Provision, "{err}");
    assert!(err.left.is_empty(), "{err}");
    assert!(err.cleanup_failures.is_empty(), "{err}");
    assert_eq!(env.proxy.injected("TerminateInstances"), 28);
    env.assert_nothing_new(&before).await;
}

/// The state of image `id` in `region` through the proxy: by id, and as
/// its owner's list shows it.
async fn states(env: &Env, region: &str, id: &str) -> (String, String) {
    let c = env.ec2.client(region);
    let by_id = c.describe_images().image_ids(id).send().await.unwrap();
    let owned = c.describe_images().owners("self").send().await.unwrap();
    let state = |imgs: &[image_aws::aws_sdk_ec2::types::Image]| {
        imgs.iter()
            .find(|i| i.image_id() == Some(id))
            .and_then(|i| i.state())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| format!("{id} not listed"))
    };
    (state(by_id.images()), state(owned.images()))
}

/// The proxy's time mode: an image made by CreateImage or CopyImage is
/// `pending` for a fixed time after that call, however often and however it
/// is asked about (polled by id, listed by owner), then `available`; a build
/// through it waits out the AMI, then its copies.
#[tokio::test]
async fn images_stay_pending_for_a_fixed_time_after_the_call_that_made_them() {
    use std::time::{Duration, Instant};
    let env = Env::start().await;
    let pending = Duration::from_secs(4);
    env.proxy.pending_for(pending);
    let instance = env
        .direct
        .client(REGION)
        .run_instances()
        .image_id(NEWEST_NOBLE)
        .instance_type(image_aws::aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance_id = instance.instances()[0].instance_id().unwrap().to_string();
    let t0 = Instant::now();
    let created = env
        .ec2
        .client(REGION)
        .create_image()
        .instance_id(&instance_id)
        .name("timed-ami")
        .send()
        .await
        .unwrap();
    let copied = env
        .ec2
        .client("us-west-2")
        .copy_image()
        .source_region(REGION)
        .source_image_id(NEWEST_NOBLE)
        .name("timed-copy")
        .send()
        .await
        .unwrap();
    let images = [
        (REGION, created.image_id().unwrap().to_string()),
        ("us-west-2", copied.image_id().unwrap().to_string()),
    ];
    // Polled again and again before the time: pending, by id and by owner.
    for _ in 0..5 {
        for (region, id) in &images {
            let s = states(&env, region, id).await;
            assert_eq!(s, ("pending".into(), "pending".into()), "{id}");
        }
    }
    assert!(
        t0.elapsed() < pending,
        "the polls took {:?}, longer than the pending time {pending:?}: machine too slow for this test",
        t0.elapsed()
    );
    // Moto itself has them available at once: the proxy made them pending.
    let direct = env
        .direct
        .client(REGION)
        .describe_images()
        .image_ids(&images[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.images()[0].state().map(|s| s.as_str()),
        Some("available")
    );
    tokio::time::sleep(pending.saturating_sub(t0.elapsed()) + Duration::from_millis(200)).await;
    for (region, id) in &images {
        let s = states(&env, region, id).await;
        assert_eq!(s, ("available".into(), "available".into()), "{id}");
    }
    let times = env.proxy.images();
    assert_eq!(times.len(), 2, "{times:?}");
    for (id, t) in &times {
        let seen = t.available_seen.expect("seen available");
        assert!(seen - t.created >= pending, "{id}: {:?}", seen - t.created);
    }

    // A build (polling fast) waits out its AMI, then its copies, which
    // EC2 makes only from an available AMI.
    let pending = Duration::from_secs(1);
    env.proxy.pending_for(pending);
    let t0 = Instant::now();
    let res = env
        .build(&request("timed"), &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let took = t0.elapsed();
    assert_eq!(res.amis.len(), 4);
    assert!(took >= 2 * pending, "{took:?}");
    let built: Vec<_> = env.proxy.images().into_iter().skip(times.len()).collect();
    assert_eq!(built.len(), 4, "{built:?}");
    let ami = built.iter().find(|(_, t)| !t.copy).expect("the AMI").1;
    let ami_available = ami.available_seen.expect("AMI seen available");
    assert!(ami_available - ami.created >= pending);
    for (id, t) in built.iter().filter(|(_, t)| t.copy) {
        assert!(
            t.created >= ami_available,
            "{id} copied before its source was available"
        );
        let seen = t.available_seen.expect("copy seen available");
        assert!(seen - t.created >= pending, "{id}");
    }
}
