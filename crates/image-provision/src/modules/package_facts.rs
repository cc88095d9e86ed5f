//! `package_facts`: installed packages (dpkg or rpm) into
//! `ansible_facts.packages`.

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `package_facts` module.
pub struct PackageFacts;

#[async_trait]
impl Module for PackageFacts {
    fn name(&self) -> &'static str {
        "package_facts"
    }
    fn params(&self) -> &'static [&'static str] {
        &["manager", "strategy"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let out = ctx
            .sh(
                "if command -v dpkg-query >/dev/null; then dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\n' | awk -F'\\t' '$1 ~ /^[ih]i/ {print \"apt\\t\" $2 \"\\t\" $3 \"\\t\" $4}'; elif command -v rpm >/dev/null; then rpm -qa --qf 'rpm\\t%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'; fi",
                None,
            )
            .await?;
        let mut pkgs: Map<String, Json> = Map::new();
        for l in out.stdout_str().lines() {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 4 {
                continue;
            }
            let e = pkgs.entry(f[1].to_string()).or_insert_with(|| json!([]));
            if let Json::Array(a) = e {
                a.push(json!({"name": f[1], "version": f[2], "arch": f[3], "source": f[0]}));
            }
        }
        let mut r = ModuleResult::ok();
        let mut facts = Map::new();
        facts.insert("packages".into(), Json::Object(pkgs));
        r.ansible_facts = Some(facts);
        Ok(r)
    }
}
