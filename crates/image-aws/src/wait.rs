//! Polling with exponential backoff, jitter, a deadline, an optional cap on
//! the polls, and cancellation; and retrying transient failures (throttling,
//! 5xx) of one call until a deadline. Sleeps with `tokio::time::sleep`,
//! never blocking the runtime.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::error::{AwsError, StepError};
use crate::request::WaitSettings;
use crate::CancelToken;

/// The next poll intervals: `initial * multiplier^n`, capped, ± jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Backoff {
    pub(crate) fn new(s: &WaitSettings) -> Self {
        Backoff {
            next: Duration::from_millis(s.initial_interval_ms.max(1)),
            max: Duration::from_millis(s.max_interval_ms.max(s.initial_interval_ms).max(1)),
            multiplier: s.multiplier.max(1.0),
            jitter: s.jitter.clamp(0.0, 1.0),
        }
    }

    /// The next interval (and advances).
    pub(crate) fn next_interval(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.mul_f64(self.multiplier).min(self.max);
        if self.jitter > 0.0 {
            let f = rand::thread_rng().gen_range(1.0 - self.jitter..=1.0 + self.jitter);
            base.mul_f64(f)
        } else {
            base
        }
    }
}

/// Sleeps `d`, or returns `Err(Cancelled)` as soon as `cancel` fires.
pub(crate) async fn sleep(d: Duration, cancel: &CancelToken) -> Result<(), StepError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.cancelled() => Err(StepError::Cancelled),
    }
}

/// Calls `check` until it returns `Some`, an error, the deadline passes
/// or `settings.max_polls` polls said "not yet" (`StepError::Timeout`
/// naming `what`, `id`, `region`), or `cancel` fires. A transient AWS error
/// (throttling, 5xx, after the SDK's attempts) counts as "not yet"; if the
/// wait then runs out, that error is returned.
pub(crate) async fn until<T, F, Fut>(
    settings: &WaitSettings,
    timeout: Duration,
    cancel: &CancelToken,
    region: &str,
    what: &str,
    id: &str,
    mut check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StepError>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut backoff = Backoff::new(settings);
    let mut polls: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let r = tokio::select! {
            r = check() => r,
            _ = cancel.cancelled() => return Err(StepError::Cancelled),
        };
        polls = polls.saturating_add(1);
        let last_transient = match r {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(StepError::Aws(e)) if e.transient => Some(StepError::Aws(e)),
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let out_of_polls = settings.max_polls.is_some_and(|m| polls >= m);
        if now >= deadline || out_of_polls {
            return Err(last_transient.unwrap_or_else(|| StepError::Timeout {
                region: region.to_string(),
                what: what.to_string(),
                id: id.to_string(),
                after: if out_of_polls {
                    now.duration_since(started)
                } else {
                    timeout
                },
            }));
        }
        let d = backoff.next_interval().min(deadline - now);
        sleep(d, cancel).await?;
    }
}

/// Calls `call` again while it fails with a transient error (throttling,
/// 5xx, after the SDK's own attempts), backing off as `settings` poll,
/// until `deadline`; then returns its last answer. Not cancellable: cleanup
/// uses it, and cleanup runs because of a cancel.
pub(crate) async fn retry_transient<T, F, Fut>(
    settings: &WaitSettings,
    deadline: Instant,
    mut call: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut backoff = Backoff::new(settings);
    loop {
        match call().await {
            Err(e) if e.transient => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                tracing::debug!("{e}: retrying");
                tokio::time::sleep(backoff.next_interval().min(deadline - now)).await;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap() {
        let s = WaitSettings {
            initial_interval_ms: 100,
            max_interval_ms: 400,
            multiplier: 2.0,
            jitter: 0.0,
            ..WaitSettings::default()
        };
        let mut b = Backoff::new(&s);
        let v: Vec<u128> = (0..5).map(|_| b.next_interval().as_millis()).collect();
        assert_eq!(v, [100, 200, 400, 400, 400]);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let s = WaitSettings {
            initial_interval_ms: 1000,
            max_interval_ms: 1000,
            multiplier: 1.0,
            jitter: 0.2,
            ..WaitSettings::default()
        };
        let mut b = Backoff::new(&s);
        for _ in 0..100 {
            let ms = b.next_interval().as_millis();
            assert!((800..=1200).contains(&ms), "{ms}");
        }
    }

    #[tokio::test]
    async fn until_times_out_and_cancels() {
        let s = WaitSettings::fast();
        let c = CancelToken::new();
        let r: Result<(), _> = until(
            &s,
            Duration::from_millis(100),
            &c,
            "r",
            "thing",
            "id",
            || async { Ok(None) },
        )
        .await;
        assert!(matches!(r, Err(StepError::Timeout { .. })));
        c.cancel();
        let r: Result<(), _> = until(
            &s,
            Duration::from_millis(100),
            &c,
            "r",
            "thing",
            "id",
            || async { Ok(None) },
        )
        .await;
        assert!(matches!(r, Err(StepError::Cancelled)));
    }

    #[tokio::test]
    async fn until_stops_after_max_polls() {
        let s = WaitSettings {
            max_polls: Some(3),
            ..WaitSettings::fast()
        };
        let n = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), _> = until(
            &s,
            Duration::from_secs(30),
            &CancelToken::new(),
            "r",
            "thing",
            "id",
            || async {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(None)
            },
        )
        .await;
        assert!(matches!(r, Err(StepError::Timeout { .. })), "{r:?}");
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    fn throttled() -> AwsError {
        AwsError {
            operation: "TerminateInstances",
            region: "r".into(),
            resource: Some("i-1".into()),
            code: Some("RequestLimitExceeded".into()),
            message: "slow down".into(),
            transient: true,
        }
    }

    #[tokio::test]
    async fn retry_transient_retries_until_the_deadline() {
        let s = WaitSettings::fast();
        let n = std::sync::atomic::AtomicU32::new(0);
        let r = retry_transient(&s, Instant::now() + Duration::from_secs(10), || async {
            if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 5 {
                Err(throttled())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        let r: Result<(), _> =
            retry_transient(&s, Instant::now() + Duration::from_millis(100), || async {
                Err(throttled())
            })
            .await;
        assert!(r.unwrap_err().transient);
        let n = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), _> =
            retry_transient(&s, Instant::now() + Duration::from_secs(10), || async {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(AwsError {
                    transient: false,
                    code: Some("UnauthorizedOperation".into()),
                    ..throttled()
                })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(
            n.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not retried"
        );
    }
}
