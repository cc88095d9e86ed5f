//! The become shell: a long-lived `sh` started once through
//! `sudo -n -H -u USER` that runs many commands as USER, so that a command
//! with [`crate::target::Become`] costs neither a sudo start (PAM, ~5 ms) nor
//! a new SSH channel (login shell, ~4 ms). [`crate::ssh::SshTarget`] keeps a
//! few per user and session; this module holds the server and the framing,
//! transport-free.
//!
//! The server is `sh -s` reading shell code from its standard input: the
//! client first sends [`PRELUDE`] (it defines `_r` and prints a ready line),
//! then one request at a time, each a complete `if` command the shell parses
//! itself, so framing a request starts no process on the target (issue #16):
//!
//! ```text
//! request:  if :; then _r TOKEN 'TAG' 'SCRIPT' MODE HOW <INPUT
//!           fi
//! reply:    the command's stdout, then "<token> <status>\n" on stdout,
//!           the command's stderr, then "<token>\n" on stderr
//! ```
//!
//! INPUT is `/dev/null` (no input), a here-document holding the input
//! itself (MODE `t`: text with no NUL that ends with a newline), or one
//! holding its base64 (MODE `b`, decoded by `base64 -d` into the command's
//! standard input). The shell parses the whole `if` ... `fi` before it runs
//! any of it, so a request cut short (client gone, connection lost) is a
//! syntax error that ends the server without running anything. HOW `e`
//! runs a script of this program's own in a subshell of the server (a
//! fork, no new `sh`; with no positional parameters and none of the
//! server's variables but its functions). Otherwise (`s`) the command
//! runs as `sh -c SCRIPT` in a child process, as the per-command path does
//! after sudo: its `exit`, `cd`, `export`, `$$`, `$0` and messages are the
//! same, and its standard output and error are the shell's own (the SSH
//! channel's pipes), so `>/dev/stderr`, `tee /dev/stdout` and binary data
//! behave as before. The token is 128 random bits the command never sees,
//! so the markers that end a reply cannot occur in its output. The server
//! waits until every process holding the command's output is gone (a
//! sentinel pipe on fd 7, read by `$(...)`), as sshd does. It runs with the
//! server's working directory (where sudo started) and, when a tag is
//! given, the `IMAGE_CLI_EXEC_ID` tag in its environment (for killing on
//! timeout).
//!
//! Differences from a per-command `sudo -n ... sh -c SCRIPT`: a command
//! killed by a signal reports `128 + N` (as a shell does) instead of `-1`;
//! the command has fd 7 open (the sentinel); a background process that
//! closed fd 7 but still writes to the command's output would write into a
//! later reply (under sshd it would hang the command: the client drops a
//! shell that sends anything between replies); sudo logs (and runs PAM for)
//! the shell's start only, not every command. Both paths pass the script as
//! one argument, limited to 128 KiB (Linux `MAX_ARG_STRLEN`); an input
//! bigger than [`MAX_STDIN`] takes the per-command path, which streams it.

use crate::target::{heredoc_body, shell_quote};

/// The ready line the server prints once set up.
pub(crate) const READY: &[u8] = b"image-cli-become-shell ready\n";

/// Inputs up to this size travel in a request (held in the server's memory
/// while it parses); bigger ones take the per-command path.
pub(crate) const MAX_STDIN: usize = 4 << 20;

/// What the client sends first: the server's signal handling, its saved
/// stdout (fd 8), the request function `_r`, then the ready line.
pub(crate) const PRELUDE: &str = r#"trap 'exit 1' HUP INT TERM PIPE
exec 8>&1 || exit 1
_x() {
  [ -z "$1" ] || export IMAGE_CLI_EXEC_ID="$1"
  [ "$3" = e ] || exec sh -c "$2"
  __ics=$2; shift 3; unset x _st; eval "unset __ics
$__ics"; exit
}
_r() {
  case $4 in
    b) x=$(base64 -d 8>&- | _x "$2" "$3" "$5" 7>&1 >&8 8>&-) ;;
    *) x=$(_x "$2" "$3" "$5" 7>&1 >&8 8>&-) ;;
  esac
  _st=$?
  printf '%s %s\n' "$1" "$_st"
  printf '%s\n' "$1" >&2
}
echo image-cli-become-shell ready
"#;

/// The command line that starts a server as `user` (its argument marks it:
/// `pgrep -f image-cli-become-shell`).
pub(crate) fn start_line(user: &str) -> String {
    format!(
        "sudo -n -H -u {} -- sh -s image-cli-become-shell",
        shell_quote(user)
    )
}

/// A fresh reply token: 128 random bits in hex.
pub(crate) fn token() -> String {
    crate::target::random_token()
}

/// The shell code of one request (see the module docs): `script` runs with
/// `stdin` as its standard input, the reply ends with `token`.
/// With `subshell` (see [`crate::target::Exec::subshell`]) and no tag, it
/// runs in the server's subshell: a fork, no new `sh`.
pub(crate) fn request(
    script: &str,
    stdin: &[u8],
    token: &str,
    tag: Option<&str>,
    subshell: bool,
) -> Vec<u8> {
    let mut r = format!(
        "if :; then _r {token} {} {} ",
        shell_quote(tag.unwrap_or("")),
        shell_quote(script)
    )
    .into_bytes();
    // A tagged command (one with a timeout) is killed by the tag in its
    // processes' environment, which a subshell's /proc entry lacks.
    let how = if subshell && tag.is_none() { 'e' } else { 's' };
    if stdin.is_empty() {
        r.extend_from_slice(format!("n {how} </dev/null\n").as_bytes());
    } else {
        let delim = format!("@@{token}");
        let (b64, body) = heredoc_body(stdin, &delim, false);
        let mode = if b64 { 'b' } else { 't' };
        r.extend_from_slice(format!("{mode} {how} <<'{delim}'\n").as_bytes());
        r.extend_from_slice(&body);
    }
    r.extend_from_slice(b"fi\n");
    r
}

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
            stray: false,
        }
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
        if self.status.is_some() {
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
        self.status.is_some() && self.err_done
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
                assert!(!r.stray);
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
        assert!(r.done() && r.out == b"!");
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

    /// The server under the local `sh` (no sudo): the framing, text and
    /// binary input, env/cwd folding, exit codes, a request cut short.
    #[test]
    fn server_runs_requests_locally() {
        let mut child = match Command::new("sh")
            .args(["-s", "image-cli-become-shell"])
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
        stdin.write_all(PRELUDE.as_bytes()).expect("prelude");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready line");
        assert_eq!(line.as_bytes(), READY);
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
        let mut call = |script: &str, input: &[u8], tag: Option<&str>, sub: bool| -> Reply {
            let tok = token();
            stdin
                .write_all(&request(script, input, &tok, tag, sub))
                .expect("write");
            stdin.flush().expect("flush");
            let mut r = Reply::new(&tok);
            while !r.done() {
                let (stream, data) = rx.recv().expect("server ended early");
                r.feed(stream, &data).expect("well-formed reply");
            }
            assert!(!r.stray);
            r
        };
        let r = call("echo out; echo err >&2; exit 7", b"", None, false);
        assert_eq!(
            (r.status(), &r.out[..], &r.err[..]),
            (7, &b"out\n"[..], &b"err\n"[..])
        );
        let bin: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
        let r = call("cat; printf '\\0x' >&2", &bin, None, false);
        assert!(r.status() == 0 && r.out == bin && r.err == b"\0x");
        // Text input travels as it is, quotes, `$` and all bytes but NUL.
        let text: Vec<u8> = (1..=255u8)
            .chain(b"\n'\"$HOME `x` \\\n@@x\n".iter().copied())
            .collect();
        assert!(!heredoc_body(&text, "@@t", false).0);
        let r = call("cat; wc -c", &text, None, false);
        assert_eq!(r.out[..text.len()], text[..]);
        // Reopening stdout/stderr keeps what was written before (pipes).
        let r = call(
            "echo a; echo b >/dev/stdout; echo c >&2; echo d >/dev/stderr",
            b"",
            None,
            false,
        );
        assert_eq!((&r.out[..], &r.err[..]), (&b"a\nb\n"[..], &b"c\nd\n"[..]));
        let e = crate::target::Exec::new(r#"printf '%s|%s' "$A" "$(pwd)""#)
            .env("A", "it's $HOME")
            .cwd("/usr");
        let r = call(&e.script(), b"", None, false);
        assert_eq!(r.out, b"it's $HOME|/usr");
        // The next command starts afresh: where sudo started, no leaked env
        // or server variables.
        let r = call(
            "printf '%s|%s|%s' \"${A-unset}\" \"$(pwd)\" \"${IMAGE_CLI_EXEC_ID-none}\"",
            b"",
            None,
            false,
        );
        assert_eq!(r.out, b"unset|/|none");
        let r = call(
            "echo \"$IMAGE_CLI_EXEC_ID\" \"$0\" $#",
            b"",
            Some("t-1"),
            false,
        );
        assert_eq!(r.out, b"t-1 sh 0\n");
        let r = call("no-such-command-x", b"", None, false);
        assert_eq!(
            (r.status(), &r.err[..]),
            (127, &b"sh: 1: no-such-command-x: not found\n"[..])
        );
        // A script of our own in the server's subshell: a fresh view (no
        // positional parameters, none of the server's variables), its exit
        // status, its input.
        let r = call(
            "echo \"$# ${x-u} ${_st-u} ${__ics-u}\"; cat; exit 5",
            b"in\n",
            None,
            true,
        );
        assert_eq!((r.status(), &r.out[..]), (5, &b"0 u u u\nin\n"[..]));
        // Tagged: a `sh` of its own, whose environment names the tag.
        let r = call(
            "read -r p _ </proc/self/stat; tr '\\0' '\\n' <\"/proc/$p/environ\" | grep '^IMAGE_CLI_EXEC_ID='",
            b"",
            Some("t-2"),
            true,
        );
        assert_eq!(r.out, b"IMAGE_CLI_EXEC_ID=t-2\n");
        let r = call(&e.script(), b"", None, true);
        assert_eq!(r.out, b"it's $HOME|/usr");
        // Its `cd` and exports stayed in its subshell.
        let r = call("printf '%s|%s' \"${A-unset}\" \"$(pwd)\"", b"", None, true);
        assert_eq!(r.out, b"unset|/");
        // It is the server's fork (its `$$` is the server's), where a
        // plain request has a `sh` of its own.
        for (sub, want) in [(true, "fork\n"), (false, "own\n")] {
            let r = call(
                "read -r p _ </proc/self/stat; if [ \"$p\" = $$ ]; then echo own; else echo fork; fi",
                b"",
                None,
                sub,
            );
            assert_eq!(r.out, want.as_bytes());
        }
        // A background process holding the output: the reply waits for it.
        let t0 = std::time::Instant::now();
        let r = call("(sleep 0.3; echo late) &", b"", None, false);
        assert_eq!(r.out, b"late\n");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
        // A request cut short runs nothing: the server ends.
        let marker = std::env::temp_dir().join(format!("image-cli-cut-{}", token()));
        let cut = request(
            &format!("touch {}", marker.display()),
            b"x\n",
            &token(),
            None,
            true,
        );
        stdin.write_all(&cut[..cut.len() - 2]).expect("write");
        drop(stdin);
        let st = child.wait().expect("wait");
        assert!(!st.success());
        assert!(!marker.exists(), "a cut request ran");
    }
}
