//! Checks of flag values that name AWS things (`--ami`, `--region`), made
//! before any AWS call so that a typo is an exit-2 error naming the flag,
//! with a `help:` line, not a failed or slow request. (`--ssh-source-cidr`
//! is checked by the library: [`image_aws::RunOptions::problems`].)

use image_core::diag::{Diagnostic, Diagnostics};
use image_core::spec::check;

/// `--ami`: an AMI id.
pub fn ami(flag: &str, value: Option<&str>, diags: &mut Diagnostics) {
    if let Some(v) = value.filter(|v| !check::is_ami_id(v)) {
        diags.push(
            Diagnostic::error(None, format!("invalid {flag} `{v}`: not an AMI id"))
                .with_help("AMI ids look like `ami-0123456789abcdef0`"),
        );
    }
}

/// `--region` values: regions of a known partition.
pub fn regions(flag: &str, values: &[String], diags: &mut Diagnostics) {
    for v in values {
        if !check::is_region(v) {
            diags.push(
                Diagnostic::error(None, format!("invalid {flag} `{v}`: not a region name"))
                    .with_help("regions look like `us-east-1`, `eu-west-2` or `us-gov-west-1`"),
            );
        } else if !check::is_known_region(v) {
            diags.push(
                Diagnostic::error(None, format!("unknown {flag} `{v}`: no such AWS region"))
                    .with_help(
                        "check the name (`aws ec2 describe-regions` lists the account's regions)",
                    ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_errors_with_help() {
        let mut d = Diagnostics::default();
        ami("--ami", Some("ami-nothex"), &mut d);
        ami("--ami", Some("ami-0123456789abcdef0"), &mut d);
        regions(
            "--region",
            &["us-east-1".into(), "moon-1".into(), "us-east-9".into()],
            &mut d,
        );
        let s = d.to_string();
        assert_eq!(d.0.len(), 3, "{s}");
        assert!(s.contains("invalid --ami `ami-nothex`"), "{s}");
        assert!(s.contains("invalid --region `moon-1`"), "{s}");
        assert!(s.contains("unknown --region `us-east-9`"), "{s}");
        assert!(d.0.iter().all(|x| x.help.is_some()));
    }
}
