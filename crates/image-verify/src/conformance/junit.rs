//! Totals of the suite's junit reports, read without an XML parser (only
//! the `<testsuite>` start tags' counters are needed).

use serde::Serialize;

/// Totals of the junit reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JunitSummary {
    /// `<testsuite>` elements seen.
    pub suites: u64,
    /// Specs.
    pub tests: u64,
    /// Failed specs.
    pub failures: u64,
    /// Errored specs.
    pub errors: u64,
    /// Skipped (or disabled) specs.
    pub skipped: u64,
}

/// Adds the `<testsuite>` totals of one junit XML document to `sum`.
/// (`<testsuites>` wrappers are not counted: their totals repeat the suites'.)
pub fn add_junit(sum: &mut JunitSummary, xml: &str) {
    let mut rest = xml;
    while let Some(i) = rest.find("<testsuite") {
        rest = &rest[i + "<testsuite".len()..];
        let Some(next) = rest.chars().next() else {
            break;
        };
        if !(next.is_whitespace() || next == '>' || next == '/') {
            continue; // <testsuites
        }
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        sum.suites += 1;
        sum.tests += attr(tag, "tests");
        sum.failures += attr(tag, "failures");
        sum.errors += attr(tag, "errors");
        sum.skipped += attr(tag, "skipped").max(attr(tag, "disabled"));
    }
}

fn attr(tag: &str, name: &str) -> u64 {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest[..i].chars().last().is_some_and(char::is_whitespace);
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        if !before_ok {
            continue;
        }
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let val = &after[1..];
        let val = &val[..val.find(q).unwrap_or(val.len())];
        return val.trim().parse().unwrap_or(0);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_totals() {
        let mut s = JunitSummary::default();
        add_junit(
            &mut s,
            r#"<?xml version="1.0"?>
<testsuites tests="9" failures="9">
  <testsuite name="E2eNode Suite" tests="3" failures="1" errors="0" skipped="1" time="1">
    <testcase name="a"/>
  </testsuite>
</testsuites>"#,
        );
        add_junit(
            &mut s,
            r#"<testsuite tests='2' disabled="4" failures='0'></testsuite>"#,
        );
        assert_eq!(
            s,
            JunitSummary {
                suites: 2,
                tests: 5,
                failures: 1,
                errors: 0,
                skipped: 5
            }
        );
    }
}
