//! `rpm_key`: imports a GPG key into the rpm database (changed when the
//! number of imported keys grows) or removes one by key id.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `rpm_key` module.
pub struct RpmKey;

#[async_trait]
impl Module for RpmKey {
    fn name(&self) -> &'static str {
        "rpm_key"
    }
    fn params(&self) -> &'static [&'static str] {
        &["key", "state", "fingerprint", "validate_certs"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["key"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let key = args.str("key")?;
        let body = if args.opt_str("state").as_deref() == Some("absent") {
            let id = key.to_lowercase();
            let id = &id[id.len().saturating_sub(8)..];
            format!("if rpm -q gpg-pubkey-{id} >/dev/null 2>&1; then C=1; do_ rpm -e gpg-pubkey-{id}; fi")
        } else {
            format!(
                "k={}\nb=$(rpm -q gpg-pubkey 2>/dev/null | grep -c gpg-pubkey)\ncase $k in http*) t=$(mktemp); dl \"$k\" \"$t\" 2>\"$t.err\" || fail \"downloading $k failed: $(cat \"$t.err\")\"; k=$t;; esac\nif [ \"$CHECK\" = 1 ]; then tmpdb=$(mktemp -d); rpm --dbpath \"$tmpdb\" --import \"$k\" >/dev/null 2>&1; for id in $(rpm --dbpath \"$tmpdb\" -q gpg-pubkey 2>/dev/null); do rpm -q \"$id\" >/dev/null 2>&1 || C=1; done; rm -rf \"$tmpdb\"; return 0; fi\n_o=$(rpm --import \"$k\" 2>&1) || fail \"rpm --import failed: $_o\"\na=$(rpm -q gpg-pubkey 2>/dev/null | grep -c gpg-pubkey)\n[ \"$a\" -gt \"$b\" ] && C=1; true",
                q(&key)
            )
        };
        let out = ctx
            .run_script_dl(
                &body,
                None,
                &super::http::Request::get(&args.opt_str("key").unwrap_or_default()),
            )
            .await?;
        Ok(ModuleResult::from_script(&out, "rpm_key"))
    }
}
