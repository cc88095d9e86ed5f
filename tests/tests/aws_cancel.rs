//! Cancelling an EC2 build at each stage: with `on_error: cleanup` nothing
//! is left; with `on_error: abort` everything is left and the error lists
//! exactly what (checked against moto), and `delete_leftovers` removes it.

mod aws_support;

use aws_support::*;
use image_aws::*;
use image_core::events::Event;

enum Stage {
    Trigger(Box<dyn Fn(&Event) -> bool + Send + Sync>),
    DuringHook,
}

async fn cancel_at(stage: impl Fn() -> Stage) {
    let env = Env::start().await;
    for on_error in [OnError::Cleanup, OnError::Abort] {
        let before = env.census().await;
        let cancel = CancelToken::new();
        let mut hook = RecordingHook::default();
        let events = match stage() {
            Stage::Trigger(t) => CancelOn::new(cancel.clone(), t),
            Stage::DuringHook => {
                hook.cancel_and_hang = Some(cancel.clone());
                CancelOn::never()
            }
        };
        let mut req = request(&format!("cancel-{on_error:?}").to_lowercase());
        req.on_error = on_error;
        let started = std::time::Instant::now();
        let err = build(&env.ec2, &req, &hook.hook(), &events, cancel)
            .await
            .expect_err("cancelled build fails");
        assert!(err.is_cancelled(), "{err}");
        assert!(started.elapsed().as_secs() < 20, "cancel is prompt");
        let new = env.census().await.minus(&before);
        match on_error {
            OnError::Cleanup => {
                assert!(new.is_empty(), "left behind: {new:?}");
                assert!(err.left.is_empty(), "{err}");
            }
            OnError::Abort => {
                assert!(!err.left.is_empty(), "{err}");
                assert_eq!(Census::of(&err.left), new, "{err}");
                let failures =
                    cleanup::delete_leftovers(&env.direct, &err.left, &WaitSettings::fast()).await;
                assert!(failures.is_empty(), "{failures:?}");
                let new = env.census().await.minus(&before);
                assert!(new.is_empty(), "left after delete_leftovers: {new:?}");
            }
        }
    }
}

#[tokio::test]
async fn cancel_after_key_pair() {
    cancel_at(|| Stage::Trigger(Box::new(finished("key_pair")))).await;
}

#[tokio::test]
async fn cancel_after_instance() {
    cancel_at(|| Stage::Trigger(Box::new(finished("instance")))).await;
}

#[tokio::test]
async fn cancel_during_hook() {
    cancel_at(|| Stage::DuringHook).await;
}

#[tokio::test]
async fn cancel_after_create_image() {
    cancel_at(|| Stage::Trigger(Box::new(message_starts("created image")))).await;
}

#[tokio::test]
async fn cancel_during_copies() {
    cancel_at(|| Stage::Trigger(Box::new(message_starts("copying")))).await;
}
