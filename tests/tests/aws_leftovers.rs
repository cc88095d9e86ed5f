//! The leftovers finder: resources of aborted builds are found by their
//! tags in every region (AMIs and snapshots through their build's live
//! temporary key pair or security group, once the instance is gone),
//! filtered by age, and deleted; an AMI a failed
//! build could not delete is tagged temporary and found on its own.

mod aws_support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_support::*;
use image_aws::*;

#[tokio::test]
async fn finds_and_deletes_what_an_aborted_build_left() {
    let env = Env::start().await;
    let before = env.census().await;
    let cancel = CancelToken::new();
    let events = CancelOn::new(cancel.clone(), finished("copy"));
    let mut req = request("leftover");
    req.on_error = OnError::Abort;
    let err = env
        .build_cancelled_by(&req, &events, cancel)
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    // Key pair, group and 4 AMIs: the instance was terminated as soon as
    // the AMI was available, while the copies ran.
    assert_eq!(err.left.len(), 6, "{err}");
    assert!(
        err.left.iter().all(|r| r.kind() != "instance"),
        "the instance outlived the image step: {err}"
    );

    let found = env.leftovers().await;
    let ids = |v: &mut dyn Iterator<Item = &Resource>| -> BTreeSet<(String, String)> {
        v.map(|r| (r.region().to_string(), r.id().to_string()))
            .collect()
    };
    let found_ids = ids(&mut found
        .iter()
        .map(|l| &l.resource)
        .filter(|r| r.kind() != "snapshot"));
    assert_eq!(found_ids, ids(&mut err.left.iter()));
    assert!(found
        .iter()
        .all(|l| l.build_id.as_deref() == Some(err.build_id.as_str())));
    assert!(found
        .iter()
        .all(|l| l.build_name.as_deref() == Some("leftover")));
    // Snapshots are tagged too.
    assert_eq!(
        found
            .iter()
            .filter(|l| l.resource.kind() == "snapshot")
            .count(),
        4
    );

    let old = cleanup::find_leftovers(&env.direct, &all_regions(), Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(old.is_empty(), "nothing is an hour old: {old:?}");

    env.delete(found).await;
    env.assert_nothing_new(&before).await;
    assert!(env.leftovers().await.is_empty());
}

#[tokio::test]
async fn an_ami_that_cleanup_could_not_delete_is_tagged_and_found() {
    let env = Env::start().await;
    let before = env.census().await;
    let cancel = CancelToken::new();
    let events = CancelOn::new(cancel.clone(), message_starts("created image"));
    let mut req = request("undeletable");
    req.ami_regions = AmiRegions::default();
    // One try per deletion: more 500s than the client's 6 attempts fail it.
    req.wait.cleanup_timeout_secs = 0;
    env.proxy.fail("DeregisterImage", 6, Fault::ServerError);
    let err = env
        .build_cancelled_by(&req, &events, cancel)
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.left.len(), 1, "{err}");
    assert_eq!(err.left[0].kind(), "image", "{err}");
    // The instance (the build's marker) is gone, the AMI is tagged temporary.
    let found = env.leftovers().await;
    let kinds: BTreeSet<&str> = found.iter().map(|l| l.resource.kind()).collect();
    assert!(kinds.contains("image"), "{found:?}");
    assert!(!kinds.contains("instance"), "{found:?}");
    assert!(found.iter().any(|l| l.resource.id() == err.left[0].id()));
    env.delete(found).await;
    env.assert_nothing_new(&before).await;
}

/// A successful build whose temporary security group could not be deleted:
/// the group is a leftover, but it is marked images-kept, so the complete
/// AMIs it would otherwise mark as partial are not.
#[tokio::test]
async fn a_successful_build_that_could_not_delete_its_group_keeps_its_amis() {
    let env = Env::start().await;
    let before = env.census().await;
    let req = request("group-stuck");
    // The policy lacks ec2:DeleteSecurityGroup (not retried).
    env.proxy.fail("DeleteSecurityGroup", 1, Fault::Denied);
    let res = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stuck: Vec<&str> = res
        .cleanup_failures
        .iter()
        .map(|f| f.resource.kind())
        .collect();
    assert_eq!(stuck, ["security_group"], "{:?}", res.cleanup_failures);
    assert_eq!(res.amis.len(), 4);

    let found = env.leftovers().await;
    let kinds: Vec<&str> = found.iter().map(|l| l.resource.kind()).collect();
    assert_eq!(kinds, ["security_group"], "{found:?}");
    let new = env.census().await.minus(&before);
    assert_eq!(new.images.len(), 4, "{new:?}");
    assert!(
        new.live_instances.is_empty() && new.key_pairs.is_empty(),
        "{new:?}"
    );

    // Without the images-kept mark the group would drag the AMIs along:
    // remove the mark and they are listed as partial.
    let group = found[0].resource.id().to_string();
    env.moto
        .ec2_query(
            REGION,
            &format!(
                "Action=DeleteTags&ResourceId.1={group}&Tag.1.Key={}",
                cleanup::TAG_IMAGES_KEPT
            ),
        )
        .unwrap();
    let found = env.leftovers().await;
    assert_eq!(
        found
            .iter()
            .filter(|l| l.resource.kind() == "image")
            .count(),
        4,
        "{found:?}"
    );
    let group_only: Vec<Leftover> = found
        .into_iter()
        .filter(|l| l.resource.kind() == "security_group")
        .collect();
    env.delete(group_only).await;
    assert!(env.leftovers().await.is_empty());
}
