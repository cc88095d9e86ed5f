//! Running a [`Suite`] against a [`Target`]: resources are grouped by type,
//! the probes of all types gathered in one script (see [`crate::gather`];
//! a type without a plan is observed on its own, concurrently), then every
//! property's matcher is checked. The execs made are logged at debug level
//! (`verify: probed the target round_trips=N`); `IMAGE_VERIFY_GATHER=0` in
//! the environment observes each type on its own instead (one exec per type,
//! per command and per request: for benchmarks). With a retry timeout, failing runs are repeated
//! after `sleep` while `elapsed + sleep` stays within the timeout (goss's
//! `--retry-timeout` / `--sleep`); within a run, a failed resource with
//! `retry_count` is observed again after `retry_delay` (goss's per-resource
//! retries); sleeping never blocks the runtime.

use std::time::{Duration, Instant};

use futures::stream::StreamExt;
use image_core::target::{Become, Target};

use crate::report::{Report, Status, TestResult};
use crate::resource::{Observed, Probe, Resource, ResourceSpec};
use crate::suite::Suite;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Observe through sudo.
    pub become_: Option<Become>,
    /// Resource types observed (and commands run) at once.
    pub max_concurrent: usize,
    /// Retry failing runs until this much time has passed (zero: no retry).
    pub retry_timeout: Duration,
    /// Pause between attempts.
    pub sleep: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            become_: None,
            max_concurrent: 50,
            retry_timeout: Duration::ZERO,
            sleep: Duration::from_secs(1),
        }
    }
}

/// Runs the suite, retrying as `opts` says.
pub async fn run(suite: &Suite, target: &dyn Target, opts: &RunOptions) -> Report {
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let t0 = Instant::now();
        let results = attempt(suite, target, opts).await;
        let mut report = Report {
            results,
            duration: t0.elapsed(),
            attempts,
            timed_out: false,
        };
        if report.passed() || opts.retry_timeout.is_zero() {
            return report;
        }
        if start.elapsed() + opts.sleep > opts.retry_timeout {
            report.timed_out = true;
            return report;
        }
        tracing::debug!(
            failed = report.failed_count(),
            attempt = attempts,
            "verify: retrying after {:?}",
            opts.sleep
        );
        tokio::time::sleep(opts.sleep).await;
    }
}

/// One pass over every resource, with goss's per-resource retries
/// (`retry_count`, `retry_delay`) for the resources that failed.
async fn attempt(suite: &Suite, target: &dyn Target, opts: &RunOptions) -> Vec<TestResult> {
    let probe = Probe::new(target, opts.become_.clone(), opts.max_concurrent);
    let results = attempt_with(suite, &probe).await;
    tracing::debug!(
        round_trips = probe.round_trips(),
        checks = results.len(),
        "verify: probed the target"
    );
    results
}

async fn attempt_with(suite: &Suite, probe: &Probe<'_>) -> Vec<TestResult> {
    // Group the resources to observe by type, in first-appearance order.
    let mut groups: Vec<(&'static dyn Resource, Vec<usize>)> = Vec::new();
    for (i, r) in suite.resources.iter().enumerate() {
        if r.skip || r.checks.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(k, _)| k.key() == r.kind.key()) {
            Some((_, v)) => v.push(i),
            None => groups.push((r.kind, vec![i])),
        }
    }
    type Group = (Vec<usize>, Vec<Observed>, Duration);
    // Types with a plan are gathered in one script; the others observe
    // on their own, at the same time.
    let specs_of = |idx: &[usize]| -> Vec<&ResourceSpec> {
        idx.iter().map(|i| &suite.resources[*i]).collect()
    };
    let mut planned: Vec<(Vec<usize>, crate::gather::Plan<'_>)> = Vec::new();
    let mut apart: Vec<(&'static dyn Resource, Vec<usize>)> = Vec::new();
    let gather = std::env::var_os("IMAGE_VERIFY_GATHER").is_none_or(|v| v != "0");
    for (kind, idx) in groups {
        if !gather {
            apart.push((kind, idx));
            continue;
        }
        match kind.plan(&specs_of(&idx)) {
            Some(plan) => planned.push((idx, plan)),
            None => apart.push((kind, idx)),
        }
    }
    let gathered = async {
        if planned.is_empty() {
            return Vec::new();
        }
        let t0 = Instant::now();
        let (idx, plans): (Vec<Vec<usize>>, Vec<_>) = planned.into_iter().unzip();
        let obs = crate::gather::together(probe, plans).await;
        let d = t0.elapsed();
        idx.into_iter()
            .zip(obs)
            .map(|(i, o)| (i, o, d))
            .collect::<Vec<Group>>()
    };
    // Boxed with an explicit `Send` bound: a closure returning plain async
    // blocks here makes the whole run future fail the `Send` check
    // ("not general enough"), and callers need to spawn it.
    let futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Group> + Send + '_>>> =
        apart
            .into_iter()
            .map(|(kind, idx)| {
                Box::pin(async move {
                    let specs: Vec<&ResourceSpec> =
                        idx.iter().map(|i| &suite.resources[*i]).collect();
                    let t0 = Instant::now();
                    let obs = kind.observe(probe, &specs).await;
                    (idx, obs, t0.elapsed())
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = Group> + Send + '_>>
            })
            .collect();
    let others = futures::stream::iter(futures)
        .buffer_unordered(probe.max_concurrent)
        .collect::<Vec<Group>>();
    let (mut observed, others) = futures::join!(gathered, others);
    observed.extend(others);
    let mut by_index: Vec<Option<(Observed, Duration)>> = vec![None; suite.resources.len()];
    for (idx, obs, d) in observed {
        for (i, o) in idx.into_iter().zip(obs) {
            by_index[i] = Some((o, d));
        }
    }
    let mut results: Vec<Vec<TestResult>> = suite
        .resources
        .iter()
        .zip(&by_index)
        .map(|(spec, obs)| evaluate(spec, obs.as_ref()))
        .collect();
    // Per-resource retries: each failed resource with a `retry_count` is
    // observed again on its own, concurrently with the others.
    type Retried = (usize, Vec<TestResult>);
    let retries: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Retried> + Send + '_>>> =
        suite
            .resources
            .iter()
            .enumerate()
            .filter(|(i, spec)| {
                !spec.skip
                    && spec.retry().0 > 0
                    && results[*i].iter().any(|r| r.status == Status::Failed)
            })
            .map(|(i, spec)| {
                Box::pin(async move { (i, retry_one(probe, spec).await) })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = Retried> + Send + '_>>
            })
            .collect();
    let retried: Vec<Retried> = futures::stream::iter(retries)
        .buffer_unordered(probe.max_concurrent)
        .collect()
        .await;
    for (i, r) in retried {
        results[i] = r;
    }
    results.into_iter().flatten().collect()
}

/// Observes `spec` again up to its `retry_count` times, `retry_delay`
/// apart, until all its checks pass; the last attempt's results.
async fn retry_one(probe: &Probe<'_>, spec: &ResourceSpec) -> Vec<TestResult> {
    let (count, delay) = spec.retry();
    let mut last = Vec::new();
    for n in 0..count {
        tokio::time::sleep(delay).await;
        let t0 = Instant::now();
        let obs = spec.kind.observe(probe, &[spec]).await.into_iter().next();
        let d = t0.elapsed();
        last = evaluate(spec, obs.map(|o| (o, d)).as_ref());
        let failed = last.iter().any(|r| r.status == Status::Failed);
        tracing::debug!(resource = %spec.report_id(), retry = n + 1, failed, "verify: retried");
        if !failed {
            break;
        }
    }
    last
}

/// The results of `spec`'s checks against what was observed.
fn evaluate(spec: &ResourceSpec, observed: Option<&(Observed, Duration)>) -> Vec<TestResult> {
    let gate = crate::resource::gate_property(spec.kind.key());
    let mut gate_closed = false;
    let mut out = Vec::new();
    for (n, check) in spec.checks.iter().enumerate() {
        let mut r = TestResult {
            resource_type: spec.kind.type_name().to_string(),
            resource_id: spec.report_id(),
            property: crate::resource::reported_property(spec.kind.key(), check.property)
                .to_string(),
            title: spec.title.clone(),
            meta: spec.meta.clone(),
            expected: check.matcher.to_json(),
            found: None,
            status: Status::Skipped,
            error: None,
            duration: Duration::ZERO,
            location: check.loc.to_string(),
            verb: check.matcher.verb().to_string(),
        };
        if spec.skip || gate_closed {
            out.push(r);
            continue;
        }
        let Some((obs, d)) = observed else {
            r.status = Status::Failed;
            r.error = Some("not observed (the probe returned too few results)".into());
            out.push(r);
            continue;
        };
        r.duration = *d;
        if let Some(e) = &obs.error {
            r.status = Status::Failed;
            r.error = Some(e.clone());
        } else if let Some(found) = obs.values.get(check.property) {
            let o = check.matcher.check(found);
            r.status = if o.ok { Status::Passed } else { Status::Failed };
            r.found = Some(found.clone());
            r.error = if o.ok { None } else { o.detail };
        } else {
            r.status = Status::Failed;
            r.error = Some(
                obs.absent
                    .clone()
                    .unwrap_or_else(|| format!("{} not found", check.property)),
            );
        }
        // goss's shouldSkip: when the gate property (`exists`,
        // `installed`...) fails or finds false, the rest is skipped.
        if n == 0 && gate == Some(check.property) {
            gate_closed =
                r.status != Status::Passed || r.found == Some(serde_json::Value::Bool(false));
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod send_tests {
    /// Embedders (the build hook) spawn verification on a multi-threaded
    /// runtime: the run future must be `Send`.
    #[allow(dead_code)]
    fn run_future_is_send(
        suite: &crate::Suite,
        target: &dyn image_core::target::Target,
        opts: &super::RunOptions,
    ) {
        fn assert_send<T: Send>(_: T) {}
        assert_send(super::run(suite, target, opts));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use image_core::local::LocalTarget;

    use crate::report::Status;
    use crate::suite::load_str;
    use crate::template::TemplateData;

    #[tokio::test]
    async fn a_failed_or_false_gate_skips_the_other_properties() {
        let src = "file:\n  /no/such/file:\n    mode: \"0644\"\n    exists: true\n  /no/such/either:\n    exists: false\n    owner: root\n\
                   package:\n  k:\n    name: no-such-package-xyz\n    installed: true\n    versions: [\"1.0\"]\n";
        let data = TemplateData {
            vars: serde_json::json!({}),
            env: Default::default(),
        };
        let suite = load_str("g.yaml", src, Path::new("."), &data).unwrap();
        let report = super::run(&suite, &LocalTarget::new(), &Default::default()).await;
        let got: Vec<(String, &str, Status)> = report
            .results
            .iter()
            .map(|r| (r.resource_id.clone(), r.property.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/no/such/file".into(), "exists", Status::Failed),
                ("/no/such/file".into(), "mode", Status::Skipped),
                // `exists: false` passes, but the found `false` still skips.
                ("/no/such/either".into(), "exists", Status::Passed),
                ("/no/such/either".into(), "owner", Status::Skipped),
                ("k: no-such-package-xyz".into(), "installed", Status::Failed),
                ("k: no-such-package-xyz".into(), "version", Status::Skipped),
            ]
        );
    }
}
