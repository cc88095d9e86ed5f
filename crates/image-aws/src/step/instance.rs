//! Launching the instance and waiting for it to run.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceMetadataTagsState,
    InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, ResourceType,
    VolumeType,
};
use aws_sdk_ec2::Client;
use base64::Engine as _;

use tokio::time::Instant;

use super::key_pair::KeyMaterial;
use super::source_ami::SourceImage;
use super::{Actions, Ctx, Stage, State, Undo, KMS_ACTIONS};
use crate::error::{AwsContext, Step, StepError};
use crate::request::{BuildRequest, WaitSettings};
use crate::resource::Resource;
use crate::wait;
use crate::CancelToken;

/// The instance step.
pub(crate) struct Instance;

#[async_trait]
impl Stage for Instance {
    fn name(&self) -> Step {
        Step::Instance
    }

    /// A spot build launches through `super::spot` instead.
    fn applies(&self, req: &BuildRequest) -> bool {
        !req.spot.is_spot()
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:RunInstances");
        a.insert("ec2:DescribeInstances");
        a.insert("ec2:TerminateInstances");
        a.insert("ec2:CreateTags");
        // The dry run checks the type (and the subnet).
        a.insert("ec2:DescribeInstanceTypes");
        if req.subnet_id.is_some() {
            a.insert("ec2:DescribeSubnets");
        }
        launch_actions(req, a);
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        let req = cx.req;
        let region = req.region.as_str();
        let c = cx.ec2.client(region);
        let it = c
            .describe_instance_types()
            .instance_types(InstanceType::from(req.instance_type.as_str()))
            .send()
            .await
            .ctx("DescribeInstanceTypes", region, Some(&req.instance_type))?;
        if it.instance_types().is_empty() {
            return Err(StepError::Invalid(vec![format!(
                "instance type {} is not offered in {region}",
                req.instance_type
            )]));
        }
        if let Some(s) = &req.subnet_id {
            c.describe_subnets().subnet_ids(s).send().await.ctx(
                "DescribeSubnets",
                region,
                Some(s),
            )?;
        }
        let source = State::need(&st.source, "source AMI")?;
        st.would_create(format!(
            "instance {} from {} in {region} (temporary)",
            req.instance_type, source.image_id
        ));
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let source = State::need(&st.source, "source AMI")?;
        let key = State::need(&st.key, "key pair")?;
        let groups = State::need(&st.groups, "security groups")?;
        let subnet = st.subnet_id(cx.req);
        let (info, msg) = run(cx, source, key, groups, subnet).await?;
        let _ = st.instance.set(info);
        Ok(msg)
    }

    fn creates(&self, r: &Resource) -> bool {
        matches!(r, Resource::Instance { .. })
    }

    async fn undo(&self, u: &Undo<'_>, r: &Resource) -> Result<(), StepError> {
        terminate(u.ec2, r.region(), r.id(), u.settings).await
    }
}

/// Terminates `id` and waits until it is gone, retrying throttling and 5xx
/// answers for `settings.cleanup_timeout_secs`. Never cancelled.
pub(crate) async fn terminate(
    ec2: &crate::Ec2Clients,
    region: &str,
    id: &str,
    settings: &WaitSettings,
) -> Result<(), StepError> {
    let c = ec2.client(region);
    let deadline = Instant::now() + settings.cleanup_timeout();
    let res = wait::retry_transient(settings, deadline, || async {
        c.terminate_instances().instance_ids(id).send().await.ctx(
            "TerminateInstances",
            region,
            Some(id),
        )
    })
    .await;
    match res {
        Err(e) if e.is("InvalidInstanceID") => return Ok(()),
        r => r?,
    };
    wait::until(
        settings,
        settings.instance_timeout().max(settings.cleanup_timeout()),
        &CancelToken::new(),
        region,
        "instance terminated",
        id,
        || async {
            match state(&c, region, id).await {
                Ok(Some((InstanceStateName::Terminated, _))) | Ok(None) => Ok(Some(())),
                Ok(_) => Ok(None),
                Err(StepError::Aws(e)) if e.is("InvalidInstanceID") => Ok(Some(())),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

/// The running instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstanceInfo {
    /// `i-...`.
    pub id: String,
    /// Public IP.
    pub public_ip: Option<String>,
    /// Private IP.
    pub private_ip: Option<String>,
    /// Public DNS name.
    pub public_dns: Option<String>,
    /// Private DNS name.
    pub private_dns: Option<String>,
}

/// The root device name used: the request's, else the source AMI's.
pub(crate) fn root_device_name(req: &BuildRequest, source: &SourceImage) -> String {
    req.root_device
        .device_name
        .clone()
        .or_else(|| source.root_device_name.clone())
        .unwrap_or_else(|| "/dev/xvda".to_string())
}

/// The actions any launch of this request needs besides the launch call
/// itself: passing the instance profile's role, the KMS key of an
/// encrypted root volume (the plain and the spot launch share them).
pub(crate) fn launch_actions(req: &BuildRequest, a: &mut Actions) {
    if req.iam_instance_profile.is_some() {
        a.insert("iam:PassRole");
    }
    if req.kms_key_id.is_some() {
        a.extend(KMS_ACTIONS);
    }
}

/// The instance's tags while it runs: `run_tags`, with a `Name` of
/// `image-builder <build>` unless they name it.
pub(crate) fn run_tags(req: &BuildRequest) -> BTreeMap<String, String> {
    let mut tags = req.run_tags.clone();
    tags.entry("Name".to_string())
        .or_insert_with(|| format!("image-builder {}", req.name));
    tags
}

pub(crate) fn block_device(req: &BuildRequest, source: &SourceImage) -> BlockDeviceMapping {
    let rd = &req.root_device;
    // In range: `RootDevice::problems` (validate) bounds them.
    let int = |n: Option<u32>| n.and_then(|n| i32::try_from(n).ok());
    let ebs = EbsBlockDevice::builder()
        .set_volume_size(int(rd.volume_size).or(source.root_volume_size_gib))
        .volume_type(VolumeType::from(rd.volume_type.as_str()))
        .set_iops(int(rd.iops))
        .set_throughput(int(rd.throughput))
        .encrypted(req.encrypted)
        .set_kms_key_id(req.kms_key_id.clone())
        .delete_on_termination(rd.delete_on_termination)
        .build();
    BlockDeviceMapping::builder()
        .device_name(root_device_name(req, source))
        .ebs(ebs)
        .build()
}

/// Runs the instance and waits until it is running.
async fn run(
    ctx: &Ctx<'_>,
    source: &SourceImage,
    key: &KeyMaterial,
    groups: &[String],
    subnet: Option<&str>,
) -> Result<(InstanceInfo, String), StepError> {
    let req = ctx.req;
    let region = req.region.as_str();
    let c = ctx.ec2.client(region);
    let mo = &req.metadata_options;
    let mut metadata = InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::from(mo.http_tokens.as_str()))
        .http_endpoint(InstanceMetadataEndpointState::from(
            mo.http_endpoint.as_str(),
        ))
        .http_put_response_hop_limit(i32::from(mo.http_put_response_hop_limit));
    if let Some(t) = &mo.instance_metadata_tags {
        metadata = metadata.instance_metadata_tags(InstanceMetadataTagsState::from(t.as_str()));
    }
    let run_tags = run_tags(req);
    let mut r = c
        .run_instances()
        .image_id(&source.image_id)
        .instance_type(InstanceType::from(req.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .key_name(&key.key_name)
        .client_token(format!("{}-run", ctx.build_id))
        .metadata_options(metadata.build())
        .block_device_mappings(block_device(req, source))
        .tag_specifications(ctx.temp_tag_spec(ResourceType::Instance, &run_tags))
        .tag_specifications(ctx.temp_tag_spec(ResourceType::Volume, &req.volume_tags));
    if let Some(assoc) = req.associate_public_ip_address {
        // A public IP can only be asked for on an explicit interface, which
        // then carries the subnet and groups.
        r = r.network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .associate_public_ip_address(assoc)
                .delete_on_termination(true)
                .set_subnet_id(subnet.map(str::to_string))
                .set_groups(Some(groups.to_vec()))
                .build(),
        );
    } else {
        r = r
            .set_subnet_id(subnet.map(str::to_string))
            .set_security_group_ids(Some(groups.to_vec()));
    }
    if let Some(p) = &req.iam_instance_profile {
        r = r.iam_instance_profile(IamInstanceProfileSpecification::builder().name(p).build());
    }
    if let Some(ud) = &req.user_data {
        r = r.user_data(base64::engine::general_purpose::STANDARD.encode(ud));
    }
    let out = r
        .send()
        .await
        .ctx("RunInstances", region, Some(&source.image_id))?;
    let id = out
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .unwrap_or_default()
        .to_string();
    ctx.stack.push(Resource::Instance {
        region: region.to_string(),
        id: id.clone(),
    });
    ctx.message(format!("launched instance {id}"));
    let info = wait_running(ctx, &id).await?;
    let msg = format!("{id} running");
    Ok((info, msg))
}

/// Waits until instance `id` (in the build region) runs; its addresses.
pub(crate) async fn wait_running(ctx: &Ctx<'_>, id: &str) -> Result<InstanceInfo, StepError> {
    let req = ctx.req;
    let region = req.region.as_str();
    let c = ctx.ec2.client(region);
    let id = id.to_string();
    wait::until(
        &req.wait,
        req.wait.instance_timeout(),
        &ctx.cancel,
        region,
        "instance running",
        &id,
        || async {
            let o = c.describe_instances().instance_ids(&id).send().await.ctx(
                "DescribeInstances",
                region,
                Some(&id),
            );
            let o = match o {
                Ok(o) => o,
                // Eventual consistency right after RunInstances.
                Err(e) if e.is("InvalidInstanceID.NotFound") => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(i) = o.reservations().iter().flat_map(|r| r.instances()).next() else {
                return Ok(None);
            };
            let state = i.state().and_then(|s| s.name()).cloned();
            match state {
                Some(InstanceStateName::Running) => Ok(Some(InstanceInfo {
                    id: id.clone(),
                    public_ip: i.public_ip_address().map(str::to_string),
                    private_ip: i.private_ip_address().map(str::to_string),
                    public_dns: i
                        .public_dns_name()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    private_dns: i
                        .private_dns_name()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                })),
                Some(InstanceStateName::Pending) | None => Ok(None),
                Some(s) => Err(StepError::BadState {
                    region: region.to_string(),
                    id: id.clone(),
                    state: s.as_str().to_string(),
                    reason: i
                        .state_reason()
                        .and_then(|r| r.message())
                        .map(str::to_string),
                }),
            }
        },
    )
    .await
}

/// The state of an instance (`None` if EC2 does not list it).
pub(crate) async fn state(
    c: &Client,
    region: &str,
    id: &str,
) -> Result<Option<(InstanceStateName, Option<String>)>, StepError> {
    let o = c.describe_instances().instance_ids(id).send().await.ctx(
        "DescribeInstances",
        region,
        Some(id),
    )?;
    Ok(o.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .and_then(|i| {
            i.state().and_then(|s| s.name()).cloned().map(|s| {
                (
                    s,
                    i.state_reason()
                        .and_then(|r| r.message())
                        .map(str::to_string),
                )
            })
        }))
}
