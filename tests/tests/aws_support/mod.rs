//! Shared by the `aws_*` tests: moto (from image-testbed) behind our fault
//! proxy, clients, a request factory, and a census of what exists in moto.

#![allow(dead_code)]

pub mod faultproxy;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image_aws::aws_sdk_ec2::types::Filter;
use image_aws::*;
use image_core::events::{Event, EventSink};
use image_core::target::Target;

#[allow(unused_imports)]
pub use faultproxy::{Fault, FaultProxy};

pub const REGION: &str = "us-east-1";
pub const COPY_REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];
/// The newest x86_64 noble AMI of tests/fixtures/aws/amis.json.
pub const NEWEST_NOBLE: &str = "ami-0a000000000000002";

pub fn all_regions() -> Vec<String> {
    std::iter::once(REGION)
        .chain(COPY_REGIONS)
        .map(String::from)
        .collect()
}

pub struct Env {
    pub moto: image_testbed::Moto,
    pub proxy: FaultProxy,
    /// Through the fault proxy: what builds use.
    pub ec2: Ec2Clients,
    /// Straight to moto: what assertions use.
    pub direct: Ec2Clients,
}

impl Env {
    pub async fn start() -> Env {
        let fixture = fixture("aws/amis.json");
        let moto = tokio::task::spawn_blocking(move || {
            let tb = image_testbed::Testbed::locate().expect("test bed (scripts/testbed/setup.sh)");
            let f = fixture.to_str().unwrap();
            image_testbed::Moto::start_with(&tb, &[("MOTO_AMIS_PATH", f)]).expect("moto starts")
        })
        .await
        .unwrap();
        let upstream: SocketAddr = format!("127.0.0.1:{}", moto.port()).parse().unwrap();
        let proxy = FaultProxy::start(upstream);
        let opts = ClientOptions {
            max_attempts: Some(6),
            initial_backoff: Some(Duration::from_millis(10)),
            standard_retry: std::env::var_os("IMAGE_AWS_TEST_ADAPTIVE").is_none(),
            ..Default::default()
        };
        let ec2 = Ec2Clients::for_endpoint(&proxy.url(), REGION, &opts).await;
        let direct = Ec2Clients::for_endpoint(moto.url(), REGION, &opts).await;
        Env {
            moto,
            proxy,
            ec2,
            direct,
        }
    }

    pub async fn census(&self) -> Census {
        census(&self.direct, &all_regions()).await
    }

    /// Builds `req` through the fault proxy with `hook`, never cancelled.
    pub async fn build(
        &self,
        req: &BuildRequest,
        hook: &RecordingHook,
    ) -> Result<BuildResult, BuildError> {
        build(
            &self.ec2,
            req,
            &hook.hook(),
            &CancelOn::never(),
            CancelToken::new(),
        )
        .await
    }

    /// Builds `req` with a default hook, `events` cancelling `cancel`.
    pub async fn build_cancelled_by(
        &self,
        req: &BuildRequest,
        events: &CancelOn,
        cancel: CancelToken,
    ) -> Result<BuildResult, BuildError> {
        build(
            &self.ec2,
            req,
            &RecordingHook::default().hook(),
            events,
            cancel,
        )
        .await
    }

    /// The leftovers of any age in [`all_regions`].
    pub async fn leftovers(&self) -> Vec<Leftover> {
        cleanup::find_leftovers(&self.direct, &all_regions(), None)
            .await
            .unwrap()
    }

    /// Deletes `found`; asserts every deletion succeeded.
    pub async fn delete(&self, found: Vec<Leftover>) {
        let resources: Vec<Resource> = found.into_iter().map(|l| l.resource).collect();
        let failures =
            cleanup::delete_leftovers(&self.direct, &resources, &WaitSettings::fast()).await;
        assert!(failures.is_empty(), "{failures:?}");
    }

    /// Nothing exists that did not exist `before`.
    pub async fn assert_nothing_new(&self, before: &Census) {
        let new = self.census().await.minus(before);
        assert!(new.is_empty(), "left behind: {new:?}");
    }
}

/// `tests/fixtures/<rel>` of the workspace.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    let mut dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        for cand in [
            dir.join("fixtures").join(rel),
            dir.join("tests/fixtures").join(rel),
        ] {
            if cand.is_file() {
                return cand;
            }
        }
        assert!(dir.pop(), "fixture {rel} not found");
    }
}

/// A build request for the fixture: noble by filter, temporary key and
/// group, copies to three regions, no SSH.
pub fn request(name: &str) -> BuildRequest {
    let mut req = BuildRequest::new(
        name,
        REGION,
        SourceAmi::Filter(AmiFilter::new(
            vec!["099720109477".into()],
            "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
        )),
        "t3.large",
        format!("{name}-ami-1"),
    );
    req.security_group = SecurityGroupSpec::Temporary {
        source_cidrs: vec!["203.0.113.7/32".into()],
    };
    req.ssh.connect = false;
    req.ami_regions = COPY_REGIONS.iter().map(|s| s.to_string()).collect();
    req.wait = WaitSettings::fast();
    req.tags
        .insert("kubernetes-version".into(), "1.30.2".into());
    req.snapshot_tags
        .insert("purpose".into(), "node-image".into());
    req
}

/// A hook that counts its calls and can fail, block or cancel.
#[derive(Default, Clone)]
pub struct RecordingHook {
    pub calls: Arc<AtomicUsize>,
    pub targets: Arc<Mutex<Vec<String>>>,
    pub fail: bool,
    /// Cancel this token, then wait forever.
    pub cancel_and_hang: Option<CancelToken>,
}

impl RecordingHook {
    /// The hook itself (built on [`FnHook`]).
    pub fn hook(&self) -> impl ProvisionHook {
        let me = self.clone();
        FnHook(move |_build: String, target: Arc<dyn Target>| {
            let me = me.clone();
            async move {
                me.calls.fetch_add(1, Ordering::SeqCst);
                me.targets.lock().unwrap().push(target.name());
                if let Some(c) = &me.cancel_and_hang {
                    c.cancel();
                    std::future::pending::<()>().await;
                }
                if me.fail {
                    return Err(HookError::msg("task `install containerd` failed: exit 100"));
                }
                Ok(())
            }
        })
    }
}

/// Records events; cancels `cancel` when an event matches `trigger`.
pub struct CancelOn {
    pub events: Mutex<Vec<Event>>,
    pub cancel: CancelToken,
    pub trigger: Box<dyn Fn(&Event) -> bool + Send + Sync>,
}

impl CancelOn {
    pub fn new(
        cancel: CancelToken,
        trigger: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Self {
        CancelOn {
            events: Mutex::new(Vec::new()),
            cancel,
            trigger: Box::new(trigger),
        }
    }

    pub fn never() -> Self {
        Self::new(CancelToken::new(), |_| false)
    }

    pub fn steps_finished(&self) -> Vec<(String, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::StepFinished { step, outcome, .. } => {
                    Some((step.clone(), format!("{outcome:?}")))
                }
                _ => None,
            })
            .collect()
    }
}

impl EventSink for CancelOn {
    fn emit(&self, event: &Event) {
        self.events.lock().unwrap().push(event.clone());
        if (self.trigger)(event) {
            self.cancel.cancel();
        }
    }
}

pub fn finished(step: &'static str) -> impl Fn(&Event) -> bool + Send + Sync {
    move |e| matches!(e, Event::StepFinished { step: s, .. } if s == step)
}

pub fn message_starts(prefix: &'static str) -> impl Fn(&Event) -> bool + Send + Sync {
    move |e| matches!(e, Event::Message { text, .. } if text.starts_with(prefix))
}

/// What exists in moto, by (kind, region, id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub live_instances: BTreeSet<(String, String)>,
    pub key_pairs: BTreeSet<(String, String)>,
    pub security_groups: BTreeSet<(String, String)>,
    pub images: BTreeSet<(String, String)>,
    pub snapshots: BTreeSet<(String, String)>,
    /// Launch templates (a spot build's, temporary).
    pub launch_templates: BTreeSet<(String, String)>,
}

impl Census {
    /// What is in `self` and not in `before`.
    pub fn minus(&self, before: &Census) -> Census {
        let d = |a: &BTreeSet<(String, String)>, b: &BTreeSet<(String, String)>| {
            a.difference(b).cloned().collect()
        };
        Census {
            live_instances: d(&self.live_instances, &before.live_instances),
            key_pairs: d(&self.key_pairs, &before.key_pairs),
            security_groups: d(&self.security_groups, &before.security_groups),
            images: d(&self.images, &before.images),
            snapshots: d(&self.snapshots, &before.snapshots),
            launch_templates: d(&self.launch_templates, &before.launch_templates),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Census::default()
    }

    /// No live instance, no key pair, no security group, no launch template.
    pub fn assert_no_temporaries(&self) {
        assert!(self.live_instances.is_empty(), "{self:?}");
        assert!(self.launch_templates.is_empty(), "{self:?}");
        assert!(self.key_pairs.is_empty(), "{self:?}");
        assert!(self.security_groups.is_empty(), "{self:?}");
    }

    /// The census of a list of resources (an abort's `left`).
    pub fn of(resources: &[Resource]) -> Census {
        let mut c = Census::default();
        for r in resources {
            let k = (r.region().to_string(), r.id().to_string());
            match r {
                Resource::Instance { .. } => {
                    c.live_instances.insert(k);
                }
                Resource::KeyPair { .. } => {
                    c.key_pairs.insert(k);
                }
                Resource::SecurityGroup { .. } => {
                    c.security_groups.insert(k);
                }
                Resource::Image { snapshots, .. } => {
                    for s in snapshots {
                        c.snapshots.insert((r.region().to_string(), s.clone()));
                    }
                    c.images.insert(k);
                }
                Resource::Snapshot { .. } => {
                    c.snapshots.insert(k);
                }
                Resource::LaunchTemplate { .. } => {
                    c.launch_templates.insert(k);
                }
            }
        }
        c
    }
}

pub async fn census(ec2: &Ec2Clients, regions: &[String]) -> Census {
    let mut c = Census::default();
    for region in regions {
        let cl = ec2.client(region);
        let r = || region.to_string();
        let o = cl
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .values("shutting-down")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for i in o.reservations().iter().flat_map(|r| r.instances()) {
            c.live_instances
                .insert((r(), i.instance_id().unwrap().to_string()));
        }
        let o = cl.describe_key_pairs().send().await.unwrap();
        for k in o.key_pairs() {
            c.key_pairs.insert((r(), k.key_name().unwrap().to_string()));
        }
        let o = cl.describe_security_groups().send().await.unwrap();
        for g in o.security_groups() {
            c.security_groups
                .insert((r(), g.group_id().unwrap().to_string()));
        }
        let o = cl.describe_images().owners("self").send().await.unwrap();
        for i in o.images() {
            c.images.insert((r(), i.image_id().unwrap().to_string()));
        }
        let o = cl
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap();
        for s in o.snapshots() {
            c.snapshots
                .insert((r(), s.snapshot_id().unwrap().to_string()));
        }
        let o = cl.describe_launch_templates().send().await.unwrap();
        for t in o.launch_templates() {
            c.launch_templates
                .insert((r(), t.launch_template_id().unwrap().to_string()));
        }
    }
    c
}

/// Every form body moto recorded since `start_recording`, in order and
/// decoded (the requests as moto received them).
pub fn all_recorded_bodies(moto: &image_testbed::Moto) -> Vec<String> {
    use base64::Engine as _;
    moto.recorded_calls()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let body = c.get("body")?.as_str()?;
            if c.get("body_encoded").and_then(|v| v.as_bool()) == Some(true) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .ok()?;
                String::from_utf8(bytes).ok()
            } else {
                Some(body.to_string())
            }
        })
        .collect()
}

/// The decoded form bodies of the `action` calls moto recorded since
/// `start_recording` (the request as moto received it).
pub fn recorded_bodies(moto: &image_testbed::Moto, action: &str) -> Vec<String> {
    let marker = format!("Action={action}&");
    all_recorded_bodies(moto)
        .into_iter()
        .filter(|text| format!("{text}&").contains(&marker))
        .collect()
}
