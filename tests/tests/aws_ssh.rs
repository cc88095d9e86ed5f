//! An EC2 build (moto) whose instance is reached over real SSH: the SSH
//! host/port override points at a booted test bed target, the hook runs
//! commands on it through `image_core::ssh`.

mod aws_support;

use std::sync::{Arc, Mutex};

use aws_support::*;
use image_aws::aws_sdk_ec2::primitives::Blob;
use image_aws::*;
use image_core::target::{Exec, Target};

#[tokio::test]
async fn the_hook_runs_commands_on_the_instance_over_ssh() {
    let env = Env::start().await;
    let target = tokio::task::spawn_blocking(|| {
        image_testbed::Target::start(image_testbed::TargetOptions::default()).expect("target boots")
    })
    .await
    .unwrap();
    let tb = target.testbed().clone();
    // The instance's key pair: the test bed key, registered in EC2.
    let public = std::fs::read(tb.ed25519_public_key()).unwrap();
    env.direct
        .client(REGION)
        .import_key_pair()
        .key_name("testbed")
        .public_key_material(Blob::new(public))
        .send()
        .await
        .unwrap();

    let mut req = request("ssh");
    req.ami_regions.clear();
    req.key_pair = KeyPairSpec::Existing {
        name: "testbed".into(),
        private_key_file: tb.ed25519_key().display().to_string(),
    };
    req.ssh.connect = true;
    req.ssh.host = Some(target.host().to_string());
    req.ssh.port = target.ssh_port();
    req.ssh.username = target.user().to_string();
    req.ssh.timeout_secs = 60;

    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let hook = FnHook(move |_build: String, t: Arc<dyn Target>| {
        let seen = s2.clone();
        async move {
            let who = t
                .exec(&Exec::new("id -un"))
                .await
                .map_err(|e| HookError::with_source("id", e))?;
            let root = t
                .exec(&Exec::new("id -u").become_root())
                .await
                .map_err(|e| HookError::with_source("sudo id", e))?;
            let mut s = seen.lock().unwrap();
            s.push(t.name());
            s.push(who.stdout_str().trim().to_string());
            s.push(root.stdout_str().trim().to_string());
            Ok(())
        }
    });
    let res = build(
        &env.ec2,
        &req,
        &hook,
        &CancelOn::never(),
        CancelToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.amis.len(), 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], format!("builder@127.0.0.1:{}", target.ssh_port()));
    assert_eq!(seen[1..], ["builder".to_string(), "0".to_string()]);
    // A key pair we did not create is not deleted.
    let kp = env
        .direct
        .client(REGION)
        .describe_key_pairs()
        .key_names("testbed")
        .send()
        .await
        .unwrap();
    assert_eq!(kp.key_pairs().len(), 1);
    drop(target);
}
