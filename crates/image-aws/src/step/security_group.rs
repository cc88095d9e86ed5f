//! The security group: given ids, or a temporary group allowing SSH from
//! the configured CIDRs only (never 0.0.0.0/0 by default). IPv4 CIDRs go
//! in the rule's `IpRanges`, IPv6 ones in its `Ipv6Ranges`. Empty CIDRs
//! were replaced by this machine's public address before the build's first
//! EC2 call ([`crate::public_ip`]).

use async_trait::async_trait;
use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, ResourceType};
use aws_sdk_ec2::Client;

use super::{Actions, Ctx, Stage, State, Undo};
use crate::error::{AwsContext, Step, StepError};
use crate::request::{BuildRequest, SecurityGroupSpec};
use crate::resource::Resource;
use crate::wait;
use crate::CancelToken;

/// The security group step.
pub(crate) struct SecurityGroup;

#[async_trait]
impl Stage for SecurityGroup {
    fn name(&self) -> Step {
        Step::SecurityGroup
    }

    fn actions(&self, req: &BuildRequest, a: &mut Actions) {
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

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        let req = cx.req;
        if let SecurityGroupSpec::Temporary { source_cidrs } = &req.security_group {
            st.would_create(format!(
                "security group {} in {} allowing port {} from {}{} (temporary)",
                cx.temp_name(),
                req.region,
                req.ssh.port,
                source_cidrs.join(", "),
                if cx.learned_address {
                    " (this machine's public address)"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let (groups, msg) = run(cx, st.found_vpc()).await?;
        let _ = st.groups.set(groups);
        Ok(msg)
    }

    fn creates(&self, r: &Resource) -> bool {
        matches!(r, Resource::SecurityGroup { .. })
    }

    async fn undo(&self, u: &Undo<'_>, r: &Resource) -> Result<(), StepError> {
        delete(u, r.region(), r.id()).await
    }
}

/// Deletes a security group; when `u.patient`, retries while an instance
/// still holds it (DependencyViolation) until the instance timeout.
async fn delete(u: &Undo<'_>, region: &str, id: &str) -> Result<(), StepError> {
    let c = u.ec2.client(region);
    let settings = u.settings;
    let patient = u.patient;
    let attempt = || async {
        match c.delete_security_group().group_id(id).send().await.ctx(
            "DeleteSecurityGroup",
            region,
            Some(id),
        ) {
            Ok(_) => Ok(Some(())),
            Err(e) if e.is("InvalidGroup") => Ok(Some(())),
            Err(e) if patient && e.is("DependencyViolation") => Ok(None),
            Err(e) => Err(StepError::from(e)),
        }
    };
    let timeout = if patient {
        settings.instance_timeout()
    } else {
        settings.cleanup_timeout()
    };
    wait::until(
        settings,
        timeout.max(settings.cleanup_timeout()),
        &CancelToken::new(),
        region,
        "security group deletable",
        id,
        attempt,
    )
    .await
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

/// Returns the security group ids for the instance; `found_vpc`: the VPC
/// of the subnet `subnet_filter` found.
async fn run(ctx: &Ctx<'_>, found_vpc: Option<&str>) -> Result<(Vec<String>, String), StepError> {
    let req = ctx.req;
    let region = req.region.as_str();
    let cidrs = match &req.security_group {
        SecurityGroupSpec::Ids(ids) => {
            return Ok((ids.clone(), format!("using {}", ids.join(", "))))
        }
        SecurityGroupSpec::Temporary { source_cidrs } => source_cidrs,
    };
    let c = ctx.ec2.client(region);
    let vpc = match found_vpc {
        Some(v) => Some(v.to_string()),
        None => vpc_for(&c, region, req).await?,
    };
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
    let perm = ingress(port, cidrs);
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

/// The SSH rule: TCP `port` from `cidrs`, IPv6 ones (with a `:`) as
/// `Ipv6Ranges`, the others as `IpRanges`.
fn ingress(port: i32, cidrs: &[String]) -> IpPermission {
    const WHY: &str = "image-builder SSH";
    let (v6, v4): (Vec<&String>, Vec<&String>) = cidrs.iter().partition(|c| c.contains(':'));
    fn some<T>(v: Vec<T>) -> Option<Vec<T>> {
        (!v.is_empty()).then_some(v)
    }
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .set_ip_ranges(some(
            v4.into_iter()
                .map(|c| IpRange::builder().cidr_ip(c).description(WHY).build())
                .collect(),
        ))
        .set_ipv6_ranges(some(
            v6.into_iter()
                .map(|c| Ipv6Range::builder().cidr_ipv6(c).description(WHY).build())
                .collect(),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_cidrs_get_ipv6_ranges() {
        let p = ingress(22, &["203.0.113.9/32".into()]);
        assert_eq!(p.from_port(), Some(22));
        let v4: Vec<_> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
        assert_eq!(v4, ["203.0.113.9/32"]);
        assert!(p.ipv6_ranges().is_empty());

        let p = ingress(2222, &["2001:db8::7/128".into(), "10.0.0.0/8".into()]);
        let v4: Vec<_> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
        let v6: Vec<_> = p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6())
            .collect();
        assert_eq!(v4, ["10.0.0.0/8"]);
        assert_eq!(v6, ["2001:db8::7/128"]);
    }
}
