//! A small DNS wire-format client for the `dns` resource's `server`
//! attribute: [`query`] builds one question (RFC 1035, recursion desired),
//! [`answers`] reads the answer records of a reply and prints them as goss
//! does (miekg/dns presentation): `A`/`AAAA` addresses, `CNAME`/`NS`/`PTR`
//! names with their final dot, `MX` `pref host.`, `SRV` `prio weight port
//! target.`, `TXT` strings one by one, `CAA` `flag tag value`, `SSHFP`
//! `algo type HEX`. The target sends the bytes over bash's `/dev/udp`, so
//! nothing (no `dig`) is needed there. Parsing is bounded: compression
//! pointers are followed at most 64 times per name.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record types goss queries with `server`.
pub const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("SSHFP", 44),
    ("CAA", 257),
];

/// The numeric type of a record type name.
pub fn type_code(name: &str) -> Option<u16> {
    TYPES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// The name a `PTR` query asks for: `4.3.2.1.in-addr.arpa.` or the nibbles
/// of an IPv6 address under `ip6.arpa.` (miekg/dns's `ReverseAddr`).
pub fn reverse_name(addr: &str) -> Result<String, String> {
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        let o = v4.octets();
        return Ok(format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]));
    }
    if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        let mut s = String::new();
        for b in v6.octets().iter().rev() {
            s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
        }
        s.push_str("ip6.arpa.");
        return Ok(s);
    }
    Err(format!("PTR needs an IP address, got `{addr}`"))
}

/// A query for `name` (a trailing dot is optional) of type `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() && name.trim_end_matches('.').is_empty() {
            break;
        }
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad DNS name `{name}`"));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    if m.len() > 12 + 255 + 1 {
        return Err(format!("DNS name `{name}` is too long"));
    }
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    Ok(m)
}

fn u16_at(m: &[u8], i: usize) -> Result<u16, String> {
    m.get(i..i + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated DNS reply".to_string())
}

/// Reads a (possibly compressed) name at `i`: the name with its final dot
/// and the index after it.
fn name_at(m: &[u8], mut i: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *m.get(i).ok_or("truncated DNS name")? as usize;
        if len == 0 {
            if out.is_empty() {
                out.push('.');
            }
            return Ok((out, end.unwrap_or(i + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let ptr = (u16_at(m, i)? & 0x3fff) as usize;
            end.get_or_insert(i + 2);
            i = ptr;
            continue;
        }
        let label = m.get(i + 1..i + 1 + len).ok_or("truncated DNS label")?;
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        i += 1 + len;
    }
    Err("DNS name compression loops".into())
}

/// The answers of type `qtype` in a reply, as goss prints them. `Ok(None)`
/// means the name does not exist (NXDOMAIN); other error codes are errors.
pub fn answers(m: &[u8], qtype: u16) -> Result<Vec<String>, String> {
    if m.len() < 12 {
        return Err("truncated DNS reply".into());
    }
    let rcode = m[3] & 0x0f;
    match rcode {
        0 | 3 => {}
        2 => return Err("DNS server failure (SERVFAIL)".into()),
        5 => return Err("DNS query refused (REFUSED)".into()),
        c => return Err(format!("DNS error code {c}")),
    }
    let qd = u16_at(m, 4)? as usize;
    let an = u16_at(m, 6)? as usize;
    let mut i = 12;
    for _ in 0..qd {
        i = name_at(m, i)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let (_, j) = name_at(m, i)?;
        let rtype = u16_at(m, j)?;
        let rdlen = u16_at(m, j + 8)? as usize;
        let start = j + 10;
        let rdata = m.get(start..start + rdlen).ok_or("truncated DNS record")?;
        i = start + rdlen;
        if rtype != qtype {
            continue;
        }
        let text = match rtype {
            1 if rdlen == 4 => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
            28 if rdlen == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                Ipv6Addr::from(b).to_string()
            }
            2 | 5 | 12 => name_at(m, start)?.0,
            15 => format!("{} {}", u16_at(m, start)?, name_at(m, start + 2)?.0),
            33 => format!(
                "{} {} {} {}",
                u16_at(m, start)?,
                u16_at(m, start + 2)?,
                u16_at(m, start + 4)?,
                name_at(m, start + 6)?.0
            ),
            16 => {
                let mut k = 0;
                while k < rdata.len() {
                    let l = rdata[k] as usize;
                    let s = rdata.get(k + 1..k + 1 + l).ok_or("truncated TXT record")?;
                    out.push(String::from_utf8_lossy(s).into_owned());
                    k += 1 + l;
                }
                continue;
            }
            257 => {
                let tl = *rdata.get(1).ok_or("truncated CAA record")? as usize;
                let tag = rdata.get(2..2 + tl).ok_or("truncated CAA record")?;
                format!(
                    "{} {} {}",
                    rdata[0],
                    String::from_utf8_lossy(tag),
                    String::from_utf8_lossy(&rdata[2 + tl..])
                )
            }
            44 if rdlen >= 2 => {
                let hex: String = rdata[2..].iter().map(|b| format!("{b:02X}")).collect();
                format!("{} {} {hex}", rdata[0], rdata[1])
            }
            _ => continue,
        };
        out.push(text);
    }
    Ok(out)
}

/// Parses `od -An -v -tx1` output into bytes.
pub fn from_od(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

/// The bytes as a `printf` format (octal escapes), for POSIX `printf`.
pub fn printf_escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reply to `q` with `records` (type, rdata) as answers, names
    /// compressed to the question.
    pub fn reply(q: &[u8], rcode: u8, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (t, rdata) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    /// A name in wire form.
    pub fn wire(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.trim_end_matches('.').split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    #[test]
    fn every_record_type_prints_as_goss() {
        let q = query(7, "example.test", 15).unwrap();
        assert_eq!(&q[12..26], b"\x07example\x04test\x00");
        let mut mx = vec![0, 10];
        mx.extend(wire("mail.example.test"));
        let r = reply(&q, 0, &[(15, mx), (1, vec![1, 2, 3, 4])]);
        assert_eq!(answers(&r, 15).unwrap(), vec!["10 mail.example.test."]);
        assert_eq!(answers(&r, 1).unwrap(), vec!["1.2.3.4"]);
        let mut srv = vec![0, 0, 0, 5, 1, 187];
        srv.extend(wire("a.example.test"));
        assert_eq!(
            answers(&reply(&q, 0, &[(33, srv)]), 33).unwrap(),
            vec!["0 5 443 a.example.test."]
        );
        let txt = b"\x05hello\x03two".to_vec();
        assert_eq!(
            answers(&reply(&q, 0, &[(16, txt)]), 16).unwrap(),
            vec!["hello", "two"]
        );
        let caa = b"\x00\x05issueletsencrypt.org".to_vec();
        assert_eq!(
            answers(&reply(&q, 0, &[(257, caa)]), 257).unwrap(),
            vec!["0 issue letsencrypt.org"]
        );
        let sshfp = vec![1, 2, 0xab, 0xcd];
        assert_eq!(
            answers(&reply(&q, 0, &[(44, sshfp)]), 44).unwrap(),
            vec!["1 2 ABCD"]
        );
        let mut aaaa = vec![0u8; 16];
        aaaa[15] = 1;
        assert_eq!(
            answers(&reply(&q, 0, &[(28, aaaa)]), 28).unwrap(),
            vec!["::1"]
        );
        // A compressed CNAME target pointing at the question name.
        assert_eq!(
            answers(&reply(&q, 0, &[(5, vec![0xc0, 12])]), 5).unwrap(),
            vec!["example.test."]
        );
        assert_eq!(
            answers(&reply(&q, 3, &[]), 1).unwrap(),
            Vec::<String>::new()
        );
        assert!(answers(&reply(&q, 2, &[]), 1).is_err());
        // A pointer loop is refused, not followed forever.
        let mut looped = reply(&q, 0, &[(5, vec![0xc0, 0])]);
        let n = looped.len();
        looped[n - 2] = 0xc0;
        looped[n - 1] = (n - 2) as u8;
        assert!(answers(&looped, 5).is_err());
        assert!(answers(&[1, 2], 1).is_err());
    }

    #[test]
    fn reverse_names_and_encodings() {
        assert_eq!(reverse_name("8.8.4.4").unwrap(), "4.4.8.8.in-addr.arpa.");
        assert!(reverse_name("::1").unwrap().starts_with("1.0.0.0."));
        assert!(reverse_name("host").is_err());
        assert_eq!(from_od(" 0a ff\n 01\n"), vec![10, 255, 1]);
        assert_eq!(printf_escaped(&[0, 10, 255]), "\\000\\012\\377");
        assert!(query(1, "a..b", 1).is_err());
    }
}
