//! Options of a verification, parsed from strings so that the CLI stays
//! thin: [`VerifyOptions`], durations (`500ms`, `10s`, `2m`, `1h`; a bare
//! number is seconds, as goss), the target from `--host` and `--identity`
//! ([`TargetSpec`], image-core's).

use std::path::PathBuf;
use std::time::Duration;

use image_core::diag::Diagnostics;
use image_core::target::Become;

use crate::output::OutputFormat;
use crate::runner::RunOptions;
use crate::suite::{self, Suite};
use crate::template::TemplateData;

/// Where to verify (image-core's, shared by every command that targets a host).
pub use image_core::target_spec::TargetSpec;

/// Everything `image-cli verify` takes.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The gossfile.
    pub gossfile: PathBuf,
    /// Where to run the checks.
    pub target: TargetSpec,
    /// Observe through `sudo -n`.
    pub become_: bool,
    /// `--vars` files, merged in order.
    pub vars_files: Vec<PathBuf>,
    /// `--vars-inline` JSON/YAML, merged last.
    pub vars_inline: Vec<String>,
    /// Output format.
    pub format: OutputFormat,
    /// `--retry-timeout` (zero: no retries).
    pub retry_timeout: Duration,
    /// `--sleep` between retries.
    pub sleep: Duration,
    /// `--max-concurrent`.
    pub max_concurrent: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            gossfile: PathBuf::from("goss.yaml"),
            target: TargetSpec::Local,
            become_: false,
            vars_files: Vec::new(),
            vars_inline: Vec::new(),
            format: OutputFormat::Rspecish,
            retry_timeout: Duration::ZERO,
            sleep: Duration::from_secs(1),
            max_concurrent: 50,
        }
    }
}

impl VerifyOptions {
    /// The template data: merged vars and the environment.
    pub fn template_data(&self) -> Result<TemplateData, Diagnostics> {
        let vars = suite::load_vars(&self.vars_files, &self.vars_inline)?;
        Ok(TemplateData::new(vars))
    }

    /// Loads the gossfile with the vars (blocking file I/O).
    pub fn load(&self) -> Result<Suite, Diagnostics> {
        let data = self.template_data()?;
        suite::load(&self.gossfile, &data)
    }

    /// The runner's options.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            become_: self.become_.then(Become::default),
            max_concurrent: self.max_concurrent.max(1),
            retry_timeout: self.retry_timeout,
            sleep: self.sleep,
        }
    }
}

/// Parses `500ms`, `1.5s`, `10s`, `2m`, `1h`, `1m30s`; a bare number is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<f64>() {
        return secs(n, s);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("bad duration `{s}`: missing unit"))?;
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("bad duration `{s}`"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(format!(
                    "bad duration `{s}`: unknown unit `{u}` (ms, s, m, h)"
                ))
            }
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    secs(total, s)
}

fn secs(n: f64, s: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(n).map_err(|_| format!("bad duration `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(
            "JUnit".parse::<OutputFormat>().unwrap(),
            OutputFormat::Junit
        );
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
