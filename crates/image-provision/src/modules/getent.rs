//! `getent`: runs `getent DATABASE [KEY]` and returns the records as the
//! fact `getent_<database>` (first field → the other fields; several
//! records with the same key → a list of them), as ansible does.
//! Read-only; works in check mode.

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `getent` module.
pub struct Getent;

#[async_trait]
impl Module for Getent {
    fn name(&self) -> &'static str {
        "getent"
    }
    fn params(&self) -> &'static [&'static str] {
        &["database", "key", "service", "split", "fail_key"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["database"]
    }
    /// A probe: read-only: a check-mode run is the run.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let db = args.str("database")?;
        let key = args.opt_str("key");
        let fail_key = args.bool_or("fail_key", true)?;
        let mut split = args.opt_str("split");
        if split.is_none() && ["passwd", "shadow", "group", "gshadow"].contains(&db.as_str()) {
            split = Some(":".into());
        }
        let mut cmd = format!("getent {}", q(&db));
        if let Some(k) = &key {
            cmd.push_str(&format!(" {}", q(k)));
        }
        if let Some(s) = args.opt_str("service") {
            cmd.push_str(&format!(" -s {}", q(&s)));
        }
        let out = ctx.sh(&cmd, None).await?;
        let tree = format!("getent_{db}");
        let mut results = Map::new();
        let fact = |m: Map<String, Json>| {
            let mut f = Map::new();
            f.insert(tree.clone(), Json::Object(m));
            f
        };
        match out.status {
            0 => {
                parse_into(&out.stdout_str(), split.as_deref(), &mut results);
                let mut r = ModuleResult::ok();
                r.ansible_facts = Some(fact(results));
                Ok(r)
            }
            2 if !fail_key => {
                let msg = "One or more supplied key could not be found in the database.";
                results.insert(key.unwrap_or_default(), Json::Null);
                let mut r = ModuleResult::ok().msg(msg);
                r.ansible_facts = Some(fact(results));
                Ok(r)
            }
            1 => Ok(ModuleResult::fail(
                "Missing arguments, or database unknown.",
            )),
            2 => Ok(ModuleResult::fail(
                "One or more supplied key could not be found in the database.",
            )),
            3 => Ok(ModuleResult::fail(
                "Enumeration not supported on this database.",
            )),
            127 => Ok(ModuleResult::fail(
                "Failed to find required executable \"getent\"",
            )),
            _ => Ok(ModuleResult::fail("Unexpected failure!")),
        }
    }
}

/// ansible's record parsing: `split` (None: Python's whitespace split).
fn parse_into(text: &str, split: Option<&str>, out: &mut Map<String, Json>) {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for line in text.lines() {
        let rec: Vec<String> = match split {
            Some(s) if !s.is_empty() => line.split(s).map(str::to_string).collect(),
            _ => line.split_whitespace().map(str::to_string).collect(),
        };
        let Some((k, rest)) = rec.split_first() else {
            continue;
        };
        let rest = Json::Array(rest.iter().cloned().map(Json::String).collect());
        match seen.get_mut(k) {
            Some(n) => {
                if *n == 1 {
                    let first = out.remove(k).unwrap_or(Json::Null);
                    out.insert(k.clone(), Json::Array(vec![first]));
                }
                if let Some(Json::Array(a)) = out.get_mut(k) {
                    a.push(rest);
                }
                *n += 1;
            }
            None => {
                out.insert(k.clone(), rest);
                seen.insert(k.clone(), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let mut m = Map::new();
        parse_into("root:x:0:0:root:/root:/bin/bash\n", Some(":"), &mut m);
        assert_eq!(m["root"][4], "/root");
        let mut m = Map::new();
        parse_into("127.0.0.1 localhost\n127.0.0.1 a b\n", None, &mut m);
        assert_eq!(
            m["127.0.0.1"],
            serde_json::json!([["localhost"], ["a", "b"]])
        );
    }
}
