//! Redaction: the one layer sensitive values pass through on their way out.
//!
//! A [`Redactor`] holds the texts of the values marked `sensitive` (a
//! definition's variables, as written and as resolved) and replaces each of
//! them with [`MASK`] in whatever it is given: a string, JSON, a
//! [`Diagnostic`], an [`Event`]. [`crate::spec::Spec::resolve`] builds one
//! for every definition and returns its diagnostics already redacted;
//! everything else that prints — event sinks ([`RedactingSink`]), log
//! writers, error reports, the manifest — goes through [`global`], the
//! process-wide redactor a command fills once the definition is loaded
//! ([`Redactor::absorb`]).
//!
//! ```
//! use image_core::redact::Redactor;
//! let r = Redactor::new(["hunter2".to_string()]);
//! assert_eq!(r.redact("password: hunter2"), "password: <sensitive>");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use crate::diag::{Diagnostic, Diagnostics};
use crate::events::{Event, EventSink};

/// What a sensitive value is replaced with.
pub const MASK: &str = "<sensitive>";

/// Replaces known secret texts with [`MASK`]. Cloning shares the set:
/// secrets added through one clone are redacted by all.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.len())
    }
}

impl Redactor {
    /// A redactor for `secrets` (empty texts are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let r = Redactor::default();
        r.add(secrets);
        r
    }

    /// Adds secrets (empty texts and duplicates are ignored).
    pub fn add(&self, secrets: impl IntoIterator<Item = String>) {
        let Ok(mut list) = self.secrets.write() else {
            return;
        };
        for s in secrets {
            if !s.is_empty() && !list.contains(&s) {
                list.push(s);
            }
        }
        // Longest first, so that a secret containing another is masked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds every secret `other` knows.
    pub fn absorb(&self, other: &Redactor) {
        if Arc::ptr_eq(&self.secrets, &other.secrets) {
            return;
        }
        let theirs = other.secrets.read().map(|l| l.clone()).unwrap_or_default();
        self.add(theirs);
    }

    /// How many secrets it knows.
    pub fn len(&self) -> usize {
        self.secrets.read().map_or(0, |l| l.len())
    }

    /// True when it knows none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `s` with every secret replaced by [`MASK`].
    pub fn redact<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let Ok(list) = self.secrets.read() else {
            // A poisoned lock: say nothing rather than risk a secret.
            return Cow::Borrowed(MASK);
        };
        let mut out = Cow::Borrowed(s);
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        out
    }

    /// [`Redactor::redact`] into an owned string.
    pub fn redact_string(&self, s: &str) -> String {
        self.redact(s).into_owned()
    }

    /// Every string (and object key) of `v` redacted in place.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value as J;
        if self.is_empty() {
            return;
        }
        match v {
            J::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            J::Number(n) => {
                let text = n.to_string();
                if let Cow::Owned(r) = self.redact(&text) {
                    *v = J::String(r);
                }
            }
            J::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            J::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut val) in old {
                    self.redact_json(&mut val);
                    m.insert(self.redact_string(&k), val);
                }
            }
            J::Null | J::Bool(_) => {}
        }
    }

    /// `d`'s message and help redacted.
    pub fn redact_diagnostic(&self, mut d: Diagnostic) -> Diagnostic {
        d.message = self.redact_string(&d.message);
        d.help = d.help.map(|h| self.redact_string(&h));
        d
    }

    /// Every diagnostic redacted.
    pub fn redact_diagnostics(&self, d: Diagnostics) -> Diagnostics {
        if self.is_empty() {
            return d;
        }
        Diagnostics(d.0.into_iter().map(|d| self.redact_diagnostic(d)).collect())
    }

    /// `e` with every text redacted.
    pub fn redact_event(&self, e: &Event) -> Event {
        let r = |s: &String| self.redact_string(s);
        match e {
            Event::StepStarted { build, step } => Event::StepStarted {
                build: r(build),
                step: r(step),
            },
            Event::StepFinished {
                build,
                step,
                outcome,
                elapsed_ms,
                message,
            } => Event::StepFinished {
                build: r(build),
                step: r(step),
                outcome: *outcome,
                elapsed_ms: *elapsed_ms,
                message: r(message),
            },
            Event::Message { build, text } => Event::Message {
                build: r(build),
                text: r(text),
            },
        }
    }
}

/// The process-wide redactor: what prints without a definition at hand (log
/// lines, error reports, event sinks) redacts with it. Commands add the
/// definition's secrets to it as soon as they are known.
pub fn global() -> &'static Redactor {
    static GLOBAL: OnceLock<Redactor> = OnceLock::new();
    GLOBAL.get_or_init(Redactor::default)
}

/// An [`EventSink`] that redacts every event before passing it on.
pub struct RedactingSink<S: ?Sized> {
    redactor: Redactor,
    inner: Arc<S>,
}

impl<S: EventSink + ?Sized> RedactingSink<S> {
    /// Redacts with `redactor` (a shared handle: secrets added later count).
    pub fn new(inner: Arc<S>, redactor: Redactor) -> Self {
        RedactingSink { redactor, inner }
    }
}

impl<S: EventSink + ?Sized> EventSink for RedactingSink<S> {
    fn emit(&self, event: &Event) {
        if self.redactor.is_empty() {
            self.inner.emit(event);
        } else {
            self.inner.emit(&self.redactor.redact_event(event));
        }
    }
}

/// An `io::Write` that redacts what is written to `inner`, line by line
/// (a secret split across two writes of one line is still caught; the rest
/// is written on flush and on drop). For log writers.
pub struct RedactingWriter<W: std::io::Write> {
    redactor: Redactor,
    inner: W,
    buf: Vec<u8>,
}

impl<W: std::io::Write> RedactingWriter<W> {
    /// Writes to `inner` through `redactor`.
    pub fn new(inner: W, redactor: Redactor) -> Self {
        RedactingWriter {
            redactor,
            inner,
            buf: Vec::new(),
        }
    }

    fn write_out(&mut self, upto: usize) -> std::io::Result<()> {
        let chunk: Vec<u8> = self.buf.drain(..upto).collect();
        let text = String::from_utf8_lossy(&chunk);
        self.inner.write_all(self.redactor.redact(&text).as_bytes())
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if let Some(last_nl) = self.buf.iter().rposition(|b| *b == b'\n') {
            self.write_out(last_nl + 1)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let n = self.buf.len();
        self.write_out(n)?;
        self.inner.flush()
    }
}

impl<W: std::io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;
    use crate::events::{Outcome, Recorder};

    #[test]
    fn redacts_everywhere_longest_first() {
        let r = Redactor::new(["abc".to_string(), "abcdef".to_string(), String::new()]);
        assert_eq!(r.redact("x abcdef y abc"), "x <sensitive> y <sensitive>");
        assert_eq!(r.redact("nothing"), "nothing");
        let mut v = serde_json::json!({"k": ["abc", 1, {"abcdef": "z"}]});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"k": ["<sensitive>", 1, {"<sensitive>": "z"}]})
        );
        let d = Diagnostic::error(Location::new("f", 1, 1), "found `abc`").with_help("not abc");
        let d = r.redact_diagnostic(d);
        assert_eq!(d.message, "found `<sensitive>`");
        assert_eq!(d.help.as_deref(), Some("not <sensitive>"));
        assert!(!format!("{r:?}").contains("abc"));
    }

    #[test]
    fn sinks_and_writers_redact_secrets_added_later() {
        let r = Redactor::default();
        let rec = Arc::new(Recorder::default());
        let sink = RedactingSink::new(rec.clone(), r.clone());
        r.add(["s3cret".to_string()]);
        sink.emit(&Event::finished(
            "b",
            "task",
            Outcome::Failed,
            std::time::Duration::ZERO,
            "echo s3cret",
        ));
        assert!(!format!("{:?}", rec.events()).contains("s3cret"));

        let mut out = Vec::new();
        {
            use std::io::Write;
            let mut w = RedactingWriter::new(&mut out, r.clone());
            w.write_all(b"a s3").unwrap();
            w.write_all(b"cret b\nlast s3cret").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a <sensitive> b\nlast <sensitive>"
        );
        let g = Redactor::default();
        g.absorb(&r);
        assert_eq!(g.redact("s3cret"), MASK);
    }
}
