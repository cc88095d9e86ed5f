//! What a user installing the binary gets besides the commands:
//! `--version` with the commit it was built from, shell completions and man
//! pages generated from the command line definition.

use std::path::Path;
use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-cli"))
        .args(args)
        .output()
        .expect("image-cli runs")
}

fn stdout_of(args: &[&str]) -> String {
    let out = cli(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "image-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `git rev-parse --short HEAD` of this checkout, if it is one.
fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let v = stdout_of(&["--version"]);
    let expected = match (std::env::var("IMAGE_CLI_GIT_COMMIT"), git_commit()) {
        (Ok(c), _) if !c.trim().is_empty() => {
            format!("image-cli {} ({})\n", env!("CARGO_PKG_VERSION"), c.trim())
        }
        (_, Some(c)) => format!("image-cli {} ({c})\n", env!("CARGO_PKG_VERSION")),
        (_, None) => format!("image-cli {}\n", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(v, expected);
    // `-V` is the same, and it needs no subcommand.
    assert_eq!(stdout_of(&["-V"]), expected);
}

#[test]
fn bash_completion_knows_the_subcommands_and_their_flags() {
    let s = stdout_of(&["completions", "bash"]);
    assert!(
        s.lines()
            .any(|l| l.trim_start().starts_with("complete -F ")
                && l.trim_end().ends_with(" image-cli")),
        "{s}"
    );
    for word in [
        "build",
        "cleanup",
        "verify",
        "provision",
        "completions",
        "man",
    ] {
        assert!(s.contains(word), "bash completion lacks `{word}`");
    }
    // Flags of `build` (from spec_args and build's own).
    for flag in ["--var-file", "--manifest", "--only"] {
        assert!(s.contains(flag), "bash completion lacks `{flag}`");
    }
    // The script is valid bash.
    if let Ok(out) = Command::new("bash").args(["-n", "-c", &s]).output() {
        assert!(
            out.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn zsh_fish_and_powershell_completions_are_generated() {
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef image-cli"), "{zsh}");
    assert!(zsh.contains("'--manifest=["), "zsh lacks build --manifest");
    let fish = stdout_of(&["completions", "fish"]);
    assert!(
        fish.lines()
            .any(|l| l.starts_with("complete -c image-cli") && l.contains("-a \"build\"")),
        "{fish}"
    );
    let ps = stdout_of(&["completions", "powershell"]);
    assert!(ps.contains("Register-ArgumentCompleter"), "{ps}");
}

#[test]
fn an_unknown_shell_is_bad_input() {
    let out = cli(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn man_page_lists_the_subcommands() {
    let page = stdout_of(&["man"]);
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect("a .TH line");
    assert!(th.starts_with(".TH image-cli 1 "), "{th}");
    assert!(th.contains(env!("CARGO_PKG_VERSION")), "{th}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in ["image\\-cli\\-build(1)", "image\\-cli\\-cleanup(1)"] {
        assert!(page.contains(sub), "main page lacks {sub}");
    }
    // The exit codes shown after --help are on the page too.
    assert!(page.contains("130"), "{page}");
}

#[test]
fn man_page_of_a_subcommand_documents_its_flags() {
    let page = stdout_of(&["man", "build"]);
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect("a .TH line");
    assert!(th.starts_with(".TH image-cli-build 1 "), "{th}");
    assert!(th.contains(env!("CARGO_PKG_VERSION")), "{th}");
    assert!(page.contains("\\-\\-manifest"), "{page}");

    let out = cli(&["man", "bulid"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no subcommand `bulid`") && err.contains("build"),
        "{err}"
    );
}

#[test]
fn man_renders_with_man_when_it_is_installed() {
    // `man -l -` reads the page from stdin; skip where man is absent.
    let Ok(probe) = Command::new("man").arg("--version").output() else {
        return;
    };
    if !probe.status.success() {
        return;
    }
    let page = stdout_of(&["man"]);
    let mut child = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("man runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(page.as_bytes()).expect("writing to man");
    }
    let out = child.wait_with_output().expect("man finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains("image-cli"),
        "{text}"
    );
}
