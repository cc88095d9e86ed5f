//! The flags of every command that works on a host (`provision`, `verify`,
//! `verify add`, `verify autoadd`): one struct, flattened into each, so the
//! names, short forms and help read the same everywhere, and one conversion
//! to image-core's [`TargetSpec`] (`--host` parsed by
//! [`image_core::ssh::HostAddr`]).
//!
//! ```text
//! [--host [USER@]HOST[:PORT] -i KEY | --local] [-b|--become [--become-user USER]]
//! ```
//!
//! A command may tighten a flag where it flattens the struct, e.g.
//! `provision` requires `--host` unless `--local` (or `--syntax-check`) is
//! given: `#[command(mut_arg("host", ...))]`.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use image_core::target::Become;
use image_core::target_spec::TargetSpec;

/// Where a command works, and as whom.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct HostArgs {
    /// Work on this host over SSH: [USER@]HOST[:PORT] (user root unless
    /// given; an IPv6 address in brackets when a port follows).
    #[arg(long, value_name = "[USER@]HOST[:PORT]", conflicts_with = "local")]
    pub host: Option<String>,
    /// The SSH private key for --host.
    #[arg(long, short = 'i', value_name = "KEY", requires = "host")]
    pub identity: Option<PathBuf>,
    /// Work on this machine instead of a host over SSH (what `verify` does
    /// without --host).
    #[arg(long)]
    pub local: bool,
    /// Run as root (or --become-user) through `sudo -n`: provisioning tasks
    /// unless a play or task says otherwise, and every check or observation.
    #[arg(long = "become", short = 'b')]
    pub become_: bool,
    /// The user to become with --become (default root); when provisioning,
    /// also for plays and tasks that say `become: true`.
    #[arg(long, value_name = "USER")]
    pub become_user: Option<String>,
}

impl HostArgs {
    /// The target the flags name: this machine without `--host`; errors
    /// (a bad `--host`, a host without `--identity`) say what is wrong.
    pub fn target(&self) -> Result<TargetSpec, String> {
        TargetSpec::from_flags(self.host.as_deref(), self.identity.clone())
    }

    /// Whom to become with `--become` (none without it).
    pub fn become_as(&self) -> Option<Become> {
        self.become_.then(|| match &self.become_user {
            Some(user) => Become { user: user.clone() },
            None => Become::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        host: HostArgs,
    }

    fn parse(args: &[&str]) -> Result<HostArgs, clap::Error> {
        Cmd::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.host)
    }

    #[test]
    fn host_key_and_become() {
        let h = parse(&[
            "--host",
            "u@[::1]:2222",
            "-i",
            "k",
            "-b",
            "--become-user",
            "app",
        ])
        .unwrap();
        assert_eq!(
            h.target().unwrap(),
            TargetSpec::Ssh {
                user: Some("u".into()),
                host: "::1".into(),
                port: 2222,
                identity: Some("k".into()),
            }
        );
        assert_eq!(h.become_as().unwrap().user, "app");
        assert!(parse(&[]).unwrap().become_as().is_none());
        assert_eq!(
            parse(&["--local"]).unwrap().target().unwrap(),
            TargetSpec::Local
        );
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["--host", "h", "--local"]).is_err());
        assert!(parse(&["-i", "k"]).is_err());
        assert_eq!(
            parse(&["--host", "h"]).unwrap().target(),
            Err("--host needs --identity KEY".to_string())
        );
    }
}
