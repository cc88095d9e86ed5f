//! packer's wait variables: `AWS_POLL_DELAY_SECONDS` and `AWS_MAX_ATTEMPTS`
//! applied to [`WaitSettings`], read through a function (the caller's
//! environment; image-aws reads none itself).
//!
//! ```
//! use image_aws::{wait_env::wait_settings_from_env, WaitSettings};
//! let w = wait_settings_from_env(&WaitSettings::default(), |k| std::env::var(k).ok())?;
//! # let _ = w;
//! # Ok::<(), String>(())
//! ```

use crate::WaitSettings;

/// `base` with packer's wait variables applied: `AWS_POLL_DELAY_SECONDS`
/// (fixed poll interval, seconds > 0) and `AWS_MAX_ATTEMPTS` (polls per
/// wait, >= 1). `var` reads a variable (`std::env::var` in the CLI). An
/// unusable value is an error naming the variable.
pub fn wait_settings_from_env(
    base: &WaitSettings,
    var: impl Fn(&str) -> Option<String>,
) -> Result<WaitSettings, String> {
    let mut w = base.clone();
    if let Some(v) = var("AWS_POLL_DELAY_SECONDS").filter(|v| !v.trim().is_empty()) {
        let secs: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
            .ok_or_else(|| {
                format!("AWS_POLL_DELAY_SECONDS=`{v}`: expected seconds between 0 and 3600, e.g. 2")
            })?;
        w = w.fixed(std::time::Duration::from_secs_f64(secs));
    }
    if let Some(v) = var("AWS_MAX_ATTEMPTS").filter(|v| !v.trim().is_empty()) {
        let n: u32 =
            v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("AWS_MAX_ATTEMPTS=`{v}`: expected a number of polls >= 1")
            })?;
        w.max_polls = Some(n);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn packer_wait_variables_override_the_settings() {
        let base = WaitSettings::default();
        assert_eq!(wait_settings_from_env(&base, env(&[])).unwrap(), base);
        let w = wait_settings_from_env(
            &base,
            env(&[("AWS_POLL_DELAY_SECONDS", "2"), ("AWS_MAX_ATTEMPTS", "40")]),
        )
        .unwrap();
        assert_eq!(w.initial_interval_ms, 2000);
        assert_eq!(w.max_interval_ms, 2000);
        assert_eq!(w.multiplier, 1.0);
        assert_eq!(w.jitter, 0.0);
        assert_eq!(w.max_polls, Some(40));
        assert_eq!(w.image_timeout_secs, base.image_timeout_secs);
        let w = wait_settings_from_env(&base, env(&[("AWS_POLL_DELAY_SECONDS", "0.5")])).unwrap();
        assert_eq!(w.initial_interval_ms, 500);
        for bad in [
            ("AWS_POLL_DELAY_SECONDS", "0"),
            ("AWS_POLL_DELAY_SECONDS", "soon"),
            ("AWS_MAX_ATTEMPTS", "0"),
            ("AWS_MAX_ATTEMPTS", "-3"),
        ] {
            let e = wait_settings_from_env(&base, env(&[bad])).unwrap_err();
            assert!(e.contains(bad.0), "{e}");
        }
    }
}
