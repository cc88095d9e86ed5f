//! Logging to stderr with tracing-subscriber; `-v` flags pick the level.
//! `RUST_LOG` (an env-filter directive) overrides them. Every line goes
//! through [`image_core::redact::global`], so a sensitive value a task
//! printed is masked in the log too.

use image_core::redact::{self, RedactingWriter};
use tracing_subscriber::EnvFilter;

/// Installs the subscriber: 0 = warn, 1 = info, 2 = debug, more = trace.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // A second init (tests embedding main) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingWriter::new(std::io::stderr(), redact::global().clone()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
