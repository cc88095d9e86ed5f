//! [`BuildRequest::from_plan`]: a resolved image definition build
//! (`image_core::spec::Plan`) as an EC2 [`BuildRequest`]. Both hold the same
//! [`image_core::spec::BuildSettings`], taken as it is; what is mapped is
//! what the definition spells differently (key pair, security group, SSH,
//! user data file) or only a run has (waits). The only I/O is reading
//! `user_data_file`.

use std::fmt;

use image_core::diag::{Diagnostic, Diagnostics};
use image_core::spec::{check, Plan};

use crate::request::{
    BuildRequest, KeyPairSpec, OnError, SecurityGroupSpec, SshSpec, WaitSettings,
};

/// A plan that cannot become a build request: every problem, for one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// The build's name.
    pub build: String,
    /// What is wrong, each telling what to set.
    pub problems: Vec<String>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "build `{}`: {}", self.build, self.problems.join("; "))
    }
}

impl std::error::Error for PlanError {}

/// What one run adds to a definition's builds: the choices a command line
/// (or an embedding tool) makes, as `image-cli build` and `image-cli test`
/// do through [`BuildRequest::for_run`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// When not empty, replaces every build's
    /// `temporary_security_group_source_cidrs`.
    pub ssh_source_cidrs: Vec<String>,
    /// How the user gives `ssh_source_cidrs` (a flag such as
    /// `--ssh-source-cidr`), named in errors; `None`: `ssh_source_cidrs`.
    pub ssh_source_cidrs_flag: Option<String>,
    /// What happens to what a failed build made.
    pub on_error: OnError,
}

impl RunOptions {
    fn flag(&self) -> &str {
        self.ssh_source_cidrs_flag
            .as_deref()
            .unwrap_or("ssh_source_cidrs")
    }

    /// The options' own problems (a source CIDR that is none), to report
    /// before reading anything else; [`BuildRequest::for_run`] checks them
    /// too.
    pub fn problems(&self) -> Diagnostics {
        let mut diags = Diagnostics::default();
        for v in self.ssh_source_cidrs.iter().filter(|v| !check::is_cidr(v)) {
            diags.push(
                Diagnostic::error(
                    None,
                    format!("invalid {} `{v}`: not a CIDR block", self.flag()),
                )
                .with_help("use an address and a prefix length, like `203.0.113.7/32` or `::/0`"),
            );
        }
        diags
    }
}

impl BuildRequest {
    /// The requests of `plans` for one run: [`RunOptions`] applied, the
    /// waits set by packer's `AWS_POLL_DELAY_SECONDS` / `AWS_MAX_ATTEMPTS`
    /// as `env` gives them ([`crate::wait_env`]; this crate reads no
    /// environment itself), and every problem of every build as
    /// diagnostics.
    ///
    /// ```no_run
    /// # fn demo(plans: &[image_core::spec::Plan]) -> Result<(), image_core::diag::Diagnostics> {
    /// use image_aws::{BuildRequest, OnError, RunOptions};
    ///
    /// let run = RunOptions {
    ///     ssh_source_cidrs: vec!["203.0.113.0/24".into()],
    ///     on_error: OnError::Abort,
    ///     ..Default::default()
    /// };
    /// let reqs = BuildRequest::for_run(plans, &run, |k| std::env::var(k).ok())?;
    /// # Ok(()) }
    /// ```
    pub fn for_run(
        plans: &[Plan],
        run: &RunOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<BuildRequest>, Diagnostics> {
        let mut diags = run.problems();
        if diags.has_errors() {
            return Err(diags);
        }
        let mut reqs = Vec::new();
        for plan in plans {
            let (mut req, problems) = if run.ssh_source_cidrs.is_empty() {
                Self::from_plan_lenient(plan)
            } else {
                let mut plan = plan.clone();
                plan.temporary_security_group_source_cidrs = run.ssh_source_cidrs.clone();
                Self::from_plan_lenient(&plan)
            };
            for problem in problems {
                let hint = match &run.ssh_source_cidrs_flag {
                    Some(f) if problem.contains("temporary_security_group_source_cidrs") => {
                        format!(" (or pass {f} CIDR)")
                    }
                    _ => String::new(),
                };
                diags.push(Diagnostic::error(
                    None,
                    format!("build `{}`: {problem}{hint}", plan.name),
                ));
            }
            match crate::wait_env::wait_settings_from_env(&req.wait, &env) {
                Ok(w) => req.wait = w,
                Err(e) => diags.push(
                    Diagnostic::error(None, e)
                        .with_help("unset the variable or give it a usable value"),
                ),
            }
            req.on_error = run.on_error;
            reqs.push(req);
        }
        if diags.has_errors() {
            Err(diags)
        } else {
            Ok(reqs)
        }
    }

    /// Maps every field of `plan` onto a request. Neither
    /// `security_group_ids` nor `temporary_security_group_source_cidrs`
    /// means a temporary group open to this machine's public address
    /// (learned when the build starts; 0.0.0.0/0 is never assumed). Errors
    /// (all at once): an unreadable `user_data_file`, and whatever
    /// [`BuildRequest::validate`] finds (e.g. no CIDRs with a private
    /// `ssh_interface`, which a public address cannot reach).
    pub fn from_plan(plan: &Plan) -> Result<BuildRequest, PlanError> {
        let (req, problems) = Self::from_plan_lenient(plan);
        if problems.is_empty() {
            Ok(req)
        } else {
            Err(PlanError {
                build: plan.name.clone(),
                problems,
            })
        }
    }

    /// As [`BuildRequest::from_plan`], but returns the request even when it
    /// has problems (listed next to it): enough for what does not run a
    /// build, like computing its IAM policy.
    pub fn from_plan_lenient(plan: &Plan) -> (BuildRequest, Vec<String>) {
        let mut problems = Vec::new();
        // The settings are one struct in both.
        let mut req = BuildRequest::with_settings(&plan.name, plan.settings.clone());

        // What the definition spells differently or only a run has.
        req.user_data = match (&plan.user_data, &plan.user_data_file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(f)) => match std::fs::read_to_string(&f.path) {
                Ok(text) => Some(text),
                Err(e) => {
                    problems.push(format!(
                        "user_data_file {} ({}): {e}",
                        f.path.display(),
                        f.loc
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        // The definition refuses one of the two without the other, at its
        // line (spec/build.rs).
        req.key_pair = match (&plan.ssh_keypair_name, &plan.ssh_private_key_file) {
            (Some(name), Some(file)) => KeyPairSpec::Existing {
                name: name.clone(),
                private_key_file: file.path.display().to_string(),
            },
            _ => KeyPairSpec::Generate,
        };
        // No CIDRs: this machine's public address, learned at build time;
        // `validate` below refuses that with a private `ssh_interface`.
        req.security_group = if !plan.security_group_ids.is_empty() {
            SecurityGroupSpec::Ids(plan.security_group_ids.clone())
        } else {
            SecurityGroupSpec::Temporary {
                source_cidrs: plan.temporary_security_group_source_cidrs.clone(),
            }
        };
        req.ssh = SshSpec {
            connect: true,
            interface: plan.ssh_interface,
            host: plan.ssh_host.clone(),
            port: plan.ssh_port,
            username: plan.ssh_username.clone(),
            timeout_secs: plan.ssh_timeout.as_secs().max(1),
            host_key_from_console: plan.ssh_host_key_from_console,
        };
        req.wait = WaitSettings {
            image_timeout_secs: plan.image_wait_timeout.as_secs().max(1),
            ..WaitSettings::default()
        };
        if let Err(errs) = req.validate() {
            problems.extend(errs);
        }
        (req, problems)
    }
}

#[cfg(test)]
mod tests {
    use image_core::spec::load::{load, Request};
    use image_core::spec::Selection;

    use super::*;

    fn plans(yaml: &str, vars: &[&str]) -> Vec<Plan> {
        let dir = std::env::temp_dir().join(format!(
            "image-aws-from-plan-{}-{}",
            std::process::id(),
            yaml.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spec.yaml");
        std::fs::write(&path, yaml).unwrap();
        let req = Request {
            spec: Some(path),
            var_files: Vec::new(),
            vars: vars.iter().map(|s| s.to_string()).collect(),
            selection: Selection::from_lists(&[], &[]),
        };
        let out = load(&req, 1_700_000_000)
            .unwrap_or_else(|d| panic!("{d}"))
            .resolved
            .plans;
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    const SPEC: &str = r#"
defaults:
  region: us-east-1
  instance_type: t3.small
  ssh_username: ubuntu
  source_ami: { owners: ["099720109477"], name: "ubuntu/*noble*", architecture: x86_64 }
builds:
  a:
    ami_name: "a-{{ timestamp }}"
    temporary_security_group_source_cidrs: ["198.51.100.7/32"]
    ami_regions: [us-west-2, eu-west-1]
    ami_users: ["111122223333"]
    tags: { k8s: "1.31" }
    ssh_host: 127.0.0.1
    ssh_port: 2222
  b:
    ami_name: "b-{{ timestamp }}"
    ami_regions: all
    run_volume_tags: { team: nodes }
    imds_support: v2.0
    ena_support: true
    boot_mode: uefi
    tpm_support: v2.0
    root_device: { volume_type: io2, iops: 4000 }
"#;

    #[test]
    fn maps_fields_and_refuses_open_ssh() {
        let p = plans(SPEC, &[]);
        let a = BuildRequest::from_plan(&p[0]).unwrap();
        assert_eq!(a.ami_name, "a-1700000000");
        assert_eq!(a.ami_regions.list(), ["us-west-2", "eu-west-1"]);
        assert!(!a.ami_regions.is_all());
        assert_eq!(a.ssh.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.ssh.port, 2222);
        assert_eq!(a.ssh.username, "ubuntu");
        assert_eq!(a.ami_users, ["111122223333"]);
        assert_eq!(a.tags["k8s"], "1.31");
        assert_eq!(a.key_pair, KeyPairSpec::Generate);
        assert_eq!(
            a.security_group,
            SecurityGroupSpec::Temporary {
                source_cidrs: vec!["198.51.100.7/32".into()]
            }
        );
        match &a.source_ami {
            image_core::spec::SourceAmi::Filter(f) => {
                assert_eq!(f.architecture, image_core::spec::Architecture::X86_64);
                assert!(f.most_recent);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.ami_options.imds_support, None);
        // No CIDRs: this machine's public address, learned at build time.
        let b = BuildRequest::from_plan(&p[1]).unwrap_or_else(|e| panic!("{e}"));
        // packer's names: `run_volume_tags` are the launch volumes' tags.
        assert_eq!(b.volume_tags["team"], "nodes");
        assert_eq!(
            b.ami_options.imds_support,
            Some(image_core::spec::ami_options::ImdsSupport::V2)
        );
        assert!(b.ami_regions.is_all());
        // The plan's values as they are: the same types.
        assert_eq!(b.ami_options, p[1].ami_options);
        assert_eq!(
            b.ami_options.boot_mode,
            Some(image_core::spec::ami_options::BootMode::Uefi)
        );
        assert_eq!(b.ami_options.ena_support, Some(true));
        assert_eq!(b.root_device, p[1].root_device);
        assert_eq!(b.root_device.iops, Some(4000));
        assert_eq!(b.security_group, SecurityGroupSpec::default());
        assert_eq!(
            b.security_group,
            SecurityGroupSpec::Temporary {
                source_cidrs: Vec::new()
            }
        );
    }

    #[test]
    fn a_private_interface_without_cidrs_is_a_problem() {
        let spec = r#"
defaults:
  region: us-east-1
  instance_type: t3.small
  ssh_username: ubuntu
  ssh_interface: private_ip
  source_ami: { owners: ["099720109477"], name: "ubuntu/*noble*", architecture: x86_64 }
builds:
  no-cidrs:
    ami_name: "a-{{ timestamp }}"
  vpc-cidr:
    ami_name: "b-{{ timestamp }}"
    temporary_security_group_source_cidrs: ["10.0.0.0/16"]
  through-host:
    ami_name: "c-{{ timestamp }}"
    ssh_host: bastion.example.com
  groups:
    ami_name: "d-{{ timestamp }}"
    security_group_ids: ["sg-0123456789abcdef0"]
"#;
        let p = plans(spec, &[]);
        assert_eq!(p.len(), 4);
        for plan in &p {
            let r = BuildRequest::from_plan(plan);
            if plan.name != "no-cidrs" {
                r.unwrap_or_else(|e| panic!("{e}"));
                continue;
            }
            let e = r.unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("ssh_interface is private_ip")
                    && msg.contains("`temporary_security_group_source_cidrs`")
                    && msg.contains("VPC's CIDR"),
                "{msg}"
            );
        }
    }
}
