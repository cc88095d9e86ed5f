//! `set_fact`: sets host variables (precedence of set_fact / registered).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `set_fact` module.
pub struct SetFact;

#[async_trait]
impl Module for SetFact {
    fn name(&self) -> &'static str {
        "set_fact"
    }
    fn params(&self) -> &'static [&'static str] {
        &[]
    }
    fn any_params(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let mut facts = args.0.clone();
        let cacheable = args.bool_or("cacheable", false)?;
        facts.remove("cacheable");
        let mut r = ModuleResult::ok();
        // `cacheable` facts are host facts too (`ansible_facts['x']`).
        r.ansible_facts = cacheable.then(|| facts.clone());
        r.facts = Some(facts);
        Ok(r)
    }
}
