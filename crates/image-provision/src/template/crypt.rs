//! ansible's `password_hash` filter: the crypt(3) hashes `/etc/shadow`
//! reads — SHA-512 (`$6$`) and SHA-256 (`$5$`) crypt after Drepper's
//! specification, and MD5 crypt (`$1$`) — with passlib's defaults as
//! ansible-core uses them (656000 / 535000 rounds, 16 salt characters; a
//! random salt when none is given).

use minijinja::value::Kwargs;
use minijinja::Error;
use sha2::Digest;

use super::err;

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b64_24(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(ITOA64[(w & 0x3f) as usize] as char);
        w >>= 6;
    }
}

/// `len` bytes of `block` repeated.
fn repeat_to(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

/// SHA-crypt's digest (Drepper): `D` is Sha256 or Sha512.
fn sha_crypt_raw<D: Digest + Clone>(pw: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    let h = |parts: &[&[u8]]| -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    };
    let b = h(&[pw, salt, pw]);
    let mut a = D::new();
    a.update(pw);
    a.update(salt);
    a.update(repeat_to(&b, pw.len()));
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(&b);
        } else {
            a.update(pw);
        }
        n >>= 1;
    }
    let a = a.finalize().to_vec();
    let mut dp = D::new();
    for _ in 0..pw.len() {
        dp.update(pw);
    }
    let p = repeat_to(&dp.finalize(), pw.len());
    let mut ds = D::new();
    for _ in 0..16 + usize::from(a[0]) {
        ds.update(salt);
    }
    let s = repeat_to(&ds.finalize(), salt.len());
    let mut c = a;
    for i in 0..rounds {
        let mut d = D::new();
        if i % 2 == 1 {
            d.update(&p);
        } else {
            d.update(&c);
        }
        if i % 3 != 0 {
            d.update(&s);
        }
        if i % 7 != 0 {
            d.update(&p);
        }
        if i % 2 == 1 {
            d.update(&c);
        } else {
            d.update(&p);
        }
        c = d.finalize().to_vec();
    }
    c
}

fn sha512_crypt(pw: &[u8], salt: &str, rounds: u32) -> String {
    let c = sha_crypt_raw::<sha2::Sha512>(pw, salt.as_bytes(), rounds);
    let mut out = String::new();
    for i in 0..21 {
        let (x, y, z) = (i, (i + 21) % 63, (i + 42) % 63);
        // Drepper's order: (0,21,42), (22,43,1), (44,2,23), ...
        let t = match i % 3 {
            0 => (x, y, z),
            1 => (y, z, x),
            _ => (z, x, y),
        };
        b64_24(&mut out, c[t.0], c[t.1], c[t.2], 4);
    }
    b64_24(&mut out, 0, 0, c[63], 2);
    out
}

fn sha256_crypt(pw: &[u8], salt: &str, rounds: u32) -> String {
    let c = sha_crypt_raw::<sha2::Sha256>(pw, salt.as_bytes(), rounds);
    let mut out = String::new();
    for i in 0..10 {
        let (x, y, z) = (i, (i + 10) % 30, (i + 20) % 30);
        let t = match i % 3 {
            0 => (x, y, z),
            1 => (z, x, y),
            _ => (y, z, x),
        };
        b64_24(&mut out, c[t.0], c[t.1], c[t.2], 4);
    }
    b64_24(&mut out, 0, c[31], c[30], 3);
    out
}

fn md5_crypt(pw: &[u8], salt: &str) -> String {
    let salt = salt.as_bytes();
    let fin = md5::Md5::new()
        .chain_update(pw)
        .chain_update(salt)
        .chain_update(pw)
        .finalize();
    let mut ctx = md5::Md5::new();
    ctx.update(pw);
    ctx.update(b"$1$");
    ctx.update(salt);
    ctx.update(repeat_to(&fin, pw.len()));
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        n >>= 1;
    }
    let mut f = ctx.finalize().to_vec();
    for i in 0..1000 {
        let mut d = md5::Md5::new();
        if i % 2 == 1 {
            d.update(pw);
        } else {
            d.update(&f);
        }
        if i % 3 != 0 {
            d.update(salt);
        }
        if i % 7 != 0 {
            d.update(pw);
        }
        if i % 2 == 1 {
            d.update(&f);
        } else {
            d.update(pw);
        }
        f = d.finalize().to_vec();
    }
    let mut out = String::new();
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        b64_24(&mut out, f[a], f[b], f[c], 4);
    }
    b64_24(&mut out, 0, 0, f[11], 2);
    out
}

fn random_salt(n: usize) -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| ITOA64[r.gen_range(0..ITOA64.len())] as char)
        .collect()
}

/// `password_hash(hashtype='sha512', salt=None, salt_size=None,
/// rounds=None)`.
pub(super) fn password_hash(
    pw: String,
    hashtype: Option<String>,
    salt: Option<String>,
    kw: Kwargs,
) -> Result<String, Error> {
    let salt = match salt {
        Some(s) => Some(s),
        None => kw.get("salt")?,
    };
    let salt_size: Option<usize> = kw.get("salt_size")?;
    let rounds: Option<u32> = kw.get("rounds")?;
    let _: Option<String> = kw.get("ident")?;
    kw.assert_all_used()?;
    let kind = hashtype.unwrap_or_else(|| "sha512".into());
    let kind = kind.trim_end_matches("_crypt");
    let (max_salt, default_rounds) = match kind {
        "sha512" => (16, 656_000),
        "sha256" => (16, 535_000),
        "md5" => (8, 1000),
        o => {
            return Err(err(format!(
                "password_hash: hash type `{o}` is not supported (sha512, sha256, md5)"
            )))
        }
    };
    let salt = match salt {
        Some(s) => {
            if let Some(bad) = s
                .chars()
                .find(|c| !ITOA64.contains(&(*c as u8)) || !c.is_ascii())
            {
                return Err(err(format!(
                    "password_hash: invalid character `{bad}` in salt"
                )));
            }
            s.chars().take(max_salt).collect()
        }
        None => random_salt(salt_size.unwrap_or(max_salt).min(max_salt)),
    };
    let rounds = rounds.unwrap_or(default_rounds).clamp(1000, 999_999_999);
    let pw = pw.as_bytes();
    Ok(match kind {
        "md5" => format!("$1${salt}${}", md5_crypt(pw, &salt)),
        k => {
            let (id, hash) = if k == "sha512" {
                ("6", sha512_crypt(pw, &salt, rounds))
            } else {
                ("5", sha256_crypt(pw, &salt, rounds))
            };
            if rounds == 5000 {
                format!("${id}${salt}${hash}")
            } else {
                format!("${id}$rounds={rounds}${salt}${hash}")
            }
        }
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn crypt_hashes_match_the_reference_vectors() {
        // Drepper's specification, test vectors 1 (default rounds 5000).
        assert_eq!(
            sha512_crypt(b"Hello world!", "saltstring", 5000),
            "svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        // passlib (ansible-core's password_hash).
        assert_eq!(
            sha256_crypt(b"secret", "saltsalt", 5000),
            "0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA"
        );
        assert_eq!(md5_crypt(b"secret", "saltsalt"), "9xy1btjgzLYfb7hivXtC//");
    }
}
