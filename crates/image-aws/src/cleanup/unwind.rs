//! Deleting what a build created, in an order EC2 accepts: AMIs and
//! snapshots first (while the build's temporary resources still mark them
//! as partial), then instances (awaited until terminated) and key pairs at
//! once, then security groups, which instances hold until terminated. Each
//! deletion is the `undo` of the step that creates that kind of resource.

use std::collections::BTreeSet;

use futures::StreamExt;

use crate::clients::Ec2Clients;
use crate::error::{CleanupFailure, StepError};
use crate::request::WaitSettings;
use crate::resource::Resource;
use crate::step::Undo;
use crate::CancelToken;

/// At most this many deletions run at once.
const DELETE_CONCURRENCY: usize = 8;

/// Deletes `resources`; returns what could not be deleted. AMIs and
/// snapshots go first (while the build's temporary resources still mark
/// them as partial for [`super::find_leftovers`], should this process die); then instances (awaited
/// until terminated) and key pairs at once; then security groups, which
/// instances hold until terminated. Never cancelled: it runs because of a
/// cancel. Transient failures are retried for `settings.cleanup_timeout_secs`.
pub(crate) async fn unwind(
    ec2: &Ec2Clients,
    resources: Vec<Resource>,
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let settings = settings.for_cleanup();
    let (artifacts, rest): (Vec<_>, Vec<_>) = resources.into_iter().partition(|r| r.is_artifact());
    let mut failures = delete_all(ec2, artifacts, &settings).await;
    let (instances, rest): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|r| matches!(r, Resource::Instance { .. }));
    let (groups, others): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|r| matches!(r, Resource::SecurityGroup { .. }));
    let settings = &settings;
    let instances_then_groups = async move {
        let mut f = delete_all(ec2, instances, settings).await;
        // A group whose instance is still there cannot go: one try, no
        // waiting for DependencyViolation to clear.
        let stuck: BTreeSet<String> = f.iter().map(|x| x.resource.region().to_string()).collect();
        let (blocked, free): (Vec<_>, Vec<_>) =
            groups.into_iter().partition(|g| stuck.contains(g.region()));
        for g in blocked {
            let u = Undo {
                ec2,
                settings,
                patient: false,
            };
            if let Err(error) = crate::stages::undo(&u, &g).await {
                f.push(CleanupFailure { resource: g, error });
            }
        }
        f.extend(delete_all(ec2, free, settings).await);
        f
    };
    let (a, b) = tokio::join!(instances_then_groups, delete_all(ec2, others, settings));
    failures.extend(a);
    failures.extend(b);
    failures
}

/// Deletes `resources` concurrently (a few at a time).
async fn delete_all(
    ec2: &Ec2Clients,
    resources: Vec<Resource>,
    settings: &WaitSettings,
) -> Vec<CleanupFailure> {
    let never = CancelToken::new();
    let never = &never;
    futures::stream::iter(resources.into_iter().map(|r| async move {
        delete_one(ec2, &r, settings, never)
            .await
            .err()
            .map(|error| CleanupFailure { resource: r, error })
    }))
    .buffer_unordered(DELETE_CONCURRENCY)
    .filter_map(|f| async move { f })
    .collect()
    .await
}

/// Deletes one resource, waiting where deletion must complete (instances),
/// retrying throttling and 5xx answers for `settings.cleanup_timeout_secs`.
/// (Deletions are never cancelled; `_cancel` is kept for callers.)
pub async fn delete_one(
    ec2: &Ec2Clients,
    r: &Resource,
    settings: &WaitSettings,
    _cancel: &CancelToken,
) -> Result<(), StepError> {
    let u = Undo {
        ec2,
        settings,
        patient: true,
    };
    crate::stages::undo(&u, r).await
}
