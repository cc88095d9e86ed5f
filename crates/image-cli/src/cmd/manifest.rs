//! `image-cli manifest table`: re-prints the region -> AMI table of the last
//! run recorded in a packer-style manifest (the builds whose
//! `packer_run_uuid` is the manifest's `last_run_uuid`), as
//! [`image_aws::ami_table::AmiTable`] builds and renders it.
//!
//! ```text
//! image-cli manifest table [--manifest FILE] [--format markdown|csv|json]
//! ```

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use image_aws::ami_table::{AmiTable, TableFormat};

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

fn table(args: &TableArgs) -> Exit {
    let table = match AmiTable::read_last_run(&args.manifest) {
        Ok(t) => t,
        Err(e) => {
            crate::report::err_line(&format!(
                "error: {e}\n  help: name the manifest `image-cli build` wrote with --manifest FILE"
            ));
            return Exit::BadInput;
        }
    };
    print!("{}", table.render(args.format.into()));
    Exit::Ok
}

impl From<Format> for TableFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Markdown => TableFormat::Markdown,
            Format::Csv => TableFormat::Csv,
            Format::Json => TableFormat::Json,
        }
    }
}
