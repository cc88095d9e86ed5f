//! image-provision
