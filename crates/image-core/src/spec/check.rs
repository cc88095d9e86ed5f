//! Checks of single values: AMI and resource ids, regions, durations, CIDRs,
//! account ids, AMI names, timestamps. Pure functions, no context.

use std::net::IpAddr;
use std::time::Duration;

/// `ami-` followed by lowercase hex digits.
pub fn is_ami_id(s: &str) -> bool {
    is_resource_id(s, "ami")
}

/// `<prefix>-` followed by lowercase hex digits (`sg-0abc`, `subnet-12ef`).
pub fn is_resource_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| {
            !hex.is_empty()
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// The regions of the AWS partitions (aws, aws-us-gov, aws-cn) this
/// version knows. A region name that is well formed but not listed is a
/// warning offline; `build` asks the account (DescribeRegions) before it
/// creates anything.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// True for a region in [`KNOWN_REGIONS`].
pub fn is_known_region(s: &str) -> bool {
    KNOWN_REGIONS.contains(&s)
}

/// An AWS region name: `[a-z]{2}(-gov)?-[a-z]+-\d+` (`us-east-1`,
/// `us-gov-west-1`, `ap-southeast-2`).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let (area, rest) = match parts.as_slice() {
        [area, "gov", dir, n] => (area, [dir, n]),
        [area, dir, n] => (area, [dir, n]),
        _ => return false,
    };
    area.len() == 2
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && !rest[0].is_empty()
        && rest[0].bytes().all(|b| b.is_ascii_lowercase())
        && !rest[1].is_empty()
        && rest[1].bytes().all(|b| b.is_ascii_digit())
}

/// A Go-style duration (`90s`, `5m`, `1h30m`, `500ms`) or plain seconds
/// (`300`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(n * unit).ok()?;
    }
    Some(total)
}

/// An IPv4 or IPv6 CIDR block (`10.0.0.0/16`, `::/0`).
pub fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => len <= 32,
        Ok(IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}

/// A 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A character an AMI name may contain: letters, digits, `( ) [ ] . / - ' @ _`
/// and space.
pub fn ami_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "()[]./-'@_ ".contains(c)
}

/// How to fix what [`ami_name_problem`] finds.
pub const AMI_NAME_HELP: &str = "AMI names may contain letters, digits, spaces and ( ) [ ] . / - ' @ _; the `clean_ami_name` filter replaces the rest";

/// Why `s` is not a valid AMI name, if it is not.
pub fn ami_name_problem(s: &str) -> Option<String> {
    let n = s.chars().count();
    if !(3..=128).contains(&n) {
        return Some(format!("must be 3 to 128 characters long, is {n}"));
    }
    let bad: String = s.chars().filter(|c| !ami_name_char(*c)).collect();
    (!bad.is_empty()).then(|| format!("contains characters AMI names may not have: `{bad}`"))
}

/// An RFC 3339 timestamp (`2025-12-31T00:00:00Z`).
pub fn is_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_regions() {
        assert!(is_ami_id("ami-0123abcd"));
        assert!(!is_ami_id("ami-XYZ") && !is_ami_id("ami-") && !is_ami_id("ami0123"));
        assert!(is_resource_id("sg-0f", "sg") && !is_resource_id("sg-0f", "subnet"));
        assert!(
            is_region("us-east-1") && is_region("us-gov-west-1") && is_region("ap-southeast-2")
        );
        assert!(!is_region("us-east") && !is_region("useast-1") && !is_region("US-east-1"));
        assert!(!is_region("usa-east-1"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("m5"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn cidrs_and_accounts() {
        assert!(is_cidr("10.0.0.0/16") && is_cidr("::/0") && is_cidr("0.0.0.0/0"));
        assert!(!is_cidr("10.0.0.0/33") && !is_cidr("10.0.0/8") && !is_cidr("10.0.0.0"));
        assert!(is_account_id("099720109477") && !is_account_id("0997201094"));
    }

    #[test]
    fn ami_names_and_times() {
        assert!(ami_name_problem("capa-ami-ubuntu-24.04-1.31.4-1700000000").is_none());
        assert!(ami_name_problem("ab").is_some());
        assert!(ami_name_problem("a:b+c").unwrap().contains(":+"));
        assert!(is_rfc3339("2025-12-31T00:00:00Z") && !is_rfc3339("2025-12-31"));
    }
}
