//! Counting round trips: a [`Target`] wrapper that counts every command,
//! upload and download it passes on (each is one SSH exec, one round trip),
//! so a benchmark or a caller can show what each task costs on the wire.
//!
//! ```no_run
//! # async fn demo(t: Box<dyn image_core::target::Target>) {
//! use image_provision::round_trips::Counting;
//! let counting = Counting::new(t);
//! let trips = counting.counter();
//! // ... image_provision::run(&counting, ...).await ...
//! println!("{} round trips", trips.get());
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use image_core::target::{Become, Exec, FileMeta, Output, Target, TargetError};

/// A shared count of round trips; clones read the same count.
#[derive(Debug, Clone, Default)]
pub struct RoundTrips(Arc<AtomicU64>);

impl RoundTrips {
    /// The round trips so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A target that counts the round trips made through it.
pub struct Counting {
    inner: Box<dyn Target>,
    count: RoundTrips,
}

impl Counting {
    /// Wraps `inner` with a count starting at zero.
    pub fn new(inner: Box<dyn Target>) -> Self {
        Counting {
            inner,
            count: RoundTrips::default(),
        }
    }

    /// A handle on the count (stays valid while the target is used).
    pub fn counter(&self) -> RoundTrips {
        self.count.clone()
    }
}

#[async_trait]
impl Target for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError> {
        self.count.add();
        self.inner.exec(cmd).await
    }

    async fn put(
        &self,
        path: &str,
        content: &[u8],
        meta: &FileMeta,
        become_: Option<&Become>,
    ) -> Result<(), TargetError> {
        self.count.add();
        self.inner.put(path, content, meta, become_).await
    }

    async fn get(&self, path: &str, become_: Option<&Become>) -> Result<Vec<u8>, TargetError> {
        self.count.add();
        self.inner.get(path, become_).await
    }

    async fn reconnect(&self) -> Result<(), TargetError> {
        self.inner.reconnect().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image_core::local::LocalTarget;

    #[tokio::test]
    async fn counts_each_exec_put_and_get() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f").display().to_string();
        let t = Counting::new(Box::new(LocalTarget::new()));
        let n = t.counter();
        t.exec(&Exec::new("true")).await.unwrap();
        t.put(&path, b"x", &FileMeta::default(), None)
            .await
            .unwrap();
        assert_eq!(t.get(&path, None).await.unwrap(), b"x");
        assert_eq!(n.get(), 3);
    }
}
