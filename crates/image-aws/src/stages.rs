//! The loops over the lists of stages a build and a test run ([`BUILD`],
//! [`TEST`], declared in `crate::step` next to the step modules): the
//! build ([`run`]), the dry run ([`check`]), the IAM policy ([`actions`]) and
//! cleanup ([`undo`]) all read the same lists, so none can call what the
//! others do not know.
//!
//! A list is a sequence of phases; the stages of one phase run at once
//! (each as its own step, with events), and the first error in list order
//! stops the run once the whole phase has finished (so whatever its stages
//! created is on the cleanup stack).

use crate::error::{Step, StepError};
use crate::request::BuildRequest;
use crate::resource::Resource;
use crate::step::{Actions, Ctx, Stage, State, Undo};
pub(crate) use crate::step::{Phase, BUILD, TEST};

/// Every stage of [`BUILD`] and [`TEST`].
fn all() -> impl Iterator<Item = &'static dyn Stage> {
    BUILD.iter().chain(TEST).flat_map(|p| p.iter().copied())
}

/// The actions `list` may call with `req`'s settings, with the run's
/// region check ([`crate::regions`]) before it.
pub(crate) fn actions_of(list: &[Phase], req: &BuildRequest) -> Actions {
    let mut a = Actions::new();
    crate::regions::actions(req, &mut a);
    for s in list.iter().flat_map(|p| p.iter()) {
        if s.applies(req) {
            s.actions(req, &mut a);
        }
    }
    a
}

/// The actions a build, its dry run and a test with `req`'s settings may
/// call (ec2, kms, iam).
pub(crate) fn actions(req: &BuildRequest) -> Actions {
    let mut a = actions_of(BUILD, req);
    a.extend(actions_of(TEST, req));
    a
}

/// Runs `list` phase by phase; stops at the first failed phase.
pub(crate) async fn run(cx: &Ctx<'_>, st: &State, list: &[Phase]) -> Result<(), (Step, StepError)> {
    for phase in list {
        let runs = phase
            .iter()
            .filter(|s| s.applies(cx.req))
            .map(|s| async move {
                if s.reported() {
                    cx.step(s.name(), async { Ok(((), s.run(cx, st).await?)) })
                        .await
                } else {
                    s.run(cx, st).await.map(|_| ()).map_err(|e| (s.name(), e))
                }
            });
        for r in futures::future::join_all(runs).await {
            r?;
        }
    }
    Ok(())
}

/// The dry run of `list`: every stage's read-only checks, in list order.
pub(crate) async fn check(
    cx: &Ctx<'_>,
    st: &State,
    list: &[Phase],
) -> Result<(), (Step, StepError)> {
    for s in list.iter().flat_map(|p| p.iter()) {
        if !s.applies(cx.req) {
            continue;
        }
        s.check(cx, st).await.map_err(|e| (s.name(), e))?;
    }
    Ok(())
}

/// Deletes `r` through the stage that creates its kind.
pub(crate) async fn undo(u: &Undo<'_>, r: &Resource) -> Result<(), StepError> {
    match all().find(|s| s.creates(r)) {
        Some(s) => s.undo(u, r).await,
        None => Err(StepError::Invalid(vec![format!(
            "internal: no step deletes a {}",
            r.kind()
        )])),
    }
}
