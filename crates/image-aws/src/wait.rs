//! Polling with exponential backoff, jitter, a deadline, an optional cap on
//! the polls, an optional pause after the first poll, and cancellation
//! (polls start an interval apart, not an interval after each answer);
//! and retrying transient failures (throttling, 5xx) of one call until a
//! deadline. Sleeps with `tokio::time::sleep`, never blocking the runtime.
//! (The default schedule and why: [`WaitSettings`].)

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

    /// The intervals after a first poll made `first` after the start:
    /// `first * (multiplier - 1)` (at least the initial interval, at most
    /// the cap), so the polls stay a fixed fraction of the time waited
    /// apart.
    pub(crate) fn after_first_poll(s: &WaitSettings, first: Duration) -> Self {
        let mut b = Backoff::new(s);
        b.next = first.mul_f64(b.multiplier - 1.0).max(b.next).min(b.max);
        b
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
    check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StepError>>,
{
    until_after(
        settings,
        Duration::ZERO,
        timeout,
        cancel,
        region,
        what,
        id,
        check,
    )
    .await
}

/// [`until`], polling at once, then not before `first_poll` after the
/// start, then from [`Backoff::after_first_poll`]: for a state that takes
/// long where it is not immediate (an image just requested: at once on
/// moto, minutes on AWS).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn until_after<T, F, Fut>(
    settings: &WaitSettings,
    first_poll: Duration,
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
    let (mut backoff, mut second_poll) = if first_poll.is_zero() {
        (Backoff::new(settings), None)
    } else {
        (
            Backoff::after_first_poll(settings, first_poll),
            Some(started + first_poll),
        )
    };
    let mut polls: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let poll_started = Instant::now();
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
        let d = match second_poll.take() {
            Some(at) => at.saturating_duration_since(now),
            None => between_polls(
                backoff.next_interval(),
                now.saturating_duration_since(poll_started),
            ),
        };
        sleep(d.min(deadline - now), cancel).await?;
    }
}

/// The sleep after a poll that took `took` when polls are to start
/// `interval` apart: the rest of the interval (a state reached during the
/// wait is seen up to one call's time sooner than when sleeping the whole
/// interval after each answer), but at least half of it after the answer, so
/// slow answers (throttling, the SDK's retries) never bring polls closer
/// together than that.
fn between_polls(interval: Duration, took: Duration) -> Duration {
    interval.saturating_sub(took).max(interval / 2)
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
    fn polls_start_an_interval_apart_but_never_closer_than_half_after_an_answer() {
        let i = Duration::from_secs(2);
        assert_eq!(
            between_polls(i, Duration::from_millis(70)).as_millis(),
            1930
        );
        assert_eq!(between_polls(i, Duration::ZERO), i);
        assert_eq!(
            between_polls(i, Duration::from_secs(5)),
            Duration::from_secs(1)
        );
    }

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

    /// `until_after`'s schedule without jitter for a state reached
    /// `ready` after the start: (polls, how late the last one is).
    fn schedule(s: &WaitSettings, first: Duration, ready: Duration) -> (u32, Duration) {
        let s = WaitSettings {
            jitter: 0.0,
            ..s.clone()
        };
        let mut b = if first.is_zero() {
            Backoff::new(&s)
        } else {
            Backoff::after_first_poll(&s, first)
        };
        let (mut t, mut polls) = (Duration::ZERO, 1);
        if !first.is_zero() && t < ready {
            (t, polls) = (first, 2);
        }
        while t < ready {
            t += b.next_interval();
            polls += 1;
        }
        (polls, t - ready)
    }

    /// Mean (polls, seconds late) over `ready` spread evenly on
    /// `lo..=hi` seconds (no phase luck).
    fn mean_schedule(s: &WaitSettings, first: Duration, lo: f64, hi: f64) -> (f64, f64) {
        let n = 400;
        let (mut polls, mut late) = (0.0, 0.0);
        for i in 0..=n {
            let ready = Duration::from_secs_f64(lo + (hi - lo) * i as f64 / n as f64);
            let (p, l) = schedule(s, first, ready);
            polls += p as f64;
            late += l.as_secs_f64();
        }
        (polls / (n + 1) as f64, late / (n + 1) as f64)
    }

    #[test]
    fn after_a_first_poll_intervals_start_at_a_fraction_of_it() {
        let s = WaitSettings {
            jitter: 0.0,
            ..WaitSettings::default()
        };
        let mut b = Backoff::after_first_poll(&s, s.image_first_poll());
        let v: Vec<u128> = (0..3).map(|_| b.next_interval().as_millis()).collect();
        assert_eq!(v, [2000, 2400, 2880]);
        // Never below the initial interval, never above the cap.
        let mut b = Backoff::after_first_poll(&s, Duration::from_millis(100));
        assert_eq!(b.next_interval().as_millis(), 2000);
        let mut b = Backoff::after_first_poll(&s, Duration::from_secs(3600));
        assert_eq!(b.next_interval().as_millis(), 30_000);
        // Packer's fixed interval: polls at once, then every interval.
        let f = s.clone().fixed(Duration::from_secs(15));
        assert_eq!(f.image_first_poll(), Duration::ZERO);
        assert_eq!(schedule(&f, Duration::ZERO, Duration::from_secs(20)).0, 3);
    }

    /// The default image wait against packer's (15 s from the start) on
    /// images pending 15–25 s (the build bench), 4–6 min (an AMI on AWS)
    /// and 10–20 min (copies on AWS): far less late on short waits, about
    /// as many calls on an AMI, a third fewer on copies, at most 30 s late.
    #[test]
    fn the_default_image_wait_is_seldom_late_and_cheap_against_packers() {
        let d = WaitSettings::default();
        let packer = d.clone().fixed(Duration::from_secs(15));
        let first = d.image_first_poll();
        let z = Duration::ZERO;
        let (polls, late) = mean_schedule(&d, first, 15.0, 25.0);
        let (p_polls, p_late) = mean_schedule(&packer, z, 15.0, 25.0);
        assert!(late <= p_late / 4.0, "{late} vs {p_late}");
        assert!(polls <= 7.0 && p_polls <= 3.0, "{polls} vs {p_polls}");
        let (polls, late) = mean_schedule(&d, first, 240.0, 360.0);
        let (p_polls, p_late) = mean_schedule(&packer, z, 240.0, 360.0);
        assert!(polls <= p_polls + 1.0, "{polls} vs {p_polls}");
        assert!(late <= p_late + 10.0, "{late} vs {p_late}");
        let (polls, late) = mean_schedule(&d, first, 600.0, 1200.0);
        let (p_polls, p_late) = mean_schedule(&packer, z, 600.0, 1200.0);
        assert!(polls <= p_polls * 0.7, "{polls} vs {p_polls}");
        assert!(late <= p_late + 10.0, "{late} vs {p_late}");
        // An image available at once (moto) is seen at once.
        assert_eq!(schedule(&d, first, Duration::ZERO), (1, Duration::ZERO));
        for secs in [20, 60, 300, 900, 3000] {
            let (_, late) = schedule(&d, first, Duration::from_secs(secs));
            assert!(
                late <= Duration::from_secs(30).min(Duration::from_secs(secs) / 5),
                "{secs}: {late:?}"
            );
        }
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
    async fn until_after_polls_at_once_then_after_the_delay_and_cancels_during_it() {
        let s = WaitSettings::fast();
        let start = Instant::now();
        let polled = std::sync::Mutex::new(Vec::new());
        let r = until_after(
            &s,
            Duration::from_millis(300),
            Duration::from_secs(30),
            &CancelToken::new(),
            "r",
            "thing",
            "id",
            || async {
                let mut p = polled.lock().unwrap();
                p.push(Instant::now() - start);
                Ok((p.len() == 2).then_some(()))
            },
        )
        .await;
        assert!(r.is_ok());
        let polled = polled.lock().unwrap().clone();
        assert_eq!(polled.len(), 2);
        assert!(polled[0] < Duration::from_millis(250), "{polled:?}");
        assert!(polled[1] >= Duration::from_millis(300), "{polled:?}");
        let c = CancelToken::new();
        let c2 = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c2.cancel();
        });
        let start = Instant::now();
        let polls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), _> = until_after(
            &s,
            Duration::from_secs(60),
            Duration::from_secs(120),
            &c,
            "r",
            "thing",
            "id",
            || async {
                polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(None)
            },
        )
        .await;
        assert!(matches!(r, Err(StepError::Cancelled)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(
            polls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "at once only"
        );
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
