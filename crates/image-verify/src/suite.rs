//! Loading a gossfile into a [`Suite`], with goss's semantics: render the
//! Go template with the vars, parse the YAML (anchors and merge keys) with
//! positions, map every position back to the template's lines, read each
//! resource into a [`ResourceSpec`], expand `gossfile` includes, and warn
//! about keys given twice in one file, naming both lines.
//!
//! As goss: top-level keys that are not resource types are ignored (a
//! near miss of a type name gets a warning), unknown attributes are ignored
//! with a warning, an empty list of patterns checks nothing (with goss's
//! warning). Includes (`gossfile:`, key or `file:` a path or a glob,
//! relative to the including file) are read in key order after the file's
//! own resources, with the same vars; `skip: true` leaves an include unread;
//! a glob matching nothing is an error; nesting stops at 50. Later
//! definitions of the same resource replace earlier ones, with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_core::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use image_core::yaml::{self, Node, Value as Y};
use serde_json::Value;

use crate::matcher::Matcher;
use crate::resource::{self, gossfile, Check, ResourceSpec};
use crate::template::{self, Rendered, TemplateData};

/// goss stops at 50 nested gossfiles.
const MAX_INCLUDE_DEPTH: usize = 50;

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
                .insert(r.key.clone(), raw);
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
    let src = yaml::read_file(path).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error(None, format!("cannot read {name}: {e}"))
                .with_help("check the path and that the file is readable"),
        )
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

/// Reads vars files and inline JSON/YAML (in that order) into one map, as
/// goss: each vars file is deep-merged over the previous ones (nested maps
/// merge; a later non-empty value replaces, an empty one — `""`, `0`,
/// `false`, `[]`, `{}`, null — does not replace an existing key), then the
/// inline vars replace whole top-level keys.
pub fn load_vars(files: &[PathBuf], inline: &[String]) -> Result<Value, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut vars = serde_json::Map::new();
    let parse = |name: &str, src: &str, diags: &mut Diagnostics| match yaml::parse(name, src) {
        Ok(node) => match node.to_json() {
            Value::Object(m) => Some(m),
            Value::Null => None,
            _ => {
                diags.push(
                    node.type_error("vars", "a mapping")
                        .with_help("write `name: value` lines (YAML) or a JSON object"),
                );
                None
            }
        },
        Err(d) => {
            diags.push(d);
            None
        }
    };
    for f in files {
        let name = f.display().to_string();
        match yaml::read_file(f) {
            Ok(src) => {
                if let Some(m) = parse(&name, &src, &mut diags) {
                    deep_merge(&mut vars, m);
                }
            }
            Err(e) => diags.push(
                Diagnostic::error(None, format!("cannot read vars file {name}: {e}"))
                    .with_help("check the path given to --vars and that the file is readable"),
            ),
        }
    }
    for (i, s) in inline.iter().enumerate() {
        let name = if inline.len() > 1 {
            format!("<--vars-inline #{}>", i + 1)
        } else {
            "<--vars-inline>".to_string()
        };
        if let Some(m) = parse(&name, s, &mut diags) {
            vars.extend(m);
        }
    }
    diags.into_result(Value::Object(vars))
}

/// goss's `mergo.Merge(dst, src, WithOverride)` on vars maps.
fn deep_merge(dst: &mut serde_json::Map<String, Value>, src: serde_json::Map<String, Value>) {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
        }
    }
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_merge(d, s),
            (Some(_), v) if empty(&v) => {}
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
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
            self.diags.push(
                Diagnostic::error(
                    from.cloned(),
                    format!(
                        "gossfile {name} includes itself (through {} file(s))",
                        self.stack.len()
                    ),
                )
                .with_help("remove the `gossfile:` entry that closes the loop"),
            );
            return;
        }
        let src = match yaml::read_file(path) {
            Ok(s) => s,
            Err(e) => {
                self.diags.push(Diagnostic::error(
                    from.cloned(),
                    format!("cannot read gossfile {name}: {e}"),
                )
                .with_help("check the path (relative to the including gossfile) and that the file is readable"));
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
                .push(node.type_error("a gossfile", "a mapping of resource types").with_help("start with a resource type, e.g. `file:` then `  /etc/hosts: {exists: true}`"));
        }
        let mut warnings = Diagnostics::default();
        // goss merges a file's own resources first, then its includes (which
        // replace resources of the same key).
        let mut includes = None;
        for (k, v) in dedup(&node, "resource type", &mut warnings) {
            let key = k.as_key().unwrap_or_default();
            if key == "gossfile" {
                includes = Some(v);
                continue;
            }
            let Some(kind) = resource::by_key(&key) else {
                // goss ignores top-level keys that are not resource types
                // (image-builder keeps YAML anchors under such keys); a
                // near miss of a type name is most likely a typo.
                let keys = resource::all().iter().map(|r| r.key()).chain(["gossfile"]);
                if let Some(s) = did_you_mean(&key, keys) {
                    warnings.push(
                        Diagnostic::warning(
                            k.loc.clone(),
                            format!("`{key}` is not a resource type; it is ignored (as goss does)"),
                        )
                        .with_help(format!("did you mean `{s}`?")),
                    );
                }
                continue;
            };
            if !v.is_null() && v.as_map().is_none() {
                self.diags.push(
                    v.type_error(&format!("`{key}`"), "a mapping of resources")
                        .with_help(format!(
                            "list the resources by id under `{key}:`, each with its attributes"
                        )),
                );
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
                        .position(|r| r.kind.key() == spec.kind.key() && r.key == spec.key)
                    {
                        Some(i) => {
                            let old = &self.suite.resources[i].loc;
                            if old.file != spec.loc.file {
                                warnings.push(Diagnostic::warning(
                                    spec.loc.clone(),
                                    format!(
                                        "`{key}: {}` is also defined at {old}; this later-loaded one replaces it (as goss)",
                                        spec.key
                                    ),
                                ));
                            }
                            self.suite.resources[i] = spec;
                        }
                        None => self.suite.resources.push(spec),
                    }
                }
            }
        }
        if let Some(v) = includes {
            self.includes(v, base_dir, skip, &mut warnings);
        }
        self.suite.warnings.extend(warnings);
    }

    fn includes(&mut self, v: &Node, base_dir: &Path, skip: bool, warnings: &mut Diagnostics) {
        if !v.is_null() && v.as_map().is_none() {
            return self.diags.push(
                v.type_error("`gossfile`", "a mapping of paths")
                    .with_help("e.g. `gossfile: {other.yaml: {}}`"),
            );
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return self.diags.push(
                v.error(format!(
                    "gossfiles are nested {MAX_INCLUDE_DEPTH} deep; goss stops there (an include loop?)"
                ))
                .with_help("include fewer levels of gossfiles (or break the loop)"),
            );
        }
        // goss reads includes sorted by key.
        let mut entries = dedup(v, "gossfile", warnings);
        entries.sort_by_key(|(k, _)| k.as_key().unwrap_or_default());
        for (k, attrs) in entries {
            let mut pattern = k.as_key().unwrap_or_default();
            let mut inc_skip = false;
            if let Some(pairs) = attrs.as_map() {
                for (ak, av) in pairs {
                    match ak.as_key().as_deref() {
                        Some("skip") => inc_skip = av.as_bool_loose().unwrap_or(false),
                        Some("file") => {
                            if let Some(f) = av.scalar_string().filter(|f| !f.is_empty()) {
                                pattern = f;
                            }
                        }
                        Some("title") | Some("meta") => {}
                        Some(other) => warnings.push(
                            Diagnostic::warning(
                                ak.loc.clone(),
                                format!("unknown key `{other}` in gossfile include is ignored (as goss does)"),
                            )
                            .with_help("known keys: file, skip, title, meta"),
                        ),
                        None => {}
                    }
                }
            } else if !attrs.is_null() {
                self.diags.push(
                    attrs
                        .type_error("a gossfile include", "a mapping")
                        .with_help("give `{}` or keys such as `skip: true`"),
                );
                continue;
            }
            // goss: a skipped include is not read at all, as if omitted.
            if inc_skip {
                continue;
            }
            match gossfile::resolve(base_dir, &pattern) {
                Ok(paths) => {
                    for p in paths {
                        self.file(&p, skip, Some(&k.loc));
                    }
                }
                Err(e) => self.diags.push(
                    k.error(e)
                        .with_help("check the path or glob (relative to this gossfile)"),
                ),
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
            key: id_text.clone(),
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
            self.diags.push(
                attrs
                    .type_error(
                        &format!("{} `{id_text}`", kind.key()),
                        "a mapping of attributes",
                    )
                    .with_help("give its attributes as a mapping, e.g. `exists: true`"),
            );
            return None;
        }
        let what = format!("attribute of {} `{id_text}`", kind.key());
        let name_attr = resource::name_attribute(kind.key());
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
            if name_attr == Some(key.as_str()) {
                match v.scalar_string().filter(|s| !v.is_null() && !s.is_empty()) {
                    Some(name) => spec.id = name,
                    None if v.is_null() => {}
                    None => {
                        self.diags.push(
                            v.type_error(&key, "a string")
                                .with_help("give the name as a string"),
                        );
                        ok = false;
                    }
                }
                continue;
            }
            match key.as_str() {
                "title" => spec.title = v.scalar_string().unwrap_or_default(),
                "meta" => spec.meta = v.to_json(),
                "skip" => match v.as_bool_loose() {
                    Some(b) => spec.skip |= b,
                    None => {
                        self.diags.push(
                            v.type_error("skip", "true or false")
                                .with_help("use `skip: true` or `skip: false`"),
                        );
                        ok = false;
                    }
                },
                "retry_count" | "retry_delay" if resource::RETRYING.contains(&kind.key()) => {
                    let j = v.to_json();
                    let bad = if key == "retry_count" {
                        !(j.is_null() || j.as_i64().is_some())
                    } else {
                        resource::parse_retry_delay(&j).is_err()
                    };
                    if bad {
                        let what = if key == "retry_count" {
                            "an integer"
                        } else {
                            "milliseconds or a duration (500ms, 2s)"
                        };
                        self.diags.push(v.type_error(&key, what));
                        ok = false;
                    } else {
                        spec.settings.insert(key.clone(), j);
                    }
                }
                _ => {
                    if let Some(prop) = kind.properties().iter().find(|p| p.name == prop_name) {
                        if prop.text && v.as_seq().is_some_and(|s| s.is_empty()) {
                            // goss: an empty list of patterns is zero
                            // conditions; the property is not checked.
                            warnings.push(
                                Diagnostic::warning(
                                    k.loc.clone(),
                                    format!(
                                        "{}: {}.{key} is an empty list, which asserts nothing and always passes",
                                        spec.key,
                                        kind.key()
                                    ),
                                )
                                .with_help("use \"\" to assert empty content, or remove it"),
                            );
                            continue;
                        }
                        if v.is_null() {
                            // goss: an attribute without a value is unset.
                            continue;
                        }
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
                        // goss ignores attributes it does not know; say so,
                        // since it is most often a typo.
                        let known: Vec<&str> = kind
                            .properties()
                            .iter()
                            .map(|p| p.name)
                            .chain(kind.settings().iter().copied())
                            .chain(name_attr)
                            .chain(["title", "meta", "skip"])
                            .chain(
                                ["retry_count", "retry_delay"]
                                    .into_iter()
                                    .filter(|_| resource::RETRYING.contains(&kind.key())),
                            )
                            .collect();
                        let mut d = Diagnostic::warning(
                            k.loc.clone(),
                            format!(
                                "unknown attribute `{key}` for {} `{id_text}` is ignored (as goss does)",
                                kind.key()
                            ),
                        );
                        d = match did_you_mean(&key, known.iter().copied()) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!(
                                "{} attributes: {}",
                                kind.key(),
                                known.join(", ")
                            )),
                        };
                        warnings.push(d);
                    }
                }
            }
        }
        // goss's `as-reader`: the content is read as text, a list is line
        // patterns.
        if kind.key() == "matching" && spec.setting_bool("as-reader") {
            for c in &mut spec.checks {
                let m = std::mem::replace(&mut c.matcher, Matcher::Equal(Value::Null));
                match m.into_patterns() {
                    Ok(m) => c.matcher = m,
                    Err(e) => {
                        self.diags.push(Diagnostic::error(c.loc.clone(), e));
                        ok = false;
                    }
                }
            }
        }
        // goss checks the gate property (`exists`, `installed`...) first and
        // skips the others when it fails.
        if let Some(gate) = resource::gate_property(kind.key()) {
            if let Some(i) = spec.checks.iter().position(|c| c.property == gate) {
                let c = spec.checks.remove(i);
                spec.checks.insert(0, c);
            }
        }
        ok.then_some(spec)
    }
}

#[cfg(test)]
mod tests;
