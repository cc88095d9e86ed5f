//! The image definition: a YAML file, like `packer.json` plus var files in
//! image-builder, resolved without I/O into one typed, checked [`Plan`] per
//! selected build.
//!
//! ```yaml
//! description: Kubernetes node images      # optional
//! variables:
//!   kubernetes_version: "1.31.4"           # a plain default
//!   ami_regions: { default: [], type: list, description: copy to these }
//!   api_token: { required: true, sensitive: true }
//! defaults:                                # settings shared by all builds
//!   region: us-east-1
//!   ami_regions: "{{ ami_regions }}"       # a single expression keeps its type
//! builds:
//!   ubuntu-2404:                           # overrides defaults key by key
//!     source_ami: { owners: ["099720109477"], name: "ubuntu/images/*", architecture: x86_64 }
//!     instance_type: t3.small
//!     ssh_username: ubuntu
//!     ami_name: "k8s-{{ kubernetes_version }}-{{ timestamp }}"
//! ```
//!
//! - `variables`: name -> plain default, or `{default, description,
//!   required, sensitive, type}` (see [`vars`]). Values: defaults <
//!   var files < `--var` (see [`values`]).
//! - `defaults` and `builds.<name>`: build settings, merged deeply (mappings
//!   merge, lists replace; see [`merge`]). The settings and their checks are
//!   in [`build`] (the AMI's optional attributes in [`ami_options`]); their
//!   typed form is [`Plan`], whose EC2 part, [`BuildSettings`] (with the
//!   rules on its values), the EC2 request holds too.
//! - Every string is a minijinja template over the variables plus
//!   `timestamp`, `build_name` and `isotime(fmt)` (see [`template`]).
//! - Errors are collected, never stopped at: [`Spec::resolve`] returns every
//!   problem of the definition, the var files and the command line, sorted by
//!   position. A key given twice in a mapping is a warning.
//!
//! Reading files is in [`load`] ([`Spec::load`], [`load::load`],
//! [`load::check_files`]); everything else here is pure: the caller passes
//! the sources and the time.

pub mod ami_options;
pub mod bounded;
pub mod build;
pub mod check;
mod dups;
pub mod load;
pub mod merge;
pub mod plan;
pub mod select;
pub mod settings;
pub mod spot;
pub mod subnet_filter;
pub mod template;
pub mod values;
pub mod vars;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::redact::Redactor;
use crate::yaml::{self, MapReader, Node, Value};

pub use ami_options::AmiOptions;
pub use plan::{
    AmiFilter, AmiRegions, Architecture, FileRef, MetadataOptions, Plan, RootDevice, SourceAmi,
    SshInterface, VolumeType,
};
pub use select::Selection;
pub use settings::BuildSettings;
pub use values::{VarInputs, VarSource, VarValue};
pub use vars::{VarType, Variable};

/// A parsed image definition: variables declared, builds not yet resolved.
#[derive(Debug, Clone)]
pub struct Spec {
    name: String,
    base_dir: PathBuf,
    description: Option<String>,
    variables: Vec<Variable>,
    defaults: Node,
    builds: Vec<BuildDecl>,
    /// Problems found while parsing (warnings, and errors when parsed
    /// leniently); [`Spec::resolve`] reports them with its own.
    diags: Diagnostics,
}

#[derive(Debug, Clone)]
struct BuildDecl {
    name: String,
    loc: Location,
    settings: Node,
}

/// What [`Spec::resolve`] produces.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// One per selected build, in definition order.
    pub plans: Vec<Plan>,
    /// Every declared variable with its final value, in declaration order.
    pub variables: Vec<VarValue>,
    /// Warnings (sorted); show them even though resolution succeeded.
    pub warnings: Diagnostics,
    /// Masks the sensitive variables' values (as given and as resolved);
    /// [`Resolved::mask`] uses it, and outputs should go through it (see
    /// [`crate::redact`]).
    pub redactor: Redactor,
}

impl Resolved {
    /// The variables as a JSON array; sensitive values masked when `mask`.
    pub fn variables_json(&self, mask: bool) -> serde_json::Value {
        serde_json::Value::Array(self.variables.iter().map(|v| v.to_json(mask)).collect())
    }

    /// The plans as a JSON array with every sensitive variable's value
    /// masked wherever it was rendered into (see [`Resolved::mask`]).
    pub fn plans_json_masked(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.plans).unwrap_or(serde_json::Value::Null);
        mask_json(&mut v, &|s| self.mask(s));
        v
    }

    /// `s` with the text of every sensitive variable's value (non-empty
    /// strings, numbers, and list items; also as given on the command line
    /// or in a var file) replaced by `<sensitive>`.
    pub fn mask(&self, s: &str) -> String {
        self.redactor.redact_string(s)
    }
}

fn mask_json(v: &mut serde_json::Value, mask: &dyn Fn(&str) -> String) {
    match v {
        serde_json::Value::String(s) => *s = mask(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| mask_json(i, mask)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|i| mask_json(i, mask)),
        _ => {}
    }
}

impl Spec {
    /// Parses a definition named `name` (used in diagnostics); relative
    /// paths are relative to `name`'s directory. Any error is returned.
    pub fn parse(name: &str, src: &str) -> Result<Spec, Diagnostics> {
        let dir = Path::new(name)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        Spec::parse_in(name, src, &dir)
    }

    /// Like [`Spec::parse`], relative paths resolved against `base_dir`.
    pub fn parse_in(name: &str, src: &str, base_dir: &Path) -> Result<Spec, Diagnostics> {
        let spec = Spec::parse_lenient(name, src, base_dir)?;
        if spec.diags.has_errors() {
            return Err(spec.diags.sorted());
        }
        Ok(spec)
    }

    /// Parses as far as possible: only an unusable file (YAML syntax, not a
    /// mapping) is an `Err`. Other errors stay in the spec and come out of
    /// [`Spec::resolve`] together with the resolution's, so a run reports
    /// everything at once.
    pub fn parse_lenient(name: &str, src: &str, base_dir: &Path) -> Result<Spec, Diagnostics> {
        let doc = yaml::parse(name, src).map_err(Diagnostics::from)?;
        let mut diags = Diagnostics::default();
        dups::duplicate_key_warnings(&doc, &mut diags);
        if doc.as_map().is_none() {
            diags.push(
                doc.type_error("an image definition", "a mapping")
                    .with_help("a definition has `variables`, `defaults` and `builds`"),
            );
            return Err(diags);
        }
        let null = Node {
            value: Value::Null,
            loc: doc.loc.clone(),
        };
        let mut spec = Spec {
            name: name.to_string(),
            base_dir: base_dir.to_path_buf(),
            description: None,
            variables: Vec::new(),
            defaults: null.clone(),
            builds: Vec::new(),
            diags: Diagnostics::default(),
        };
        let Some(mut top) = MapReader::new(&doc, "the image definition", &mut diags) else {
            return Err(diags);
        };
        if let Some(d) = top.get("description") {
            match d.scalar_string() {
                Some(s) => spec.description = Some(s).filter(|s| !s.is_empty()),
                None => diags.push(
                    d.type_error("description", "a string")
                        .with_help("write the description as one line of text"),
                ),
            }
        }
        if let Some(v) = top.get("variables") {
            spec.variables = vars::parse_declarations(v, &mut diags);
        }
        if let Some(d) = top.get("defaults") {
            match &d.value {
                Value::Map(_) | Value::Null => spec.defaults = d.clone(),
                _ => diags.push(
                    d.type_error("defaults", "a mapping of build settings")
                        .with_help(
                        "write `defaults:` with build settings under it, e.g. `region: us-east-1`",
                    ),
                ),
            }
        }
        match top.get("builds") {
            Some(b) => spec.builds = parse_builds(b, &mut diags),
            // A misspelled `bulds:` is reported as such; no need to add that
            // `builds` is missing.
            None if !doc.as_map().unwrap_or_default().iter().any(|(k, _)| {
                k.as_key()
                    .is_some_and(|k| k != "builds" && did_you_mean(&k, ["builds"]).is_some())
            }) =>
            {
                diags.push(
                    Diagnostic::error(
                        template::start(&doc),
                        "the image definition has no `builds`",
                    )
                    .with_help("add `builds:` with at least one named build"),
                )
            }
            None => {}
        }
        top.finish(&mut diags);
        // An error at a key (a build defined twice) replaces the warning
        // about the same key.
        let errors_at: Vec<Option<Location>> = diags
            .0
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.location.clone())
            .collect();
        diags
            .0
            .retain(|d| d.is_error() || !errors_at.contains(&d.location));
        spec.diags = diags;
        Ok(spec)
    }

    /// The name diagnostics use (the path as given, or `<builtin>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The definition's `description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The declared variables, in order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The builds' names, in order.
    pub fn build_names(&self) -> Vec<&str> {
        self.builds.iter().map(|b| b.name.as_str()).collect()
    }

    /// Warnings (and, when parsed leniently, errors) found while parsing.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diags
    }

    /// Resolves the selected builds: variable values from `inputs`, templates
    /// rendered with `timestamp` = `now` (unix seconds), settings typed and
    /// checked. All problems come back together, sorted; warnings come back
    /// in [`Resolved::warnings`] on success.
    pub fn resolve(
        &self,
        inputs: &VarInputs,
        selection: &Selection,
        now: i64,
    ) -> Result<Resolved, Diagnostics> {
        let mut diags = self.diags.clone();
        let names = self.build_names();
        let selected = if names.is_empty() {
            Vec::new()
        } else {
            let (selected, d) = selection.apply_lenient(&names);
            diags.extend(d);
            selected
        };
        let mut broken = HashSet::new();
        let variables =
            values::resolve_values(&self.variables, inputs, now, &mut diags, &mut broken);
        let ctx: BTreeMap<String, serde_json::Value> = variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        let mut renderer = template::Renderer::new(now, ctx);
        renderer.set_broken(broken);
        let mut plans = Vec::new();
        for b in self
            .builds
            .iter()
            .filter(|b| selected.contains(&b.name.as_str()))
        {
            let merged = merge::merge(&self.defaults, &b.settings);
            renderer.set("build_name", serde_json::Value::String(b.name.clone()));
            let mut failed = HashSet::new();
            let rendered = renderer.render_node(&merged, &mut diags, &mut failed);
            let cx = build::BuildContext {
                name: &b.name,
                loc: &b.loc,
                spec: &self.name,
                base_dir: &self.base_dir,
                failed: &failed,
            };
            if let Some(p) = build::read_plan(&rendered, &cx, &mut diags) {
                plans.push(p);
            }
        }
        // Every message about this definition leaves here redacted: a
        // refused sensitive value is quoted in its error.
        let redactor = Redactor::new(values::sensitive_texts(&self.variables, inputs, &variables));
        let diags = redactor.redact_diagnostics(tidy(diags));
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(Resolved {
            plans,
            variables,
            warnings: diags,
            redactor,
        })
    }
}

fn parse_builds(node: &Node, diags: &mut Diagnostics) -> Vec<BuildDecl> {
    let mut out: Vec<BuildDecl> = Vec::new();
    let Some(pairs) = node.as_map() else {
        diags.push(
            node.type_error("builds", "a mapping of build names to settings")
                .with_help("name each build: `builds:` then `  node:` with its settings under it"),
        );
        return out;
    };
    if pairs.is_empty() {
        diags.push(
            node.error("`builds` is empty")
                .with_help("add at least one named build"),
        );
    }
    for (k, v) in pairs {
        let name = k.as_key().unwrap_or_default();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            diags.push(
                k.error(format!("invalid build name `{name}`"))
                    .with_help("use letters, digits, `-`, `_` and `.`"),
            );
            continue;
        }
        if !matches!(v.value, Value::Map(_) | Value::Null) {
            diags.push(
                v.type_error(&format!("build `{name}`"), "a mapping of settings")
                    .with_help(
                        "put the build's settings under its name, e.g. `instance_type: t3.small`",
                    ),
            );
            continue;
        }
        if let Some(first) = out.iter().find(|b| b.name == name) {
            diags.push(
                k.error(format!("build `{name}` is defined twice"))
                    .with_help(format!(
                        "first defined at line {}: rename or remove one of them",
                        first.loc.line
                    )),
            );
            continue;
        }
        out.push(BuildDecl {
            name,
            loc: k.loc.clone(),
            settings: v.clone(),
        });
    }
    out
}

/// Drops repeated diagnostics (a mistake in `defaults` shows in every build)
/// and sorts by position.
pub(crate) fn tidy(diags: Diagnostics) -> Diagnostics {
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.0.len());
    for d in diags.0 {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Diagnostics(out).sorted()
}

#[cfg(test)]
mod tests;
