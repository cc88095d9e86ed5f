//! Several builds at once, as `image-cli build` runs them: [`Batch`] runs
//! every request concurrently (at most [`Batch::parallel`] at a time), all
//! under one cancel token, gives the run one `packer_run_uuid`, appends
//! each finished build to a packer manifest as it finishes (sensitive values
//! masked), and returns a [`BatchOutcome`]: the AMIs, the failures, and
//! whether everything was built. Each build is [`crate::build_with`]: on
//! failure or cancellation it deletes what it made (or leaves it, with
//! [`crate::OnError::Abort`]).
//!
//! The JSON objects `image-cli build --json` prints for each build are
//! [`BuildResult::event_json`] and [`BuildError::event_json`].
//!
//! ```no_run
//! # async fn demo(reqs: Vec<image_aws::BuildRequest>) -> Result<(), Box<dyn std::error::Error>> {
//! use image_aws::batch::Batch;
//! use image_aws::{CancelToken, ClientOptions, Ec2Clients, NoProvisioning};
//! use image_core::events::NoEvents;
//! let ec2 = Ec2Clients::from_env(&ClientOptions::default()).await;
//! let cancel = CancelToken::new(); // cancel() it on Ctrl-C
//! let outcome = Batch::new(&ec2, &NoProvisioning, &NoEvents)
//!     .parallel(2)
//!     .manifest("manifest.json")
//!     .on_finished(|build, r| eprintln!("{build}: {}", if r.is_ok() { "built" } else { "failed" }))
//!     .run(&reqs, cancel)
//!     .await;
//! for res in &outcome.built {
//!     println!("{}", image_aws::ami_table::markdown_table(res));
//! }
//! for e in &outcome.failed {
//!     eprintln!("error: {e}");
//! }
//! std::process::exit(if outcome.all_built() { 0 } else { 1 });
//! # }
//! ```

use std::path::{Path, PathBuf};

use futures::StreamExt;
use image_core::events::EventSink;
use serde_json::{json, Value as Json};

use crate::manifest::{self, ManifestBuild};
use crate::{
    build_with, BuildError, BuildRequest, BuildResult, CancelToken, Connector, Ec2Clients,
    ProvisionHook, SshConnector,
};

/// Called as each build finishes: its name and its outcome.
type OnFinished<'a> = Box<dyn Fn(&str, Result<&BuildResult, &BuildError>) + Send + Sync + 'a>;

/// Runs several builds concurrently; see the [module docs](self).
pub struct Batch<'a> {
    ec2: &'a Ec2Clients,
    hook: &'a dyn ProvisionHook,
    connector: &'a dyn Connector,
    events: &'a dyn EventSink,
    parallel: usize,
    manifest: Option<PathBuf>,
    on_finished: Option<OnFinished<'a>>,
}

/// What a [`Batch`] did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The builds that made AMIs, sorted by build name.
    pub built: Vec<BuildResult>,
    /// The builds that failed (or were cancelled), in the order they ended.
    pub failed: Vec<BuildError>,
    /// Builds whose manifest entry could not be written: `(build, why)`
    /// (their AMIs exist).
    pub manifest_errors: Vec<(String, String)>,
}

impl BatchOutcome {
    /// True when every build made every AMI it was asked for (no failed
    /// build, no region of `ami_regions: all` left out).
    pub fn all_built(&self) -> bool {
        self.failed.is_empty() && self.built.iter().all(|b| b.failed_regions.is_empty())
    }
}

impl<'a> Batch<'a> {
    /// A batch provisioning each instance with `hook` (reached over SSH,
    /// [`SshConnector`]), reporting steps on `events`; all builds at once,
    /// no manifest.
    pub fn new(
        ec2: &'a Ec2Clients,
        hook: &'a dyn ProvisionHook,
        events: &'a dyn EventSink,
    ) -> Self {
        Batch {
            ec2,
            hook,
            connector: &SshConnector,
            events,
            parallel: 0,
            manifest: None,
            on_finished: None,
        }
    }

    /// Runs at most `n` builds at once (0: all of them).
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n;
        self
    }

    /// Appends each finished build to the packer manifest at `path`
    /// (created when missing).
    pub fn manifest(mut self, path: impl Into<PathBuf>) -> Self {
        self.manifest = Some(path.into());
        self
    }

    /// Reaches the instances through `connector` instead of SSH.
    pub fn connector(mut self, connector: &'a dyn Connector) -> Self {
        self.connector = connector;
        self
    }

    /// Calls `f` as each build finishes (before its manifest entry is
    /// written), e.g. to end a progress line.
    pub fn on_finished(
        mut self,
        f: impl Fn(&str, Result<&BuildResult, &BuildError>) + Send + Sync + 'a,
    ) -> Self {
        self.on_finished = Some(Box::new(f));
        self
    }

    /// Runs every request; returns once all have ended. Requests without a
    /// `run_uuid` share one new one (the manifest's `packer_run_uuid`).
    /// Cancelling `cancel` cancels every running build (each cleans up)
    /// and starts no other.
    pub async fn run(&self, reqs: &[BuildRequest], cancel: CancelToken) -> BatchOutcome {
        let run_uuid = uuid::Uuid::new_v4().to_string();
        let reqs: Vec<BuildRequest> = reqs
            .iter()
            .cloned()
            .map(|mut r| {
                r.run_uuid.get_or_insert_with(|| run_uuid.clone());
                r
            })
            .collect();
        let parallel = match self.parallel {
            0 => reqs.len().max(1),
            n => n,
        };
        let mut ended = futures::stream::iter(reqs.iter().map(|req| {
            let cancel = cancel.clone();
            async move {
                let r = build_with(
                    self.ec2,
                    req,
                    self.hook,
                    self.connector,
                    self.events,
                    cancel,
                )
                .await;
                (req, r)
            }
        }))
        .buffer_unordered(parallel);

        let mut outcome = BatchOutcome::default();
        while let Some((req, r)) = ended.next().await {
            if let Some(f) = &self.on_finished {
                f(&req.name, r.as_ref());
            }
            match r {
                Ok(res) => {
                    if let Some(path) = &self.manifest {
                        if let Err(e) = append_manifest(path, &res).await {
                            outcome.manifest_errors.push((res.build.clone(), e));
                        }
                    }
                    outcome.built.push(res);
                }
                Err(e) => outcome.failed.push(e),
            }
        }
        outcome.built.sort_by(|a, b| a.build.cmp(&b.build));
        outcome
    }
}

/// Appends `res` to the manifest at `path`, sensitive values masked (the
/// manifest is output too), off the async workers.
async fn append_manifest(path: &Path, res: &BuildResult) -> Result<(), String> {
    let path = path.to_path_buf();
    let mut entry = ManifestBuild::from_result(res);
    let redactor = image_core::redact::global();
    for v in entry.custom_data.iter_mut().flat_map(|m| m.values_mut()) {
        *v = redactor.redact_string(v);
    }
    tokio::task::spawn_blocking(move || {
        manifest::append(&path, entry)
            .map(|_| ())
            .map_err(|e| format!("writing the manifest {}: {e}", path.display()))
    })
    .await
    .map_err(|e| format!("writing the manifest: {e}"))?
}

impl BuildResult {
    /// The `build_result` event `image-cli build --json` prints: build,
    /// ids, the manifest's `artifact_id`, AMIs by region, failed regions and
    /// cleanup failures.
    pub fn event_json(&self) -> Json {
        json!({
            "event": "build_result",
            "build": self.build,
            "build_id": self.build_id,
            "artifact_id": manifest::artifact_id(&self.amis),
            "amis": self.amis,
            "failed_regions": self.failed_regions,
            "cleanup_failures": self.cleanup_failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        })
    }
}

impl BuildError {
    /// The `build_failed` event `image-cli build --json` prints: build,
    /// build id, step, region, error, whether it was cancelled and what it
    /// left in AWS.
    pub fn event_json(&self) -> Json {
        json!({
            "event": "build_failed",
            "build": self.build,
            "build_id": self.build_id,
            "step": self.step.as_str(),
            "region": self.region,
            "error": self.error.to_string(),
            "cancelled": self.is_cancelled(),
            "left": self.left,
        })
    }
}
