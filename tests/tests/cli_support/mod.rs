//! Shared by the `cli_*` tests and the demo's test bed (`tests/examples/
//! demo_bed.rs`): the `image-cli` binary, moto with the fixture AMIs, and a
//! target whose sshd trusts only the key pairs a build imported into EC2
//! (as cloud-init would): an `AuthorizedKeysCommand` asks moto
//! `DescribeKeyPairs` with `IncludePublicKey=true`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;

use image_aws::aws_sdk_ec2::types::{Filter, Image, ImageAttributeName};

pub mod node;

/// The region the fixtures build in.
pub const REGION: &str = "us-east-1";
/// The copy regions of `tests/fixtures/cli_build/spec.yaml`.
pub const COPY_REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];
/// Access key id the target's key lookup signs with, so the tests can tell
/// its calls from the build's in moto's recording.
pub const KEYS_ACCESS_KEY: &str = "target-ec2-keys";

/// The workspace root.
pub fn workspace() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").is_file() {
        assert!(dir.pop(), "workspace root not found");
    }
    dir
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// The `image-cli` binary: `$IMAGE_CLI_BIN`, else built (once per process)
/// with cargo next to this test binary.
pub fn image_cli() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = std::env::var_os("IMAGE_CLI_BIN") {
            return PathBuf::from(b);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--quiet", "-p", "image-cli", "--bin", "image-cli"])
            .current_dir(workspace())
            .status()
            .expect("running cargo build -p image-cli");
        assert!(st.success(), "cargo build -p image-cli failed");
        // target/debug/deps/<test> -> target/debug/image-cli
        let exe = std::env::current_exe().expect("current_exe");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("image-cli"))
            .expect("target dir");
        assert!(bin.is_file(), "{} missing", bin.display());
        bin
    })
    .clone()
}

/// The target's `AuthorizedKeysCommand`: prints the public keys of the
/// `image-builder-*` key pairs moto holds in `region`.
pub fn ec2_keys_script(moto_port: u16, region: &str) -> String {
    format!(
        r#"#!/usr/bin/python3
# AuthorizedKeysCommand: the public keys of the EC2 key pairs image-cli
# builds imported (named image-builder-<build id>), asked from moto as
# cloud-init would get them from instance metadata.
import sys, urllib.parse, urllib.request
import xml.etree.ElementTree as ET

body = urllib.parse.urlencode({{"Action": "DescribeKeyPairs", "Version": "2016-11-15",
                               "IncludePublicKey": "true"}}).encode()
req = urllib.request.Request("http://10.0.2.2:{moto_port}/", data=body, headers={{
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    "Authorization": "AWS4-HMAC-SHA256 Credential={KEYS_ACCESS_KEY}/20240101/{region}/ec2/aws4_request, "
                     "SignedHeaders=host, Signature=0"}})
try:
    root = ET.fromstring(urllib.request.urlopen(req, timeout=10).read())
except Exception as e:
    print("ec2-keys: %s" % e, file=sys.stderr)
    sys.exit(1)
for item in root.iter():
    if not item.tag.endswith("item"):
        continue
    name = key = None
    for child in item:
        if child.tag.endswith("keyName"):
            name = child.text or ""
        elif child.tag.endswith("publicKey"):
            key = (child.text or "").strip()
    if name and key and name.startswith("image-builder-"):
        print(key)
"#
    )
}

/// Extra files for `image_testbed::TargetOptions`: the sshd drop-in and the
/// key lookup script.
pub fn ec2_keys_files(moto_port: u16, region: &str) -> Vec<(PathBuf, Vec<u8>, u32)> {
    vec![
        (
            PathBuf::from("/etc/ssh/sshd_config.d/50-ec2.conf"),
            b"# Only the key pairs EC2 knows (image-cli tests)\nAuthorizedKeysFile none\nAuthorizedKeysCommand /usr/local/bin/ec2-keys %u\nAuthorizedKeysCommandUser nobody\n".to_vec(),
            0o644,
        ),
        (
            PathBuf::from("/usr/local/bin/ec2-keys"),
            ec2_keys_script(moto_port, region).into_bytes(),
            0o755,
        ),
    ]
}

/// Extra files adding an `ubuntu` user with passwordless sudo (the
/// built-in definition's `ssh_username`), based on the rootfs's files.
pub fn ubuntu_user_files(rootfs: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>, u32)>> {
    let read = |rel: &str| std::fs::read_to_string(rootfs.join(rel));
    let mut passwd = read("etc/passwd")?;
    let mut group = read("etc/group")?;
    let mut shadow = read("etc/shadow")?;
    if !passwd.lines().any(|l| l.starts_with("ubuntu:")) {
        passwd.push_str("ubuntu:x:1500:1500:ubuntu:/home/ubuntu:/bin/bash\n");
        group.push_str("ubuntu:x:1500:\n");
        shadow.push_str("ubuntu:*:19000:0:99999:7:::\n");
    }
    Ok(vec![
        (PathBuf::from("/etc/passwd"), passwd.into_bytes(), 0o644),
        (PathBuf::from("/etc/group"), group.into_bytes(), 0o644),
        (PathBuf::from("/etc/shadow"), shadow.into_bytes(), 0o640),
        (
            PathBuf::from("/etc/sudoers.d/90-ubuntu"),
            b"ubuntu ALL=(ALL) NOPASSWD:ALL\n".to_vec(),
            0o440,
        ),
        (PathBuf::from("/home/ubuntu/.profile"), Vec::new(), 0o644),
    ])
}

/// Moto with the fixture AMIs.
pub fn start_moto() -> image_testbed::Moto {
    let tb = image_testbed::Testbed::locate().expect("test bed (scripts/testbed/setup.sh)");
    let amis = fixture("aws/amis.json");
    let amis = amis.to_str().expect("utf-8 path");
    image_testbed::Moto::start_with(&tb, &[("MOTO_AMIS_PATH", amis)]).expect("moto starts")
}

/// A target trusting only EC2's key pairs (plus `extra` files).
pub fn start_target(
    moto: &image_testbed::Moto,
    extra: Vec<(PathBuf, Vec<u8>, u32)>,
) -> image_testbed::Target {
    let mut extra_files = ec2_keys_files(moto.port(), REGION);
    extra_files.extend(extra);
    let opts = image_testbed::TargetOptions {
        extra_files,
        ..Default::default()
    };
    image_testbed::Target::start(opts).expect("target boots")
}

/// Moto, and a target trusting only EC2's key pairs (plus `extra` files),
/// started off the async runtime.
pub async fn start_moto_and_target(
    extra: Vec<(PathBuf, Vec<u8>, u32)>,
) -> (image_testbed::Moto, image_testbed::Target) {
    tokio::task::spawn_blocking(move || {
        let moto = start_moto();
        let target = start_target(&moto, extra);
        (moto, target)
    })
    .await
    .expect("test bed")
}

/// `image-cli` to run in `cwd` against `moto` (the standard AWS chain
/// pointed at it by environment variables only).
pub fn cli_command(moto: &image_testbed::Moto, cwd: &Path) -> Command {
    // No profile or credentials of this machine leak in.
    let empty = cwd.join(".aws-empty");
    std::fs::write(&empty, "").expect("writing an empty AWS config");
    let mut cmd = Command::new(image_cli());
    cmd.current_dir(cwd);
    aws_env(&mut cmd, moto.url(), &empty);
    cmd
}

/// Points `cmd`'s standard AWS chain at `endpoint` in [`REGION`] with test
/// credentials, `empty` as AWS config and credentials file: no profile,
/// session or credentials of this machine leak in.
pub fn aws_env(cmd: &mut Command, endpoint: &str, empty: &Path) {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", empty);
}

/// Runs `image-cli args` in `cwd` against `moto` (see [`cli_command`]).
pub fn run_cli(moto: &image_testbed::Moto, cwd: &Path, args: &[&str]) -> Output {
    let out = cli_command(moto, cwd)
        .args(args)
        .output()
        .expect("running image-cli");
    eprintln!(
        "image-cli {}: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`run_cli`] from a multi-threaded tokio test.
pub fn run_cli_in_place(moto: &image_testbed::Moto, cwd: &Path, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| run_cli(moto, cwd, args))
}

/// Sends SIGINT to `child` (spawned with piped output) and returns its output.
pub fn interrupt(child: Child) -> Output {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("waiting for image-cli");
    eprintln!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The first JSON line of `stdout` whose `event` is `event`.
pub fn json_event(stdout: &[u8], event: &str) -> serde_json::Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("a {event} line"))
}

/// [`REGION`] then `copies`.
pub fn regions(copies: &[&str]) -> Vec<String> {
    std::iter::once(REGION)
        .chain(copies.iter().copied())
        .map(String::from)
        .collect()
}

/// The `region:ami-…` pairs of a manifest build's `artifact_id`.
pub fn artifact_amis(build: &serde_json::Value) -> BTreeMap<String, String> {
    build["artifact_id"]
        .as_str()
        .expect("artifact_id")
        .split(',')
        .map(|p| {
            let (r, a) = p.split_once(':').expect("region:ami");
            assert!(a.starts_with("ami-"), "{p}");
            (r.to_string(), a.to_string())
        })
        .collect()
}

/// `amis` are exactly one per region of `regions`, each a row of the
/// build's table in `stdout`.
pub fn assert_amis_listed(amis: &BTreeMap<String, String>, regions: &[String], stdout: &str) {
    let mut want = regions.to_vec();
    want.sort();
    assert_eq!(amis.keys().cloned().collect::<Vec<_>>(), want);
    for (region, ami) in amis {
        assert!(
            stdout.contains(&format!("| {region} | {ami} |")),
            "{stdout}"
        );
    }
}

/// An image's tags, key to value.
pub fn tags_of(img: &Image) -> BTreeMap<String, String> {
    img.tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_string(),
                t.value().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The account ids `ami` in `region` may be launched by.
pub async fn launch_users(ec2: &image_aws::Ec2Clients, region: &str, ami: &str) -> Vec<String> {
    let perms = ec2
        .client(region)
        .describe_image_attribute()
        .image_id(ami)
        .attribute(ImageAttributeName::LaunchPermission)
        .send()
        .await
        .expect("describe_image_attribute");
    perms
        .launch_permissions()
        .iter()
        .filter_map(|p| p.user_id().map(str::to_string))
        .collect()
}

/// The AMIs this account owns in `regions`, by region (regions without any
/// left out).
pub async fn own_images(
    ec2: &image_aws::Ec2Clients,
    regions: &[String],
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for region in regions {
        let imgs = ec2
            .client(region)
            .describe_images()
            .owners("self")
            .send()
            .await
            .expect("describe_images");
        let ids: Vec<String> = imgs
            .images()
            .iter()
            .filter_map(|i| i.image_id().map(str::to_string))
            .collect();
        if !ids.is_empty() {
            out.insert(region.clone(), ids);
        }
    }
    out
}

/// Nothing temporary in `regions`: no instance alive, no key pair, no group
/// but the default ones, nothing tagged temporary.
pub async fn assert_nothing_left(ec2: &image_aws::Ec2Clients, regions: &[String]) {
    let left = image_aws::cleanup::find_leftovers(ec2, regions, None)
        .await
        .expect("find_leftovers");
    assert!(left.is_empty(), "left behind: {left:?}");
    for region in regions {
        let c = ec2.client(region);
        let live = c
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "stopping", "stopped"]
                            .map(String::from)
                            .to_vec(),
                    ))
                    .build(),
            )
            .send()
            .await
            .expect("describe_instances");
        let n: usize = live
            .reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum();
        assert_eq!(n, 0, "{region}: instances still alive");
        let keys = c.describe_key_pairs().send().await.expect("key pairs");
        assert!(
            keys.key_pairs().is_empty(),
            "{region}: key pairs left: {:?}",
            keys.key_pairs()
        );
        let groups = c.describe_security_groups().send().await.expect("groups");
        let extra: Vec<_> = groups
            .security_groups()
            .iter()
            .filter(|g| g.group_name() != Some("default"))
            .collect();
        assert!(extra.is_empty(), "{region}: groups left: {extra:?}");
    }
}

/// The EC2 actions moto recorded, without the target's key lookups.
pub fn build_actions(moto: &image_testbed::Moto) -> Vec<String> {
    let calls = moto.recorded_calls().expect("recording");
    calls
        .iter()
        .filter(|c| !c.to_string().contains(KEYS_ACCESS_KEY))
        .filter_map(action)
        .collect()
}

fn action(call: &serde_json::Value) -> Option<String> {
    let body = call.get("body")?.as_str()?;
    let text = if call.get("body_encoded").and_then(|v| v.as_bool()) == Some(true) {
        String::from_utf8(base64_decode(body)?).ok()?
    } else {
        body.to_string()
    };
    let query = call
        .get("url")
        .and_then(|u| u.as_str())
        .and_then(|u| u.split_once('?'))
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    text.split('&')
        .chain(query.split('&'))
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_string)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = T.iter().position(|t| *t == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

/// Direct EC2 clients on moto for assertions.
pub async fn direct(moto: &image_testbed::Moto) -> image_aws::Ec2Clients {
    image_aws::Ec2Clients::for_endpoint(moto.url(), REGION, &image_aws::ClientOptions::default())
        .await
}
