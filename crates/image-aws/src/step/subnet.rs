//! `subnet_filter` (packer amazon-ebs's): the build's subnet found with
//! DescribeSubnets filters (plus `state: available`, and `vpc-id` when
//! `vpc_id` is set) instead of named by `subnet_id`. As packer, several
//! matches need `most_free` (the subnet with the most free addresses) or
//! `random`; none is an error naming the filters and the region.
//!
//! The chosen subnet is where the on-demand instance launches and whose
//! VPC the temporary security group is made in ([`State::subnet_id`],
//! [`State::vpc_id`]). A spot build gets more than packer's single subnet:
//! one subnet per availability zone among the matches (each picked by the
//! same rule, the chosen one first), which `spot` turns into fleet pools,
//! so a zone without capacity falls back to another zone.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use rand::seq::SliceRandom;

use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::BuildRequest;

/// A subnet the filter matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubnetInfo {
    /// `subnet-…`.
    pub id: String,
    /// Its availability zone.
    pub zone: String,
    /// Its VPC.
    pub vpc: String,
    /// Its free addresses.
    pub free: i32,
}

/// What the filter found: the subnet of the build, and one per zone (the
/// chosen one first) for a spot fleet.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// The build's subnet.
    pub chosen: SubnetInfo,
    /// One subnet per availability zone, `chosen` first.
    pub per_zone: Vec<SubnetInfo>,
}

/// Finds the subnet (runs only with `subnet_filter`).
pub(crate) struct Subnet;

#[async_trait]
impl Stage for Subnet {
    fn name(&self) -> Step {
        Step::new("subnet")
    }

    fn applies(&self, req: &BuildRequest) -> bool {
        req.subnet_filter.is_some()
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:DescribeSubnets");
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        self.run(cx, st).await.map(|_| ())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let p = find(cx).await?;
        let msg = format!(
            "{} in {} (vpc {}, {} free addresses){}",
            p.chosen.id,
            p.chosen.zone,
            p.chosen.vpc,
            p.chosen.free,
            if p.per_zone.len() > 1 {
                format!("; {} zones for a spot fleet", p.per_zone.len())
            } else {
                String::new()
            }
        );
        let _ = st.subnet.set(p);
        Ok(msg)
    }
}

impl State {
    /// The build's subnet: the one `subnet_filter` found, else
    /// `subnet_id`.
    pub fn subnet_id<'a>(&'a self, req: &'a BuildRequest) -> Option<&'a str> {
        match self.subnet.get() {
            Some(p) => Some(p.chosen.id.as_str()),
            None => req.subnet_id.as_deref(),
        }
    }

    /// The VPC of the subnet `subnet_filter` found, if it ran.
    pub fn found_vpc(&self) -> Option<&str> {
        self.subnet.get().map(|p| p.chosen.vpc.as_str())
    }
}

/// DescribeSubnets with the filters, then the pick.
async fn find(cx: &Ctx<'_>) -> Result<Placement, StepError> {
    let req = cx.req;
    let Some(f) = &req.subnet_filter else {
        return Err(StepError::Invalid(vec![
            "internal: subnet step without subnet_filter".to_string(),
        ]));
    };
    let problems = f.problem_messages(req.subnet_id.is_some());
    if !problems.is_empty() {
        return Err(StepError::Invalid(problems));
    }
    let region = req.region.as_str();
    let mut filters: BTreeMap<&str, &str> = f
        .filters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    filters.insert("state", "available");
    if let Some(v) = &req.vpc_id {
        filters.insert("vpc-id", v);
    }
    let described = filters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut found: Vec<SubnetInfo> = Vec::new();
    let mut pages = cx
        .ec2
        .client(region)
        .describe_subnets()
        .set_filters(Some(
            filters
                .iter()
                .map(|(k, v)| Filter::builder().name(*k).values(*v).build())
                .collect(),
        ))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.ctx("DescribeSubnets", region, Some(&described))?;
        found.extend(page.subnets().iter().filter_map(|s| {
            Some(SubnetInfo {
                id: s.subnet_id()?.to_string(),
                zone: s.availability_zone()?.to_string(),
                vpc: s.vpc_id()?.to_string(),
                free: s.available_ip_address_count().unwrap_or(0),
            })
        }));
        // Bounded: a region holds at most a few hundred subnets.
        if found.len() > 1000 {
            break;
        }
    }
    pick(found, f.most_free, f.random).map_err(|e| {
        StepError::Invalid(vec![format!(
            "subnet_filter ({described}) in {region}: {e}"
        )])
    })
}

/// The subnet of the build and one per zone, by packer's rule: one match,
/// or the most free (`most_free`), or one at random (`random`).
fn pick(mut found: Vec<SubnetInfo>, most_free: bool, random: bool) -> Result<Placement, String> {
    found.sort_by(|a, b| a.zone.cmp(&b.zone).then(a.id.cmp(&b.id)));
    found.dedup_by(|a, b| a.id == b.id);
    if found.is_empty() {
        return Err("no available subnet matches".to_string());
    }
    if found.len() > 1 && !most_free && !random {
        return Err(format!(
            "{} subnets match ({}); make the filters match one, or set most_free or random",
            found.len(),
            found
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let choose = |among: &[SubnetInfo]| -> SubnetInfo {
        if random {
            among
                .choose(&mut rand::thread_rng())
                .cloned()
                .unwrap_or_else(|| among[0].clone())
        } else {
            // The most free; the first (by zone, id) of equals.
            let mut best = &among[0];
            for s in among {
                if s.free > best.free {
                    best = s;
                }
            }
            best.clone()
        }
    };
    let chosen = choose(&found);
    let mut by_zone: BTreeMap<&str, Vec<SubnetInfo>> = BTreeMap::new();
    for s in &found {
        by_zone.entry(s.zone.as_str()).or_default().push(s.clone());
    }
    let mut per_zone = vec![chosen.clone()];
    for (zone, subnets) in by_zone {
        if zone != chosen.zone {
            per_zone.push(choose(&subnets));
        }
    }
    Ok(Placement { chosen, per_zone })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, zone: &str, free: i32) -> SubnetInfo {
        SubnetInfo {
            id: id.into(),
            zone: zone.into(),
            vpc: "vpc-1".into(),
            free,
        }
    }

    #[test]
    fn most_free_picks_the_build_subnet_and_one_per_zone() {
        let p = pick(
            vec![
                s("subnet-a1", "z-a", 10),
                s("subnet-b1", "z-b", 50),
                s("subnet-a2", "z-a", 20),
            ],
            true,
            false,
        )
        .unwrap();
        assert_eq!(p.chosen.id, "subnet-b1");
        let ids: Vec<&str> = p.per_zone.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["subnet-b1", "subnet-a2"]);
    }

    #[test]
    fn several_matches_need_a_rule_and_none_is_an_error() {
        let two = vec![s("subnet-a1", "z-a", 1), s("subnet-b1", "z-b", 1)];
        let e = pick(two.clone(), false, false).unwrap_err();
        assert!(e.contains("2 subnets match (subnet-a1, subnet-b1)"), "{e}");
        let p = pick(two, false, true).unwrap();
        assert_eq!(p.per_zone.len(), 2);
        assert!(pick(Vec::new(), true, false).is_err());
        let one = pick(vec![s("subnet-a1", "z-a", 1)], false, false).unwrap();
        assert_eq!(one.chosen.id, "subnet-a1");
    }
}
