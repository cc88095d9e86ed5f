//! The region -> AMI table: built once, from a finished build
//! ([`AmiTable::of_result`]) or from the last run a manifest records
//! ([`AmiTable::last_run`]), then looked up ([`AmiTable::ami`], e.g. the AMI
//! `image-cli test` boots) or rendered as markdown, CSV or JSON.
//!
//! ```
//! use image_aws::ami_table::{AmiTable, TableFormat};
//! use image_aws::manifest::Manifest;
//! let m: Manifest = serde_json::from_str(r#"{"builds": [{"name": "node",
//!   "builder_type": "amazon-ebs", "build_time": 1, "files": null,
//!   "artifact_id": "eu-west-1:ami-1,us-east-1:ami-2", "packer_run_uuid": "r1",
//!   "custom_data": null}], "last_run_uuid": "r1"}"#).unwrap();
//! let t = AmiTable::last_run(&m)?;
//! assert_eq!(t.ami("node", "us-east-1")?, "ami-2");
//! assert_eq!(t.render(TableFormat::Csv), "build,region,ami\nnode,eu-west-1,ami-1\nnode,us-east-1,ami-2\n");
//! # Ok::<(), String>(())
//! ```

use std::path::Path;

use serde::Serialize;

use crate::manifest::{artifact_id, Manifest};
use crate::BuildResult;

/// One AMI: a build's image in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AmiRow {
    /// The build's name.
    pub build: String,
    /// The region.
    pub region: String,
    /// The AMI id there.
    pub ami: String,
}

/// How [`AmiTable::render`] writes a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// `### build`, then `| Region | AMI |` rows, per build.
    Markdown,
    /// `build,region,ami` lines under that header.
    Csv,
    /// `[{"build", "region", "ami"}]` on one line.
    Json,
}

/// Region -> AMI rows, by build, in the order the builds were recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmiTable {
    rows: Vec<AmiRow>,
    /// The `artifact_id` of each build, for messages.
    artifact_ids: Vec<(String, String)>,
}

impl AmiTable {
    /// The AMIs of one finished build, sorted by region.
    pub fn of_result(r: &BuildResult) -> Self {
        AmiTable {
            rows: r
                .amis
                .iter()
                .map(|(region, ami)| AmiRow {
                    build: r.build.clone(),
                    region: region.clone(),
                    ami: ami.clone(),
                })
                .collect(),
            artifact_ids: vec![(r.build.clone(), artifact_id(&r.amis))],
        }
    }

    /// The AMIs of the builds of the manifest's last run (the entries whose
    /// `packer_run_uuid` is its `last_run_uuid`), in manifest order. A pair
    /// of an `artifact_id` that is not `region:ami` is an error naming the
    /// build.
    pub fn last_run(m: &Manifest) -> Result<Self, String> {
        let mut t = AmiTable::default();
        for b in m
            .builds
            .iter()
            .filter(|b| b.packer_run_uuid == m.last_run_uuid)
        {
            // A build recorded twice in one run: its last entry counts.
            t.rows.retain(|r| r.build != b.name);
            t.artifact_ids.retain(|(n, _)| *n != b.name);
            for pair in b.artifact_id.split(',').filter(|p| !p.trim().is_empty()) {
                let (region, ami) = pair.trim().split_once(':').ok_or_else(|| {
                    format!("build `{}`: artifact id `{pair}` is not region:ami", b.name)
                })?;
                t.rows.push(AmiRow {
                    build: b.name.clone(),
                    region: region.to_string(),
                    ami: ami.to_string(),
                });
            }
            t.artifact_ids.push((b.name.clone(), b.artifact_id.clone()));
        }
        Ok(t)
    }

    /// [`AmiTable::last_run`] of the manifest file at `path`; errors name
    /// the file.
    pub fn read_last_run(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a packer manifest: {e}", path.display()))?;
        AmiTable::last_run(&m).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every row.
    pub fn rows(&self) -> &[AmiRow] {
        &self.rows
    }

    /// The AMI of `build` in `region`; the error says which is missing.
    pub fn ami(&self, build: &str, region: &str) -> Result<&str, String> {
        let Some((_, art)) = self.artifact_ids.iter().find(|(n, _)| n == build) else {
            return Err(format!("the last run recorded has no build `{build}`"));
        };
        self.rows
            .iter()
            .find(|r| r.build == build && r.region == region)
            .map(|r| r.ami.as_str())
            .ok_or_else(|| {
                format!(
                    "build `{build}` of the last run has no AMI in {region} (artifact_id `{art}`)"
                )
            })
    }

    /// The table as text in `format` (ends with a newline).
    pub fn render(&self, format: TableFormat) -> String {
        let mut s = String::new();
        match format {
            TableFormat::Markdown => {
                let mut current: Option<&str> = None;
                for r in &self.rows {
                    if current != Some(r.build.as_str()) {
                        if current.is_some() {
                            s.push('\n');
                        }
                        s.push_str(&format!(
                            "### {}\n\n| Region | AMI |\n| --- | --- |\n",
                            r.build
                        ));
                        current = Some(&r.build);
                    }
                    s.push_str(&format!("| {} | {} |\n", r.region, r.ami));
                }
            }
            TableFormat::Csv => {
                s.push_str("build,region,ami\n");
                for r in &self.rows {
                    s.push_str(&format!("{},{},{}\n", r.build, r.region, r.ami));
                }
            }
            TableFormat::Json => {
                s.push_str(&serde_json::to_string(&self.rows).unwrap_or_default());
                s.push('\n');
            }
        }
        s
    }
}

/// A markdown table of one build: `| Region | AMI |`, one row per region.
pub fn markdown_table(r: &BuildResult) -> String {
    AmiTable::of_result(r).render(TableFormat::Markdown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestBuild;

    fn b(name: &str, run: &str, art: &str) -> ManifestBuild {
        ManifestBuild {
            name: name.into(),
            builder_type: "amazon-ebs".into(),
            build_time: 1,
            files: None,
            artifact_id: art.into(),
            packer_run_uuid: run.into(),
            custom_data: None,
        }
    }

    #[test]
    fn the_last_runs_amis_in_every_format() {
        let m = Manifest {
            builds: vec![
                b("node", "r1", "us-east-1:ami-old"),
                b("node", "r2", "eu-west-1:ami-eu,us-east-1:ami-new"),
                b("other", "r2", "us-east-1:ami-other"),
            ],
            last_run_uuid: "r2".into(),
        };
        let t = AmiTable::last_run(&m).unwrap();
        assert_eq!(t.rows().len(), 3);
        assert_eq!(t.ami("node", "us-east-1").unwrap(), "ami-new");
        assert_eq!(t.ami("node", "eu-west-1").unwrap(), "ami-eu");
        assert!(t
            .ami("node", "ap-south-1")
            .unwrap_err()
            .contains("no AMI in ap-south-1"));
        assert!(t
            .ami("gone", "us-east-1")
            .unwrap_err()
            .contains("no build `gone`"));
        let md = t.render(TableFormat::Markdown);
        assert!(
            md.starts_with("### node\n\n| Region | AMI |\n| --- | --- |\n| eu-west-1 | ami-eu |\n"),
            "{md}"
        );
        assert!(md.contains("\n\n### other\n"), "{md}");
        assert_eq!(
            t.render(TableFormat::Csv).lines().nth(2),
            Some("node,us-east-1,ami-new")
        );
        assert!(t
            .render(TableFormat::Json)
            .contains(r#"{"build":"node","region":"eu-west-1","ami":"ami-eu"}"#));
        let m2 = Manifest {
            builds: vec![b("x", "r", "us-east-1")],
            last_run_uuid: "r".into(),
        };
        assert!(AmiTable::last_run(&m2)
            .unwrap_err()
            .contains("is not region:ami"));
    }
}
