//! The minimal IAM policy for a set of builds: the actions their stages
//! declare ([`crate::required_actions`]: EC2, plus KMS when a customer key
//! encrypts volumes or copies, and `iam:PassRole` when the instance gets an
//! instance profile), grouped by service. Nothing here lists an action.
//!
//! ```
//! # use image_aws::*;
//! let req = BuildRequest::new("b", "us-east-1", SourceAmi::Id("ami-1".into()), "t3.micro", "n-1");
//! let doc = policy::document(&[req]);
//! assert_eq!(doc["Version"], "2012-10-17");
//! ```

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::request::BuildRequest;

pub use crate::step::KMS_ACTIONS;

/// Every action the builds need, by service prefix (`ec2:`, `kms:`, `iam:`).
pub fn actions(reqs: &[BuildRequest]) -> BTreeSet<&'static str> {
    reqs.iter().flat_map(crate::required_actions).collect()
}

/// The policy document: one statement per service, each on `*` (EC2
/// resource ids are not known before the build); `iam:PassRole` only to
/// EC2; the KMS statement names the keys when they are ARNs.
pub fn document(reqs: &[BuildRequest]) -> Value {
    let all = actions(reqs);
    let of = |prefix: &str| -> Vec<&str> {
        all.iter()
            .copied()
            .filter(|a| a.starts_with(prefix))
            .collect()
    };
    let mut statements = vec![json!({
        "Sid": "ImageCliEc2",
        "Effect": "Allow",
        "Action": of("ec2:"),
        "Resource": "*",
    })];
    let kms = of("kms:");
    if !kms.is_empty() {
        let keys: BTreeSet<&str> = reqs
            .iter()
            .flat_map(|r| r.kms_key_id.iter().chain(r.region_kms_key_ids.values()))
            .map(String::as_str)
            .collect();
        // Aliases and bare key ids cannot name a resource in a policy.
        let resource = if keys.iter().all(|k| k.starts_with("arn:")) {
            json!(keys)
        } else {
            json!("*")
        };
        statements.push(json!({
            "Sid": "ImageCliKms",
            "Effect": "Allow",
            "Action": kms,
            "Resource": resource,
        }));
    }
    let iam = of("iam:");
    if !iam.is_empty() {
        statements.push(json!({
            "Sid": "ImageCliPassRole",
            "Effect": "Allow",
            "Action": iam,
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::SourceAmi;

    fn req() -> BuildRequest {
        BuildRequest::new(
            "b",
            "us-east-1",
            SourceAmi::Id("ami-1".into()),
            "t3.micro",
            "n-1",
        )
    }

    #[test]
    fn adds_kms_passrole_and_regions_only_when_needed() {
        let plain = actions(&[req()]);
        assert!(plain.contains("ec2:RunInstances"));
        assert!(!plain
            .iter()
            .any(|a| a.starts_with("kms:") || a.starts_with("iam:")));
        // The run's regions are checked before anything is created.
        assert!(plain.contains("ec2:DescribeRegions"));

        let mut r = req();
        r.kms_key_id = Some("arn:aws:kms:us-east-1:1:key/k".into());
        r.iam_instance_profile = Some("builder".into());
        r.ami_regions = crate::AmiRegions::All;
        let a = actions(&[r.clone()]);
        for k in KMS_ACTIONS {
            assert!(a.contains(k), "{k}");
        }
        assert!(a.contains("iam:PassRole"));
        assert!(a.contains("ec2:DescribeRegions"));
        assert!(a.contains("ec2:CopyImage"));
        let doc = document(&[r]);
        assert_eq!(doc["Statement"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            doc["Statement"][1]["Resource"][0],
            "arn:aws:kms:us-east-1:1:key/k"
        );
    }
}
