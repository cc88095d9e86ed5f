//! `--ssh-source-cidr`, the flag of every command that launches an
//! instance (`build`, `test`): one struct, flattened into each, so the
//! flag reads the same everywhere, and one conversion to the library's
//! [`image_aws::RunOptions`], which checks the values and applies them
//! ([`image_aws::BuildRequest::for_run`]).

use clap::Args as ClapArgs;
use image_aws::{OnError, RunOptions};

/// Who may reach the instance over SSH.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct SshSourceArgs {
    /// Allow SSH into the temporary security group from this CIDR
    /// (repeatable; replaces the definition's
    /// temporary_security_group_source_cidrs). With neither (nor
    /// security_group_ids), SSH is allowed from this machine's public
    /// address /32, learned from https://checkip.amazonaws.com (or
    /// $IMAGE_BUILDER_CHECKIP_URL) before any EC2 call; never from
    /// 0.0.0.0/0. ssh_interface private_ip/private_dns needs CIDRs (e.g.
    /// the VPC's).
    #[arg(long = "ssh-source-cidr", value_name = "CIDR")]
    pub ssh_source_cidrs: Vec<String>,
}

impl SshSourceArgs {
    /// The run's options, with `on_error`.
    pub fn run_options(&self, on_error: OnError) -> RunOptions {
        RunOptions {
            ssh_source_cidrs: self.ssh_source_cidrs.clone(),
            ssh_source_cidrs_flag: Some("--ssh-source-cidr".to_string()),
            on_error,
        }
    }
}
