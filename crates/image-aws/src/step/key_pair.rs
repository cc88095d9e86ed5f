//! The SSH key pair: an ed25519 key generated in memory (the private half
//! never leaves the process and is never logged), its public half imported
//! as a temporary EC2 key pair; or an existing key pair with its private key
//! read from a file.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::ResourceType;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rand::RngCore;
use tokio::time::Instant;

use super::{Actions, Ctx, Stage, State, Undo};
use crate::error::{AwsContext, Step, StepError};
use crate::request::{BuildRequest, KeyPairSpec};
use crate::resource::Resource;
use crate::wait;

/// The key pair step.
pub(crate) struct KeyPair;

#[async_trait]
impl Stage for KeyPair {
    fn name(&self) -> Step {
        Step::KeyPair
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        if req.key_pair == KeyPairSpec::Generate {
            a.insert("ec2:ImportKeyPair");
            a.insert("ec2:DeleteKeyPair");
            a.insert("ec2:CreateTags");
        }
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        if cx.req.key_pair == KeyPairSpec::Generate {
            st.would_create(format!(
                "key pair {} in {} (temporary)",
                cx.temp_name(),
                cx.req.region
            ));
        }
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let (key, msg) = run(cx).await?;
        let _ = st.key.set(key);
        Ok(msg)
    }

    fn creates(&self, r: &Resource) -> bool {
        matches!(r, Resource::KeyPair { .. })
    }

    async fn undo(&self, u: &Undo<'_>, r: &Resource) -> Result<(), StepError> {
        let (region, name) = (r.region(), r.id());
        let c = u.ec2.client(region);
        let deadline = Instant::now() + u.settings.cleanup_timeout();
        // By name: unique per region, and understood by every EC2 stand-in.
        let res = wait::retry_transient(u.settings, deadline, || async {
            c.delete_key_pair()
                .key_name(name)
                .send()
                .await
                .ctx("DeleteKeyPair", region, Some(name))
        })
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.is("InvalidKeyPair") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A private key in OpenSSH (or PEM) text. `Debug` does not show it.
#[derive(Clone)]
pub struct PrivateKey(String);

impl PrivateKey {
    /// Wraps key text.
    pub fn new(text: impl Into<String>) -> Self {
        PrivateKey(text.into())
    }

    /// The key text (hand it to the SSH client only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// The key pair the instance is launched with.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    /// The EC2 key name.
    pub key_name: String,
    /// The private key.
    pub private_key: PrivateKey,
    /// The OpenSSH public key line (generated keys only).
    pub public_key: Option<String>,
}

/// Generates an ed25519 key: (OpenSSH private key text, public key line).
pub fn generate_ed25519(comment: &str) -> (PrivateKey, String) {
    let sk = SigningKey::generate(&mut rand::rngs::OsRng);
    let pk = sk.verifying_key().to_bytes();
    let seed = sk.to_bytes();

    let mut pub_blob = Vec::new();
    put_str(&mut pub_blob, b"ssh-ed25519");
    put_str(&mut pub_blob, &pk);

    // The private section, unencrypted ("none" cipher, block size 8).
    let check = rand::rngs::OsRng.next_u32().to_be_bytes();
    let mut private = Vec::new();
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_str(&mut private, b"ssh-ed25519");
    put_str(&mut private, &pk);
    let mut keypair = [0u8; 64];
    keypair[..32].copy_from_slice(&seed);
    keypair[32..].copy_from_slice(&pk);
    put_str(&mut private, &keypair);
    put_str(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut blob = Vec::new();
    blob.extend_from_slice(b"openssh-key-v1\0");
    put_str(&mut blob, b"none");
    put_str(&mut blob, b"none");
    put_str(&mut blob, b"");
    blob.extend_from_slice(&1u32.to_be_bytes());
    put_str(&mut blob, &pub_blob);
    put_str(&mut blob, &private);

    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(&blob);
    let mut text = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(70) {
        text.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        text.push('\n');
    }
    text.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    let public = format!("ssh-ed25519 {} {comment}", b64.encode(&pub_blob));
    (PrivateKey(text), public)
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

/// Creates (or reads) the key pair.
async fn run(ctx: &Ctx<'_>) -> Result<(KeyMaterial, String), StepError> {
    let req = ctx.req;
    match &req.key_pair {
        KeyPairSpec::Existing {
            name,
            private_key_file,
        } => {
            let text =
                std::fs::read_to_string(private_key_file).map_err(|e| StepError::KeyFile {
                    path: private_key_file.clone(),
                    detail: e.to_string(),
                })?;
            if !text.contains("PRIVATE KEY-----") {
                return Err(StepError::KeyFile {
                    path: private_key_file.clone(),
                    detail: "not a PEM or OpenSSH private key".to_string(),
                });
            }
            Ok((
                KeyMaterial {
                    key_name: name.clone(),
                    private_key: PrivateKey(text),
                    public_key: None,
                },
                format!("using key pair {name}"),
            ))
        }
        KeyPairSpec::Generate => {
            let name = ctx.temp_name();
            let (private_key, public) = generate_ed25519(&name);
            let out = ctx
                .ec2
                .client(&req.region)
                .import_key_pair()
                .key_name(&name)
                .public_key_material(Blob::new(public.as_bytes().to_vec()))
                .tag_specifications(ctx.temp_tag_spec(ResourceType::KeyPair, &Default::default()))
                .send()
                .await
                .ctx("ImportKeyPair", &req.region, Some(&name))?;
            ctx.stack.push(Resource::KeyPair {
                region: req.region.clone(),
                name: name.clone(),
                id: out.key_pair_id().map(str::to_string),
            });
            ctx.message(format!("created key pair {name}"));
            Ok((
                KeyMaterial {
                    key_name: name.clone(),
                    private_key,
                    public_key: Some(public),
                },
                format!("created key pair {name}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_readable_by_ssh_keygen() {
        let (k, public) = generate_ed25519("test@example");
        assert!(!format!("{k:?}").contains("OPENSSH"));
        let Ok(out) = std::process::Command::new("ssh-keygen").arg("-?").output() else {
            return; // no ssh-keygen here
        };
        let _ = out;
        let dir = std::env::temp_dir().join(format!("image-aws-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            f.write_all(k.expose().as_bytes()).unwrap();
        }
        let out = std::process::Command::new("ssh-keygen")
            .args(["-y", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        let mut parts = public.split(' ');
        let mut d = derived.split(' ');
        assert_eq!(parts.next(), d.next());
        assert_eq!(parts.next(), d.next());
    }
}
