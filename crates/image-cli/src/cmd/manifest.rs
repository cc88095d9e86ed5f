//! `image-cli manifest table`: re-prints the region -> AMI table of the last
//! run recorded in a packer-style manifest (the builds whose
//! `packer_run_uuid` is the manifest's `last_run_uuid`).
//!
//! ```text
//! image-cli manifest table [--manifest FILE] [--format markdown|csv|json]
//! ```

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use image_aws::manifest::{Manifest, ManifestBuild};
use serde_json::json;

use crate::exit::Exit;

/// Arguments of `manifest`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// `manifest` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the region -> AMI table of the last run.
    Table(TableArgs),
}

/// Table formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `| Region | AMI |` per build.
    Markdown,
    /// `build,region,ami` lines with a header.
    Csv,
    /// `[{"build", "region", "ami"}]`.
    Json,
}

/// Arguments of `manifest table`.
#[derive(Debug, ClapArgs)]
pub struct TableArgs {
    /// The manifest written by `image-cli build` (or packer).
    #[arg(long, value_name = "FILE", default_value = "manifest.json")]
    pub manifest: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
}

/// Runs `manifest`.
pub fn run(args: &Args) -> Exit {
    match &args.action {
        Action::Table(t) => table(t),
    }
}

/// `(build, region, ami)` of the builds of the last run, in manifest order.
fn rows(m: &Manifest) -> Result<Vec<(String, String, String)>, String> {
    let last: Vec<&ManifestBuild> = m
        .builds
        .iter()
        .filter(|b| b.packer_run_uuid == m.last_run_uuid)
        .collect();
    let mut out = Vec::new();
    for b in last {
        for pair in b.artifact_id.split(',').filter(|p| !p.trim().is_empty()) {
            let (region, ami) = pair.trim().split_once(':').ok_or_else(|| {
                format!("build `{}`: artifact id `{pair}` is not region:ami", b.name)
            })?;
            out.push((b.name.clone(), region.to_string(), ami.to_string()));
        }
    }
    Ok(out)
}

fn table(args: &TableArgs) -> Exit {
    let text = match std::fs::read_to_string(&args.manifest) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.manifest.display());
            return Exit::BadInput;
        }
    };
    let m: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: {} is not a packer manifest: {e}",
                args.manifest.display()
            );
            return Exit::BadInput;
        }
    };
    let rows = match rows(&m) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", args.manifest.display());
            return Exit::BadInput;
        }
    };
    print!("{}", render(&rows, args.format));
    Exit::Ok
}

fn render(rows: &[(String, String, String)], format: Format) -> String {
    let mut s = String::new();
    match format {
        Format::Markdown => {
            let mut current: Option<&str> = None;
            for (b, r, a) in rows {
                if current != Some(b.as_str()) {
                    if current.is_some() {
                        s.push('\n');
                    }
                    s.push_str(&format!("### {b}\n\n| Region | AMI |\n| --- | --- |\n"));
                    current = Some(b);
                }
                s.push_str(&format!("| {r} | {a} |\n"));
            }
        }
        Format::Csv => {
            s.push_str("build,region,ami\n");
            for (b, r, a) in rows {
                s.push_str(&format!("{b},{r},{a}\n"));
            }
        }
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|(b, r, a)| json!({"build": b, "region": r, "ami": a}))
                .collect();
            s.push_str(&format!("{}\n", serde_json::Value::Array(v)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_run_only_in_every_format() {
        let b = |name: &str, run: &str, art: &str| ManifestBuild {
            name: name.into(),
            builder_type: "amazon-ebs".into(),
            build_time: 1,
            files: None,
            artifact_id: art.into(),
            packer_run_uuid: run.into(),
            custom_data: None,
        };
        let m = Manifest {
            builds: vec![
                b("old", "r1", "us-east-1:ami-0"),
                b("u", "r2", "eu-west-1:ami-1,us-east-1:ami-2"),
            ],
            last_run_uuid: "r2".into(),
        };
        let r = rows(&m).unwrap();
        assert_eq!(r.len(), 2);
        assert!(render(&r, Format::Markdown).contains("| eu-west-1 | ami-1 |"));
        assert_eq!(
            render(&r, Format::Csv).lines().nth(2),
            Some("u,us-east-1,ami-2")
        );
        assert!(render(&r, Format::Json).contains(r#""ami":"ami-1""#));
    }
}
