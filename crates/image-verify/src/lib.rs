//! image-verify
