//! An EC2 build (moto) whose instance is reached over real SSH: the SSH
//! host/port override points at a booted test bed target, the hook runs
//! commands on it through `image_core::ssh`; with `host_key_from_console`
//! the host key is pinned to the fingerprints the console shows (the fault
//! proxy plays cloud-init's console output).

mod aws_support;

use std::sync::{Arc, Mutex};

use aws_support::*;
use image_aws::aws_sdk_ec2::primitives::Blob;
use image_aws::*;
use image_core::target::{Exec, Target};

/// Moto behind the proxy, a booted target, and a request that reaches the
/// target over SSH with the test bed key (registered in EC2 as `testbed`).
async fn ssh_build(name: &str) -> (Env, image_testbed::Target, BuildRequest) {
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

    let mut req = request(name);
    req.ami_regions = AmiRegions::default();
    req.key_pair = KeyPairSpec::Existing {
        name: "testbed".into(),
        private_key_file: tb.ed25519_key().display().to_string(),
    };
    req.ssh.connect = true;
    req.ssh.host = Some(target.host().to_string());
    req.ssh.port = target.ssh_port();
    req.ssh.username = target.user().to_string();
    req.ssh.timeout_secs = 60;
    (env, target, req)
}

/// `ssh-keygen -lf` of a public key file: `256 SHA256:… comment (ED25519)`,
/// the line format cloud-init prints to the console.
fn keygen_line(pub_file: impl AsRef<std::path::Path>) -> String {
    let pub_file = pub_file.as_ref();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen -lf {}",
        pub_file.display()
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The fingerprint of the test bed's client key (not a host key).
fn other_fp(target: &image_testbed::Target) -> String {
    let line = keygen_line(target.testbed().ed25519_public_key());
    line.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string()
}

/// A console as cloud-init leaves it: boot noise, then the fingerprints.
fn cloud_init_console(lines: &[String]) -> String {
    let mut s = String::from("[    0.000000] Linux version 6.8.0-1012-aws\n[   10.1] cloud-init[612]: Cloud-init v. 24.1 running 'modules:final'\n");
    s.push_str("<14>Nov 24 08:00:01 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n");
    for l in lines {
        s.push_str(&format!("<14>Nov 24 08:00:01 cloud-init: {l}\n"));
    }
    s.push_str("<14>Nov 24 08:00:01 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\n");
    s
}

async fn run(env: &Env, req: &BuildRequest) -> Result<BuildResult, BuildError> {
    let hook = FnHook(|_build: String, t: Arc<dyn Target>| async move {
        t.exec(&Exec::new("true"))
            .await
            .map_err(|e| HookError::with_source("true", e))?;
        Ok(())
    });
    build(&env.ec2, req, &hook, &CancelOn::never(), CancelToken::new()).await
}

#[tokio::test]
async fn the_hook_runs_commands_on_the_instance_over_ssh() {
    let (env, target, req) = ssh_build("ssh").await;

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

/// `host_key_from_console`: the console shows nothing for a while (the
/// instance boots), then cloud-init's fingerprints; the build pins the
/// target's ED25519 key and gets in.
#[tokio::test]
async fn the_host_key_is_pinned_to_what_the_console_shows() {
    let (env, target, mut req) = ssh_build("console-pin").await;
    let before = env.census().await;
    let etc = target.root_dir().join("etc/ssh");
    let lines = [
        keygen_line(etc.join("ssh_host_ecdsa_key.pub")),
        keygen_line(etc.join("ssh_host_ed25519_key.pub")),
        keygen_line(etc.join("ssh_host_rsa_key.pub")),
    ];
    env.proxy.console_output(&cloud_init_console(&lines), 2);
    req.ssh.host_key_from_console = true;
    let res = run(&env, &req).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.amis.len(), 1);
    assert_eq!(env.proxy.calls("GetConsoleOutput"), 3, "polled until shown");
    let new = env.census().await.minus(&before);
    new.assert_no_temporaries();
    drop(target);
}

/// A console that names another key: whoever answers on the address is not
/// the instance. The build stops at connect (no retrying a mismatch), makes
/// no AMI and leaves nothing.
#[tokio::test]
async fn a_host_key_other_than_the_consoles_is_refused() {
    let (env, target, mut req) = ssh_build("console-mismatch").await;
    let before = env.census().await;
    // The client's own public key: a valid fingerprint, not the host's.
    let other = keygen_line(target.testbed().ed25519_public_key());
    let other = other.replace("(ED25519)", "root@ip-10-0-0-5 (ED25519)");
    env.proxy.console_output(&cloud_init_console(&[other]), 0);
    req.ssh.host_key_from_console = true;
    let started = std::time::Instant::now();
    let err = run(&env, &req).await.unwrap_err();
    assert_eq!(err.step, Step::Connect, "{err}");
    let text = err.to_string();
    let want = other_fp(&target);
    assert!(
        text.contains("refusing to connect") && text.contains(&format!("expected {want}")),
        "{text}"
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "a mismatch is not retried"
    );
    env.assert_nothing_new(&before).await;
    drop(target);
}

/// A console that never shows fingerprints (an AMI without cloud-init):
/// a clear error at connect once `ssh_timeout` is spent, nothing left.
#[tokio::test]
async fn no_fingerprints_on_the_console_is_a_clear_error() {
    let (env, target, mut req) = ssh_build("console-silent").await;
    let before = env.census().await;
    env.proxy
        .console_output("[    0.000000] Linux version 6.8.0\n", 0);
    req.ssh.host_key_from_console = true;
    req.ssh.timeout_secs = 3;
    let err = run(&env, &req).await.unwrap_err();
    assert_eq!(err.step, Step::Connect, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no SSH host key fingerprints on the console"),
        "{text}"
    );
    assert!(text.contains("ssh_host_key_from_console: false"), "{text}");
    env.assert_nothing_new(&before).await;
    drop(target);
}
