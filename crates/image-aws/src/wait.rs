//! Polling with exponential backoff, jitter, a deadline and cancellation.
//! Sleeps with `tokio::time::sleep`, never blocking the runtime.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::error::StepError;
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
/// (`StepError::Timeout` naming `what`, `id`, `region`) or `cancel` fires.
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
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(settings);
    loop {
        if cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let r = tokio::select! {
            r = check() => r?,
            _ = cancel.cancelled() => return Err(StepError::Cancelled),
        };
        if let Some(v) = r {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StepError::Timeout {
                region: region.to_string(),
                what: what.to_string(),
                id: id.to_string(),
                after: timeout,
            });
        }
        let d = backoff.next_interval().min(deadline - now);
        sleep(d, cancel).await?;
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
}
