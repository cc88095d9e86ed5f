//! Tagging resources after the fact, best effort: a failed build's AMIs
//! that could not be deleted get [`TAG_TEMPORARY`](crate::resource::TAG_TEMPORARY),
//! a successful build's stuck temporaries
//! [`TAG_IMAGES_KEPT`](crate::resource::TAG_IMAGES_KEPT); and filling in
//! the snapshots of AMIs left behind so the list of what is left is
//! complete.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Tag;
use tokio::time::Instant;

use crate::clients::Ec2Clients;
use crate::error::{AwsContext, AwsError};
use crate::request::WaitSettings;
use crate::resource::Resource;
use crate::wait;

/// Tags `resources` with `key=true`, best effort (a failed build's AMIs and
/// snapshots that could not be deleted get [`crate::resource::TAG_TEMPORARY`], so
/// [`crate::cleanup::find_leftovers`] finds them once the instance is gone). Returns the
/// resources it could not tag, with why.
pub(crate) async fn mark(
    ec2: &Ec2Clients,
    resources: &[Resource],
    key: &str,
    settings: &WaitSettings,
) -> Vec<(Resource, AwsError)> {
    let mut ids: BTreeMap<&str, Vec<(&Resource, String)>> = BTreeMap::new();
    for r in resources {
        let e = ids.entry(r.region()).or_default();
        match r {
            Resource::Image { id, snapshots, .. } => {
                e.push((r, id.clone()));
                e.extend(snapshots.iter().map(|s| (r, s.clone())));
            }
            Resource::KeyPair { id: Some(id), .. } => e.push((r, id.clone())),
            Resource::KeyPair { id: None, .. } => {}
            _ => e.push((r, r.id().to_string())),
        }
    }
    let deadline = Instant::now() + settings.cleanup_timeout();
    let mut failed = Vec::new();
    for (region, list) in ids {
        let c = ec2.client(region);
        // One call per resource: a deregistered AMI must not fail the
        // tagging of its snapshots.
        for (r, id) in list {
            let res = wait::retry_transient(settings, deadline, || async {
                c.create_tags()
                    .resources(&id)
                    .tags(Tag::builder().key(key).value("true").build())
                    .send()
                    .await
                    .ctx("CreateTags", region, Some(&id))
            })
            .await;
            if let Err(e) = res {
                if !e.is("InvalidAMIID") && !e.is("InvalidSnapshot") {
                    failed.push((r.clone(), e));
                }
            }
        }
    }
    failed
}

/// Fills in the snapshots of images whose snapshots are not known yet
/// (cancelled before the image was available), with read-only calls, so a
/// list of what is left is complete. Best effort.
pub(crate) async fn complete_snapshots(ec2: &Ec2Clients, resources: &mut [Resource]) {
    for r in resources.iter_mut() {
        if let Resource::Image {
            region,
            id,
            snapshots,
        } = r
        {
            if !snapshots.is_empty() {
                continue;
            }
            let c = ec2.client(region);
            if let Ok(out) = c.describe_images().image_ids(id.as_str()).send().await {
                for img in out.images() {
                    snapshots.extend(crate::resource::snapshot_ids(img));
                }
            }
        }
    }
}
