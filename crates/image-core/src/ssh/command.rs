//! Commands with a timeout: their process tree is tagged with an environment
//! variable from the start, so that when the timeout passes a second command,
//! as the same user, can find and kill every process of it.
//!
//! A command may not have started yet when its timeout passes (a loaded
//! host: sshd, the login shell or sudo still setting up), and would then
//! start after the kill found nothing. So the kill first makes a marker
//! directory named after the tag, and a tagged script first checks for it
//! and exits (137, as killed) when it is there: a command that checked
//! before the marker existed was already running, tagged, and the kill's
//! scan that follows finds it. The kill removes the marker once it has
//! killed something (the command ran); a marker is left only when nothing
//! was found (the command ended on its own, or never started), in
//! `/dev/shm` (memory, never in an image) or else `/tmp`. `mkdir`/`rmdir`
//! never follow a symlink planted under that name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::target::{shell_quote, Become, Exec};

/// Environment variable that tags the processes of a command with a timeout.
const TAG_VAR: &str = "IMAGE_CLI_EXEC_ID";

/// A tag unique to this process and command.
pub(super) fn exec_tag() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Where the kill of `tag` leaves its marker: `/dev/shm` when there is
/// one, else `/tmp` (the script picks).
fn marker_name(tag: &str) -> String {
    format!(".image-cli-killed-{tag}")
}

/// `script` behind the marker check (see the module docs).
pub(super) fn guarded_script(script: &str, tag: &str) -> String {
    let m = shell_quote(&marker_name(tag));
    format!("if [ -e /dev/shm/{m} ] || [ -e /tmp/{m} ]; then exit 137; fi\n{script}")
}

/// [`Exec::shell_line`] with the tag in the environment `sh` starts with
/// (an `export` in the script would not show in its `/proc/PID/environ`),
/// its script guarded by the kill's marker.
pub(super) fn tagged_line(cmd: &Exec, tag: &str) -> String {
    let sh = format!(
        "env {TAG_VAR}={} sh -c {}",
        shell_quote(tag),
        shell_quote(&guarded_script(&cmd.script(), tag))
    );
    match &cmd.become_ {
        None => sh,
        Some(b) => format!("sudo -n -H -u {} -- {sh}", shell_quote(&b.user)),
    }
}

/// The command that kills what is left of a timed-out command: every
/// process whose environment carries its tag, as the same user, after
/// leaving the marker that stops it if it has not started yet.
pub(super) fn kill_line(tag: &str, become_: Option<Become>) -> String {
    // Passes until none is left: a process may fork while a pass runs.
    let script = format!(
        "m=/dev/shm; [ -d \"$m\" ] && [ -w \"$m\" ] || m=/tmp; m=\"$m\"/{marker}; \
         mkdir \"$m\" 2>/dev/null; any=; \
         for i in 1 2 3 4 5 6 7 8 9 10; do \
           found=; \
           for e in /proc/[0-9]*/environ; do \
             if grep -qzx -- {pat} \"$e\" 2>/dev/null; then \
               p=${{e#/proc/}}; kill -9 \"${{p%/environ}}\" 2>/dev/null && found=1; \
             fi; \
           done; \
           [ -n \"$found\" ] || break; any=1; \
         done; \
         [ -z \"$any\" ] || rmdir \"$m\" 2>/dev/null; true",
        pat = shell_quote(&format!("{TAG_VAR}={tag}")),
        marker = shell_quote(&marker_name(tag)),
    );
    Exec::new(script).become_opt(become_).shell_line()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_commands_carry_their_tag_from_the_start() {
        let e = Exec::new("sleep 1").env("A", "b");
        assert_eq!(
            tagged_line(&e, "1-2-3"),
            "env IMAGE_CLI_EXEC_ID=1-2-3 sh -c 'if [ -e /dev/shm/.image-cli-killed-1-2-3 ] || [ -e /tmp/.image-cli-killed-1-2-3 ]; then exit 137; fi\nexport A=b; sleep 1'"
        );
        assert_eq!(
            tagged_line(&e.become_root(), "1-2-3"),
            "sudo -n -H -u root -- env IMAGE_CLI_EXEC_ID=1-2-3 sh -c 'if [ -e /dev/shm/.image-cli-killed-1-2-3 ] || [ -e /tmp/.image-cli-killed-1-2-3 ]; then exit 137; fi\nexport A=b; sleep 1'"
        );
    }
}
