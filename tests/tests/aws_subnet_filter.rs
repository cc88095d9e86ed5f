//! `subnet_filter` (packer amazon-ebs's) on moto behind the fault proxy:
//! the DescribeSubnets filters moto received, the subnet with the most
//! free addresses as the instance's (RunInstances' SubnetId, the subnet
//! moto keeps for the instance) and its VPC as the temporary group's; a
//! spot build's EC2 Fleet with one pool per zone of the matches, falling
//! back to the other zone when the first has no capacity (the proxy's
//! `NoCapacity`); several matches without `most_free`/`random` refused
//! before anything is created. Every action recorded is in the derived
//! policy.

mod aws_support;

use std::collections::{BTreeMap, BTreeSet};

use aws_support::*;
use image_aws::aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use image_aws::*;
use image_core::spec::subnet_filter::SubnetFilter;

/// A VPC with two `purpose=builders` subnets (a /24 in us-east-1a, a /26
/// in us-east-1b) and an untagged /24 in us-east-1c: (vpc, big, small).
async fn network(env: &Env) -> (String, String, String) {
    let c = env.direct.client(REGION);
    let vpc = c
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for (cidr, zone, tagged) in [
        ("10.42.0.0/24", "us-east-1a", true),
        ("10.42.1.0/26", "us-east-1b", true),
        ("10.42.2.0/24", "us-east-1c", false),
    ] {
        let mut r = c
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(zone);
        if tagged {
            r = r.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Subnet)
                    .tags(Tag::builder().key("purpose").value("builders").build())
                    .build(),
            );
        }
        let out = r.send().await.unwrap();
        ids.push(out.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    (vpc, ids[0].clone(), ids[1].clone())
}

fn filter(most_free: bool) -> SubnetFilter {
    SubnetFilter {
        filters: BTreeMap::from([("tag:purpose".to_string(), "builders".to_string())]),
        most_free,
        random: false,
    }
}

/// The form values of `body` whose key ends with `suffix`.
fn values<'a>(body: &'a str, suffix: &str) -> Vec<&'a str> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.ends_with(suffix))
        .map(|(_, v)| v)
        .collect()
}

/// The actions moto recorded, as policy actions.
fn recorded_actions(env: &Env) -> BTreeSet<String> {
    all_recorded_bodies(&env.moto)
        .iter()
        .filter_map(|b| {
            b.split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .map(|a| format!("ec2:{a}"))
        })
        .collect()
}

async fn subnet_of(env: &Env, instance: &str) -> (String, String) {
    let o = env
        .direct
        .client(REGION)
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    let i = &o.reservations()[0].instances()[0];
    (
        i.subnet_id().unwrap_or_default().to_string(),
        i.placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_string(),
    )
}

fn assert_in_policy(env: &Env, req: &BuildRequest) {
    let policy = required_actions(req);
    let called = recorded_actions(env);
    let missing: Vec<_> = called
        .iter()
        .filter(|a| !policy.contains(a.as_str()))
        .collect();
    assert!(missing.is_empty(), "called, not in the policy: {missing:?}");
}

#[tokio::test]
async fn most_free_launches_in_the_subnet_with_most_free_addresses() {
    let env = Env::start().await;
    let (vpc, big, _small) = network(&env).await;
    let before = env.census().await;
    let mut req = request("subnet-most-free");
    req.ami_regions = Default::default();
    req.subnet_filter = Some(filter(true));
    assert!(required_actions(&req).contains("ec2:DescribeSubnets"));

    // The dry run finds the subnet with read-only calls, creating nothing.
    env.moto.start_recording().unwrap();
    let plan = dry_run(&env.ec2, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    assert!(!plan.would_create.is_empty());
    assert_eq!(recorded_bodies(&env.moto, "DescribeSubnets").len(), 1);
    assert_in_policy(&env, &req);
    env.assert_nothing_new(&before).await;

    env.moto.start_recording().unwrap();
    let events = CancelOn::never();
    let res = build(
        &env.ec2,
        &req,
        &RecordingHook::default().hook(),
        &events,
        CancelToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    // The filters moto received: ours, and only available subnets.
    let described = recorded_bodies(&env.moto, "DescribeSubnets");
    assert!(
        described.iter().any(|b| {
            let names = values(b, ".Name");
            let vals = values(b, ".Value.1");
            names.contains(&"tag%3Apurpose")
                && names.contains(&"state")
                && vals.contains(&"builders")
                && vals.contains(&"available")
        }),
        "{described:#?}"
    );
    // The /24 (251 free addresses) rather than the /26 (59).
    let run = recorded_bodies(&env.moto, "RunInstances");
    assert_eq!(run.len(), 1, "{run:#?}");
    assert_eq!(
        values(&run[0], "SubnetId"),
        vec![big.as_str()],
        "{}",
        run[0]
    );
    let groups = recorded_bodies(&env.moto, "CreateSecurityGroup");
    assert_eq!(values(&groups[0], "VpcId"), vec![vpc.as_str()]);
    assert_eq!(subnet_of(&env, &res.instance_id).await.0, big);
    let steps: Vec<String> = events
        .steps_finished()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(steps.contains(&"subnet".to_string()), "{steps:?}");
    assert_in_policy(&env, &req);
    env.census().await.minus(&before).assert_no_temporaries();
}

#[tokio::test]
async fn a_spot_fleet_gets_a_pool_per_zone_and_falls_back_to_the_other_zone() {
    let env = Env::start().await;
    let (_vpc, big, small) = network(&env).await;
    let before = env.census().await;
    let mut req = request("subnet-spot");
    req.ami_regions = Default::default();
    req.subnet_filter = Some(filter(true));
    req.spot.spot_price = Some("auto".into());
    let actions = required_actions(&req);
    assert!(!actions.contains("ec2:DescribeAvailabilityZones"));

    // Both zones in one fleet, the chosen (most free) subnet first.
    env.moto.start_recording().unwrap();
    env.build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    let fleets = recorded_bodies(&env.moto, "CreateFleet");
    assert_eq!(fleets.len(), 1, "{fleets:#?}");
    assert_eq!(
        values(&fleets[0], ".SubnetId"),
        vec![big.as_str(), small.as_str()],
        "{}",
        fleets[0]
    );
    assert_in_policy(&env, &req);

    // No capacity in us-east-1a: the next fleet asks us-east-1b only, and
    // the instance runs there.
    req.ami_name = "subnet-spot-ami-2".into();
    env.proxy.fail("CreateFleet", 1, Fault::NoCapacity);
    env.moto.start_recording().unwrap();
    let events = CancelOn::never();
    let res = build(
        &env.ec2,
        &req,
        &RecordingHook::default().hook(),
        &events,
        CancelToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    let fleets = recorded_bodies(&env.moto, "CreateFleet");
    assert_eq!(fleets.len(), 1, "{fleets:#?}");
    assert_eq!(values(&fleets[0], ".SubnetId"), vec![small.as_str()]);
    assert_eq!(
        subnet_of(&env, &res.instance_id).await,
        (small.clone(), "us-east-1b".to_string())
    );
    let said: Vec<String> = events
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            image_core::events::Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        said.iter().any(|m| m.starts_with(&format!(
            "no spot instance t3.large in us-east-1a ({big}): InsufficientInstanceCapacity"
        ))),
        "{said:#?}"
    );
    env.census().await.minus(&before).assert_no_temporaries();
    assert!(env.leftovers().await.is_empty());
}

#[tokio::test]
async fn several_matches_without_a_rule_are_refused_before_anything_is_made() {
    let env = Env::start().await;
    let (_vpc, big, small) = network(&env).await;
    let before = env.census().await;
    let mut req = request("subnet-ambiguous");
    req.ami_regions = Default::default();
    req.subnet_filter = Some(filter(false));
    let err = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("2 subnets match"), "{text}");
    assert!(text.contains(&big) && text.contains(&small), "{text}");
    assert!(text.contains("set most_free or random"), "{text}");
    assert!(text.contains(REGION), "{text}");

    // A filter nothing matches.
    let mut none = req.clone();
    none.subnet_filter = Some(SubnetFilter {
        filters: BTreeMap::from([("tag:purpose".to_string(), "nobody".to_string())]),
        most_free: true,
        random: false,
    });
    let err = env
        .build(&none, &RecordingHook::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no available subnet matches"),
        "{err}"
    );
    env.assert_nothing_new(&before).await;
}
