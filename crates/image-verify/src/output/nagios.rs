//! The `nagios` format (goss's `outputs/nagios.go`): one status line,
//! `GOSS OK - Count: N, Failed: F, Skipped: S, Duration: 0.123s` or
//! `GOSS CRITICAL - ...`; with the `perfdata` option
//! `|total=N failed=F skipped=S duration=0.123s`; with `verbose`, one
//! `Fail N - <summary>` line per failure. A failed run exits 2 (Nagios's
//! CRITICAL), see [`super::exit_code`].

use super::{humanize, FormatOptions};
use crate::report::{Report, Status};

/// Renders the report.
pub fn render(report: &Report, opts: &FormatOptions) -> String {
    let (n, failed, skipped) = (
        report.test_count(),
        report.failed_count(),
        report.skipped_count(),
    );
    let secs = report.duration.as_secs_f64();
    let state = if failed > 0 { "CRITICAL" } else { "OK" };
    let mut s = format!(
        "GOSS {state} - Count: {n}, Failed: {failed}, Skipped: {skipped}, Duration: {secs:.3}s"
    );
    if opts.perfdata {
        s.push_str(&format!(
            "|total={n} failed={failed} skipped={skipped} duration={secs:.3}s"
        ));
    }
    s.push('\n');
    if failed > 0 && opts.verbose {
        let fails = report.results.iter().filter(|r| r.status == Status::Failed);
        for (i, r) in fails.enumerate() {
            s.push_str(&format!("Fail {} - {}\n", i + 1, humanize(r, true, opts)));
        }
    }
    s
}
