//! The become shell: a long-lived `sh` started once through
//! `sudo -n -H -u USER` that runs many commands as USER, so that a command
//! with [`crate::target::Become`] costs neither a sudo start (PAM, ~5 ms) nor
//! a new SSH channel (login shell, ~4 ms). [`crate::ssh::SshTarget`] keeps a
//! few per user and session; this module holds the server loop and the
//! framing, transport-free.
//!
//! The server loop ([`SERVER`], POSIX `sh` and GNU coreutils) makes a private
//! `mktemp -d` directory (0700, for standard input files; in `/dev/shm` when
//! there is one, so that file contents sent with `put` never reach a disk
//! that becomes the image), prints a ready line, then serves requests from its standard input, one at a time:
//!
//! ```text
//! request:  "<script bytes> <stdin bytes> <token> [tag]\n" script stdin "run\n"
//! reply:    the command's stdout, then "<token> <status>\n" on stdout,
//!           the command's stderr, then "<token>\n" on stderr;
//!           or "!<token>\n" on stdout (refused: the command did not run)
//! ```
//!
//! The script is read with `head -c N` (GNU head reads exactly N bytes from
//! a pipe) into a variable, standard input the same way into a file; the
//! command runs only after the final `run` line, so a request cut short
//! (client gone, connection lost) never runs. It runs as
//! `sh -c SCRIPT <stdin`, in a child process, as the per-command path does
//! after sudo: its `exit`, `cd`, `export`, `$$`, `$0` and messages are the
//! same, and its standard output and error are the shell's own (the SSH
//! channel's pipes), so `>/dev/stderr`, `tee /dev/stdout` and binary data
//! behave as before. The token is 128 random bits the command never sees,
//! so the markers that end a reply cannot occur in its output. The server
//! waits until every process holding the command's output is gone (a
//! sentinel pipe on fd 7, read by `$(...)`), as sshd does. It runs with the
//! server's working directory (where sudo started) and, when a tag is
//! given, the `IMAGE_CLI_EXEC_ID` tag in its environment (for killing on
//! timeout). The standard input directory vanishing (a command wiped
//! `/tmp`) or being replaced makes the next request with input refused.
//!
//! Differences from a per-command `sudo -n ... sh -c SCRIPT`: a command
//! killed by a signal reports `128 + N` (as a shell does) instead of `-1`;
//! standard input is a file, not a pipe; the command has fd 7 open (the
//! sentinel); a background process that closed fd 7 but still writes to
//! the command's output would write into a later reply (under sshd it
//! would hang the command: the client drops a shell that sends anything
//! between replies); sudo logs (and runs PAM for) the shell's start only,
//! not every command. Both paths pass the script as one argument, limited
//! to 128 KiB (Linux `MAX_ARG_STRLEN`); large data goes through stdin.

use crate::target::shell_quote;

/// The ready line the server prints once set up.
pub(crate) const READY: &[u8] = b"image-cli-become-shell ready\n";

/// The server loop, run by `sh -c` as the become user. Its first line marks
/// its command line (`pgrep -f image-cli-become-shell`).
pub(crate) const SERVER: &str = r#": image-cli-become-shell
d=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) || exit 1
trap 'rm -rf -- "$d"' EXIT
trap 'exit 1' HUP INT TERM PIPE
exec 3<"$d" 8>&1 || exit 1
echo image-cli-become-shell ready
n=0
while read -r sl il tok tag; do
  n=$((n+1)); i=/dev/null
  case "$sl:$il:$tok" in *[!0-9a-f:]*|:*|*::*|*:) exit 1;; esac
  s=$(head -c "$sl") || exit 1
  if [ "$il" -gt 0 ]; then
    i=$d/$n
    [ "$d" -ef /proc/self/fd/3 ] && head -c "$il" >"$i" || { echo "!$tok"; exit 1; }
  fi
  read -r go && [ "$go" = run ] || exit 1
  if [ -n "$tag" ]; then
    x=$(IMAGE_CLI_EXEC_ID=$tag sh -c "$s" <"$i" 7>&1 >&8 3<&- 8>&-)
  else
    x=$(sh -c "$s" <"$i" 7>&1 >&8 3<&- 8>&-)
  fi
  st=$?
  [ "$i" = /dev/null ] || rm -f -- "$i"
  printf '%s %s\n' "$tok" "$st"
  printf '%s\n' "$tok" >&2
done
"#;

/// The command line that starts a server as `user`.
pub(crate) fn start_line(user: &str) -> String {
    format!(
        "sudo -n -H -u {} -- sh -c {}",
        shell_quote(user),
        shell_quote(SERVER)
    )
}

/// A fresh reply token: 128 random bits in hex.
pub(crate) fn token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // Each RandomState has fresh keys from the OS's randomness.
    let word = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

/// The header of a request; `script` and `stdin` follow, then [`RUN`].
pub(crate) fn request_header(
    script_len: usize,
    stdin_len: usize,
    token: &str,
    tag: Option<&str>,
) -> Vec<u8> {
    match tag {
        Some(t) => format!("{script_len} {stdin_len} {token} {t}\n").into_bytes(),
        None => format!("{script_len} {stdin_len} {token}\n").into_bytes(),
    }
}

/// The line that ends a request: the server runs the command only then.
pub(crate) const RUN: &[u8] = b"run\n";

/// What a reader of the server's output is fed.
pub(crate) trait Sink {
    /// Takes bytes of the server's stdout (stream 0) or stderr (stream 1);
    /// an error means the output is not what the protocol says.
    fn feed(&mut self, stream: i32, data: &[u8]) -> Result<(), String>;
    /// Everything expected has arrived.
    fn done(&self) -> bool;
}

/// Waits for the [`READY`] line, keeping the server's stderr for messages.
#[derive(Default)]
pub(crate) struct Ready {
    got: Vec<u8>,
    /// The last few KiB of the server's stderr (sudo's message, ...).
    pub(crate) stderr: Vec<u8>,
}

impl Sink for Ready {
    fn feed(&mut self, stream: i32, data: &[u8]) -> Result<(), String> {
        if stream != 0 {
            self.stderr.extend_from_slice(data);
            let cut = self.stderr.len().saturating_sub(4096);
            self.stderr.drain(..cut);
            return Ok(());
        }
        self.got.extend_from_slice(data);
        let n = self.got.len().min(READY.len());
        if self.got[..n] != READY[..n] || self.got.len() > READY.len() {
            return Err(format!(
                "unexpected output from the become shell: {:?}",
                String::from_utf8_lossy(&self.got[..self.got.len().min(200)])
            ));
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.got == READY
    }
}

/// Parses one reply: both outputs up to their token markers.
#[derive(Debug)]
pub(crate) struct Reply {
    token: Vec<u8>,
    /// The command's standard output (then the marker, until parsed).
    pub(crate) out: Vec<u8>,
    /// The command's standard error (then the marker, until found).
    pub(crate) err: Vec<u8>,
    /// Where the stdout marker starts, once seen.
    out_mark: Option<usize>,
    status: Option<i32>,
    err_done: bool,
    refused: bool,
    /// Bytes arrived after a marker: some leftover process still writes.
    pub(crate) stray: bool,
}

/// Where `needle` first occurs in `hay`, looking from `from` on.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = from;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

impl Reply {
    /// A reply ended by `token`.
    pub(crate) fn new(token: &str) -> Self {
        Reply {
            token: token.as_bytes().to_vec(),
            out: Vec::new(),
            err: Vec::new(),
            out_mark: None,
            status: None,
            err_done: false,
            refused: false,
            stray: false,
        }
    }

    /// The server refused the request: the command did not run.
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// The exit status (once [`Sink::done`]).
    pub(crate) fn status(&self) -> i32 {
        self.status.unwrap_or(-1)
    }
}

impl Sink for Reply {
    fn feed(&mut self, stream: i32, data: &[u8]) -> Result<(), String> {
        let t = self.token.len();
        if stream != 0 {
            if self.err_done {
                self.stray = true;
                return Ok(());
            }
            let from = self.err.len().saturating_sub(t);
            self.err.extend_from_slice(data);
            if let Some(at) = find(&self.err, &self.token, from) {
                if self.err.len() > at + t {
                    if self.err[at + t] != b'\n' {
                        return Err("bad end of stderr from the become shell".to_string());
                    }
                    self.stray |= self.err.len() > at + t + 1;
                    self.err.truncate(at);
                    self.err_done = true;
                }
            }
            return Ok(());
        }
        if self.status.is_some() || self.refused {
            self.stray = true;
            return Ok(());
        }
        let from = self.out.len().saturating_sub(t + 1);
        self.out.extend_from_slice(data);
        if self.out_mark.is_none() {
            self.out_mark = find(&self.out, &self.token, from);
        }
        if let Some(at) = self.out_mark {
            let rest = &self.out[at + t..];
            match rest.first() {
                None => return Ok(()),
                Some(b' ') => {}
                // "!<token>\n" and nothing before: refused, nothing ran.
                Some(b'\n') if at == 1 && self.out[0] == b'!' => {
                    self.stray |= rest.len() > 1;
                    self.refused = true;
                    return Ok(());
                }
                Some(_) => return Err("bad marker from the become shell".to_string()),
            }
            if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&rest[..nl]);
                let status = line
                    .strip_prefix(' ')
                    .and_then(|s| s.parse::<i32>().ok())
                    .ok_or_else(|| format!("bad status from the become shell: {line:?}"))?;
                self.stray |= rest.len() > nl + 1;
                self.status = Some(status);
                self.out.truncate(at);
            } else if rest.len() > 16 {
                return Err("bad status from the become shell".to_string());
            }
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.refused || (self.status.is_some() && self.err_done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    const TOK: &str = "0123456789abcdef0123456789abcdef";

    fn parse(chunks: &[(i32, &[u8])]) -> Result<Reply, String> {
        let mut r = Reply::new(TOK);
        for (stream, c) in chunks {
            r.feed(*stream, c)?;
        }
        Ok(r)
    }

    #[test]
    fn tokens_differ() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn replies_parse_across_chunk_boundaries() {
        let out = format!("hel\0lo!{TOK} 3\n").into_bytes();
        let err = format!("\0e{TOK}\n").into_bytes();
        for cut in 0..out.len() {
            for ecut in [0, 1, 5, err.len() - 1] {
                let r = parse(&[
                    (0, &out[..cut]),
                    (1, &err[..ecut]),
                    (0, &out[cut..]),
                    (1, &err[ecut..]),
                ])
                .expect("parses");
                assert!(r.done(), "cut at {cut}/{ecut}");
                assert!(!r.stray && !r.refused());
                assert_eq!(
                    (r.status(), &r.out[..], &r.err[..]),
                    (3, &b"hel\0lo!"[..], &b"\0e"[..])
                );
            }
        }
        // Empty outputs; an output of "!" is not a refusal.
        let r = parse(&[
            (0, format!("{TOK} 0\n").as_bytes()),
            (1, format!("{TOK}\n").as_bytes()),
        ])
        .expect("empty");
        assert!(r.done() && r.out.is_empty() && r.err.is_empty());
        let r = parse(&[
            (0, format!("!{TOK} 0\n").as_bytes()),
            (1, format!("{TOK}\n").as_bytes()),
        ])
        .expect("bang");
        assert!(r.done() && !r.refused() && r.out == b"!");
        let r = parse(&[(0, format!("!{TOK}\n").as_bytes())]).expect("refused");
        assert!(r.done() && r.refused());
        // Not done until both markers.
        assert!(!parse(&[(0, format!("x{TOK} 0\n").as_bytes())])
            .expect("half")
            .done());
        // Bytes after a marker: a leftover writer.
        let r = parse(&[
            (0, format!("{TOK} 0\nmore").as_bytes()),
            (1, format!("{TOK}\n").as_bytes()),
        ])
        .expect("stray");
        assert!(r.done() && r.stray);
    }

    #[test]
    fn broken_replies_are_errors() {
        assert!(parse(&[(0, format!("{TOK}x").as_bytes())]).is_err());
        assert!(parse(&[(0, format!("{TOK} x\n").as_bytes())]).is_err());
        assert!(parse(&[(1, format!("{TOK}x").as_bytes())]).is_err());
        let mut ready = Ready::default();
        assert!(ready.feed(0, b"sudo: no").is_err());
        assert!(ready.feed(1, b"sudo: a password is required\n").is_ok());
    }

    /// The server loop under the local `sh` (no sudo): the framing, binary
    /// data, env/cwd folding, exit codes, a vanished directory.
    #[test]
    fn server_loop_runs_requests_locally() {
        let mut child = match Command::new("sh")
            .arg("-c")
            .arg(SERVER)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start sh: {e}"),
        };
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready line");
        assert_eq!(line.as_bytes(), READY);
        let dir = std::fs::read_link(format!("/proc/{}/fd/3", child.id())).expect("its dir");
        let (tx, rx) = mpsc::channel();
        let pump = |stream: i32, mut r: Box<dyn Read + Send>, tx: mpsc::Sender<(i32, Vec<u8>)>| {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 || tx.send((stream, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            })
        };
        pump(0, Box::new(stdout), tx.clone());
        pump(1, Box::new(child.stderr.take().expect("piped stderr")), tx);
        let mut call = |script: &str, input: &[u8], tag: Option<&str>| -> Reply {
            let tok = token();
            stdin
                .write_all(&request_header(script.len(), input.len(), &tok, tag))
                .expect("write");
            stdin.write_all(script.as_bytes()).expect("write");
            stdin.write_all(input).expect("write");
            stdin.write_all(RUN).expect("write");
            stdin.flush().expect("flush");
            let mut r = Reply::new(&tok);
            while !r.done() {
                let (stream, data) = rx.recv().expect("server ended early");
                r.feed(stream, &data).expect("well-formed reply");
            }
            assert!(!r.stray);
            r
        };
        let r = call("echo out; echo err >&2; exit 7", b"", None);
        assert_eq!(
            (r.status(), &r.out[..], &r.err[..]),
            (7, &b"out\n"[..], &b"err\n"[..])
        );
        let bin: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
        let r = call("cat; printf '\\0x' >&2", &bin, None);
        assert!(r.status() == 0 && r.out == bin && r.err == b"\0x");
        // Reopening stdout/stderr keeps what was written before (pipes).
        let r = call(
            "echo a; echo b >/dev/stdout; echo c >&2; echo d >/dev/stderr",
            b"",
            None,
        );
        assert_eq!((&r.out[..], &r.err[..]), (&b"a\nb\n"[..], &b"c\nd\n"[..]));
        let e = crate::target::Exec::new(r#"printf '%s|%s' "$A" "$(pwd)""#)
            .env("A", "it's $HOME")
            .cwd("/usr");
        let r = call(&e.script(), b"", None);
        assert_eq!(r.out, b"it's $HOME|/usr");
        // The next command starts afresh: where sudo started, no leaked env.
        let r = call("printf '%s|%s' \"${A-unset}\" \"$(pwd)\"", b"", None);
        assert_eq!(r.out, b"unset|/");
        let r = call("echo \"$IMAGE_CLI_EXEC_ID\"", b"", Some("t-1"));
        assert_eq!(r.out, b"t-1\n");
        let r = call("no-such-command-x", b"", None);
        assert_eq!(
            (r.status(), &r.err[..]),
            (127, &b"sh: 1: no-such-command-x: not found\n"[..])
        );
        // A background process holding the output: the reply waits for it.
        let t0 = std::time::Instant::now();
        let r = call("(sleep 0.3; echo late) &", b"", None);
        assert_eq!(r.out, b"late\n");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
        // The input directory wiped: a request with input is refused (not
        // run), one without still runs.
        std::fs::remove_dir_all(&dir).expect("wipe");
        let r = call("echo still", b"", None);
        assert_eq!(r.out, b"still\n");
        let r = call("touch /nonexistent-should-not-run", b"x", None);
        assert!(r.refused());
        drop(stdin);
        let st = child.wait().expect("wait");
        assert!(!st.success());
    }
}
