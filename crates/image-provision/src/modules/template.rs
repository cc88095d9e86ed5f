//! `template`: renders a Jinja2 template locally (role `templates/`, then
//! the step list's directory) and writes it like `copy`.

use async_trait::async_trait;
use minijinja::Value;

use super::{file_spec, write_content, Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `template` module.
pub struct Template;

#[async_trait]
impl Module for Template {
    fn name(&self) -> &'static str {
        "template"
    }
    fn reads_vars(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "src",
            "dest",
            "mode",
            "owner",
            "group",
            "backup",
            "force",
            "validate",
            "newline_sequence",
            "trim_blocks",
            "lstrip_blocks",
            "follow",
            "output_encoding",
            "unsafe_writes",
            "block_start_string",
            "block_end_string",
            "variable_start_string",
            "variable_end_string",
            "comment_start_string",
            "comment_end_string",
            "attributes",
            "setype",
            "seuser",
            "serole",
            "selevel",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["src", "dest"]
    }
    /// Every effect sets `C` (a symbolic mode excepted).
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        super::octal_modes(args, &["mode"])
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let src = args.str("src")?;
        let dest = args.str("dest")?;
        let path = ctx.find_local(&src, "templates")?;
        let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
            ModuleError::Arg(format!("cannot read template {}: {e}", path.display()))
        })?;
        let vars = minijinja::context! {
            ansible_managed => "Ansible managed",
            template_path => path.display().to_string(),
            template_fullpath => path.display().to_string(),
            template_destpath => dest.clone(),
            template_host => ctx.fact("hostname"),
            ..Value::clone(ctx.vars.value())
        };
        let rendered = ctx
            .templates
            .render_with(&text, &vars)
            .map_err(|e| ModuleError::Arg(format!("template {}: {e}", path.display())))?;
        let mut spec = file_spec(args, dest.clone())?;
        spec.basename = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if dest.ends_with('/') {
            spec.dest = format!("{dest}{}", spec.basename.clone().unwrap_or_default());
        }
        write_content(ctx, &spec, rendered.as_bytes(), None).await
    }
}
