//! Loading a gossfile into a [`Suite`]: render the Go template with the
//! vars, parse the YAML with positions, map every position back to the
//! template's lines, read each resource into a [`ResourceSpec`] (unknown
//! resource types and attributes are errors with a "did you mean"), expand
//! `gossfile` includes (paths and globs, recursively, with the same vars),
//! and warn about keys given twice in one file, naming both lines.
//!
//! Later definitions of the same resource (in a later include) replace
//! earlier ones, as in goss.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_core::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use image_core::yaml::{self, Node, Value as Y};
use serde_json::Value;

use crate::matcher::Matcher;
use crate::resource::{self, gossfile, Check, ResourceSpec};
use crate::template::{self, Rendered, TemplateData};

/// A loaded gossfile with its includes.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    /// The resources, in file order (includes where they are included).
    pub resources: Vec<ResourceSpec>,
    /// Warnings (keys given twice, deprecated attribute names).
    pub warnings: Diagnostics,
    /// Every file read, as named in diagnostics.
    pub files: Vec<String>,
}

impl Suite {
    /// The number of checks (properties) in the suite.
    pub fn check_count(&self) -> usize {
        self.resources.iter().map(|r| r.checks.len()).sum()
    }

    /// The merged gossfile as YAML, like `goss render`: every resource of
    /// every include, by type and id.
    pub fn to_yaml(&self) -> String {
        let mut by_type: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
        for r in &self.resources {
            let mut raw = r.raw.clone();
            if r.skip {
                if let Value::Object(m) = &mut raw {
                    m.insert("skip".into(), Value::Bool(true));
                }
            }
            by_type
                .entry(r.kind.key())
                .or_default()
                .insert(r.id.clone(), raw);
        }
        serde_yaml::to_string(&by_type).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Reads `path` and everything it includes.
pub fn load(path: &Path, data: &TemplateData) -> Result<Suite, Diagnostics> {
    let mut l = Loader {
        data,
        diags: Diagnostics::default(),
        stack: Vec::new(),
        suite: Suite::default(),
    };
    l.file(path, false, None);
    finish(l)
}

/// Loads a gossfile given as text; includes are relative to `base_dir`.
pub fn load_str(
    name: &str,
    src: &str,
    base_dir: &Path,
    data: &TemplateData,
) -> Result<Suite, Diagnostics> {
    let mut l = Loader {
        data,
        diags: Diagnostics::default(),
        stack: Vec::new(),
        suite: Suite::default(),
    };
    l.doc(name, src, base_dir, false);
    finish(l)
}

/// Renders only the template of one file (`verify render` of a single
/// file's text), errors with file:line.
pub fn render_file(path: &Path, data: &TemplateData) -> Result<Rendered, Diagnostics> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(Diagnostic::error(None, format!("cannot read {name}: {e}")))
    })?;
    template::render(&name, &src, data).map_err(Diagnostics::from)
}

fn finish(l: Loader<'_>) -> Result<Suite, Diagnostics> {
    let Loader {
        mut diags,
        mut suite,
        ..
    } = l;
    if diags.has_errors() {
        diags.extend(suite.warnings);
        return Err(diags.sorted());
    }
    diags.extend(std::mem::take(&mut suite.warnings));
    suite.warnings = diags.sorted();
    Ok(suite)
}

/// Reads vars files and inline JSON/YAML (in that order) into one map;
/// later sources replace top-level keys of earlier ones, as goss.
pub fn load_vars(files: &[PathBuf], inline: &[String]) -> Result<Value, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut vars = serde_json::Map::new();
    let mut merge = |name: &str, src: &str, diags: &mut Diagnostics| match yaml::parse(name, src) {
        Ok(node) => match node.to_json() {
            Value::Object(m) => vars.extend(m),
            Value::Null => {}
            _ => diags.push(node.type_error("vars", "a mapping")),
        },
        Err(d) => diags.push(d),
    };
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(src) => merge(&name, &src, &mut diags),
            Err(e) => diags.error(None, format!("cannot read vars file {name}: {e}")),
        }
    }
    for (i, s) in inline.iter().enumerate() {
        let name = if inline.len() > 1 {
            format!("<--vars-inline #{}>", i + 1)
        } else {
            "<--vars-inline>".to_string()
        };
        merge(&name, s, &mut diags);
    }
    diags.into_result(Value::Object(vars))
}

struct Loader<'a> {
    data: &'a TemplateData,
    diags: Diagnostics,
    stack: Vec<PathBuf>,
    suite: Suite,
}

fn remap(node: &mut Node, r: &Rendered) {
    node.loc.line = r.source_line(node.loc.line);
    match &mut node.value {
        Y::Seq(items) => items.iter_mut().for_each(|n| remap(n, r)),
        Y::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| {
            remap(k, r);
            remap(v, r);
        }),
        _ => {}
    }
}

/// The pairs of a mapping with duplicates dropped (the last wins), warning
/// about each duplicate with both lines.
fn dedup<'n>(node: &'n Node, what: &str, warnings: &mut Diagnostics) -> Vec<&'n (Node, Node)> {
    let Some(pairs) = node.as_map() else {
        return Vec::new();
    };
    for (first, second) in node.duplicate_keys() {
        warnings.push(
            Diagnostic::warning(
                second.loc.clone(),
                format!(
                    "{what} `{}` is given twice, at lines {} and {}; only the last one is used",
                    second.as_key().unwrap_or_default(),
                    first.loc.line,
                    second.loc.line
                ),
            )
            .with_help("merge the two into one (goss silently keeps only one)"),
        );
    }
    pairs
        .iter()
        .enumerate()
        .filter(|(i, (k, _))| {
            !pairs[i + 1..]
                .iter()
                .any(|(k2, _)| k2.as_key() == k.as_key())
        })
        .map(|(_, p)| p)
        .collect()
}

impl Loader<'_> {
    fn file(&mut self, path: &Path, skip: bool, from: Option<&Location>) {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let name = path.display().to_string();
        if self.stack.contains(&canon) {
            self.diags.push(Diagnostic::error(
                from.cloned(),
                format!(
                    "gossfile {name} includes itself (through {} file(s))",
                    self.stack.len()
                ),
            ));
            return;
        }
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                self.diags.push(Diagnostic::error(
                    from.cloned(),
                    format!("cannot read gossfile {name}: {e}"),
                ));
                return;
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.stack.push(canon);
        self.doc(&name, &src, &base, skip);
        self.stack.pop();
    }

    fn doc(&mut self, name: &str, src: &str, base_dir: &Path, skip: bool) {
        self.suite.files.push(name.to_string());
        let rendered = match template::render(name, src, self.data) {
            Ok(r) => r,
            Err(d) => return self.diags.push(d),
        };
        let mut node = match yaml::parse(name, &rendered.text) {
            Ok(n) => n,
            Err(mut d) => {
                if let Some(loc) = &mut d.location {
                    if !rendered.is_identity() {
                        d.message =
                            format!("{} (line {} of the rendered template)", d.message, loc.line);
                    }
                    loc.line = rendered.source_line(loc.line);
                }
                return self.diags.push(d);
            }
        };
        if !rendered.is_identity() {
            remap(&mut node, &rendered);
        }
        if node.is_null() {
            return;
        }
        if node.as_map().is_none() {
            return self
                .diags
                .push(node.type_error("a gossfile", "a mapping of resource types"));
        }
        let mut warnings = Diagnostics::default();
        for (k, v) in dedup(&node, "resource type", &mut warnings) {
            let key = k.as_key().unwrap_or_default();
            if key == "gossfile" {
                self.includes(v, base_dir, skip, &mut warnings);
                continue;
            }
            let Some(kind) = resource::by_key(&key) else {
                let mut d = k.error(format!("unknown resource type `{key}`"));
                let keys: Vec<&str> = resource::all()
                    .iter()
                    .map(|r| r.key())
                    .chain(["gossfile"])
                    .collect();
                d = match did_you_mean(&key, keys.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("resource types: {}", keys.join(", "))),
                };
                self.diags.push(d);
                continue;
            };
            if !v.is_null() && v.as_map().is_none() {
                self.diags
                    .push(v.type_error(&format!("`{key}`"), "a mapping of resources"));
                continue;
            }
            for (id, attrs) in dedup(v, &format!("{key} resource"), &mut warnings) {
                if let Some(spec) = self.resource(kind, id, attrs, skip, &mut warnings) {
                    let errs = kind.validate(&spec);
                    for e in errs {
                        self.diags.push(e);
                    }
                    match self
                        .suite
                        .resources
                        .iter()
                        .position(|r| r.kind.key() == spec.kind.key() && r.id == spec.id)
                    {
                        Some(i) => self.suite.resources[i] = spec,
                        None => self.suite.resources.push(spec),
                    }
                }
            }
        }
        self.suite.warnings.extend(warnings);
    }

    fn includes(&mut self, v: &Node, base_dir: &Path, skip: bool, warnings: &mut Diagnostics) {
        if !v.is_null() && v.as_map().is_none() {
            return self
                .diags
                .push(v.type_error("`gossfile`", "a mapping of paths"));
        }
        for (k, attrs) in dedup(v, "gossfile", warnings) {
            let pattern = k.as_key().unwrap_or_default();
            let mut inc_skip = skip;
            if let Some(pairs) = attrs.as_map() {
                for (ak, av) in pairs {
                    match ak.as_key().as_deref() {
                        Some("skip") => inc_skip |= av.as_bool_loose().unwrap_or(false),
                        Some("title") | Some("meta") => {}
                        Some(other) => self.diags.push(
                            ak.error(format!("unknown key `{other}` in gossfile include"))
                                .with_help("known keys: skip, title, meta"),
                        ),
                        None => {}
                    }
                }
            } else if !attrs.is_null() {
                self.diags
                    .push(attrs.type_error("a gossfile include", "a mapping"));
            }
            match gossfile::resolve(base_dir, &pattern) {
                Ok(paths) => {
                    for p in paths {
                        self.file(&p, inc_skip, Some(&k.loc));
                    }
                }
                Err(e) => self.diags.push(k.error(e)),
            }
        }
    }

    fn resource(
        &mut self,
        kind: &'static dyn resource::Resource,
        id: &Node,
        attrs: &Node,
        skip: bool,
        warnings: &mut Diagnostics,
    ) -> Option<ResourceSpec> {
        let id_text = id.as_key().unwrap_or_default();
        let mut spec = ResourceSpec {
            kind,
            id: id_text.clone(),
            title: String::new(),
            meta: Value::Null,
            skip,
            checks: Vec::new(),
            settings: BTreeMap::new(),
            raw: attrs.to_json(),
            loc: id.loc.clone(),
        };
        if attrs.is_null() {
            return Some(spec);
        }
        if attrs.as_map().is_none() {
            self.diags.push(attrs.type_error(
                &format!("{} `{id_text}`", kind.key()),
                "a mapping of attributes",
            ));
            return None;
        }
        let what = format!("attribute of {} `{id_text}`", kind.key());
        let mut ok = true;
        for (k, v) in dedup(attrs, &what, warnings) {
            let key = k.as_key().unwrap_or_default();
            let prop_name = kind
                .aliases()
                .iter()
                .find(|(old, _)| *old == key)
                .map_or(key.as_str(), |(_, new)| *new);
            if prop_name != key {
                warnings.push(Diagnostic::warning(
                    k.loc.clone(),
                    format!("`{key}` is deprecated, use `{prop_name}`"),
                ));
            }
            match key.as_str() {
                "title" => spec.title = v.scalar_string().unwrap_or_default(),
                "meta" => spec.meta = v.to_json(),
                "skip" => match v.as_bool_loose() {
                    Some(b) => spec.skip |= b,
                    None => {
                        self.diags.push(v.type_error("skip", "true or false"));
                        ok = false;
                    }
                },
                _ => {
                    if let Some(prop) = kind.properties().iter().find(|p| p.name == prop_name) {
                        match Matcher::from_node(v, prop.text) {
                            Ok(m) => spec.checks.push(Check {
                                property: prop.name,
                                matcher: m,
                                loc: k.loc.clone(),
                            }),
                            Err(d) => {
                                self.diags.push(d);
                                ok = false;
                            }
                        }
                    } else if kind.settings().contains(&key.as_str()) {
                        spec.settings.insert(key.clone(), v.to_json());
                    } else {
                        let known: Vec<&str> = kind
                            .properties()
                            .iter()
                            .map(|p| p.name)
                            .chain(kind.settings().iter().copied())
                            .chain(["title", "meta", "skip"])
                            .collect();
                        let mut d = k.error(format!(
                            "unknown attribute `{key}` for {} `{id_text}`",
                            kind.key()
                        ));
                        d = match did_you_mean(&key, known.iter().copied()) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!(
                                "{} attributes: {}",
                                kind.key(),
                                known.join(", ")
                            )),
                        };
                        self.diags.push(d);
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(spec)
    }
}

#[cfg(test)]
mod tests;
