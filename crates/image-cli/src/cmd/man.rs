//! `image-cli man [SUBCOMMAND]`: the man page (roff) on stdout, generated
//! from the command line definition by clap_mangen: `image-cli(1)`, or
//! `image-cli-SUBCOMMAND(1)` for one subcommand.
//!
//! ```text
//! image-cli man | man -l -
//! image-cli man > ~/.local/share/man/man1/image-cli.1
//! image-cli man build > ~/.local/share/man/man1/image-cli-build.1
//! ```

use clap::{Args as ClapArgs, CommandFactory};

use crate::exit::Exit;

/// Arguments of `man`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The page of this subcommand (default: the main page).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// Writes the page to stdout.
pub fn run(args: &Args) -> Exit {
    let mut cmd = crate::Cli::command();
    // Builds the display names (`image-cli-build`) the pages are titled by.
    cmd.build();
    let page = match &args.subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone().version(env!("IMAGE_CLI_VERSION")),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
                eprintln!(
                    "error: no subcommand `{name}`; the subcommands: {}",
                    names.join(", ")
                );
                return Exit::BadInput;
            }
        },
    };
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
        eprintln!("error: rendering the man page: {e}");
        return Exit::Failed;
    }
    super::completions::write_stdout(&out)
}
