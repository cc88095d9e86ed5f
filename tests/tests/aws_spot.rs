//! Spot builds (packer's `spot_price`, `spot_instance_types`, `spot_tags`)
//! on moto behind the fault proxy: the temporary launch template and the
//! instant EC2 Fleet moto received (types, zones or subnet, highest
//! price, tags), the spot instance the build ran on, the template deleted
//! and nothing left; the fallback to the next pool when the fleet answers
//! without capacity (the proxy's [`Fault::NoCapacity`]: moto always has
//! capacity); the error naming every pool tried; and a cancelled build's
//! template found and deleted by the leftovers finder.

mod aws_support;

use std::collections::BTreeMap;

use aws_support::*;
use image_aws::aws_sdk_ec2::types::Filter;
use image_aws::*;

fn spot(price: &str, types: &[&str]) -> SpotOptions {
    SpotOptions {
        spot_price: Some(price.to_string()),
        spot_instance_types: types.iter().map(|t| t.to_string()).collect(),
        spot_tags: BTreeMap::from([("team".to_string(), "nodes".to_string())]),
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

async fn instance(env: &Env, id: &str) -> image_aws::aws_sdk_ec2::types::Instance {
    let o = env
        .direct
        .client(REGION)
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    o.reservations()[0].instances()[0].clone()
}

async fn default_subnet(env: &Env) -> (String, String) {
    let o = env
        .direct
        .client(REGION)
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("default-for-az")
                .values("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut subnets: Vec<_> = o
        .subnets()
        .iter()
        .map(|s| {
            (
                s.subnet_id().unwrap().to_string(),
                s.availability_zone().unwrap().to_string(),
            )
        })
        .collect();
    subnets.sort_by(|a, b| a.1.cmp(&b.1));
    subnets.remove(0)
}

#[tokio::test]
async fn a_spot_build_asks_one_instant_fleet_and_leaves_nothing() {
    let env = Env::start().await;
    let before = env.census().await;
    let mut req = request("spot");
    req.ami_regions = Default::default();
    req.spot = spot("0.05", &["t3.small", "t3a.small"]);
    let actions = required_actions(&req);
    for a in [
        "ec2:CreateLaunchTemplate",
        "ec2:CreateFleet",
        "ec2:DeleteLaunchTemplate",
        "ec2:DescribeAvailabilityZones",
    ] {
        assert!(actions.contains(a), "{a} not in {actions:?}");
    }

    env.moto.start_recording().unwrap();
    let res = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    // The launch template: the source AMI, the temporary and spot tags.
    let lt = recorded_bodies(&env.moto, "CreateLaunchTemplate");
    assert_eq!(lt.len(), 1, "{lt:#?}");
    assert!(
        lt[0].contains(&format!(
            "LaunchTemplateData.ImageId={}",
            res.source.image_id
        )),
        "{}",
        lt[0]
    );
    assert!(lt[0].contains("ResourceType=launch-template"), "{}", lt[0]);
    assert!(values(&lt[0], ".Key").contains(&"team"), "{}", lt[0]);
    assert!(
        values(&lt[0], ".Key").contains(&"image-builder%3Atemporary"),
        "{}",
        lt[0]
    );
    // No RunInstances of ours: the fleet launched the instance.
    assert!(recorded_bodies(&env.moto, "RunInstances").is_empty());

    // One instant fleet for one spot instance over type x zone, each
    // override with the highest price.
    let fleets = recorded_bodies(&env.moto, "CreateFleet");
    assert_eq!(fleets.len(), 1, "{fleets:#?}");
    let f = &fleets[0];
    assert!(f.contains("Type=instant"), "{f}");
    assert!(
        f.contains("TargetCapacitySpecification.TotalTargetCapacity=1"),
        "{f}"
    );
    assert!(
        f.contains("TargetCapacitySpecification.DefaultTargetCapacityType=spot"),
        "{f}"
    );
    let types = values(f, ".InstanceType");
    let zones = values(f, ".AvailabilityZone");
    let prices = values(f, ".MaxPrice");
    let distinct: std::collections::BTreeSet<&str> = zones.iter().copied().collect();
    assert!(distinct.len() >= 2, "{f}");
    assert_eq!(zones.len(), types.len(), "{f}");
    assert_eq!(types.len(), 2 * distinct.len(), "{f}");
    assert_eq!(
        types.iter().filter(|t| **t == "t3.small").count(),
        distinct.len()
    );
    assert_eq!(
        types.iter().filter(|t| **t == "t3a.small").count(),
        distinct.len()
    );
    assert_eq!(prices.len(), types.len(), "{f}");
    assert!(prices.iter().all(|p| *p == "0.05"), "{f}");
    assert!(zones.iter().all(|z| z.starts_with("us-east-1")), "{f}");
    // `spot_tags` (with our bookkeeping tags) on the fleet: in the request
    // moto received and on the fleet moto keeps.
    assert!(f.contains("TagSpecification.1.ResourceType=fleet"), "{f}");
    assert!(values(f, ".Key").contains(&"team"), "{f}");
    assert!(values(f, ".Value").contains(&"nodes"), "{f}");
    let kept = env
        .direct
        .client(REGION)
        .describe_fleets()
        .send()
        .await
        .unwrap();
    let fleet_tags: BTreeMap<&str, &str> = kept
        .fleets()
        .iter()
        .flat_map(|f| f.tags())
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    assert_eq!(fleet_tags.get("team"), Some(&"nodes"), "{fleet_tags:?}");
    assert!(
        fleet_tags.contains_key(cleanup::TAG_BUILD_ID),
        "{fleet_tags:?}"
    );

    // The build ran on a spot instance of the first type.
    let i = instance(&env, &res.instance_id).await;
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t3.small"));
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    assert_eq!(
        i.state().and_then(|s| s.name()).map(|s| s.as_str()),
        Some("terminated")
    );

    // The template went once the fleet answered.
    let deleted = recorded_bodies(&env.moto, "DeleteLaunchTemplate");
    assert_eq!(deleted.len(), 1, "{deleted:#?}");
    env.census().await.minus(&before).assert_no_temporaries();
    assert!(env.leftovers().await.is_empty());
}

#[tokio::test]
async fn a_pool_without_capacity_falls_back_to_the_next_type() {
    let env = Env::start().await;
    let before = env.census().await;
    let (subnet, zone) = default_subnet(&env).await;
    let mut req = request("spot-fallback");
    req.ami_regions = Default::default();
    req.subnet_id = Some(subnet.clone());
    req.spot = spot("auto", &["t3.small", "t3a.small"]);
    assert!(required_actions(&req).contains("ec2:DescribeSubnets"));
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

    assert_eq!(env.proxy.calls("CreateFleet"), 2);
    // The second fleet (the one moto saw) has only the pool left: the
    // next type, in the subnet, without a price (`auto`).
    let fleets = recorded_bodies(&env.moto, "CreateFleet");
    assert_eq!(fleets.len(), 1, "{fleets:#?}");
    assert_eq!(values(&fleets[0], ".InstanceType"), vec!["t3a.small"]);
    assert_eq!(values(&fleets[0], ".SubnetId"), vec![subnet.as_str()]);
    assert!(values(&fleets[0], ".MaxPrice").is_empty(), "{}", fleets[0]);
    let i = instance(&env, &res.instance_id).await;
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t3a.small"));
    assert_eq!(i.subnet_id(), Some(subnet.as_str()));
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
            "no spot instance t3.small in {zone} ({subnet}): InsufficientInstanceCapacity"
        ))),
        "{said:#?}"
    );
    // The AMI stays; nothing temporary does.
    env.census().await.minus(&before).assert_no_temporaries();
    assert!(env.leftovers().await.is_empty());
}

#[tokio::test]
async fn no_capacity_anywhere_names_every_pool_and_the_region() {
    let env = Env::start().await;
    let before = env.census().await;
    let (subnet, zone) = default_subnet(&env).await;
    let mut req = request("spot-none");
    req.ami_regions = Default::default();
    req.subnet_id = Some(subnet.clone());
    req.spot = spot("0.01", &["t3.small", "t3a.small", "m5.large"]);
    env.proxy.fail("CreateFleet", 10, Fault::NoCapacity);

    let err = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_err();
    assert_eq!(err.step, Step::Instance, "{err}");
    assert_eq!(err.region.as_deref(), Some(REGION), "{err}");
    let text = err.to_string();
    for t in ["t3.small", "t3a.small", "m5.large"] {
        assert!(
            text.contains(&format!(
                "{t} in {zone} ({subnet}) (InsufficientInstanceCapacity"
            )),
            "{text}"
        );
    }
    assert!(text.contains("3 pool(s)"), "{text}");
    assert!(text.contains("at most $0.01/h"), "{text}");
    assert!(text.contains("CreateFleet in us-east-1"), "{text}");
    // One fleet per pool: each answer named one.
    assert_eq!(env.proxy.calls("CreateFleet"), 3);
    env.assert_nothing_new(&before).await;
    assert!(env.leftovers().await.is_empty());
}

#[tokio::test]
async fn a_cancelled_builds_launch_template_is_found_and_deleted() {
    for on_error in [OnError::Cleanup, OnError::Abort] {
        let env = Env::start().await;
        let before = env.census().await;
        let mut req = request("spot-cancel");
        req.ami_regions = Default::default();
        req.on_error = on_error;
        req.spot = spot("auto", &[]);
        // The process "dies" before the template is deleted: the build's
        // own delete is refused once.
        env.proxy.fail("DeleteLaunchTemplate", 1, Fault::Denied);
        let cancel = CancelToken::new();
        let events = CancelOn::new(cancel.clone(), message_starts("created launch template"));
        let err = env
            .build_cancelled_by(&req, &events, cancel)
            .await
            .unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        // Cancelled before the fleet: no instance.
        assert_eq!(env.proxy.calls("CreateFleet"), 0);
        match on_error {
            OnError::Cleanup => {
                // Cleanup deleted it on its second try.
                assert!(err.left.is_empty(), "{err}");
                env.assert_nothing_new(&before).await;
            }
            OnError::Abort => {
                let lts: Vec<_> = err
                    .left
                    .iter()
                    .filter(|r| r.kind() == "launch_template")
                    .collect();
                assert_eq!(lts.len(), 1, "{err}");
                let found = env.leftovers().await;
                assert!(
                    found.iter().any(|l| &l.resource == lts[0]
                        && l.build_id.as_deref() == Some(err.build_id.as_str())),
                    "{found:?}"
                );
                env.delete(found).await;
                env.assert_nothing_new(&before).await;
            }
        }
    }
}

#[test]
fn a_bad_price_is_refused() {
    let mut req = request("spot-bad");
    req.spot = spot("cheap", &[]);
    let errs = req.validate().unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("spot_price `cheap` is neither a number nor `auto`")),
        "{errs:?}"
    );
}
