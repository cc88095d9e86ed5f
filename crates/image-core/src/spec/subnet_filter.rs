//! [`SubnetFilter`]: packer amazon-ebs's `subnet_filter`, the subnet found
//! by DescribeSubnets filters instead of named by `subnet_id`. The type
//! and its rules live here, for the definition reader (`build.rs`, with
//! file:line:col) and image-aws's `subnet` step (requests built in code).
//!
//! As packer: the filters (plus `state: available`, and `vpc-id` when
//! `vpc_id` is set) must match one subnet, or several with `most_free`
//! (the one with the most free addresses) or `random`. A spot build goes
//! further than packer, whose fleet stays in the one subnet: its EC2 Fleet
//! gets one subnet per availability zone among the matches (picked by the
//! same rule), so it may fall back to another zone when one has no
//! capacity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How to find the build's subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubnetFilter {
    /// DescribeSubnets filters: name → value (`tag:Name: builders`,
    /// `availability-zone: us-east-1a`, ...).
    pub filters: BTreeMap<String, String>,
    /// Of several matches, the subnet with the most free addresses.
    pub most_free: bool,
    /// Of several matches, one at random.
    pub random: bool,
}

impl SubnetFilter {
    /// Every problem with the filter, given whether `subnet_id` is set
    /// too, each as (definition key, dotted under `subnet_filter`;
    /// message; help).
    pub fn problems(&self, subnet_id_set: bool) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        if subnet_id_set {
            out.push((
                "subnet_filter",
                "subnet_id and subnet_filter are both set".to_string(),
                "keep one: subnet_id names the subnet, subnet_filter finds it",
            ));
        }
        if self.filters.is_empty() {
            out.push((
                "subnet_filter.filters",
                "subnet_filter has no filters".to_string(),
                "give DescribeSubnets filters, like `filters: {\"tag:Name\": builders}`",
            ));
        }
        if self.most_free && self.random {
            out.push((
                "subnet_filter.random",
                "subnet_filter sets both most_free and random".to_string(),
                "keep one way to pick among several subnets",
            ));
        }
        out
    }

    /// The problems as plain messages (for a request built in code).
    pub fn problem_messages(&self, subnet_id_set: bool) -> Vec<String> {
        self.problems(subnet_id_set)
            .into_iter()
            .map(|(_, m, h)| format!("{m}: {h}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let mut f = SubnetFilter::default();
        assert_eq!(f.problems(false).len(), 1);
        f.filters.insert("tag:Name".into(), "b".into());
        assert!(f.problems(false).is_empty());
        assert_eq!(
            f.problems(true)[0].1,
            "subnet_id and subnet_filter are both set"
        );
        f.most_free = true;
        f.random = true;
        assert_eq!(f.problems(false)[0].0, "subnet_filter.random");
    }
}
