//! `yum_repository`: a repository section in `/etc/yum.repos.d/<file>.repo`.

use async_trait::async_trait;

use super::{file_spec, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The module's parameters: the file's, then the repository keys
/// ([`KEYS`]), then the file attributes.
const PARAMS: &[&str] = &[
    "name",
    "description",
    "file",
    "reposdir",
    "state",
    "mode",
    "owner",
    "group",
    "baseurl",
    "mirrorlist",
    "metalink",
    "enabled",
    "gpgcheck",
    "gpgkey",
    "repo_gpgcheck",
    "exclude",
    "includepkgs",
    "priority",
    "sslverify",
    "module_hotfixes",
    "cost",
    "skip_if_unavailable",
    "metadata_expire",
    "proxy",
    "timeout",
    "username",
    "password",
    "countme",
    "keepcache",
    "unsafe_writes",
    "attributes",
];

/// The keys written into the section as given (a slice of [`PARAMS`]).
const KEYS: &[&str] = PARAMS.split_at(8).1.split_at(21).0;

/// The `yum_repository` module.
pub struct YumRepository;

#[async_trait]
impl Module for YumRepository {
    fn name(&self) -> &'static str {
        "yum_repository"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let file = args.opt_str("file").unwrap_or_else(|| name.clone());
        let dir = args
            .opt_str("reposdir")
            .unwrap_or_else(|| "/etc/yum.repos.d".into());
        let dest = format!("{dir}/{file}.repo");
        if args.opt_str("state").as_deref() == Some("absent") {
            let out = ctx.run_script(&format!("rmf {}", q(&dest)), None).await?;
            return Ok(ModuleResult::from_script(&out, &dest));
        }
        let mut content = format!(
            "[{name}]\nname = {}\n",
            args.opt_str("description").unwrap_or_else(|| name.clone())
        );
        for k in KEYS {
            if let Some(v) = args.get(k) {
                let s = match v {
                    serde_json::Value::Bool(b) => {
                        if *b {
                            "1".into()
                        } else {
                            "0".into()
                        }
                    }
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(super::json_to_string)
                        .collect::<Vec<_>>()
                        .join("\n       "),
                    other => match super::json_bool(other) {
                        Some(b)
                            if matches!(
                                *k,
                                "enabled"
                                    | "gpgcheck"
                                    | "repo_gpgcheck"
                                    | "sslverify"
                                    | "module_hotfixes"
                                    | "skip_if_unavailable"
                                    | "countme"
                                    | "keepcache"
                            ) =>
                        {
                            if b {
                                "1".into()
                            } else {
                                "0".into()
                            }
                        }
                        _ => super::json_to_string(other),
                    },
                };
                content.push_str(&format!("{k} = {s}\n"));
            }
        }
        let mut spec = file_spec(args, dest)?;
        spec.mode = spec.mode.or(Some("644".into()));
        super::write_content(ctx, &spec, content.as_bytes(), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_repository_options_of_params() {
        assert_eq!(KEYS.first(), Some(&"baseurl"));
        assert_eq!(KEYS.last(), Some(&"keepcache"));
        assert!(!KEYS.contains(&"name") && !KEYS.contains(&"unsafe_writes"));
    }
}
