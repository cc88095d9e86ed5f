//! Command-line usage errors (clap's), printed like every other error of
//! `image-cli`: one `error:` line, then a `help:` line that says what to do
//! (clap's tip when it has one, else the `--help` of the command at fault);
//! exit 2. `--help` and `--version` print as clap prints them.

use clap::error::ErrorKind;

use crate::exit::Exit;

/// Prints `e`, an error of parsing `args` (without the program name) with
/// `root`, and returns how `image-cli` ends.
pub fn report(e: clap::Error, root: &clap::Command, args: &[String]) -> Exit {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // Help on stdout (exit 0), or on stderr for a bare `image-cli` (2).
        e.exit();
    }
    let (error, help) = error_and_help(&e.render().to_string(), &command_path(root, args));
    crate::report::err_line(&format!("{error}\n  help: {help}"));
    Exit::BadInput
}

/// The subcommands `args` name, after the binary's name: `image-cli verify
/// render`.
fn command_path(root: &clap::Command, args: &[String]) -> String {
    let mut path = vec![root.get_name().to_string()];
    let mut cmd = root;
    for a in args {
        if let Some(sub) = cmd.find_subcommand(a) {
            path.push(sub.get_name().to_string());
            cmd = sub;
        }
    }
    path.join(" ")
}

/// clap's rendered error as one `error:` line and the text of a `help:`
/// line (`command` names the command whose `--help` to read).
fn error_and_help(rendered: &str, command: &str) -> (String, String) {
    let mut paragraphs = rendered.split("\n\n").map(str::trim_end);
    let error = paragraphs
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let tips: Vec<&str> = paragraphs
        .flat_map(str::lines)
        .filter_map(|l| l.trim().strip_prefix("tip: "))
        .collect();
    let help = if tips.is_empty() {
        format!("see `{command} --help` for what it takes")
    } else {
        tips.join("; ")
    };
    (error, help)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn the_help_names_the_subcommand_at_fault() {
        let root = Command::new("image-cli").subcommand(
            Command::new("verify")
                .arg(Arg::new("host").long("host"))
                .subcommand(Command::new("render")),
        );
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_path(&root, &args(&["verify", "--host", "h", "render"])),
            "image-cli verify render"
        );
        assert_eq!(command_path(&root, &args(&["bogus"])), "image-cli");
    }

    #[test]
    fn clap_errors_become_an_error_line_and_a_help_line() {
        let (e, h) = error_and_help(
            "error: unexpected argument '--onyl' found\n\n  tip: to pass '--onyl' as a value, use '-- --onyl'\n\nUsage: image-cli provision [OPTIONS] <STEPS>\n\nFor more information, try '--help'.\n",
            "image-cli provision",
        );
        assert_eq!(e, "error: unexpected argument '--onyl' found");
        assert_eq!(h, "to pass '--onyl' as a value, use '-- --onyl'");
        let (e, h) = error_and_help(
            "error: the following required arguments were not provided:\n  <GOSSFILE>\n\nUsage: image-cli verify render <GOSSFILE>\n\nFor more information, try '--help'.\n",
            "image-cli verify render",
        );
        assert_eq!(
            e,
            "error: the following required arguments were not provided: <GOSSFILE>"
        );
        assert_eq!(h, "see `image-cli verify render --help` for what it takes");
    }
}
