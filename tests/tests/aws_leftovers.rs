//! The leftovers finder: resources of aborted builds are found by their
//! tags in every region (AMIs and snapshots through their build's live
//! temporary instance), filtered by age, and deleted; an AMI a failed
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
    // key pair, group, instance, 4 AMIs
    assert_eq!(err.left.len(), 7, "{err}");

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
    req.ami_regions.clear();
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
