//! `dpkg_selections`: a package's dpkg selection (`hold`, `install`, ...).
//! Returns ansible's `before` (the selection found, `not present` when dpkg
//! lists none) and `after` (the one asked for), changed or not.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `dpkg_selections` module.
pub struct DpkgSelections;

#[async_trait]
impl Module for DpkgSelections {
    fn name(&self) -> &'static str {
        "dpkg_selections"
    }
    fn params(&self) -> &'static [&'static str] {
        &["name", "selection"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name", "selection"]
    }
    /// A probe: the check compares the selection and sets nothing.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let sel = args.choice(
            "selection",
            &["install", "hold", "deinstall", "purge"],
            "install",
        )?;
        // ansible's reading of `dpkg --get-selections NAME`: a package dpkg
        // does not know fails, no line at all is `not present`, else the
        // second word; `before` is returned whether or not it changes.
        let body = format!(
            "n={}; s={}\n_a=$(LC_ALL=C dpkg --get-selections \"$n\" 2>&1) || fail \"dpkg --get-selections $n: $_a\"\ncase $_a in *'no packages found matching'*) fail \"Failed to find package '$n' to perform selection '$s'.\";; esac\ncur=$(printf '%s\\n' \"$_a\" | awk '!/^dpkg: / {{print $2; exit}}')\n[ -n \"$cur\" ] || cur='not present'\necho \"@@current=$cur\"\nif [ \"$cur\" != \"$s\" ]; then C=1; [ \"$CHECK\" = 1 ] || {{ echo \"$n $s\" | dpkg --set-selections || fail 'dpkg --set-selections failed'; }}; fi",
            q(&name),
            q(&sel)
        );
        let out = ctx.run_script(&body, None).await?;
        Ok(ModuleResult::from_script(&out, &name)
            .with("before", out.get("current").unwrap_or("").to_string())
            .with("after", sel))
    }
}
