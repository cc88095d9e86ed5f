//! Lexer of the Go `text/template` language: splits a source into text and
//! actions (`{{ ... }}`), applies `{{-` / `-}}` whitespace trimming, drops
//! comments, and tokenizes the inside of each action. Every token knows its
//! 1-based source line.

use std::fmt;

/// A piece of the source: literal text or one action's tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Literal text, starting at `line`.
    Text {
        /// The text, trimmed as `{{-` / `-}}` say.
        text: String,
        /// The 1-based line it starts on.
        line: usize,
    },
    /// The tokens of one `{{ ... }}`, which starts at `line`.
    Action {
        /// The tokens inside the delimiters.
        tokens: Vec<Token>,
        /// The 1-based line of the opening `{{`.
        line: usize,
    },
}

/// One token inside an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: Tok,
    /// 1-based source line.
    pub line: usize,
    /// True when whitespace separates it from the previous token.
    pub space_before: bool,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `.` alone.
    Dot,
    /// `.A.B` (one or more field names).
    Field(Vec<String>),
    /// `$` or `$name` (stored without the `$`; empty for `$`).
    Var(String),
    /// A function name or keyword.
    Ident(String),
    /// A quoted or raw string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `|`.
    Pipe,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
    /// `,`.
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Dot => write!(f, "."),
            Tok::Field(n) => write!(f, ".{}", n.join(".")),
            Tok::Var(v) => write!(f, "${v}"),
            Tok::Ident(i) => write!(f, "{i}"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Int(i) => write!(f, "{i}"),
            Tok::Float(x) => write!(f, "{x}"),
            Tok::Bool(b) => write!(f, "{b}"),
            Tok::Nil => write!(f, "nil"),
            Tok::LParen => write!(f, "("),
            Tok::RParen => write!(f, ")"),
            Tok::Pipe => write!(f, "|"),
            Tok::Declare => write!(f, ":="),
            Tok::Assign => write!(f, "="),
            Tok::Comma => write!(f, ","),
        }
    }
}

/// A lexing error: the line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    /// 1-based line.
    pub line: usize,
    /// Message.
    pub message: String,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits `src` into items.
pub fn lex(src: &str) -> Result<Vec<Item>, LexError> {
    let mut items: Vec<Item> = Vec::new();
    let mut rest = src;
    let mut line = 1usize;
    loop {
        let Some(open) = rest.find("{{") else {
            if !rest.is_empty() {
                items.push(Item::Text {
                    text: rest.to_string(),
                    line,
                });
            }
            break;
        };
        let mut text = &rest[..open];
        let after_open = &rest[open + 2..];
        let trim_left =
            after_open.starts_with('-') && after_open[1..].chars().next().is_some_and(is_space);
        let text_line = line;
        line += text.matches('\n').count();
        if trim_left {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            items.push(Item::Text {
                text: text.to_string(),
                line: text_line,
            });
        }
        let action_line = line;
        let body_start = if trim_left { 1 } else { 0 };
        let body_src = &after_open[body_start..];
        let (tokens, consumed, trim_right) = lex_action(body_src, &mut line)?;
        let after = &body_src[consumed..];
        if let Some(tok) = tokens {
            items.push(Item::Action {
                tokens: tok,
                line: action_line,
            });
        }
        rest = after;
        if trim_right {
            let trimmed = rest.trim_start_matches(is_space);
            line += rest[..rest.len() - trimmed.len()].matches('\n').count();
            rest = trimmed;
        }
    }
    Ok(items)
}

/// Lexes one action body up to and including `}}`. Returns the tokens (None
/// for a comment), the bytes consumed, and whether it ended with `-}}`.
///
/// Only the text up to a `}}` is decoded (then up to the next, when that
/// `}}` was inside a string), so that a file of many actions is lexed in
/// linear time rather than decoding the rest of the file for each.
fn lex_action(s: &str, line: &mut usize) -> Result<(Option<Vec<Token>>, usize, bool), LexError> {
    let start = *line;
    let mut window = s.find("}}").map_or(s.len(), |e| e + 2);
    loop {
        *line = start;
        match lex_action_in(s, window, line) {
            Err(_) if window < s.len() => {
                window = s[window..].find("}}").map_or(s.len(), |e| window + e + 2);
            }
            r => return r,
        }
    }
}

/// [`lex_action`] on the first `window` bytes of `s` (comments: all of it).
fn lex_action_in(
    s: &str,
    window: usize,
    line: &mut usize,
) -> Result<(Option<Vec<Token>>, usize, bool), LexError> {
    let start_line = *line;
    // Comments: {{/* ... */}} with optional trim markers around.
    let lead = s.len() - s.trim_start_matches(is_space).len();
    if s[lead..].starts_with("/*") {
        let Some(end) = s[lead..].find("*/") else {
            return Err(LexError {
                line: start_line,
                message: "unclosed comment".into(),
            });
        };
        let after_comment = lead + end + 2;
        *line += s[..after_comment].matches('\n').count();
        let tail = &s[after_comment..];
        let ws = tail.len() - tail.trim_start_matches(is_space).len();
        let tail2 = &tail[ws..];
        if let Some(t) = tail2.strip_prefix("-}}") {
            let _ = t;
            *line += tail[..ws].matches('\n').count();
            return Ok((None, after_comment + ws + 3, true));
        }
        if tail.starts_with("}}") {
            return Ok((None, after_comment + 2, false));
        }
        return Err(LexError {
            line: *line,
            message: "comment ends before closing delimiter".into(),
        });
    }
    let bytes: Vec<char> = s[..window].chars().collect();
    // Work on char indices, convert to byte offsets at the end.
    let mut i = 0usize;
    let mut toks = Vec::new();
    let mut space = true;
    let byte_at = |idx: usize| -> usize { bytes[..idx].iter().map(|c| c.len_utf8()).sum() };
    loop {
        let Some(&c) = bytes.get(i) else {
            return Err(LexError {
                line: start_line,
                message: "unclosed action: missing `}}`".into(),
            });
        };
        if is_space(c) {
            // `-}}` needs whitespace before it.
            if bytes.get(i + 1) == Some(&'-')
                && bytes.get(i + 2) == Some(&'}')
                && bytes.get(i + 3) == Some(&'}')
            {
                *line += usize::from(c == '\n');
                return Ok((Some(toks), byte_at(i + 4), true));
            }
            if c == '\n' {
                *line += 1;
            }
            space = true;
            i += 1;
            continue;
        }
        if c == '}' && bytes.get(i + 1) == Some(&'}') {
            return Ok((Some(toks), byte_at(i + 2), false));
        }
        let tline = *line;
        let push = |kind: Tok, toks: &mut Vec<Token>, space: &mut bool| {
            toks.push(Token {
                kind,
                line: tline,
                space_before: *space,
            });
            *space = false;
        };
        match c {
            '(' => {
                push(Tok::LParen, &mut toks, &mut space);
                i += 1;
            }
            ')' => {
                push(Tok::RParen, &mut toks, &mut space);
                i += 1;
            }
            '|' => {
                push(Tok::Pipe, &mut toks, &mut space);
                i += 1;
            }
            ',' => {
                push(Tok::Comma, &mut toks, &mut space);
                i += 1;
            }
            '=' => {
                push(Tok::Assign, &mut toks, &mut space);
                i += 1;
            }
            ':' if bytes.get(i + 1) == Some(&'=') => {
                push(Tok::Declare, &mut toks, &mut space);
                i += 2;
            }
            '"' => {
                let mut out = String::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some('\n') => {
                            return Err(LexError {
                                line: tline,
                                message: "unterminated quoted string".into(),
                            })
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let e = bytes.get(i + 1).copied().unwrap_or('\\');
                            i += 2;
                            match e {
                                'n' => out.push('\n'),
                                't' => out.push('\t'),
                                'r' => out.push('\r'),
                                '\\' => out.push('\\'),
                                '"' => out.push('"'),
                                '\'' => out.push('\''),
                                '0' => out.push('\0'),
                                'x' | 'u' | 'U' => {
                                    let n = match e {
                                        'x' => 2,
                                        'u' => 4,
                                        _ => 8,
                                    };
                                    let hex: String = bytes.iter().skip(i).take(n).collect();
                                    let ch = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| LexError {
                                            line: tline,
                                            message: format!("invalid escape \\{e}{hex}"),
                                        })?;
                                    out.push(ch);
                                    i += n;
                                }
                                other => {
                                    return Err(LexError {
                                        line: tline,
                                        message: format!("unknown escape sequence \\{other}"),
                                    })
                                }
                            }
                        }
                        Some(&ch) => {
                            out.push(ch);
                            i += 1;
                        }
                    }
                }
                push(Tok::Str(out), &mut toks, &mut space);
            }
            '`' => {
                let mut out = String::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(LexError {
                                line: tline,
                                message: "unterminated raw string".into(),
                            })
                        }
                        Some('`') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            if ch == '\n' {
                                *line += 1;
                            }
                            out.push(ch);
                            i += 1;
                        }
                    }
                }
                push(Tok::Str(out), &mut toks, &mut space);
            }
            '\'' => {
                // Character constant: an integer in Go.
                let ch = bytes.get(i + 1).copied();
                if bytes.get(i + 2) != Some(&'\'') || ch.is_none() {
                    return Err(LexError {
                        line: tline,
                        message: "malformed character constant".into(),
                    });
                }
                push(
                    Tok::Int(i64::from(u32::from(ch.unwrap_or_default()))),
                    &mut toks,
                    &mut space,
                );
                i += 3;
            }
            '$' => {
                let mut j = i + 1;
                while bytes
                    .get(j)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    j += 1;
                }
                let name: String = bytes[i + 1..j].iter().collect();
                push(Tok::Var(name), &mut toks, &mut space);
                i = j;
            }
            '.' if !bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let mut names = Vec::new();
                let mut j = i;
                while bytes.get(j) == Some(&'.') {
                    let mut k = j + 1;
                    while bytes
                        .get(k)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                    {
                        k += 1;
                    }
                    if k == j + 1 {
                        break;
                    }
                    names.push(bytes[j + 1..k].iter().collect::<String>());
                    j = k;
                }
                if names.is_empty() {
                    push(Tok::Dot, &mut toks, &mut space);
                    i += 1;
                } else {
                    push(Tok::Field(names), &mut toks, &mut space);
                    i = j;
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let mut j = i + 1;
                while bytes
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                    || (matches!(bytes.get(j), Some('-') | Some('+'))
                        && matches!(bytes.get(j - 1), Some('e') | Some('E')))
                {
                    j += 1;
                }
                let text: String = bytes[i..j].iter().filter(|c| **c != '_').collect();
                let kind = parse_number(&text).ok_or_else(|| LexError {
                    line: tline,
                    message: format!("bad number syntax: {text:?}"),
                })?;
                push(kind, &mut toks, &mut space);
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while bytes
                    .get(j)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    j += 1;
                }
                let word: String = bytes[i..j].iter().collect();
                let kind = match word.as_str() {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(word),
                };
                push(kind, &mut toks, &mut space);
                i = j;
            }
            other => {
                return Err(LexError {
                    line: tline,
                    message: format!("unexpected {other:?} in action"),
                })
            }
        }
    }
}

fn parse_number(text: &str) -> Option<Tok> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let radix = |p: &str, r: u32| {
        i64::from_str_radix(p, r)
            .ok()
            .map(|v| Tok::Int(if neg { -v } else { v }))
    };
    let lower = body.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("0x") {
        return radix(h, 16);
    }
    if let Some(o) = lower.strip_prefix("0o") {
        return radix(o, 8);
    }
    if let Some(b) = lower.strip_prefix("0b") {
        return radix(b, 2);
    }
    if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        return radix(&body[1..], 8);
    }
    if let Ok(v) = text.parse::<i64>() {
        return Some(Tok::Int(v));
    }
    text.parse::<f64>().ok().map(Tok::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        match lex(src).unwrap().remove(0) {
            Item::Action { tokens, .. } => tokens.into_iter().map(|t| t.kind).collect(),
            Item::Text { .. } => panic!("text"),
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(
            kinds(r#"{{ $k, $v := index .Vars "a b" 3 -1.5 }}"#),
            vec![
                Tok::Var("k".into()),
                Tok::Comma,
                Tok::Var("v".into()),
                Tok::Declare,
                Tok::Ident("index".into()),
                Tok::Field(vec!["Vars".into()]),
                Tok::Str("a b".into()),
                Tok::Int(3),
                Tok::Float(-1.5),
            ]
        );
        assert_eq!(kinds("{{.}}"), vec![Tok::Dot]);
        assert_eq!(kinds("{{ `raw\\n` 0x1F 'a' }}").len(), 3);
    }

    #[test]
    fn trimming_and_lines() {
        let items = lex("a  \n {{- 1 -}} \n b\n{{/* c */}}x{{- /* d */ -}}  y").unwrap();
        let texts: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Text { text, line } => Some((text.clone(), *line)),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                ("a".into(), 1),
                ("b\n".into(), 3),
                ("x".into(), 4),
                ("y".into(), 4)
            ]
        );
        // `{{-3}}` is the number -3, not a trim marker.
        assert_eq!(kinds("{{-3}}"), vec![Tok::Int(-3)]);
    }

    #[test]
    fn errors_have_lines() {
        let e = lex("a\nb {{ \"x }}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(lex("{{ .x ").is_err());
    }
}
