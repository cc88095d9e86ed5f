//! `include_vars`: loads variables from a YAML/JSON file (role `vars/`,
//! then the step list's directory) or every file of a directory, at the
//! include_vars precedence.

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use super::{Args, FreeForm, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `include_vars` module.
pub struct IncludeVars;

#[async_trait]
impl Module for IncludeVars {
    fn name(&self) -> &'static str {
        "include_vars"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "file",
            "dir",
            "name",
            "depth",
            "files_matching",
            "ignore_files",
            "extensions",
            "ignore_unknown_extensions",
            "hash_behaviour",
        ]
    }
    fn free_form(&self) -> FreeForm {
        FreeForm::Command
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let mut files = Vec::new();
        if let Some(d) = args.opt_str("dir") {
            let dir = ctx.find_local(&d, "vars")?;
            let mut rd = tokio::fs::read_dir(&dir)
                .await
                .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", dir.display())))?;
            while let Ok(Some(e)) = rd.next_entry().await {
                let p = e.path();
                if matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("yml" | "yaml" | "json")
                ) {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            let f = args.str_any(&["file", "_raw_params"])?;
            files.push(ctx.find_local(&f, "vars")?);
        }
        let mut vars = Map::new();
        for f in &files {
            let path = f.clone();
            let text = tokio::task::spawn_blocking(move || image_core::yaml::read_file(&path))
                .await
                .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", f.display())))?
                .map_err(|e| ModuleError::Arg(format!("cannot read {}: {e}", f.display())))?;
            let doc = image_core::yaml::parse(&f.display().to_string(), &text)
                .map_err(|d| ModuleError::Arg(d.to_string()))?;
            match doc.to_json() {
                Json::Object(m) => vars.extend(m),
                Json::Null => {}
                _ => {
                    return Err(ModuleError::Arg(format!(
                        "{} must hold a mapping",
                        f.display()
                    )))
                }
            }
        }
        let vars = match args.opt_str("name") {
            Some(n) => {
                let mut m = Map::new();
                m.insert(n, Json::Object(vars));
                m
            }
            None => vars,
        };
        let mut r = ModuleResult::ok();
        r.data.insert(
            "ansible_included_var_files".into(),
            Json::Array(
                files
                    .iter()
                    .map(|f| Json::String(f.display().to_string()))
                    .collect(),
            ),
        );
        // ansible returns the loaded variables as `ansible_facts` (they are
        // not facts: the engine stores them as include_vars).
        r.data
            .insert("ansible_facts".into(), Json::Object(vars.clone()));
        r.include_vars = Some(vars);
        Ok(r)
    }
}
