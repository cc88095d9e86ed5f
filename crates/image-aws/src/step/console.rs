//! The instance's SSH host key, from its console (`ssh.host_key_from_console`).
//!
//! At first boot cloud-init prints the host keys' fingerprints to the serial
//! console between `-----BEGIN SSH HOST KEY FINGERPRINTS-----` and
//! `-----END SSH HOST KEY FINGERPRINTS-----` (lines like
//! `256 SHA256:… root@ip-10-0-0-5 (ED25519)`, often prefixed by syslog
//! fields), and the public keys themselves between `-----BEGIN SSH HOST KEY
//! KEYS-----` and `-----END SSH HOST KEY KEYS-----`. `GetConsoleOutput` is
//! polled until one of the blocks shows up (the console lags the boot by a
//! minute or more on AWS), within the SSH timeout; the connection then only
//! accepts a host key with the chosen fingerprint (ED25519 first, then
//! ECDSA, then RSA), so nobody between us and the instance can pose as it.

use std::time::Duration;

use base64::Engine as _;
use sha2::Digest as _;

use super::Ctx;
use crate::error::{AwsContext, StepError};
use crate::request::BuildRequest;
use crate::wait;

pub(crate) fn actions(req: &BuildRequest, a: &mut super::Actions) {
    if req.ssh.connect && req.ssh.host_key_from_console {
        a.insert("ec2:GetConsoleOutput");
    }
}

/// Key types in order of preference, as cloud-init names them.
const PREFERENCE: [&str; 3] = ["ED25519", "ECDSA", "RSA"];

/// The fingerprints in a console text: `(type, "SHA256:…")`, from the
/// fingerprints block, else computed from the keys block.
pub fn fingerprints(console: &str) -> Vec<(String, String)> {
    let from_block = block(console, "FINGERPRINTS")
        .into_iter()
        .filter_map(|line| {
            let fp = line.split_whitespace().find(|w| w.starts_with("SHA256:"))?;
            let kind = line
                .rsplit_once('(')
                .and_then(|(_, k)| k.strip_suffix(')'))?
                .trim()
                .to_ascii_uppercase();
            Some((kind, fp.to_string()))
        })
        .collect::<Vec<_>>();
    if !from_block.is_empty() {
        return from_block;
    }
    block(console, "KEYS")
        .into_iter()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let alg = words.find(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-"))?;
            let blob = base64::engine::general_purpose::STANDARD
                .decode(words.next()?)
                .ok()?;
            let kind = match alg {
                "ssh-ed25519" => "ED25519",
                "ssh-rsa" => "RSA",
                a if a.starts_with("ecdsa-") => "ECDSA",
                _ => return None,
            };
            let digest = sha2::Sha256::digest(&blob);
            let fp = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest);
            Some((kind.to_string(), format!("SHA256:{fp}")))
        })
        .collect()
}

/// The lines between `-----BEGIN SSH HOST KEY <what>-----` and its END.
fn block<'a>(console: &'a str, what: &str) -> Vec<&'a str> {
    let begin = format!("-----BEGIN SSH HOST KEY {what}-----");
    let end = format!("-----END SSH HOST KEY {what}-----");
    let mut out = Vec::new();
    let mut inside = false;
    for line in console.lines() {
        if line.contains(&begin) {
            inside = true;
            out.clear();
        } else if line.contains(&end) {
            if inside {
                return out;
            }
        } else if inside {
            out.push(line);
        }
    }
    Vec::new()
}

/// The preferred fingerprint to pin, if the console shows any.
pub fn preferred(found: &[(String, String)]) -> Option<String> {
    PREFERENCE
        .iter()
        .find_map(|k| found.iter().find(|(kind, _)| kind == k))
        .or_else(|| found.first())
        .map(|(_, fp)| fp.clone())
}

/// Polls the console of `instance_id` until it shows the host key
/// fingerprints; returns the one to pin. Gives up after `timeout`.
pub(crate) async fn host_key(
    ctx: &Ctx<'_>,
    instance_id: &str,
    timeout: Duration,
) -> Result<String, StepError> {
    let req = ctx.req;
    let region = req.region.as_str();
    let c = ctx.ec2.client(region);
    let settings = crate::request::WaitSettings {
        initial_interval_ms: 2_000,
        max_interval_ms: 10_000,
        ..req.wait.clone()
    };
    let found = wait::until(
        &settings,
        timeout,
        &ctx.cancel,
        region,
        "SSH host key fingerprints on the console",
        instance_id,
        || async {
            let out = c
                .get_console_output()
                .instance_id(instance_id)
                .latest(true)
                .send()
                .await
                .ctx("GetConsoleOutput", region, Some(instance_id))?;
            let text = out
                .output()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Ok(preferred(&fingerprints(&text)))
        },
    )
    .await;
    match found {
        Err(StepError::Timeout { after, .. }) => Err(StepError::NoHostKeyOnConsole {
            region: region.to_string(),
            instance: instance_id.to_string(),
            after,
        }),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "\
[   12.3] cloud-init[600]: Cloud-init v. 24.1 finished
<14>Nov 24 08:00:01 cloud-init: #############################################################
<14>Nov 24 08:00:01 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----
<14>Nov 24 08:00:01 cloud-init: 256 SHA256:ecdsaFingerprintAAAAAAAAAAAAAAAAAAAAAAAAAAA root@ip-10-0-0-5 (ECDSA)
<14>Nov 24 08:00:01 cloud-init: 256 SHA256:ed25519FingerprintBBBBBBBBBBBBBBBBBBBBBBBBBB root@ip-10-0-0-5 (ED25519)
<14>Nov 24 08:00:01 cloud-init: 3072 SHA256:rsaFingerprintCCCCCCCCCCCCCCCCCCCCCCCCCCCCC root@ip-10-0-0-5 (RSA)
<14>Nov 24 08:00:01 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----
<14>Nov 24 08:00:01 cloud-init: #############################################################
";

    #[test]
    fn prefers_ed25519_from_the_fingerprints_block() {
        let f = fingerprints(CONSOLE);
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(
            preferred(&f).as_deref(),
            Some("SHA256:ed25519FingerprintBBBBBBBBBBBBBBBBBBBBBBBBBB")
        );
    }

    #[test]
    fn an_unfinished_block_or_none_gives_nothing() {
        assert!(fingerprints("booting...\n").is_empty());
        let cut = CONSOLE.split("-----END").next().unwrap_or_default();
        assert!(fingerprints(cut).is_empty());
        assert_eq!(preferred(&[]), None);
    }

    #[test]
    fn computes_fingerprints_from_the_keys_block() {
        // ssh-keygen -lf of this key: SHA256 of the decoded blob.
        let blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20abcdefghijklmnopqrstuvwxyz012345";
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        let want = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
        );
        let console = format!(
            "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 {b64} root@host\n-----END SSH HOST KEY KEYS-----\n"
        );
        assert_eq!(preferred(&fingerprints(&console)), Some(want));
    }
}
