//! Resolving the source AMI: a given id, or the (newest) match of a filter.
//!
//! In a build the same step checks that the AMI name is free in every
//! target region (`image::check_names`), before anything is created.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Image};
use aws_sdk_ec2::Client;
use serde::Serialize;

use super::{Actions, Ctx, Stage, State};
use crate::error::{AwsContext, Step, StepError};
use crate::request::{BuildRequest, SourceAmi as SourceAmiSpec};

/// Resolves the source AMI (and, in a build, checks the AMI name).
pub(crate) struct SourceAmi {
    names: bool,
}

impl SourceAmi {
    /// A build's: the source, and the AMI name free in every region.
    pub const BUILD: SourceAmi = SourceAmi { names: true };
    /// A test's: the AMI under test.
    pub const LAUNCH: SourceAmi = SourceAmi { names: false };

    async fn resolve_all(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        let req = cx.req;
        let region = req.region.as_str();
        let c = cx.ec2.client(region);
        let src = if self.names {
            let (src, existing) = tokio::try_join!(
                resolve(&c, region, &req.source_ami),
                super::image::check_names(cx),
            )?;
            let _ = st.existing.set(existing);
            src
        } else {
            resolve(&c, region, &req.source_ami).await?
        };
        let msg = format!(
            "{} ({})",
            src.image_id,
            src.name.as_deref().unwrap_or("unnamed")
        );
        let _ = st.source.set(src);
        Ok(msg)
    }
}

#[async_trait]
impl Stage for SourceAmi {
    fn name(&self) -> Step {
        Step::SourceAmi
    }

    fn actions(&self, _req: &BuildRequest, a: &mut Actions) {
        a.insert("ec2:DescribeImages");
    }

    async fn check(&self, cx: &Ctx<'_>, st: &State) -> Result<(), StepError> {
        self.resolve_all(cx, st).await.map(|_| ())
    }

    async fn run(&self, cx: &Ctx<'_>, st: &State) -> Result<String, StepError> {
        self.resolve_all(cx, st).await
    }
}

/// The resolved source AMI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceImage {
    /// `ami-...`.
    pub image_id: String,
    /// Its name.
    pub name: Option<String>,
    /// `x86_64`, `arm64`.
    pub architecture: Option<String>,
    /// Its root device name (`/dev/xvda`, `/dev/sda1`).
    pub root_device_name: Option<String>,
    /// Size of its root volume in GiB.
    pub root_volume_size_gib: Option<i32>,
    /// Creation date as EC2 reports it.
    pub creation_date: Option<String>,
}

impl SourceImage {
    fn from_image(i: &Image) -> Self {
        let root = i.root_device_name().map(str::to_string);
        let size = i
            .block_device_mappings()
            .iter()
            .find(|m| m.device_name() == root.as_deref())
            .and_then(|m| m.ebs())
            .and_then(|e| e.volume_size());
        SourceImage {
            image_id: i.image_id().unwrap_or_default().to_string(),
            name: i.name().map(str::to_string),
            architecture: i.architecture().map(|a| a.as_str().to_string()),
            root_device_name: root,
            root_volume_size_gib: size,
            creation_date: i.creation_date().map(str::to_string),
        }
    }
}

/// Resolves `spec` in `region`.
pub(crate) async fn resolve(
    c: &Client,
    region: &str,
    spec: &SourceAmiSpec,
) -> Result<SourceImage, StepError> {
    match spec {
        SourceAmiSpec::Id(id) => {
            let out = c.describe_images().image_ids(id).send().await.ctx(
                "DescribeImages",
                region,
                Some(id),
            )?;
            out.images()
                .first()
                .map(SourceImage::from_image)
                .ok_or_else(|| StepError::SourceAmiNotFound {
                    region: region.to_string(),
                    filter: format!("id {id}"),
                })
        }
        SourceAmiSpec::Filter(f) => {
            let mut req = c
                .describe_images()
                .set_owners(Some(f.owners.clone()))
                .filters(Filter::builder().name("name").values(&f.name).build())
                .filters(Filter::builder().name("state").values("available").build());
            for (k, v) in [
                ("architecture", f.architecture.as_str()),
                ("virtualization-type", &f.virtualization_type),
                ("root-device-type", &f.root_device_type),
            ] {
                req = req.filters(Filter::builder().name(k).values(v).build());
            }
            let out = req.send().await.ctx("DescribeImages", region, None)?;
            let mut images: Vec<&Image> = out.images().iter().collect();
            let desc = format!(
                "owners [{}] name `{}` architecture {}",
                f.owners.join(", "),
                f.name,
                f.architecture.as_str()
            );
            if images.is_empty() {
                return Err(StepError::SourceAmiNotFound {
                    region: region.to_string(),
                    filter: desc,
                });
            }
            if images.len() > 1 && !f.most_recent {
                return Err(StepError::SourceAmiAmbiguous {
                    region: region.to_string(),
                    filter: desc,
                    ids: images
                        .iter()
                        .filter_map(|i| i.image_id().map(str::to_string))
                        .collect(),
                });
            }
            // ISO 8601 dates sort as text; ties broken by id for determinism.
            images.sort_by(|a, b| {
                (a.creation_date(), a.image_id()).cmp(&(b.creation_date(), b.image_id()))
            });
            Ok(SourceImage::from_image(images[images.len() - 1]))
        }
    }
}
