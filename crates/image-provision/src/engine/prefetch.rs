//! What a batch of checks gathers before its checks run (issue #16).
//!
//! A check script names the files it will `st_` or `sum_` in comment lines
//! (`#@@st PATH`, `#@@sum CMD PATH`; see `script::hint_stat` and
//! `script::hint_sum`). The batch (`coalesce.rs`) starts with what this
//! module writes: one `stat` for all the named paths and one hash command
//! per algorithm for the named regular files, into shell variables the
//! checks' `st_` and `sum_` read (in check mode only). A batch's checks
//! change nothing, so what was gathered stays true while they run. The
//! checks then start no `stat` or hash of their own for those paths:
//! on the generated provisioning list, most of a re-run's ~90 `stat`
//! processes and ~30 hashes.

use std::collections::BTreeMap;

use crate::script::{q, HINT_SUMS};

/// The most paths one batch gathers (each check names a few).
const MAX_PATHS: usize = 256;

/// The paths the scripts name: those to `stat`, and per hash command
/// those to hash, each once, in order of first mention.
#[derive(Default)]
struct Hints<'a> {
    stat: Vec<&'a str>,
    sums: BTreeMap<&'a str, Vec<&'a str>>,
}

fn hints<'a>(scripts: impl IntoIterator<Item = &'a str>) -> Hints<'a> {
    let mut h = Hints::default();
    let mut n = 0;
    for s in scripts {
        for line in s.lines().filter(|l| l.starts_with("#@@")) {
            if n >= MAX_PATHS {
                return h;
            }
            if let Some(p) = line.strip_prefix("#@@st ") {
                if !h.stat.contains(&p) {
                    h.stat.push(p);
                    n += 1;
                }
            } else if let Some((cmd, p)) =
                line.strip_prefix("#@@sum ").and_then(|r| r.split_once(' '))
            {
                if HINT_SUMS.contains(&cmd) {
                    let l = h.sums.entry(cmd).or_default();
                    if !l.contains(&p) {
                        l.push(p);
                        n += 1;
                    }
                }
            }
        }
    }
    h
}

/// `'\nP1\nP2\n'`: the list `st_` and `sum_` look a path up in.
fn listed(paths: &[&str]) -> String {
    let mut s = String::from("\n");
    for p in paths {
        s.push_str(p);
        s.push('\n');
    }
    q(&s)
}

/// The shell code that gathers what `scripts` name (empty when they name
/// nothing). It leaves no positional parameters set. The variables are
/// exported: a check that runs in a `sh` of its own (one whose script
/// uses `$$`, as `get_url`'s does) reads them too.
pub(super) fn prologue<'a>(scripts: impl IntoIterator<Item = &'a str>) -> String {
    let h = hints(scripts);
    let mut s = String::new();
    if !h.stat.is_empty() {
        let args: Vec<String> = h.stat.iter().map(|p| q(p)).collect();
        s.push_str(&format!(
            "_STH={}\n_STC=\"\n$(stat -c '%n|%a %U %u %G %g %s %h' -- {} 2>/dev/null)\n\"\nexport _STH _STC\n",
            listed(&h.stat),
            args.join(" ")
        ));
    }
    for (cmd, paths) in &h.sums {
        let args: Vec<String> = paths.iter().map(|p| q(p)).collect();
        // Regular files only: a FIFO named as a destination would block
        // the whole batch (a check of its own would stop at it alone).
        s.push_str(&format!(
            "set --; for _f in {}; do [ -f \"$_f\" ] && set -- \"$@\" \"$_f\"; done\n\
             _SUMH_{cmd}={}\n_SUM_{cmd}=\"\n$([ $# = 0 ] || {cmd} -- \"$@\" 2>/dev/null)\n\"\nexport _SUMH_{cmd} _SUM_{cmd}\nset --\n",
            args.join(" "),
            listed(paths),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{hint_stat, hint_sum};

    #[test]
    fn gathers_each_named_path_once_and_skips_what_cannot_be_named() {
        let a = format!(
            "{}{}{}main\n",
            hint_stat("/etc/a b"),
            hint_sum("sha256sum", "/etc/a b"),
            hint_stat("/bad|path")
        );
        let b = format!("{}{}", hint_stat("/etc/a b"), hint_sum("md5sum", "/x"));
        let h = hints([a.as_str(), b.as_str(), "#@@sum rm /etc", "#@@st"]);
        assert_eq!(h.stat, ["/etc/a b"]);
        assert_eq!(h.sums["sha256sum"], ["/etc/a b"]);
        assert_eq!(h.sums["md5sum"], ["/x"]);
        assert_eq!(h.sums.len(), 2, "rm is no hash command");
        assert!(prologue(["echo"]).is_empty());
    }

    /// `st_` and `sum_` answer the same from what a batch gathered as on
    /// their own, for files, a directory, a symlink, a FIFO, a missing
    /// path, names with spaces and glob characters, and a path that was
    /// not named.
    #[test]
    fn gathered_answers_are_the_answers_of_the_checks_own_commands() {
        let dir = std::env::temp_dir().join(format!("image-cli-prefetch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub dir")).unwrap();
        let d = dir.to_str().unwrap();
        std::fs::write(dir.join("a"), "one\n").unwrap();
        std::fs::write(dir.join("x *"), "two\n").unwrap();
        std::fs::write(dir.join("x y"), "three\n").unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("ln")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());
        let named = ["a", "x *", "x y", "sub dir", "ln", "missing", "fifo"];
        let mut body = String::new();
        for n in named {
            let p = format!("{d}/{n}");
            body.push_str(&hint_stat(&p));
            body.push_str(&hint_sum("sha256sum", &p));
            body.push_str(&hint_sum("md5sum", &p));
        }
        let mut calls = String::new();
        for n in named.iter().chain(&["unnamed"]) {
            let p = q(&format!("{d}/{n}"));
            if *n != "fifo" {
                calls.push_str(&format!("sum_ sha256sum {p} 2>/dev/null; echo \"$_h\"\n"));
                calls.push_str(&format!("sum_ md5sum {p} 2>/dev/null; echo \"$_h\"\n"));
            }
            calls.push_str(&format!(
                "st_ {p}; echo \"$_sp|$_sa|$_su|$_sui|$_sg|$_sgi|$_ss|$_sh\"\n"
            ));
        }
        let run = |pre: &str| {
            let script = format!("CHECK=1\n{}{pre}{body}{calls}", crate::script::PRELUDE);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let pre = prologue([body.as_str()]);
        assert!(
            pre.contains("sha256sum --") && pre.contains("md5sum --"),
            "{pre}"
        );
        let alone = run("");
        let gathered = run(&pre);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(gathered, alone);
        assert!(
            alone.contains("|644|") || alone.contains("|664|"),
            "{alone}"
        );
        assert!(alone.lines().count() > 20);
    }
}
