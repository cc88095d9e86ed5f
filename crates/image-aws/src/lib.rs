//! image-aws
