//! `image-cli init DIR`: writes the built-in image definition and the files
//! it uses (`kubernetes.yaml`, `node/`: the node playbook, roles, goss
//! files) into `DIR`, to copy and change. The written definition works as
//! it is: `image-cli build DIR/kubernetes.yaml`.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use crate::exit::Exit;
use crate::report;

/// Arguments of `init`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
    /// The directory to write to (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the files; lists them on stdout. Existing files are an error
/// (exit 2) unless `--force`.
pub fn run(args: &Args) -> Exit {
    match image_core::builtin::write_files(&args.dir, args.force) {
        Ok(written) => {
            for p in &written {
                println!("{}", p.display());
            }
            println!(
                "wrote {} files; build with: image-cli build {}",
                written.len(),
                args.dir.join("kubernetes.yaml").display()
            );
            Exit::Ok
        }
        Err(d) => {
            report::diagnostics(&d);
            Exit::BadInput
        }
    }
}
