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

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
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
/// [`Scalar::raw`] keeps the text for readers that want YAML 1.1 booleans
/// (`yes`/`no`), as ansible and goss accept.
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

    /// Pairs of (first, second) key nodes given twice in this mapping.
    pub fn duplicate_keys(&self) -> Vec<(&Node, &Node)> {
        let mut out = Vec::new();
        if let Value::Map(pairs) = &self.value {
            for (i, (k, _)) in pairs.iter().enumerate() {
                if let Some((k2, _)) = pairs[i + 1..]
                    .iter()
                    .find(|(k2, _)| k2.as_key() == k.as_key())
                {
                    out.push((k, k2));
                }
            }
        }
        out
    }
}

/// Parses the first document of `src`. `file` is the name used in
/// locations. An empty document is `Null`. A syntax error is one diagnostic
/// at the place the parser stopped.
pub fn parse(file: &str, src: &str) -> Result<Node, Diagnostic> {
    let mut docs = parse_all(file, src)?;
    if docs.is_empty() {
        Ok(Node {
            value: Value::Null,
            loc: Location::new(file, 1, 1),
        })
    } else {
        Ok(docs.swap_remove(0))
    }
}

/// Parses every document of `src`.
pub fn parse_all(file: &str, src: &str) -> Result<Vec<Node>, Diagnostic> {
    let file: Arc<str> = file.into();
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: Default::default(),
        docs: Vec::new(),
    };
    let mut parser = Parser::new_from_str(src);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(Diagnostic::error(
            Location::new(file, m.line(), m.col() + 1),
            format!("YAML syntax error: {}", e.info()),
        )
        .with_help("fix the YAML syntax (indentation, quoting, a missing `:`)"));
    }
    Ok(builder.docs)
}

enum Frame {
    Seq(Location, usize, Vec<Node>),
    Map(Location, usize, Vec<(Node, Node)>, Option<Node>),
}

struct Builder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    docs: Vec<Node>,
}

impl Builder {
    fn loc(&self, m: Marker) -> Location {
        Location::new(self.file.clone(), m.line(), m.col() + 1)
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, pairs, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => pairs.push((key, node)),
            },
        }
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
    let mut out: Vec<(Node, Node)> = Vec::new();
    let add = |src: &Node, out: &mut Vec<(Node, Node)>| {
        if let Value::Map(ps) = &src.value {
            for (k, v) in ps {
                if !own.iter().any(|(ok, _)| ok.as_key() == k.as_key())
                    && !out.iter().any(|(ok, _)| ok.as_key() == k.as_key())
                {
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

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
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
                self.finish(node, anchor);
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    value: Value::Null,
                    loc: self.loc(mark),
                });
                self.finish(node, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let loc = self.loc(mark);
                self.stack.push(Frame::Seq(loc, anchor, Vec::new()));
            }
            Event::MappingStart(anchor, _) => {
                let loc = self.loc(mark);
                self.stack.push(Frame::Map(loc, anchor, Vec::new(), None));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(loc, anchor, items)) = self.stack.pop() {
                    self.finish(
                        Node {
                            value: Value::Seq(items),
                            loc,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut loc, anchor, pairs, _)) = self.stack.pop() {
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
                    );
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
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
