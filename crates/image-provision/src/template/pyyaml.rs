//! YAML as PyYAML's `yaml.dump` writes it, for ansible's `to_yaml`
//! (`default_flow_style=None`: collections of scalars in flow style) and
//! `to_nice_yaml` (block style, indent 4): sorted keys, sequences not
//! indented under their key, strings plain when they read back as the same
//! string, else single-quoted (multi-line ones with PyYAML's doubled line
//! breaks), else double-quoted with escapes; plain and single-quoted
//! scalars folded at spaces once past column 80.
//!
//! Not covered: complex keys (`? key`, multi-line keys), folding of
//! double-quoted scalars,
//! anchors (JSON values have none).

use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

const WIDTH: usize = 80;

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
}

/// Would this plain scalar read back as another type (PyYAML's resolver)?
fn resolves_to_other_type(s: &str) -> bool {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(concat!(
            r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF",
            r"|[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+|(?:0|[1-9][0-9_]*))",
            r"|[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"|[0-9]{4}-[0-9]{2}-[0-9]{2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}.*)?|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+).*",
            r"|<<|=)$"
        ))
        .expect("static pattern")
    });
    s.is_empty() || re.is_match(s)
}

/// PyYAML's `analyze_scalar` + `choose_scalar_style` for a string.
fn style(s: &str, flow: bool) -> Style {
    let chars: Vec<char> = s.chars().collect();
    // PyYAML's printable set with allow_unicode (a line break is fine).
    let printable =
        |c: &char| *c == '\n' || (' '..='~').contains(c) || (!c.is_ascii() && !c.is_control());
    let special = !chars.iter().all(printable);
    let space_break = s.contains(" \n");
    let break_space = s.contains("\n ");
    if special || space_break {
        return Style::Double;
    }
    let multiline = s.contains('\n');
    let mut plain = !multiline && !resolves_to_other_type(s);
    let first = chars.first().copied().unwrap_or(' ');
    let second = chars.get(1).copied();
    if s.starts_with(' ') || s.ends_with(' ') {
        plain = false;
    }
    // Indicators: these starting characters always need quotes; `-`, `?`,
    // `:` only when followed by a space (or alone).
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        plain = false;
    }
    if "-?:".contains(first) && matches!(second, None | Some(' ')) {
        plain = false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        plain = false;
    }
    for (i, c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        if *c == ':'
            && (next.is_none()
                || next == Some(' ')
                || (flow && next.is_some_and(|n| ",[]{}".contains(n))))
        {
            plain = false;
        }
        if *c == '#' && prev == Some(' ') {
            plain = false;
        }
        if flow && ",?[]{}".contains(*c) {
            plain = false;
        }
    }
    if plain {
        Style::Plain
    } else if !break_space {
        Style::Single
    } else {
        Style::Double
    }
}

/// The text of the current (last) line, in characters.
fn column(out: &str) -> usize {
    out[out.rfind('\n').map(|i| i + 1).unwrap_or(0)..]
        .chars()
        .count()
}

fn indent_line(out: &mut String, cont: usize) {
    out.push('\n');
    out.push_str(&" ".repeat(cont));
}

/// PyYAML's `write_plain`: folded at single spaces past the width.
fn write_plain(s: &str, cont: usize, out: &mut String) {
    let body: Vec<char> = s.chars().collect();
    let mut col = column(out);
    let mut i = 0;
    while i < body.len() {
        let mut j = i;
        if body[i] == ' ' {
            while j < body.len() && body[j] == ' ' {
                j += 1;
            }
            if j == i + 1 && col > WIDTH {
                indent_line(out, cont);
                col = cont;
            } else {
                out.extend(&body[i..j]);
                col += j - i;
            }
        } else {
            while j < body.len() && body[j] != ' ' {
                j += 1;
            }
            out.extend(&body[i..j]);
            col += j - i;
        }
        i = j;
    }
}

/// PyYAML's `write_single_quoted`: `'` doubled, a line break written as
/// two, folded at single spaces past the width.
fn write_single(s: &str, cont: usize, out: &mut String) {
    let t: Vec<char> = s.chars().collect();
    out.push('\'');
    let mut col = column(out);
    let (mut i, n) = (0, t.len());
    while i < n {
        let mut j = i;
        match t[i] {
            ' ' => {
                while j < n && t[j] == ' ' {
                    j += 1;
                }
                if j == i + 1 && col > WIDTH && i != 0 && j != n {
                    indent_line(out, cont);
                    col = cont;
                } else {
                    out.extend(&t[i..j]);
                    col += j - i;
                }
            }
            '\n' => {
                while j < n && t[j] == '\n' {
                    j += 1;
                }
                out.push('\n');
                for _ in i..j {
                    out.push('\n');
                }
                out.push_str(&" ".repeat(cont));
                col = cont;
            }
            '\'' => {
                out.push_str("''");
                col += 2;
                j = i + 1;
            }
            _ => {
                while j < n && !matches!(t[j], ' ' | '\n' | '\'') {
                    j += 1;
                }
                out.extend(&t[i..j]);
                col += j - i;
            }
        }
        i = j;
    }
    out.push('\'');
}

/// A double-quoted scalar with YAML escapes (unicode kept).
fn write_double(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_scalar(v: &Json, flow: bool, cont: usize, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => match style(s, flow) {
            Style::Plain => write_plain(s, cont, out),
            Style::Single => write_single(s, cont, out),
            Style::Double => write_double(s, out),
        },
        other => write_flow(other, cont, 0, out),
    }
}

fn sorted(m: &Map<String, Json>) -> Vec<(&String, &Json)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// A flow collection (`[a, b]`, `{k: v}`) whose own indentation is
/// `at`: items move to a new line once past the width, scalars continue
/// one level deeper.
fn write_flow(v: &Json, at: usize, indent: usize, out: &mut String) {
    let sep = |i: usize, out: &mut String| {
        if i > 0 {
            out.push(',');
        }
        if column(out) > WIDTH {
            indent_line(out, at);
        } else if i > 0 {
            out.push(' ');
        }
    };
    match v {
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                sep(i, out);
                write_scalar(x, true, at + indent, out);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            for (i, (k, x)) in sorted(m).into_iter().enumerate() {
                sep(i, out);
                write_scalar(&Json::String(k.clone()), true, at + indent, out);
                out.push_str(": ");
                write_scalar(x, true, at + indent, out);
            }
            out.push('}');
        }
        s => write_scalar(s, true, at + indent, out),
    }
}

fn is_leaf_collection(v: &Json) -> bool {
    match v {
        Json::Array(a) => a.iter().all(|x| !x.is_array() && !x.is_object()),
        Json::Object(m) => m.values().all(|x| !x.is_array() && !x.is_object()),
        _ => false,
    }
}

struct Emitter {
    indent: usize,
    flow_leaves: bool,
}

impl Emitter {
    /// Written on the current line: scalars, empty collections, and leaf
    /// collections in flow style when asked.
    fn compact(&self, x: &Json) -> bool {
        match x {
            Json::Array(a) => a.is_empty() || (self.flow_leaves && is_leaf_collection(x)),
            Json::Object(m) => m.is_empty() || (self.flow_leaves && is_leaf_collection(x)),
            _ => true,
        }
    }

    /// Writes a value inline, ending the line; `col` is the indentation
    /// of the collection holding it.
    fn leaf(&self, x: &Json, col: usize, out: &mut String) {
        if x.is_array() || x.is_object() {
            write_flow(x, col + self.indent, self.indent, out);
        } else {
            write_scalar(x, false, col + self.indent, out);
        }
        out.push('\n');
    }

    fn block(&self, v: &Json, col: usize, inline: bool, out: &mut String) {
        let pad = |n: usize| " ".repeat(n);
        match v {
            Json::Object(m) if !self.compact(v) => {
                for (i, (k, x)) in sorted(m).into_iter().enumerate() {
                    if i > 0 || !inline {
                        out.push_str(&pad(col));
                    }
                    write_scalar(&Json::String(k.clone()), false, col + self.indent, out);
                    out.push(':');
                    if self.compact(x) {
                        out.push(' ');
                        self.leaf(x, col, out);
                    } else {
                        out.push('\n');
                        // Sequences in a mapping are not indented (PyYAML).
                        let c = if x.is_array() { col } else { col + self.indent };
                        self.block(x, c, false, out);
                    }
                }
            }
            Json::Array(a) if !self.compact(v) => {
                let step = self.indent.max(2);
                for (i, x) in a.iter().enumerate() {
                    if i > 0 || !inline {
                        out.push_str(&pad(col));
                    }
                    out.push('-');
                    if self.compact(x) {
                        out.push(' ');
                        self.leaf(x, col, out);
                    } else {
                        out.push_str(&pad(step - 1));
                        self.block(x, col + step, true, out);
                    }
                }
            }
            x if col == 0 && (x.is_array() || x.is_object()) => {
                // A document that is one flow collection: PyYAML indents
                // its scalars from the first level.
                write_flow(x, self.indent, self.indent, out);
                out.push('\n');
            }
            x => self.leaf(x, col, out),
        }
    }
}

/// PyYAML's `dump` (ansible's `to_yaml` with `default_flow_style=None`
/// when `flow_leaves`, `to_nice_yaml` otherwise).
pub(crate) fn dump(v: &Json, indent: usize, flow_leaves: bool) -> String {
    let mut out = String::new();
    let e = Emitter {
        indent,
        flow_leaves,
    };
    e.block(v, 0, false, &mut out);
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn string_styles() {
        assert!(style("abc", false) == Style::Plain);
        assert!(style("it's", false) == Style::Plain);
        assert!(style("123", false) == Style::Single);
        assert!(style("a: b", false) == Style::Single);
        assert!(style("a,b", true) == Style::Single);
        assert!(style("a,b", false) == Style::Plain);
        assert!(style("l1\nl2", false) == Style::Single);
        assert!(style("a \nb", false) == Style::Double);
        assert!(style("tab\there", false) == Style::Double);
        assert!(style("-x", false) == Style::Plain);
        assert!(style("- x", false) == Style::Single);
        assert!(style("2024-01-02", false) == Style::Single);
    }
}
