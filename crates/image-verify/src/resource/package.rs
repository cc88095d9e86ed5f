//! `package`: installed packages and their versions, all in one
//! `dpkg-query -W` (Debian, Ubuntu) or `rpm -q` (AL2023, RHEL) call.
//!
//! Versions are dpkg's `${Version}` and rpm's `[EPOCH:]VERSION-RELEASE`, as
//! goss v0.4 reports them.

use async_trait::async_trait;
use serde_json::Value;

use super::{quote_all, Observed, Property, Resource, ResourceSpec};
use crate::gather::Plan;

/// The `package` resource type.
pub struct Package;

const PROPS: &[Property] = &[Property::value("installed"), Property::value("versions")];

/// The probe: one line `name<TAB>arch-qualified-name<TAB>state<TAB>version`
/// per installed package, after a `#manager` line.
pub fn script(names: &[&str]) -> String {
    let args = quote_all(names.iter().copied());
    format!(
        "if command -v dpkg-query >/dev/null 2>&1; then echo '#dpkg'; \
         dpkg-query -W -f='${{Package}}\\t${{binary:Package}}\\t${{db:Status-Status}}\\t${{Version}}\\n' -- {args} 2>/dev/null; \
         elif command -v rpm >/dev/null 2>&1; then echo '#rpm'; \
         rpm -q --qf '%{{NAME}}\\t%{{NAME}}.%{{ARCH}}\\tinstalled\\t%|EPOCH?{{%{{EPOCH}}:}}:{{}}|%{{VERSION}}-%{{RELEASE}}\\n' -- {args} 2>/dev/null; \
         else echo '#none'; fi; true"
    )
}

/// Parses the probe's output into one observation per name.
pub fn parse(out: &str, names: &[&str]) -> Vec<Observed> {
    if out.lines().next() == Some("#none") {
        return names
            .iter()
            .map(|_| Observed::failed("no package manager found (dpkg-query or rpm)"))
            .collect();
    }
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.len() == 4)
        .collect();
    names
        .iter()
        .map(|name| {
            let versions: Vec<Value> = rows
                .iter()
                .filter(|f| (f[0] == *name || f[1] == *name) && f[2] == "installed")
                .map(|f| Value::String(f[3].to_string()))
                .collect();
            if versions.is_empty() {
                return Observed::missing("installed", format!("package {name} is not installed"));
            }
            let mut o = Observed::default();
            o.set("installed", true).set("versions", versions);
            o
        })
        .collect()
}

#[async_trait]
impl Resource for Package {
    fn key(&self) -> &'static str {
        "package"
    }
    fn type_name(&self) -> &'static str {
        "Package"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        Some(Plan::ids(specs, script, parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dpkg_and_rpm() {
        let out = "#dpkg\ncurl\tcurl\tinstalled\t7.88.1-10\nlibc6\tlibc6:amd64\tinstalled\t2.36-9\nold\told\tconfig-files\t1.0\n";
        let o = parse(out, &["curl", "libc6:amd64", "old", "nope"]);
        assert_eq!(o[0].values["versions"], serde_json::json!(["7.88.1-10"]));
        assert_eq!(o[1].values["installed"], Value::Bool(true));
        assert_eq!(o[2].values["installed"], Value::Bool(false));
        assert_eq!(o[3].values["installed"], Value::Bool(false));
        let o = parse(
            "#rpm\nbash\tbash.x86_64\tinstalled\t5.2-1.amzn2023\npackage x is not installed\n",
            &["bash", "x"],
        );
        assert_eq!(
            o[0].values["versions"],
            serde_json::json!(["5.2-1.amzn2023"])
        );
        assert_eq!(o[1].values["installed"], Value::Bool(false));
        assert!(parse("#none\n", &["a"])[0].error.is_some());
    }
}
