//! The few values that differ between two runs of the same playbook on two
//! identical targets whatever the tool, rewritten the same way on both sides
//! before they are compared. Each rule is narrow (one known shape) so that a
//! real difference next to it still shows:
//!
//! * backup names (`b.txt.279.2026-12-05@18:46:29~`): ansible's
//!   `backup_local` puts the module's pid and the local time in the name;
//!   [`backup_name`] keeps the file's name and the format, not the values.
//! * apt-get's `Fetched 132 kB in 0s (2,430 kB/s)`: the time and the speed
//!   of the download ([`text`], per line).
//! * OpenSSH's own `Shared connection to HOST closed.\r\n`: ansible runs
//!   `raw` and `script` through `ssh -tt` over a shared (ControlMaster)
//!   connection, and the ssh client writes that line to its standard error
//!   when the session ends; ansible returns it as the task's `stderr`. It is
//!   the client's message, not the target's output (on a terminal the
//!   command's standard error is in `stdout`), and image-cli uses no
//!   OpenSSH client: [`ansible_result`] takes exactly that line out of
//!   ansible's `stderr` (and `stderr_lines`), nothing else.
//!
//! * names made per run: the test bed's target names (`tb-<pid>-<n>`, the
//!   hostname a fresh target has, which ansible's `hostname` returns in
//!   `ansible_fqdn`), the controller's temp directories (`/tmp/.tmpXXXXXX`,
//!   each side's own `controller_dir` for `fetch`), and `tempfile`'s random
//!   part (`/ansible.` + 8 characters) ([`names`]); a file a module
//!   downloads (dnf's package URL) into its temporary directory
//!   (`.ansible/tmp/ansible-moduletmp-TIME-RANDOM/NAME` + 8 random
//!   characters + `.EXT`) ([`module_tmp`]).
//! * systemd's records of a unit's commands (`ExecStart={ path=... ; pid=7464
//!   ; start_time=[...] ... }`): the pid and the times ([`exec_record`]).
//!
//! (The crontab header `crontab` writes, with its temporary file's name and
//! the time, is taken out on the target by [`super::tree`]'s walker.)

use serde_json::Value as Json;

/// ansible's result with OpenSSH's `Shared connection to HOST closed.`
/// taken out of `stderr`/`stderr_lines` (per loop item too) when it is the
/// whole of `stderr`.
pub fn ansible_result(r: &Json) -> Json {
    let mut r = r.clone();
    strip_ssh_closed(&mut r);
    r
}

fn strip_ssh_closed(r: &mut Json) {
    let Json::Object(m) = r else { return };
    if let Some(Json::Array(items)) = m.get_mut("results") {
        items.iter_mut().for_each(strip_ssh_closed);
    }
    let closed = m.get("stderr").and_then(Json::as_str).is_some_and(|s| {
        s.strip_prefix("Shared connection to ")
            .and_then(|h| h.strip_suffix(" closed.\r\n"))
            .is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace))
    });
    if closed {
        m.insert("stderr".into(), Json::String(String::new()));
        if m.contains_key("stderr_lines") {
            m.insert("stderr_lines".into(), Json::Array(Vec::new()));
        }
    }
}

/// `text` with apt-get's `Fetched` lines rewritten.
pub fn text(s: &str) -> String {
    if !s.contains("Fetched ") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for piece in s.split_inclusive('\n') {
        let (line, end) = match piece.strip_suffix('\n') {
            Some(l) => (l, "\n"),
            None => (piece, ""),
        };
        out.push_str(&fetched(line));
        out.push_str(end);
    }
    out
}

/// `Fetched SIZE in TIME (SPEED)` -> `Fetched SIZE in <time> (<speed>)`:
/// the size stays compared.
fn fetched(line: &str) -> String {
    let Some(rest) = line.strip_prefix("Fetched ") else {
        return line.to_string();
    };
    let Some((size, tail)) = rest.split_once(" in ") else {
        return line.to_string();
    };
    let well_formed = tail.ends_with("/s)") && tail.contains(" (");
    if well_formed && !size.contains(" in ") {
        format!("Fetched {size} in <time> (<speed>)")
    } else {
        line.to_string()
    }
}

/// A path or name ending in ansible's backup suffix `.PID.YYYY-MM-DD@HH:MM:SS~`
/// with the pid and time replaced by `<pid>` and `<time>`; anything else as it is.
pub fn backup_name(s: &str) -> String {
    let Some(body) = s.strip_suffix('~') else {
        return s.to_string();
    };
    // "YYYY-MM-DD@HH:MM:SS" is 19 bytes, then the pid before it.
    if body.len() < 19 || !body.is_char_boundary(body.len() - 19) {
        return s.to_string();
    }
    let (head, time) = body.split_at(body.len() - 19);
    let shape = time.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'@',
        13 | 16 => b == b':',
        _ => b.is_ascii_digit(),
    });
    let Some(head) = head.strip_suffix('.') else {
        return s.to_string();
    };
    let Some((name, pid)) = head.rsplit_once('.') else {
        return s.to_string();
    };
    if shape && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
        format!("{name}.<pid>.<time>~")
    } else {
        s.to_string()
    }
}

/// `s` with the names made per run replaced: `tb-<pid>-<n>` by
/// `<target>`, `/tmp/.tmpXXXXXX` by `<controller-tmp>`, and `ansible.`
/// followed by 8 random characters (a file name) by `ansible.<random>`.
pub fn names(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let prev = out.chars().last();
        let word_start = prev.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-');
        if let Some(n) = target_name(rest).filter(|_| word_start) {
            out.push_str("<target>");
            rest = &rest[n..];
        } else if let Some(n) = controller_tmp(rest) {
            out.push_str("/tmp/<controller-tmp>");
            rest = &rest[n..];
        } else if let Some(r) = rest.strip_prefix("ansible.").filter(|r| {
            prev == Some('/')
                && r.len() >= 8
                && r.as_bytes()[..8]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }) {
            out.push_str("ansible.<random>");
            rest = &r[8..];
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `s` with a module's temporary download
/// (`/.ansible/tmp/ansible-moduletmp-TIME-RANDOM/NAMExxxxxxxx.EXT`, up to
/// the next space) written as `/.ansible/tmp/ansible-moduletmp-<random>/NAME<random>.EXT`.
pub fn module_tmp(s: &str) -> String {
    const DIR: &str = "/.ansible/tmp/ansible-moduletmp-";
    let Some(i) = s.find(DIR) else {
        return s.to_string();
    };
    let after = &s[i + DIR.len()..];
    let Some((_, rest)) = after.split_once('/') else {
        return s.to_string();
    };
    let end = rest.find(' ').unwrap_or(rest.len());
    let (file, tail) = rest.split_at(end);
    let (stem, ext) = match file.rfind('.') {
        Some(d) if d > 0 => file.split_at(d),
        _ => (file, ""),
    };
    if stem.len() < 8 || !stem.is_char_boundary(stem.len() - 8) {
        return s.to_string();
    }
    format!(
        "{}{DIR}<random>/{}<random>{ext}{tail}",
        &s[..i],
        &stem[..stem.len() - 8]
    )
}

/// Length of a `tb-<digits>-<digits>` word at the start of `s`.
fn target_name(s: &str) -> Option<usize> {
    let r = s.strip_prefix("tb-")?;
    let a = r.bytes().take_while(u8::is_ascii_digit).count();
    let r2 = r[a..].strip_prefix('-')?;
    let b = r2.bytes().take_while(u8::is_ascii_digit).count();
    let end = 3 + a + 1 + b;
    let next = s[end..].chars().next();
    (a > 0 && b > 0 && next.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-')).then_some(end)
}

/// Length of a `/tmp/.tmpXXXXXX` (the tempfile crate's directory) at the
/// start of `s`, followed by `/` or the end.
fn controller_tmp(s: &str) -> Option<usize> {
    let r = s.strip_prefix("/tmp/.tmp")?;
    let n = r.bytes().take_while(u8::is_ascii_alphanumeric).count();
    (n == 6 && matches!(r[n..].chars().next(), None | Some('/'))).then_some(9 + n)
}

/// A systemd command record (`{ path=/bin/sleep ; argv[]=... ; pid=7464 ;
/// start_time=[...] ; stop_time=[...] ; code=... ; status=... }`, several
/// joined by ` ; `) with the pid and the times replaced: the command and how
/// it ended stay compared.
pub fn exec_record(s: &str) -> String {
    s.split(" ; ")
        .map(|field| {
            for key in ["pid=", "start_time=", "stop_time="] {
                if let Some(v) = field.strip_prefix(key) {
                    let close = if v.ends_with(" }") { " }" } else { "" };
                    return format!("{key}<volatile>{close}");
                }
            }
            field.to_string()
        })
        .collect::<Vec<_>>()
        .join(" ; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_whole_ssh_closing_line_leaves_stderr() {
        let r = json!({"stdout": "x\r\n", "stderr": "Shared connection to 127.0.0.1 closed.\r\n", "stderr_lines": ["Shared connection to 127.0.0.1 closed."]});
        assert_eq!(
            ansible_result(&r),
            json!({"stdout": "x\r\n", "stderr": "", "stderr_lines": []})
        );
        let r = json!({"stderr": "oops\r\nShared connection to 127.0.0.1 closed.\r\n"});
        assert_eq!(ansible_result(&r), r);
    }

    #[test]
    fn names_made_per_run_only() {
        assert_eq!(names("tb-13672-0"), "<target>");
        assert_eq!(names("tb-13672-0.example"), "<target>.example");
        assert_eq!(names("xtb-1-2 tb-1 tb-1-2x"), "xtb-1-2 tb-1 tb-1-2x");
        assert_eq!(
            names("/tmp/.tmp6VA0Zp/files/fetch/f"),
            "/tmp/<controller-tmp>/files/fetch/f"
        );
        assert_eq!(names("/tmp/.tmp6VA0Zpx/f"), "/tmp/.tmp6VA0Zpx/f");
        assert_eq!(
            names("/tmp/ansible.bos8r7k1corpus"),
            "/tmp/ansible.<random>corpus"
        );
        assert_eq!(names("ansible.cfg"), "ansible.cfg");
        assert_eq!(names("ansible.posix_json"), "ansible.posix_json");
    }

    #[test]
    fn module_downloads_lose_their_random_parts_only() {
        let a = "Installed /root/.ansible/tmp/ansible-moduletmp-1796598116.5169702-3l8a_w5t/tb-extra-1.0-1.noarchddziyutd.rpm";
        let b = "Installed /root/.ansible/tmp/ansible-moduletmp-1796598200.12-Ab3dEf9x/tb-extra-1.0-1.noarchQ1w2E3r4.rpm";
        assert_eq!(module_tmp(a), module_tmp(b));
        assert_eq!(
            module_tmp(a),
            "Installed /root/.ansible/tmp/ansible-moduletmp-<random>/tb-extra-1.0-1.noarch<random>.rpm"
        );
        assert_ne!(
            module_tmp(a),
            module_tmp(&b.replace("tb-extra", "tb-other"))
        );
        assert_eq!(module_tmp("Installed: tb-extra"), "Installed: tb-extra");
    }

    #[test]
    fn exec_records_lose_pid_and_times_only() {
        let a = "{ path=/bin/sleep ; argv[]=/bin/sleep infinity ; ignore_errors=no ; start_time=[Sun 2026-12-06 21:43:49 UTC] ; stop_time=[n/a] ; pid=7464 ; code=(null) ; status=0/0 }";
        let b = "{ path=/bin/sleep ; argv[]=/bin/sleep infinity ; ignore_errors=no ; start_time=[Sun 2026-12-06 21:40:01 UTC] ; stop_time=[n/a] ; pid=81 ; code=(null) ; status=0/0 }";
        assert_eq!(exec_record(a), exec_record(b));
        assert_ne!(exec_record(a), exec_record(&a.replace("infinity", "1")));
        assert_eq!(
            exec_record("{ path=/x ; pid=1 }"),
            "{ path=/x ; pid=<volatile> }"
        );
    }

    #[test]
    fn backup_names_lose_pid_and_time_only() {
        assert_eq!(
            backup_name("/srv/d/b.txt.279.2026-12-05@18:46:29~"),
            "/srv/d/b.txt.<pid>.<time>~"
        );
        assert_eq!(backup_name("/srv/d/b.txt~"), "/srv/d/b.txt~");
        assert_eq!(
            backup_name("/srv/d/b.txt.x.2026-12-05@18:46:29~"),
            "/srv/d/b.txt.x.2026-12-05@18:46:29~"
        );
    }

    #[test]
    fn only_the_time_and_speed_of_fetched_lines_go() {
        assert_eq!(
            text("Get:1 x\nFetched 132 kB in 0s (2,430 kB/s)\nSetting up less\n"),
            "Get:1 x\nFetched 132 kB in <time> (<speed>)\nSetting up less\n"
        );
        assert_eq!(text("Fetched 1 kB"), "Fetched 1 kB");
    }
}
