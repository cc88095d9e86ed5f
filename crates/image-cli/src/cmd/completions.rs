//! `image-cli completions SHELL`: the shell completion script (bash, zsh,
//! fish, elvish, powershell) on stdout, generated from the command line
//! definition by clap_complete, so it never lags behind the flags.
//!
//! ```text
//! image-cli completions bash > ~/.local/share/bash-completion/completions/image-cli
//! image-cli completions zsh  > "${fpath[1]}/_image-cli"
//! image-cli completions fish > ~/.config/fish/completions/image-cli.fish
//! ```

use std::io::Write;

use clap::{Args as ClapArgs, CommandFactory};
use clap_complete::Shell;

use crate::exit::Exit;

/// Arguments of `completions`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the script to stdout.
pub fn run(args: &Args) -> Exit {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "image-cli", &mut out);
    write_stdout(&out)
}

/// Writes `bytes` to stdout; a closed pipe or full disk is an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> Exit {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            Exit::Failed
        }
    }
}
