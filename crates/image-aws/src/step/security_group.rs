//! The security group: given ids, or a temporary group allowing SSH from
//! the configured CIDRs only (never 0.0.0.0/0 by default).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use aws_sdk_ec2::Client;

use super::Ctx;
use crate::cleanup::Resource;
use crate::error::{AwsContext, StepError};
use crate::request::{BuildRequest, SecurityGroupSpec};

pub(crate) fn actions(req: &BuildRequest, a: &mut BTreeSet<&'static str>) {
    if let SecurityGroupSpec::Temporary { .. } = req.security_group {
        a.insert("ec2:CreateSecurityGroup");
        a.insert("ec2:AuthorizeSecurityGroupIngress");
        a.insert("ec2:DeleteSecurityGroup");
        a.insert("ec2:CreateTags");
        if req.subnet_id.is_some() {
            a.insert("ec2:DescribeSubnets");
        }
    }
}

/// The VPC of the temporary group: the subnet's or the given one; `None`
/// lets CreateSecurityGroup use the region's default VPC (and fail clearly
/// when there is none), which saves a DescribeVpcs call.
pub(crate) async fn vpc_for(
    c: &Client,
    region: &str,
    req: &BuildRequest,
) -> Result<Option<String>, StepError> {
    if let Some(subnet) = &req.subnet_id {
        let out = c.describe_subnets().subnet_ids(subnet).send().await.ctx(
            "DescribeSubnets",
            region,
            Some(subnet),
        )?;
        return Ok(out
            .subnets()
            .first()
            .and_then(|s| s.vpc_id())
            .map(str::to_string));
    }
    Ok(req.vpc_id.clone())
}

/// Returns the security group ids for the instance.
pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<(Vec<String>, String), StepError> {
    let req = ctx.req;
    let region = req.region.as_str();
    let cidrs = match &req.security_group {
        SecurityGroupSpec::Ids(ids) => {
            return Ok((ids.clone(), format!("using {}", ids.join(", "))))
        }
        SecurityGroupSpec::Temporary { source_cidrs } => source_cidrs,
    };
    let c = ctx.ec2.client(region);
    let vpc = vpc_for(&c, region, req).await?;
    ctx.check_cancel()?;
    let name = ctx.temp_name();
    let out = c
        .create_security_group()
        .group_name(&name)
        .description(format!("Temporary SSH access for image build {}", req.name))
        .set_vpc_id(vpc)
        .tag_specifications(ctx.temp_tag_spec(ResourceType::SecurityGroup, &Default::default()))
        .send()
        .await
        .ctx("CreateSecurityGroup", region, Some(&name))?;
    let id = out.group_id().unwrap_or_default().to_string();
    ctx.stack.push(Resource::SecurityGroup {
        region: region.to_string(),
        id: id.clone(),
    });
    ctx.message(format!("created security group {id}"));
    ctx.check_cancel()?;
    let port = i32::from(req.ssh.port);
    let perm = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .set_ip_ranges(Some(
            cidrs
                .iter()
                .map(|c| {
                    IpRange::builder()
                        .cidr_ip(c)
                        .description("image-builder SSH")
                        .build()
                })
                .collect(),
        ))
        .build();
    c.authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(perm)
        .send()
        .await
        .ctx("AuthorizeSecurityGroupIngress", region, Some(&id))?;
    Ok((
        vec![id.clone()],
        format!(
            "created {id} allowing port {port} from {}",
            cidrs.join(", ")
        ),
    ))
}
