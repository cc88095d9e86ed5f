//! YAML with positions: a small document tree in which every node knows the
//! `file:line:col` it came from, so that the image spec, step lists and goss
//! files can report every problem at the place the user wrote it.
//!
//! Anchors and aliases are resolved (an alias is a copy of the anchored node,
//! keeping the anchor's position), and YAML merge keys (`<<: *base`) are
//! applied the way ansible and goss (go-yaml) apply them: explicit keys win.
//! Mappings keep their order and their duplicate keys, so a reader can warn
//! about a key given twice (goss silently keeps one).
//!
//! [`MapReader`] reads a mapping field by field and reports unknown keys with
//! a "did you mean" hint.
//!
//! ```
//! use image_core::yaml;
//! let doc = yaml::parse("x.yaml", "a: 1\nb: [x, y]\n").unwrap();
//! assert_eq!(doc.get("b").unwrap().location().line, 2);
//! ```

use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Location};

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the node starts.
    pub loc: Location,
}

/// A YAML value. Plain scalars are resolved with the YAML 1.2 core schema;
/// `yes`/`no` stay strings, and [`Node::as_bool_loose`] reads them as the
/// YAML 1.1 booleans ansible and goss accept.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted, block, or a plain scalar that is nothing else).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order, duplicates kept.
    Map(Vec<(Node, Node)>),
}

/// Reading scalars.
pub struct Scalar;

impl Scalar {
    /// Resolves a plain scalar with the YAML 1.2 core schema.
    pub fn resolve_plain(s: &str) -> Value {
        match s {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            _ => {}
        }
        if let Some(hex) = s.strip_prefix("0x") {
            if let Ok(i) = i64::from_str_radix(hex, 16) {
                return Value::Int(i);
            }
        }
        if let Some(oct) = s.strip_prefix("0o") {
            if let Ok(i) = i64::from_str_radix(oct, 8) {
                return Value::Int(i);
            }
        }
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(i) = s.parse::<i64>() {
                return Value::Int(i);
            }
        }
        match s {
            ".inf" | ".Inf" | ".INF" | "+.inf" => return Value::Float(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
            _ => {}
        }
        let looks_numeric = digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
        if looks_numeric {
            if let Ok(f) = s.parse::<f64>() {
                return Value::Float(f);
            }
        }
        Value::Str(s.to_string())
    }
}

impl Node {
    /// Where this node starts.
    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// The node's kind in words, for error messages ("a string", "a list").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value of `key` in a mapping (the last one when given twice).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_key().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A scalar as a mapping key: strings as they are, numbers and booleans
    /// as their text. `None` for collections.
    pub fn as_key(&self) -> Option<String> {
        self.scalar_string()
    }

    /// Any scalar as text (`1` -> "1", `true` -> "true", null -> "").
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean, accepting YAML 1.1 spellings (`yes`, `no`, `on`, `off`) as
    /// ansible and goss do.
    pub fn as_bool_loose(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "y" | "on" | "true" => Some(true),
                "no" | "n" | "off" | "false" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The integer, when this is one (or a string that is one).
    pub fn as_i64(&self) -> Option<i64> {
        match &self.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The pairs of a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// An error at this node.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.loc.clone(), message)
    }

    /// "expected X, found Y" at this node.
    pub fn type_error(&self, what: &str, expected: &str) -> Diagnostic {
        self.error(format!("{what} must be {expected}, found {}", self.kind()))
    }

    /// The node as JSON (mapping keys as text; the last duplicate wins).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(pairs) => {
                let mut m = serde_json::Map::new();
                for (k, v) in pairs {
                    m.insert(k.as_key().unwrap_or_default(), v.to_json());
                }
                J::Object(m)
            }
        }
    }

    /// Pairs of (earlier, later) key nodes given twice in this mapping
    /// (a key given three times makes two pairs). Linear in the keys.
    pub fn duplicate_keys(&self) -> Vec<(&Node, &Node)> {
        let mut out = Vec::new();
        if let Value::Map(pairs) = &self.value {
            let mut last: std::collections::HashMap<String, &Node> = Default::default();
            for (k, _) in pairs {
                let Some(key) = k.as_key() else {
                    continue;
                };
                if let Some(prev) = last.insert(key, k) {
                    out.push((prev, k));
                }
            }
        }
        out
    }
}

/// Limits every YAML file is read under, so that a small crafted file can
/// neither exhaust the stack nor the memory: the file's size, how deep
/// collections nest, and how many nodes the aliases of one document may copy
/// (an "alias bomb" of a few hundred bytes otherwise expands to billions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file, in bytes.
    pub max_bytes: usize,
    /// The deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// The most nodes the aliases of one document may copy in total.
    pub max_alias_nodes: usize,
}

/// The largest YAML file read: 4 MiB (the built-in definition, roles and
/// goss files are a few KiB each).
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// The deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 200;
/// The most nodes the aliases of one document may copy.
pub const MAX_ALIAS_NODES: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: MAX_FILE_BYTES,
            max_depth: MAX_DEPTH,
            max_alias_nodes: MAX_ALIAS_NODES,
        }
    }
}

/// Reads a file that will be parsed as YAML (or JSON), refusing one larger
/// than [`MAX_FILE_BYTES`] before reading it all. The error is an
/// `io::Error` whose text says the size and the limit.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let limit = MAX_FILE_BYTES as u64;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the file is larger than {} MiB, the limit for YAML and JSON input",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(buf).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        )
    })
}

/// Parses the only document of `src`. `file` is the name used in
/// locations. An empty document is `Null`. A syntax error is one diagnostic
/// at the place the parser stopped; so is a second document (`---`), a file
/// over [`MAX_FILE_BYTES`], nesting deeper than [`MAX_DEPTH`] and aliases
/// copying more than [`MAX_ALIAS_NODES`] nodes. A UTF-8 byte order mark is
/// skipped.
pub fn parse(file: &str, src: &str) -> Result<Node, Diagnostic> {
    let mut docs = parse_docs(file, src, Limits::default(), true)?;
    if docs.is_empty() {
        Ok(Node {
            value: Value::Null,
            loc: Location::new(file, 1, 1),
        })
    } else {
        Ok(docs.swap_remove(0))
    }
}

/// Parses every document of `src`, under the default [`Limits`] (the alias
/// budget is per document).
pub fn parse_all(file: &str, src: &str) -> Result<Vec<Node>, Diagnostic> {
    parse_docs(file, src, Limits::default(), false)
}

/// [`parse`] under other [`Limits`].
pub fn parse_with_limits(file: &str, src: &str, limits: Limits) -> Result<Node, Diagnostic> {
    let mut docs = parse_docs(file, src, limits, true)?;
    if docs.is_empty() {
        Ok(Node {
            value: Value::Null,
            loc: Location::new(file, 1, 1),
        })
    } else {
        Ok(docs.swap_remove(0))
    }
}

fn parse_docs(
    file: &str,
    src: &str,
    limits: Limits,
    single: bool,
) -> Result<Vec<Node>, Diagnostic> {
    let file: Arc<str> = file.into();
    if src.len() > limits.max_bytes {
        return Err(Diagnostic::error(
            Location::new(file, 1, 1),
            format!(
                "file too large: {} bytes, the limit is {} bytes",
                src.len(),
                limits.max_bytes
            ),
        )
        .with_help(
            "split it into smaller files (step lists can `include_tasks`, goss files `gossfile`)",
        ));
    }
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: Default::default(),
        docs: Vec::new(),
        limits,
        alias_nodes: 0,
        single,
    };
    let mut parser = Parser::new_from_str(src);
    // Event by event, not `Parser::load`, which recurses once per level and
    // cannot be stopped by the receiver.
    loop {
        let (ev, mark) = parser
            .next_token()
            .map_err(|e| syntax_error(&file, src, &e, limits))?;
        if ev == Event::StreamEnd {
            break;
        }
        builder.event(ev, mark)?;
    }
    Ok(builder.docs)
}

/// The parser's error as a diagnostic. A tab is reported where it is (the
/// scanner marks the token before it, often on the line above); the
/// scanner's own flow-nesting limit is reported as the depth limit.
fn syntax_error(
    file: &Arc<str>,
    src: &str,
    e: &yaml_rust2::ScanError,
    limits: Limits,
) -> Diagnostic {
    let m = e.marker();
    let (mut line, mut col) = (m.line(), m.col() + 1);
    if e.info() == "recursion limit exceeded" {
        return depth_error(Location::new(file.clone(), line, col), limits);
    }
    let tab = e.info().contains("tab");
    if tab {
        if let Some((l, c)) = first_tab_from(src, m.index()) {
            (line, col) = (l, c);
        }
    }
    let help = if tab {
        "indent with spaces: YAML does not allow tabs in indentation"
    } else {
        "fix the YAML syntax (indentation, quoting, a missing `:`)"
    };
    Diagnostic::error(
        Location::new(file.clone(), line, col),
        format!("YAML syntax error: {}", e.info()),
    )
    .with_help(help)
}

/// The 1-based line and column of the first tab at or after character
/// `from`.
fn first_tab_from(src: &str, from: usize) -> Option<(usize, usize)> {
    let (mut line, mut col) = (1, 1);
    for (i, c) in src.chars().enumerate() {
        if c == '\t' && i >= from {
            return Some((line, col));
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

fn depth_error(loc: Location, limits: Limits) -> Diagnostic {
    Diagnostic::error(
        loc,
        format!("YAML nests deeper than {} levels", limits.max_depth),
    )
    .with_help("flatten the structure; no definition, step list or goss file needs this depth")
}

enum Frame {
    Seq(Location, usize, Vec<Node>, usize),
    Map(Location, usize, Vec<(Node, Node)>, Option<Node>, usize),
}

struct Builder {
    file: Arc<str>,
    stack: Vec<Frame>,
    /// Anchored nodes with their node counts.
    anchors: std::collections::HashMap<usize, (Node, usize)>,
    docs: Vec<Node>,
    limits: Limits,
    /// Nodes copied by aliases in the current document.
    alias_nodes: usize,
    /// Refuse a second document.
    single: bool,
}

impl Builder {
    fn loc(&self, m: Marker) -> Location {
        Location::new(self.file.clone(), m.line(), m.col() + 1)
    }

    /// Adds a finished node of `count` nodes to its parent.
    fn finish(&mut self, node: Node, anchor: usize, count: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), count));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, _, items, n)) => {
                items.push(node);
                *n = n.saturating_add(count);
            }
            Some(Frame::Map(_, _, pairs, pending, n)) => {
                *n = n.saturating_add(count);
                match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => pairs.push((key, node)),
                }
            }
        }
    }

    fn open(&mut self, frame: Frame, mark: Marker) -> Result<(), Diagnostic> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(depth_error(self.loc(mark), self.limits));
        }
        self.stack.push(frame);
        Ok(())
    }
}
/// Applies `<<` merge keys: the merged mappings' keys come first, then this
/// mapping's own keys, which win over merged ones.
fn apply_merge_keys(pairs: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    if !pairs.iter().any(|(k, _)| k.as_str() == Some("<<")) {
        return pairs;
    }
    let (merges, own): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| k.as_str() == Some("<<"));
    let mut seen: std::collections::HashSet<Option<String>> =
        own.iter().map(|(k, _)| k.as_key()).collect();
    let mut out: Vec<(Node, Node)> = Vec::new();
    let mut add = |src: &Node, out: &mut Vec<(Node, Node)>| {
        if let Value::Map(ps) = &src.value {
            for (k, v) in ps {
                if seen.insert(k.as_key()) {
                    out.push((k.clone(), v.clone()));
                }
            }
        }
    };
    for (_, v) in &merges {
        match &v.value {
            Value::Seq(items) => items.iter().for_each(|i| add(i, &mut out)),
            _ => add(v, &mut out),
        }
    }
    out.extend(own);
    out
}

impl Builder {
    fn event(&mut self, ev: Event, mark: Marker) -> Result<(), Diagnostic> {
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = match style {
                    TScalarStyle::Plain => Scalar::resolve_plain(&text),
                    _ => Value::Str(text),
                };
                let node = Node {
                    value,
                    loc: self.loc(mark),
                };
                self.finish(node, anchor, 1);
            }
            Event::Alias(id) => {
                let (node, count) = self.anchors.get(&id).cloned().unwrap_or((
                    Node {
                        value: Value::Null,
                        loc: self.loc(mark),
                    },
                    1,
                ));
                self.alias_nodes = self.alias_nodes.saturating_add(count);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(Diagnostic::error(
                        self.loc(mark),
                        format!(
                            "YAML aliases expand to more than {} nodes in this document",
                            self.limits.max_alias_nodes
                        ),
                    )
                    .with_help(
                        "use fewer or smaller `*alias` references (is this an alias bomb?)",
                    ));
                }
                self.finish(node, 0, count);
            }
            Event::SequenceStart(anchor, _) => {
                let loc = self.loc(mark);
                self.open(Frame::Seq(loc, anchor, Vec::new(), 1), mark)?;
            }
            Event::MappingStart(anchor, _) => {
                let loc = self.loc(mark);
                self.open(Frame::Map(loc, anchor, Vec::new(), None, 1), mark)?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(loc, anchor, items, count)) = self.stack.pop() {
                    self.finish(
                        Node {
                            value: Value::Seq(items),
                            loc,
                        },
                        anchor,
                        count,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut loc, anchor, pairs, _, count)) = self.stack.pop() {
                    // yaml-rust2 marks a block mapping at its first key's `:`;
                    // the mapping starts at the first key.
                    if let Some((k, _)) = pairs.first() {
                        if (k.loc.line, k.loc.col) < (loc.line, loc.col) {
                            loc = k.loc.clone();
                        }
                    }
                    self.finish(
                        Node {
                            value: Value::Map(apply_merge_keys(pairs)),
                            loc,
                        },
                        anchor,
                        count,
                    );
                }
            }
            Event::DocumentStart => {
                if self.single && !self.docs.is_empty() {
                    return Err(Diagnostic::error(
                        self.loc(mark),
                        "a second YAML document: this file is read as one document",
                    )
                    .with_help("remove this `---` and what follows it, or merge it into the first document"));
                }
                self.anchors.clear();
                self.alias_nodes = 0;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }
}

/// Reads a mapping field by field, then reports the keys nobody asked for.
///
/// ```
/// use image_core::{diag::Diagnostics, yaml::{self, MapReader}};
/// let doc = yaml::parse("f.yaml", "name: x\nnmae: y\n").unwrap();
/// let mut diags = Diagnostics::default();
/// let mut r = MapReader::new(&doc, "build", &mut diags).unwrap();
/// assert!(r.get("name").is_some());
/// r.finish(&mut diags);
/// assert!(diags.to_string().contains("f.yaml:2:1: error: unknown key `nmae` in build"));
/// ```
pub struct MapReader<'a> {
    node: &'a Node,
    what: String,
    asked: Vec<&'static str>,
}

impl<'a> MapReader<'a> {
    /// Starts reading `node`, which must be a mapping (or null, read as an
    /// empty mapping); otherwise an error is pushed and `None` returned.
    pub fn new(node: &'a Node, what: &str, diags: &mut Diagnostics) -> Option<Self> {
        match &node.value {
            Value::Map(_) | Value::Null => Some(MapReader {
                node,
                what: what.to_string(),
                asked: Vec::new(),
            }),
            _ => {
                diags.push(node.type_error(what, "a mapping"));
                None
            }
        }
    }

    /// The value of `key`, remembering that it is known.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Node> {
        self.asked.push(key);
        self.node.get(key)
    }

    /// Marks `key` as known without reading it.
    pub fn allow(&mut self, key: &'static str) {
        self.asked.push(key);
    }

    /// The mapping being read.
    pub fn node(&self) -> &'a Node {
        self.node
    }

    /// Pushes an error for every key that was never asked for.
    pub fn finish(self, diags: &mut Diagnostics) {
        let Some(pairs) = self.node.as_map() else {
            return;
        };
        for (k, _) in pairs {
            let key = k.as_key().unwrap_or_default();
            if self.asked.iter().any(|a| *a == key) {
                continue;
            }
            let mut d = k.error(format!("unknown key `{key}` in {}", self.what));
            d = match did_you_mean(&key, self.asked.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => {
                    let mut known: Vec<&str> = self.asked.clone();
                    known.sort_unstable();
                    known.dedup();
                    d.with_help(format!("known keys: {}", known.join(", ")))
                }
            };
            diags.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let doc = parse("f.yaml", "a:\n  b: 1\n  c: [x, 'y']\n").unwrap();
        let a = doc.get("a").unwrap();
        assert_eq!((a.loc.line, a.loc.col), (2, 3));
        assert_eq!((doc.loc.line, doc.loc.col), (1, 1));
        let c = doc.get("a").unwrap().get("c").unwrap();
        assert_eq!((c.loc.line, c.loc.col), (3, 6));
        let items = c.as_seq().unwrap();
        assert_eq!(items[1].as_str(), Some("y"));
        assert_eq!(items[1].loc.col, 10);
    }

    #[test]
    fn syntax_error_has_location() {
        let err = parse("f.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        let loc = err.location.unwrap();
        assert_eq!(&*loc.file, "f.yaml");
        assert!(loc.line >= 1);
        assert!(err.message.starts_with("YAML syntax error"));
    }

    #[test]
    fn aliases_and_merge_keys() {
        let src = "base: &b\n  x: 1\n  y: 2\nchild:\n  <<: *b\n  y: 3\nref: *b\n";
        let doc = parse("f.yaml", src).unwrap();
        let child = doc.get("child").unwrap();
        assert_eq!(child.get("x").unwrap().as_i64(), Some(1));
        assert_eq!(child.get("y").unwrap().as_i64(), Some(3));
        assert_eq!(doc.get("ref").unwrap().get("y").unwrap().as_i64(), Some(2));
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let doc = parse("f", "a: 1\nb: '1'\nc: yes\nd: 1.5\ne: ~\nf: 1.30.2\n").unwrap();
        assert_eq!(doc.get("a").unwrap().value, Value::Int(1));
        assert_eq!(doc.get("b").unwrap().value, Value::Str("1".into()));
        assert_eq!(doc.get("c").unwrap().as_bool_loose(), Some(true));
        assert_eq!(doc.get("d").unwrap().value, Value::Float(1.5));
        assert!(doc.get("e").unwrap().is_null());
        assert_eq!(doc.get("f").unwrap().value, Value::Str("1.30.2".into()));
    }

    #[test]
    fn duplicate_keys_are_kept_and_found() {
        let doc = parse("f", "a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(doc.get("a").unwrap().as_i64(), Some(3));
        let d = doc.duplicate_keys();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].0.loc.line, d[0].1.loc.line), (1, 3));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for src in [
            "[".repeat(5000),
            format!("{}x\n", "- ".repeat(3000)),
            (0..1000)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect(),
        ] {
            let e = parse("deep.yaml", &src).unwrap_err();
            assert!(e.message.contains("deeper than 200 levels"), "{e}");
            assert_eq!(&*e.location.unwrap().file, "deep.yaml");
        }
        // 150 levels are fine.
        let ok = format!("{}{}", "[".repeat(150), "]".repeat(150));
        assert!(parse("ok.yaml", &ok).is_ok());
    }

    #[test]
    fn an_alias_bomb_fails_fast() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(src.len() < 600, "{}", src.len());
        let t0 = std::time::Instant::now();
        let e = parse("bomb.yaml", &src).unwrap_err();
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
        assert!(e.message.contains("aliases expand to more than"), "{e}");
        assert!(e.help.unwrap().contains("alias bomb"));
        // Ordinary anchors still work.
        assert!(parse("f", "a: &x {k: v}\nb: *x\nc: *x\n").is_ok());
    }

    #[test]
    fn a_second_document_is_an_error_at_its_start() {
        let e = parse("two.yaml", "a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("second YAML document"), "{e}");
        assert_eq!(e.location.unwrap().line, 2);
        assert!(parse("one.yaml", "---\na: 1\n...\n").is_ok());
        assert_eq!(parse_all("two.yaml", "a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let doc = parse("bom.yaml", "\u{feff}name: x\n").unwrap();
        assert_eq!(doc.get("name").unwrap().as_str(), Some("x"));
    }

    #[test]
    fn a_large_file_is_refused_with_its_size() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let e = parse_with_limits("big.yaml", "a: 12345678901\n", limits).unwrap_err();
        assert!(e.message.contains("file too large: 15 bytes"), "{e}");
    }

    #[test]
    fn a_tab_is_reported_on_its_own_line() {
        let e = parse("tab.yaml", "a:\n  b: 1\n\tc: 2\n").unwrap_err();
        assert_eq!(e.location.as_ref().unwrap().line, 3, "{e}");
        assert!(e.help.unwrap().contains("tab"), "{}", e.message);
    }
}
