//! The text of a [`DryRun`], as `image-cli build --dry-run` prints it: the
//! source AMI, the root device, the AMIs `force_deregister` would remove,
//! what the build would create and the actions it needs.
//!
//! ```
//! # fn demo(d: &image_aws::DryRun) {
//! print!("{d}");
//! # }
//! ```

use std::fmt;

use crate::DryRun;

impl fmt::Display for DryRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "build {}:", self.build)?;
        writeln!(
            f,
            "  source AMI: {} ({})",
            self.source.image_id,
            self.source.name.as_deref().unwrap_or("unnamed")
        )?;
        match self.root_volume_size_gib {
            Some(s) => writeln!(f, "  root device: {} {s} GiB", self.root_device_name)?,
            None => writeln!(
                f,
                "  root device: {} (source size) GiB",
                self.root_device_name
            )?,
        }
        for (region, ids) in &self.would_deregister {
            writeln!(f, "  would deregister in {region}: {}", ids.join(", "))?;
        }
        writeln!(f, "  would create:")?;
        for c in &self.would_create {
            writeln!(f, "    - {c}")?;
        }
        let actions: Vec<&str> = self.actions.iter().copied().collect();
        writeln!(f, "  EC2 actions: {}", actions.join(", "))
    }
}
