//! Shared by the tests on a plain booted test-bed target (`node_recipe`,
//! `provision_node_role`, `provision_speed`, `verify_ssh`): boot it, and
//! connect with the test bed's key.

#![allow(dead_code)]

use std::time::Duration;

use image_core::ssh::{SshAuth, SshConfig, SshTarget};
use image_testbed::{Target as Bed, TargetOptions};

/// A target with the default options, booted off the async runtime.
pub async fn boot() -> Bed {
    tokio::task::spawn_blocking(|| Bed::start(TargetOptions::default()))
        .await
        .expect("boot task")
        .expect("test bed target (run scripts/testbed/setup.sh)")
}

/// SSH to `bed` as its user with the test bed's key, retrying for 30 s.
pub async fn connect(bed: &Bed) -> SshTarget {
    let mut cfg = SshConfig::new(
        bed.host(),
        bed.ssh_port(),
        bed.user(),
        SshAuth::key_file(bed.testbed().ed25519_key()),
    );
    cfg.retry_until = Duration::from_secs(30);
    SshTarget::connect(cfg).await.expect("connect")
}
