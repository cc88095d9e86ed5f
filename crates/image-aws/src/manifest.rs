//! The packer `manifest` post-processor's JSON (so existing tooling keeps
//! reading it) and a markdown table of region -> AMI.
//!
//! ```json
//! {"builds": [{"name": "ubuntu-2404", "builder_type": "amazon-ebs",
//!   "build_time": 1700000000, "files": null,
//!   "artifact_id": "eu-west-1:ami-1,us-east-1:ami-2",
//!   "packer_run_uuid": "…", "custom_data": {"k8s": "1.30"}}],
//!  "last_run_uuid": "…"}
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BuildResult;

/// The whole manifest file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every build recorded, oldest first.
    pub builds: Vec<ManifestBuild>,
    /// The run uuid of the last build appended.
    pub last_run_uuid: String,
}

/// One build's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestBuild {
    /// Build name.
    pub name: String,
    /// Always `amazon-ebs`.
    pub builder_type: String,
    /// Unix time the build finished.
    pub build_time: i64,
    /// Always null for AMIs.
    pub files: Option<serde_json::Value>,
    /// `region:ami-…` pairs, comma-separated, sorted by region.
    pub artifact_id: String,
    /// The run's uuid.
    pub packer_run_uuid: String,
    /// The request's `custom_data` (null when empty).
    pub custom_data: Option<BTreeMap<String, String>>,
}

impl ManifestBuild {
    /// The entry for a finished build.
    pub fn from_result(r: &BuildResult) -> Self {
        ManifestBuild {
            name: r.build.clone(),
            builder_type: "amazon-ebs".to_string(),
            build_time: r.build_time,
            files: None,
            artifact_id: artifact_id(&r.amis),
            packer_run_uuid: r.run_uuid.clone(),
            custom_data: (!r.custom_data.is_empty()).then(|| r.custom_data.clone()),
        }
    }
}

/// `region:ami,region:ami` sorted by region.
pub fn artifact_id(amis: &BTreeMap<String, String>) -> String {
    amis.iter()
        .map(|(r, a)| format!("{r}:{a}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Appends `build` to the manifest at `path` (created if missing), sets
/// `last_run_uuid`, and writes it back atomically. Returns the new manifest.
pub fn append(path: &Path, build: ManifestBuild) -> std::io::Result<Manifest> {
    let mut m = match std::fs::read(path) {
        Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice::<Manifest>(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a packer manifest: {e}", path.display()),
                )
            })?
        }
        Ok(_) => Manifest::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(e),
    };
    m.last_run_uuid = build.packer_run_uuid.clone();
    m.builds.push(build);
    let mut text = serde_json::to_string_pretty(&m).map_err(std::io::Error::other)?;
    text.push('\n');
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("manifest"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: &str) -> ManifestBuild {
        let mut amis = BTreeMap::new();
        amis.insert("us-west-2".to_string(), "ami-2".to_string());
        amis.insert("eu-west-1".to_string(), "ami-1".to_string());
        ManifestBuild {
            name: "b".into(),
            builder_type: "amazon-ebs".into(),
            build_time: 1,
            files: None,
            artifact_id: artifact_id(&amis),
            packer_run_uuid: run.into(),
            custom_data: None,
        }
    }

    #[test]
    fn appends_and_keeps_packer_shape() {
        let dir = std::env::temp_dir().join(format!("image-aws-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("manifest.json");
        let _ = std::fs::remove_file(&p);
        append(&p, entry("r1")).unwrap();
        let m = append(&p, entry("r2")).unwrap();
        assert_eq!(m.builds.len(), 2);
        assert_eq!(m.last_run_uuid, "r2");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(
            v["builds"][0]["artifact_id"],
            "eu-west-1:ami-1,us-west-2:ami-2"
        );
        assert!(v["builds"][0]["files"].is_null());
        assert_eq!(v["builds"][1]["builder_type"], "amazon-ebs");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
