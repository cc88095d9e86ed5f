//! `run`'s future is `Send` even where the compiler must prove it for every
//! lifetime (inside `#[async_trait]` methods, `tokio::spawn`).

use std::sync::Arc;

use async_trait::async_trait;
use image_core::events::NoEvents;
use image_core::target::Target;
use image_provision::{Options, Steps};

#[async_trait]
trait Hook: Send + Sync {
    async fn go(&self, target: Arc<dyn Target>) -> usize;
}

struct H {
    events: Arc<dyn image_core::events::EventSink>,
    steps: std::collections::HashMap<String, Vec<(std::path::PathBuf, Steps)>>,
    opts: Options,
}

impl H {
    async fn one(
        &self,
        steps: &Steps,
        vars: &serde_json::Map<String, serde_json::Value>,
        target: &dyn Target,
    ) -> usize {
        let opts = Options {
            extra_vars: vars.clone(),
            ..Default::default()
        };
        image_provision::run(target, steps, &opts, self.events.as_ref())
            .await
            .results
            .len()
    }
}

#[async_trait]
impl Hook for H {
    async fn go(&self, target: Arc<dyn Target>) -> usize {
        let mut n = 0;
        let Some(p) = self.steps.get("b") else {
            return 0;
        };
        for (_path, s) in p {
            n += self.one(s, &self.opts.extra_vars, target.as_ref()).await;
        }
        n
    }
}

#[tokio::test]
async fn run_future_is_send_in_async_trait_methods() {
    let steps = image_provision::parse::parse_str(
        "s.yaml",
        "- debug: msg=hi\n",
        std::path::Path::new("."),
        &[],
    )
    .expect("parses");
    let mut builds = std::collections::HashMap::new();
    builds.insert(
        "b".to_string(),
        vec![(std::path::PathBuf::from("s.yaml"), steps)],
    );
    let h: Box<dyn Hook> = Box::new(H {
        events: Arc::new(NoEvents),
        steps: builds,
        opts: Options::default(),
    });
    // Spawned: the future must be Send.
    let n =
        tokio::spawn(async move { h.go(Arc::new(image_core::local::LocalTarget::new())).await })
            .await
            .expect("join");
    assert_eq!(n, 1);
}
