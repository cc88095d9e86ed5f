//! Launching the build instance as a spot instance (packer `amazon-ebs`'s
//! `spot_price`, `spot_instance_types`, `spot_tags`), instead of
//! `instance`'s RunInstances when `spot_price` is set.
//!
//! As packer does, through a temporary launch template (what RunInstances
//! would get: AMI, key, groups, root volume, metadata options, profile,
//! user data, instance and volume tags) and an EC2 Fleet of type
//! `instant` for one spot instance, whose overrides are the pools: every
//! type of `spot_instance_types` (else `instance_type`) in the subnet
//! (`subnet_id`), in one subnet per zone of those `subnet_filter` matches
//! (so a zone without capacity falls back to another; packer stays in
//! one subnet) or in every availability zone of the region, each with
//! the highest price (`spot_price`; `auto`: none, the on-demand price).
//! EC2 picks the pool (`price-capacity-optimized`: the cheapest with
//! capacity). When the fleet launches nothing, the pools its errors name
//! (InsufficientInstanceCapacity, price too low, type not offered in a
//! zone, ...) are dropped and the fleet asked again with the others, until
//! one launches or none is left; the error then names every pool tried,
//! with EC2's reason, and the region.
//!
//! The launch template is tagged temporary and pushed on the cleanup stack
//! at once (a killed build's template is found by
//! [`crate::cleanup::find_leftovers`]); it is deleted as soon as the fleet
//! has answered. The instance is the `instance` step's kind of resource
//! (terminated by its undo). `spot_tags` go on the launch template and the
//! fleet.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    CreateFleetError, DefaultTargetCapacityType, Filter, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest, FleetType,
    InstanceType, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateInstanceMetadataTagsState,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use base64::Engine as _;
use tokio::time::Instant;

use super::instance::{block_device, launch_actions, run_tags, wait_running};
use super::key_pair::KeyMaterial;
use super::source_ami::SourceImage;
use super::{Actions, Ctx, Stage, State, Undo};
use crate::error::{AwsContext, AwsError, Step, StepError};
use crate::request::{BuildRequest, WaitSettings};
use crate::resource::Resource;
use crate::wait;

/// At most this many pools (type × subnet or zone) in one fleet request.
const MAX_POOLS_PER_FLEET: usize = 50;

/// The spot launch step (named `instance`, as the launch it replaces).
pub(crate) struct SpotInstance;

#[async_trait]
impl Stage for SpotInstance {
    fn name(&self) -> Step {
        Step::Instance
    }

    fn applies(&self, req: &BuildRequest) -> bool {
        req.spot.is_spot()
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        a.extend([
            "ec2:CreateLaunchTemplate",
            "ec2:DeleteLaunchTemplate",
            "ec2:CreateFleet",
            // The fleet launches with the caller's RunInstances and
            // CreateTags rights.
            "ec2:RunInstances",
            "ec2:CreateTags",
            "ec2:DescribeInstances",
            "ec2:TerminateInstances",
            "ec2:DescribeInstanceTypes",
        ]);
        if req.subnet_id.is_some() {
            a.insert("ec2:DescribeSubnets");
        } else if req.subnet_filter.is_none() {
            // (With a filter, the `subnet` step found the zones.)
            a.insert("ec2:DescribeAvailabilityZones");
        }
        launch_actions(req, a);
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        let req = cx.req;
        let region = req.region.as_str();
        let types = req.spot.types(&req.instance_type);
        let c = cx.ec2.client(region);
        let out = c
            .describe_instance_types()
            .set_instance_types(Some(types.iter().map(|t| InstanceType::from(*t)).collect()))
            .send()
            .await
            .ctx("DescribeInstanceTypes", region, Some(&types.join(",")))?;
        let offered: Vec<&str> = out
            .instance_types()
            .iter()
            .filter_map(|t| t.instance_type().map(InstanceType::as_str))
            .collect();
        let missing: Vec<&str> = types
            .iter()
            .copied()
            .filter(|t| !offered.contains(t))
            .collect();
        if !missing.is_empty() {
            return Err(StepError::Invalid(vec![format!(
                "spot instance type(s) {} not offered in {region}",
                missing.join(", ")
            )]));
        }
        let pools = pools(cx, st).await?;
        let source = State::need(&st.source, "source AMI")?;
        st.would_create(format!(
            "launch template {} in {region} (temporary, deleted once the fleet answers)",
            cx.temp_name()
        ));
        st.would_create(format!(
            "spot instance from {} in {region} (temporary): EC2 Fleet over {} pool(s) ({}), {}",
            source.image_id,
            pools.len(),
            pools
                .iter()
                .map(Pool::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            price_text(req)
        ));
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let source = State::need(&st.source, "source AMI")?;
        let key = State::need(&st.key, "key pair")?;
        let groups = State::need(&st.groups, "security groups")?;
        let pools = pools(cx, st).await?;
        let template = create_template(cx, source, key, groups).await?;
        let launched = launch(cx, &template, pools).await;
        // The template has served; a failed delete stays on the stack.
        let region = cx.req.region.as_str();
        let u = Undo {
            ec2: cx.ec2,
            settings: &cx.req.wait,
            patient: true,
        };
        match self.undo(&u, &template).await {
            Ok(()) => cx.stack.remove(&template),
            Err(e) => cx.message(format!(
                "could not delete launch template {} in {region} yet (cleanup retries): {e}",
                template.id()
            )),
        }
        let (id, pool) = launched?;
        let info = wait_running(cx, &id).await?;
        let _ = st.instance.set(info);
        Ok(format!("{id} running (spot, {pool})"))
    }

    fn creates(&self, r: &Resource) -> bool {
        matches!(r, Resource::LaunchTemplate { .. })
    }

    async fn undo(&self, u: &Undo<'_>, r: &Resource) -> Result<(), StepError> {
        delete_template(u.ec2, r.region(), r.id(), u.settings).await
    }
}

/// Deletes launch template `id`, retrying throttling and 5xx answers for
/// `settings.cleanup_timeout_secs`; gone already is fine.
async fn delete_template(
    ec2: &crate::Ec2Clients,
    region: &str,
    id: &str,
    settings: &WaitSettings,
) -> Result<(), StepError> {
    let c = ec2.client(region);
    let deadline = Instant::now() + settings.cleanup_timeout();
    let res = wait::retry_transient(settings, deadline, || async {
        c.delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .ctx("DeleteLaunchTemplate", region, Some(id))
    })
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.is("InvalidLaunchTemplateId") || e.is("InvalidLaunchTemplateName") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One place the fleet may launch in: a type in a subnet or a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pool {
    instance_type: String,
    subnet: Option<String>,
    zone: Option<String>,
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.instance_type)?;
        match (&self.subnet, &self.zone) {
            (Some(s), Some(z)) => write!(f, " in {z} ({s})"),
            (Some(s), None) => write!(f, " in {s}"),
            (None, Some(z)) => write!(f, " in {z}"),
            (None, None) => Ok(()),
        }
    }
}

impl Pool {
    /// True when a fleet error's override (`None` fields: any) names this
    /// pool.
    fn named_by(&self, e: &CreateFleetError) -> bool {
        let Some(o) = e
            .launch_template_and_overrides()
            .and_then(|l| l.overrides())
        else {
            return true;
        };
        let same = |given: Option<&str>, ours: &Option<String>| {
            given.is_none_or(|g| ours.as_deref().is_none_or(|o| o == g))
        };
        o.instance_type()
            .is_none_or(|t| t.as_str() == self.instance_type)
            && same(o.subnet_id(), &self.subnet)
            && same(o.availability_zone(), &self.zone)
    }

    fn overrides(&self, max_price: Option<&str>) -> FleetLaunchTemplateOverridesRequest {
        let mut b = FleetLaunchTemplateOverridesRequest::builder()
            .instance_type(InstanceType::from(self.instance_type.as_str()))
            .set_max_price(max_price.map(str::to_string));
        b = match (&self.subnet, &self.zone) {
            (Some(s), _) => b.subnet_id(s),
            (None, Some(z)) => b.availability_zone(z),
            (None, None) => b,
        };
        b.build()
    }
}

fn price_text(req: &BuildRequest) -> String {
    match req.spot.max_price() {
        Some(p) => format!("at most ${p}/h"),
        None => "at most the on-demand price".to_string(),
    }
}

/// The pools, in order: each type (in the order given) in the subnet, in
/// one subnet per zone of those `subnet_filter` matched (see
/// `super::subnet`), or in each available zone of the region (by name).
async fn pools(cx: &Ctx<'_>, st: &State) -> Result<Vec<Pool>, StepError> {
    let req = cx.req;
    let region = req.region.as_str();
    let c = cx.ec2.client(region);
    let found = st.subnet.get().map(|p| {
        p.per_zone
            .iter()
            .map(|s| (Some(s.id.clone()), Some(s.zone.clone())))
            .collect::<Vec<_>>()
    });
    let places: Vec<(Option<String>, Option<String>)> = match (&req.subnet_id, found) {
        (_, Some(found)) => found,
        (Some(s), None) => {
            let out = c.describe_subnets().subnet_ids(s).send().await.ctx(
                "DescribeSubnets",
                region,
                Some(s),
            )?;
            let zone = out
                .subnets()
                .first()
                .and_then(|n| n.availability_zone())
                .map(str::to_string);
            vec![(Some(s.clone()), zone)]
        }
        (None, None) => {
            let out = c
                .describe_availability_zones()
                .filters(Filter::builder().name("state").values("available").build())
                .send()
                .await
                .ctx("DescribeAvailabilityZones", region, None)?;
            let mut zones: Vec<String> = out
                .availability_zones()
                .iter()
                .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
                .filter_map(|z| z.zone_name().map(str::to_string))
                .collect();
            zones.sort();
            zones.dedup();
            if zones.is_empty() {
                vec![(None, None)]
            } else {
                zones.into_iter().map(|z| (None, Some(z))).collect()
            }
        }
    };
    Ok(req
        .spot
        .types(&req.instance_type)
        .into_iter()
        .flat_map(|t| {
            places.iter().map(move |(s, z)| Pool {
                instance_type: t.to_string(),
                subnet: s.clone(),
                zone: z.clone(),
            })
        })
        .collect())
}

/// Creates the launch template (what RunInstances would get, without the
/// type and placement: the fleet's overrides give them) and pushes it on
/// the cleanup stack.
async fn create_template(
    cx: &Ctx<'_>,
    source: &SourceImage,
    key: &KeyMaterial,
    groups: &[String],
) -> Result<Resource, StepError> {
    let req = cx.req;
    let region = req.region.as_str();
    let mo = &req.metadata_options;
    let mut metadata = LaunchTemplateInstanceMetadataOptionsRequest::builder()
        .http_tokens(LaunchTemplateHttpTokensState::from(mo.http_tokens.as_str()))
        .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::from(
            mo.http_endpoint.as_str(),
        ))
        .http_put_response_hop_limit(i32::from(mo.http_put_response_hop_limit));
    if let Some(t) = &mo.instance_metadata_tags {
        metadata = metadata
            .instance_metadata_tags(LaunchTemplateInstanceMetadataTagsState::from(t.as_str()));
    }
    let bd = block_device(req, source);
    let ebs = bd.ebs().map(|e| {
        LaunchTemplateEbsBlockDeviceRequest::builder()
            .set_volume_size(e.volume_size())
            .set_volume_type(e.volume_type().cloned())
            .set_iops(e.iops())
            .set_throughput(e.throughput())
            .set_encrypted(e.encrypted())
            .set_kms_key_id(e.kms_key_id().map(str::to_string))
            .set_delete_on_termination(e.delete_on_termination())
            .build()
    });
    let run_tags = run_tags(req);
    let lt_tags = |rt: ResourceType, user| {
        let spec = cx.temp_tag_spec(rt.clone(), user);
        LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(rt)
            .set_tags(Some(spec.tags().to_vec()))
            .build()
    };
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(&source.image_id)
        .key_name(&key.key_name)
        .metadata_options(metadata.build())
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .set_device_name(bd.device_name().map(str::to_string))
                .set_ebs(ebs)
                .build(),
        )
        .tag_specifications(lt_tags(ResourceType::Instance, &run_tags))
        .tag_specifications(lt_tags(ResourceType::Volume, &req.volume_tags));
    if let Some(assoc) = req.associate_public_ip_address {
        // As RunInstances: a public IP is asked for on an explicit
        // interface, which carries the groups (the subnet is the pool's).
        data = data.network_interfaces(
            LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .associate_public_ip_address(assoc)
                .delete_on_termination(true)
                .set_groups(Some(groups.to_vec()))
                .build(),
        );
    } else {
        data = data.set_security_group_ids(Some(groups.to_vec()));
    }
    if let Some(p) = &req.iam_instance_profile {
        data = data.iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(p)
                .build(),
        );
    }
    if let Some(ud) = &req.user_data {
        data = data.user_data(base64::engine::general_purpose::STANDARD.encode(ud));
    }
    let name = cx.temp_name();
    let out = cx
        .ec2
        .client(region)
        .create_launch_template()
        .launch_template_name(&name)
        .version_description("image-builder spot launch (temporary)")
        .client_token(format!("{}-lt", cx.build_id))
        .launch_template_data(data.build())
        .tag_specifications(cx.temp_tag_spec(ResourceType::LaunchTemplate, &req.spot.spot_tags))
        .send()
        .await
        .ctx("CreateLaunchTemplate", region, Some(&name))?;
    let id = out
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .unwrap_or_default()
        .to_string();
    let r = Resource::LaunchTemplate {
        region: region.to_string(),
        id: id.clone(),
    };
    cx.stack.push(r.clone());
    cx.message(format!("created launch template {id} ({name})"));
    Ok(r)
}

/// Asks the fleet for one spot instance over the remaining pools until one
/// launches; each answer without an instance drops the pools its errors
/// name (all of the request's when they name none). Returns the instance
/// id and the pool it runs in.
async fn launch(
    cx: &Ctx<'_>,
    template: &Resource,
    mut remaining: Vec<Pool>,
) -> Result<(String, String), StepError> {
    let req = cx.req;
    let region = req.region.as_str();
    let c = cx.ec2.client(region);
    let mut tried: Vec<(Pool, String)> = Vec::new();
    let mut round = 0usize;
    while !remaining.is_empty() {
        cx.check_cancel()?;
        round += 1;
        let batch: Vec<Pool> = remaining
            .iter()
            .take(MAX_POOLS_PER_FLEET)
            .cloned()
            .collect();
        let config = FleetLaunchTemplateConfigRequest::builder()
            .launch_template_specification(
                FleetLaunchTemplateSpecificationRequest::builder()
                    .launch_template_id(template.id())
                    .version("1")
                    .build(),
            )
            .set_overrides(Some(
                batch
                    .iter()
                    .map(|p| p.overrides(req.spot.max_price()))
                    .collect(),
            ))
            .build();
        let out = c
            .create_fleet()
            .r#type(FleetType::Instant)
            .client_token(format!("{}-fleet-{round}", cx.build_id))
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(1)
                    .default_target_capacity_type(DefaultTargetCapacityType::Spot)
                    .build(),
            )
            .spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                    .build(),
            )
            .launch_template_configs(config)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Fleet)
                    .set_tags(Some(cx.tags_with(&req.spot.spot_tags)))
                    .build(),
            )
            .send()
            .await
            .ctx("CreateFleet", region, Some(template.id()))?;
        let mut launched: Option<(String, String)> = None;
        for i in out.instances() {
            for id in i.instance_ids() {
                cx.stack.push(Resource::Instance {
                    region: region.to_string(),
                    id: id.clone(),
                });
                if launched.is_none() {
                    let o = i
                        .launch_template_and_overrides()
                        .and_then(|l| l.overrides());
                    let pool = Pool {
                        instance_type: i
                            .instance_type()
                            .or_else(|| o.and_then(|o| o.instance_type()))
                            .map_or_else(String::new, |t| t.as_str().to_string()),
                        subnet: o.and_then(|o| o.subnet_id()).map(str::to_string),
                        zone: o.and_then(|o| o.availability_zone()).map(str::to_string),
                    };
                    launched = Some((id.clone(), pool.to_string()));
                }
            }
        }
        if let Some((id, pool)) = launched {
            cx.message(format!(
                "launched spot instance {id} ({pool}) through fleet {}",
                out.fleet_id().unwrap_or("?")
            ));
            return Ok((id, pool));
        }
        // The pools the errors name; all of the request's when none is.
        let errors = out.errors();
        let named: Vec<Pool> = batch
            .iter()
            .filter(|p| errors.iter().any(|e| p.named_by(e)))
            .cloned()
            .collect();
        let failed = if named.is_empty() { batch } else { named };
        for p in failed {
            let why = errors
                .iter()
                .find(|e| p.named_by(e))
                .map(fleet_error_text)
                .unwrap_or_else(|| "no instance launched".to_string());
            cx.message(format!("no spot instance {p}: {why}"));
            remaining.retain(|q| *q != p);
            tried.push((p, why));
        }
    }
    Err(no_capacity(req, template, &tried))
}

fn fleet_error_text(e: &CreateFleetError) -> String {
    match (e.error_code(), e.error_message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "no instance launched".to_string(),
    }
}

/// The error once every pool failed: each pool with EC2's reason, the
/// price, the region.
fn no_capacity(req: &BuildRequest, template: &Resource, tried: &[(Pool, String)]) -> StepError {
    let codes: std::collections::BTreeSet<&str> = tried
        .iter()
        .map(|(_, why)| why.split(':').next().unwrap_or(why))
        .collect();
    let code = match codes.iter().collect::<Vec<_>>().as_slice() {
        [one] if !one.contains(' ') => Some(one.to_string()),
        _ => None,
    };
    let list: Vec<String> = tried
        .iter()
        .map(|(p, why)| format!("{p} ({why})"))
        .collect();
    StepError::Aws(AwsError {
        operation: "CreateFleet",
        region: req.region.clone(),
        resource: Some(template.id().to_string()),
        code,
        message: format!(
            "no spot instance in {} ({}) in any of {} pool(s) tried: {}",
            req.region,
            price_text(req),
            tried.len(),
            list.join("; ")
        ),
        transient: false,
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{FleetLaunchTemplateOverrides, LaunchTemplateAndOverridesResponse};

    use super::*;
    use crate::request::SourceAmi;

    fn req() -> BuildRequest {
        BuildRequest::new(
            "b",
            "us-east-1",
            SourceAmi::Id("ami-1".into()),
            "t3.small",
            "n-1",
        )
    }

    #[test]
    fn spot_actions_replace_run_instances_launch_only_when_asked() {
        let plain = crate::required_actions(&req());
        assert!(!plain.contains("ec2:CreateFleet"));
        assert!(!plain.contains("ec2:CreateLaunchTemplate"));
        let mut r = req();
        r.spot.spot_price = Some("auto".into());
        let a = crate::required_actions(&r);
        for x in [
            "ec2:CreateLaunchTemplate",
            "ec2:DeleteLaunchTemplate",
            "ec2:CreateFleet",
            "ec2:RunInstances",
            "ec2:DescribeAvailabilityZones",
        ] {
            assert!(a.contains(x), "{x}");
        }
        r.subnet_id = Some("subnet-1".into());
        let a = crate::required_actions(&r);
        assert!(a.contains("ec2:DescribeSubnets"));
        assert!(!a.contains("ec2:DescribeAvailabilityZones"));
    }

    fn error(t: Option<&str>, zone: Option<&str>) -> CreateFleetError {
        let o = FleetLaunchTemplateOverrides::builder()
            .set_instance_type(t.map(InstanceType::from))
            .set_availability_zone(zone.map(str::to_string))
            .build();
        CreateFleetError::builder()
            .launch_template_and_overrides(
                LaunchTemplateAndOverridesResponse::builder()
                    .overrides(o)
                    .build(),
            )
            .error_code("InsufficientInstanceCapacity")
            .build()
    }

    #[test]
    fn a_fleet_error_names_the_pools_it_matches() {
        let pool = |t: &str, z: &str| Pool {
            instance_type: t.into(),
            subnet: None,
            zone: Some(z.into()),
        };
        let a = pool("t3.small", "us-east-1a");
        let b = pool("t3.small", "us-east-1b");
        let c = pool("m5.large", "us-east-1a");
        let e = error(Some("t3.small"), Some("us-east-1a"));
        assert!(a.named_by(&e) && !b.named_by(&e) && !c.named_by(&e));
        // A type without a zone names the type everywhere.
        let e = error(Some("t3.small"), None);
        assert!(a.named_by(&e) && b.named_by(&e) && !c.named_by(&e));
        // Without overrides: every pool.
        let e = CreateFleetError::builder().error_code("X").build();
        assert!(a.named_by(&e) && c.named_by(&e));
        assert_eq!(a.to_string(), "t3.small in us-east-1a");
    }

    #[test]
    fn the_final_error_names_every_pool_the_price_and_the_region() {
        let mut r = req();
        r.spot.spot_price = Some("0.02".into());
        let lt = Resource::LaunchTemplate {
            region: "us-east-1".into(),
            id: "lt-1".into(),
        };
        let tried = vec![
            (
                Pool {
                    instance_type: "t3.small".into(),
                    subnet: Some("subnet-1".into()),
                    zone: Some("us-east-1a".into()),
                },
                "InsufficientInstanceCapacity: none".to_string(),
            ),
            (
                Pool {
                    instance_type: "m5.large".into(),
                    subnet: Some("subnet-1".into()),
                    zone: Some("us-east-1a".into()),
                },
                "InsufficientInstanceCapacity: none".to_string(),
            ),
        ];
        let e = no_capacity(&r, &lt, &tried);
        assert_eq!(e.region(), Some("us-east-1"));
        assert_eq!(
            e.to_string(),
            "CreateFleet in us-east-1 (lt-1): InsufficientInstanceCapacity: no spot instance in \
             us-east-1 (at most $0.02/h) in any of 2 pool(s) tried: t3.small in us-east-1a \
             (subnet-1) (InsufficientInstanceCapacity: none); m5.large in us-east-1a (subnet-1) \
             (InsufficientInstanceCapacity: none)"
        );
    }
}
