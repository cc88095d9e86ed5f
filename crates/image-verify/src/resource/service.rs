//! `service`: systemd units, enabled and running, all in one
//! `systemctl show -p Id,LoadState,ActiveState,UnitFileState u1 u2 ...`.
//!
//! `enabled` follows `systemctl is-enabled` (true for `enabled`,
//! `enabled-runtime`, `static`, `indirect`, `generated`, `alias`,
//! `transient`), `running` follows `systemctl is-active`. `runlevels` is
//! what goss finds on systemd: none (an empty list), so `runlevels: []`
//! passes and any expected runlevel fails.

use async_trait::async_trait;

use super::{quote_all, Observed, Property, Resource, ResourceSpec};
use crate::gather::{Plan, Section, SectionResult};

/// The `service` resource type.
pub struct Service;

const PROPS: &[Property] = &[
    Property::value("enabled"),
    Property::value("running"),
    Property::value("runlevels"),
];

const ENABLED: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "static",
    "indirect",
    "generated",
    "alias",
    "transient",
];

/// The probe script.
pub fn script(units: &[&str]) -> String {
    format!(
        "command -v systemctl >/dev/null 2>&1 || {{ echo '#no-systemctl'; exit 0; }}; \
         systemctl show --no-pager -p Id,LoadState,ActiveState,UnitFileState -- {}",
        quote_all(units.iter().copied())
    )
}

/// Parses `systemctl show` blocks (one per unit, in order).
pub fn parse(out: &str, units: &[&str]) -> Result<Vec<Observed>, String> {
    if out.starts_with("#no-systemctl") {
        return Err("systemctl not found: only systemd services are supported".into());
    }
    let blocks: Vec<&str> = out
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    if blocks.len() != units.len() {
        return Err(format!(
            "systemctl show returned {} records for {} units",
            blocks.len(),
            units.len()
        ));
    }
    Ok(blocks
        .iter()
        .zip(units)
        .map(|(b, unit)| {
            let get = |k: &str| {
                b.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                    .unwrap_or("")
            };
            let mut o = Observed::default();
            let running = matches!(get("ActiveState"), "active" | "reloading");
            let enabled = ENABLED.contains(&get("UnitFileState"));
            o.set("enabled", enabled)
                .set("running", running)
                .set("runlevels", serde_json::Value::Array(Vec::new()));
            if get("LoadState") == "not-found" {
                o.absent = Some(format!("service {unit} not found"));
            }
            o
        })
        .collect())
}

#[async_trait]
impl Resource for Service {
    fn key(&self) -> &'static str {
        "service"
    }
    fn type_name(&self) -> &'static str {
        "Service"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn plan<'s>(&self, specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        let units: Vec<&'s str> = specs.iter().map(|s| s.id.as_str()).collect();
        let section = Section::new(script(&units));
        Some(Plan {
            sections: vec![section],
            read: Box::new(move |res: Vec<SectionResult>| {
                let res = match res.into_iter().next() {
                    Some(Ok(out)) if out.status == 0 => parse(&out.stdout_str(), &units),
                    Some(Ok(out)) => Err(format!(
                        "systemctl show failed: {}",
                        out.stderr_str().trim()
                    )),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("no result".into()),
                };
                res.unwrap_or_else(|e| vec![Observed::failed(e); units.len()])
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn parses_blocks() {
        let out = "Id=ssh.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
                   Id=nope.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n";
        let o = parse(out, &["ssh", "nope"]).unwrap();
        assert_eq!(o[0].values["running"], Value::Bool(true));
        assert_eq!(o[0].values["enabled"], Value::Bool(true));
        assert_eq!(o[1].values["enabled"], Value::Bool(false));
        assert!(parse(out, &["one"]).is_err());
        assert!(parse("#no-systemctl\n", &["x"]).is_err());
    }
}
