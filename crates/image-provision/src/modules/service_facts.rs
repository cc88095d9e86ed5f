//! `service_facts`: systemd services and their state into
//! `ansible_facts.services`.

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `service_facts` module.
pub struct ServiceFacts;

#[async_trait]
impl Module for ServiceFacts {
    fn name(&self) -> &'static str {
        "service_facts"
    }
    fn params(&self) -> &'static [&'static str] {
        &[]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let out = ctx
            .sh(
                "systemctl list-units --type=service --all --no-legend --no-pager --plain 2>/dev/null | awk '{print \"u \" $1 \" \" $4}'; systemctl list-unit-files --type=service --no-legend --no-pager 2>/dev/null | awk '{print \"f \" $1 \" \" $2}'",
                None,
            )
            .await?;
        let mut svcs: Map<String, Json> = Map::new();
        for l in out.stdout_str().lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 3 {
                continue;
            }
            let e = svcs
                .entry(f[1].to_string())
                .or_insert_with(|| json!({"name": f[1], "source": "systemd", "state": "stopped", "status": "unknown"}));
            if f[0] == "u" {
                e["state"] = json!(if f[2] == "running" {
                    "running"
                } else {
                    "stopped"
                });
            } else {
                e["status"] = json!(f[2]);
            }
        }
        let mut r = ModuleResult::ok();
        let mut facts = Map::new();
        facts.insert("services".into(), Json::Object(svcs));
        r.ansible_facts = Some(facts);
        Ok(r)
    }
}
