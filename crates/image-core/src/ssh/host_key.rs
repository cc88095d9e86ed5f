//! Host key checks: which algorithm families to ask for when the pinned
//! fingerprint names another of the host's keys, and how fingerprints
//! compare.

use ssh2::HostKeyType;

/// Host key algorithm families, for finding the key a pin names.
pub(super) const HOSTKEY_ALGS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512,rsa-sha2-256",
];

/// The algorithm family of a host key type.
pub(super) fn alg_of(t: HostKeyType) -> Option<&'static str> {
    Some(match t {
        HostKeyType::Ed25519 => HOSTKEY_ALGS[0],
        HostKeyType::Ecdsa256 => HOSTKEY_ALGS[1],
        HostKeyType::Ecdsa384 => HOSTKEY_ALGS[2],
        HostKeyType::Ecdsa521 => HOSTKEY_ALGS[3],
        HostKeyType::Rsa => HOSTKEY_ALGS[4],
        _ => return None,
    })
}

/// Compares fingerprints, tolerating base64 padding and a missing prefix.
pub(super) fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim();
        let s = s.strip_prefix("SHA256:").unwrap_or(s);
        s.trim_end_matches('=').to_string()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_without_padding() {
        assert!(same_fingerprint("SHA256:abc", "SHA256:abc="));
        assert!(same_fingerprint("abc", "SHA256:abc"));
        assert!(!same_fingerprint("SHA256:abc", "SHA256:abd"));
    }
}
