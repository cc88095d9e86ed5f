//! A Go `text/template` engine, as goss renders gossfiles before parsing them
//! as YAML: `{{ .Vars.x }}`, `{{ .Env.X }}`, `if` / `else if` / `else`,
//! `range` over lists and maps with `$k, $v`, `with`, variables
//! (`$x := ...`, `$x = ...`), pipelines, `{{-` / `-}}` trimming, comments and
//! the functions of [`funcs`] (Go builtins plus the sprig/goss ones gossfiles
//! use).
//!
//! - [`lexer`]: text and actions, trimming, tokens with lines.
//! - [`parser`]: the tree; unknown functions are parse errors.
//! - [`eval`]: execution over `serde_json::Value`, with a line map.
//!
//! Rendering keeps, for each output line, the source line it came from, so
//! that YAML errors in the rendered text still name the template's line.
//!
//! ```
//! use image_verify::template::{render, TemplateData};
//! let data = TemplateData::new(serde_json::json!({"pkgs": {"curl": "8.0", "jq": "1.6"}}));
//! let src = "package:\n{{- range $name, $v := .Vars.pkgs }}\n  {{ $name }}: {versions: [{{ $v }}]}\n{{- end }}\n";
//! let out = render("goss.yaml", src, &data).unwrap();
//! assert_eq!(out.text, "package:\n  curl: {versions: [8.0]}\n  jq: {versions: [1.6]}\n");
//! assert_eq!(out.source_line(3), 3);
//! ```

pub mod eval;
pub mod funcs;
pub mod lexer;
pub mod parser;

use std::collections::BTreeMap;

use image_core::diag::{Diagnostic, Location};
use serde_json::Value;

/// What templates see: `.Vars` and `.Env`.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// `.Vars`: the merged `--vars` files and `--vars-inline`.
    pub vars: Value,
    /// `.Env`: the environment of the process.
    pub env: BTreeMap<String, String>,
}

impl TemplateData {
    /// Vars with this process's environment as `.Env`.
    pub fn new(vars: Value) -> Self {
        TemplateData {
            vars,
            env: std::env::vars().collect(),
        }
    }

    /// The root value templates execute on.
    pub fn root(&self) -> Value {
        let env: serde_json::Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        serde_json::json!({ "Vars": self.vars, "Env": env })
    }
}

/// A rendered template and where its lines came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The output text.
    pub text: String,
    /// For each output line (index 0 = line 1), its 1-based source line.
    pub line_map: Vec<usize>,
}

impl Rendered {
    /// The source line of 1-based output line `line` (the last known one
    /// past the end).
    pub fn source_line(&self, line: usize) -> usize {
        if line == 0 {
            return 1;
        }
        self.line_map
            .get(line - 1)
            .or(self.line_map.last())
            .copied()
            .unwrap_or(line)
    }

    /// True when the output is the source unchanged (no template actions).
    pub fn is_identity(&self) -> bool {
        self.line_map.iter().enumerate().all(|(i, l)| *l == i + 1)
    }
}

/// Renders `src` (named `file` in errors) with `data`. Errors name
/// `file:line`.
pub fn render(file: &str, src: &str, data: &TemplateData) -> Result<Rendered, Diagnostic> {
    if !src.contains("{{") {
        return Ok(Rendered {
            text: src.to_string(),
            line_map: (1..=src.lines().count().max(1)).collect(),
        });
    }
    let fail = |line: usize, msg: String| {
        Diagnostic::error(Location::new(file, line, 1), format!("template: {msg}")).with_help(
            "fix the Go template action (`{{ … }}`): its syntax, the function or the variable",
        )
    };
    let items = lexer::lex(src).map_err(|e| fail(e.line, e.message))?;
    let tree = parser::parse(items, &funcs::exists).map_err(|e| {
        let d = fail(e.line, e.message.clone());
        if e.message.contains("not defined") {
            d.with_help(format!("available functions: {}", funcs::NAMES.join(", ")))
        } else {
            d
        }
    })?;
    let root = data.root();
    let (text, line_map) = eval::execute(&tree, &root).map_err(|e| fail(e.line, e.message))?;
    Ok(Rendered { text, line_map })
}

#[cfg(test)]
mod tests;
