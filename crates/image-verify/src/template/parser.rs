//! Parser of the Go `text/template` language: turns the lexer's items into a
//! tree of text, actions, `if` / `else if` / `else`, `range` (with `$k, $v`
//! declarations, `break`, `continue`), `with`, `define` / `template` /
//! `block` and `end`. Unknown functions are errors at parse time, as in Go.

use super::lexer::{Item, LexError, Tok, Token};

/// A template tree node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Literal text and its first source line.
    Text(String, usize),
    /// `{{ pipeline }}`: printed unless it is a declaration.
    Action(Pipe),
    /// `if` / `else if` chains: the first true condition's body runs.
    If {
        /// Conditions and bodies.
        branches: Vec<(Pipe, Vec<Node>)>,
        /// `else`.
        otherwise: Option<Vec<Node>>,
    },
    /// `range`.
    Range {
        /// What to iterate over, with its `$k, $v :=`.
        pipe: Pipe,
        /// Body per element.
        body: Vec<Node>,
        /// Runs when there is nothing to iterate.
        otherwise: Option<Vec<Node>>,
    },
    /// `with` / `else with`: like `if`, with dot set to the value.
    With {
        /// Values and bodies.
        branches: Vec<(Pipe, Vec<Node>)>,
        /// `else`.
        otherwise: Option<Vec<Node>>,
    },
    /// `{{define "name"}}…{{end}}` (or the definition part of `block`):
    /// a named template, collected before execution, printing nothing.
    Define(String, Vec<Node>),
    /// `{{template "name" pipeline}}`: runs a named template with dot set
    /// to the pipeline's value (nil without one), at a line.
    Template(String, Option<Pipe>, usize),
    /// `{{ break }}` at a line.
    Break(usize),
    /// `{{ continue }}` at a line.
    Continue(usize),
}

/// A pipeline: optional variable declarations, then commands joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    /// Source line.
    pub line: usize,
    /// Declared or assigned variables (without `$`).
    pub vars: Vec<String>,
    /// True for `=` (assignment), false for `:=`.
    pub assign: bool,
    /// The commands.
    pub cmds: Vec<Cmd>,
}

/// One command: an operand optionally followed by arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    /// Operands; when the first is a function, the rest are its arguments.
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.`
    Dot,
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// A constant.
    Lit(serde_json::Value),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

/// Parses lexer items. `is_func` says which function names exist.
pub fn parse(items: Vec<Item>, is_func: &dyn Fn(&str) -> bool) -> Result<Vec<Node>, LexError> {
    let mut p = Parser {
        items: items.into_iter().peekable(),
        is_func,
        range_depth: 0,
        depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        End::Eof => Ok(nodes),
        End::End(line) => Err(err(line, "unexpected {{end}}")),
        End::Else(line, _) => Err(err(line, "unexpected {{else}}")),
    }
}

fn err(line: usize, message: impl Into<String>) -> LexError {
    LexError {
        line,
        message: message.into(),
    }
}

enum End {
    Eof,
    #[allow(clippy::enum_variant_names)]
    End(usize),
    /// `{{else}}` (empty tokens) or `{{else if ...}}` / `{{else with ...}}`
    /// (the tokens after `else`).
    Else(usize, Vec<Token>),
}

struct Parser<'a> {
    items: std::iter::Peekable<std::vec::IntoIter<Item>>,
    is_func: &'a dyn Fn(&str) -> bool,
    range_depth: usize,
    /// Open `if`/`with`/`range`/`define` blocks.
    depth: usize,
}

/// The deepest nesting of blocks (`{{if}}` in `{{range}}` ...) and of
/// parentheses: far more than any gossfile needs, little enough for the
/// recursive parser and evaluator to stay within a thread's stack.
pub const MAX_NESTING: usize = 100;

impl Parser<'_> {
    /// One block's list of nodes, at most [`MAX_NESTING`] blocks deep.
    fn list(&mut self) -> Result<(Vec<Node>, End), LexError> {
        if self.depth >= MAX_NESTING {
            let line = match self.items.peek() {
                Some(Item::Text { line, .. } | Item::Action { line, .. }) => *line,
                None => 0,
            };
            return Err(err(
                line,
                format!("actions nest deeper than {MAX_NESTING} levels"),
            ));
        }
        self.depth += 1;
        let r = self.list_items();
        self.depth -= 1;
        r
    }

    fn list_items(&mut self) -> Result<(Vec<Node>, End), LexError> {
        let mut out = Vec::new();
        while let Some(item) = self.items.next() {
            match item {
                Item::Text { text, line } => out.push(Node::Text(text, line)),
                Item::Action { tokens, line } => {
                    if tokens.is_empty() {
                        return Err(err(line, "missing value for command"));
                    }
                    let kw = match &tokens[0].kind {
                        Tok::Ident(w) => w.as_str(),
                        _ => "",
                    };
                    match kw {
                        "end" => {
                            if tokens.len() > 1 {
                                return Err(err(line, "unexpected tokens after end"));
                            }
                            return Ok((out, End::End(line)));
                        }
                        "else" => return Ok((out, End::Else(line, tokens[1..].to_vec()))),
                        "if" | "with" => out.push(self.branching(kw, &tokens[1..], line)?),
                        "range" => out.push(self.range(&tokens[1..], line)?),
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return Err(err(
                                    line,
                                    format!("{{{{{kw}}}}} outside {{{{range}}}}"),
                                ));
                            }
                            out.push(if kw == "break" {
                                Node::Break(line)
                            } else {
                                Node::Continue(line)
                            });
                        }
                        "define" | "block" => {
                            let (name, rest) = template_name(kw, &tokens[1..], line)?;
                            if kw == "define" && !rest.is_empty() {
                                return Err(err(line, "unexpected tokens after {{define}} name"));
                            }
                            let pipe = if kw == "block" {
                                Some(pipeline(rest, line, self.is_func, false)?)
                            } else {
                                None
                            };
                            let (body, end) = self.list()?;
                            match end {
                                End::End(_) => {}
                                End::Else(l, _) => {
                                    return Err(err(
                                        l,
                                        format!("unexpected {{{{else}}}} in {{{{{kw}}}}}"),
                                    ))
                                }
                                End::Eof => {
                                    return Err(err(
                                        line,
                                        format!("unexpected EOF: {{{{{kw}}}}} has no {{{{end}}}}"),
                                    ))
                                }
                            }
                            out.push(Node::Define(name.clone(), body));
                            if let Some(p) = pipe {
                                out.push(Node::Template(name, Some(p), line));
                            }
                        }
                        "template" => {
                            let (name, rest) = template_name(kw, &tokens[1..], line)?;
                            let pipe = if rest.is_empty() {
                                None
                            } else {
                                Some(pipeline(rest, line, self.is_func, false)?)
                            };
                            out.push(Node::Template(name, pipe, line));
                        }
                        _ => out.push(Node::Action(pipeline(&tokens, line, self.is_func, true)?)),
                    }
                }
            }
        }
        Ok((out, End::Eof))
    }

    fn branching(&mut self, kw: &str, toks: &[Token], line: usize) -> Result<Node, LexError> {
        let mut branches = Vec::new();
        let mut cond = pipeline(toks, line, self.is_func, true)?;
        loop {
            let (body, end) = self.list()?;
            branches.push((cond, body));
            match end {
                End::Eof => {
                    return Err(err(
                        line,
                        format!("unexpected EOF: {{{{{kw}}}}} has no {{{{end}}}}"),
                    ))
                }
                End::End(_) => {
                    return Ok(make_branch(kw, branches, None));
                }
                End::Else(eline, rest) => {
                    if rest.is_empty() {
                        let (body, end) = self.list()?;
                        match end {
                            End::End(_) => return Ok(make_branch(kw, branches, Some(body))),
                            End::Else(l, _) => return Err(err(l, "{{else}} after {{else}}")),
                            End::Eof => {
                                return Err(err(
                                    line,
                                    format!("unexpected EOF: {{{{{kw}}}}} has no {{{{end}}}}"),
                                ))
                            }
                        }
                    }
                    match &rest[0].kind {
                        Tok::Ident(w) if w == kw => {
                            cond = pipeline(&rest[1..], eline, self.is_func, true)?;
                        }
                        _ => {
                            return Err(err(
                                eline,
                                format!("expected {{{{else}}}} or {{{{else {kw} ...}}}}"),
                            ))
                        }
                    }
                }
            }
        }
    }

    fn range(&mut self, toks: &[Token], line: usize) -> Result<Node, LexError> {
        let pipe = pipeline(toks, line, self.is_func, true)?;
        if pipe.vars.len() > 2 {
            return Err(err(line, "too many variables in range"));
        }
        self.range_depth += 1;
        let res = self.list();
        self.range_depth -= 1;
        let (body, end) = res?;
        match end {
            End::End(_) => Ok(Node::Range {
                pipe,
                body,
                otherwise: None,
            }),
            End::Else(eline, rest) => {
                if !rest.is_empty() {
                    return Err(err(eline, "{{else ...}} with arguments in {{range}}"));
                }
                let (other, end) = self.list()?;
                match end {
                    End::End(_) => Ok(Node::Range {
                        pipe,
                        body,
                        otherwise: Some(other),
                    }),
                    _ => Err(err(line, "unexpected EOF: {{range}} has no {{end}}")),
                }
            }
            End::Eof => Err(err(line, "unexpected EOF: {{range}} has no {{end}}")),
        }
    }
}

/// The quoted name after `define`, `template` or `block`, and the rest.
fn template_name<'t>(
    kw: &str,
    toks: &'t [Token],
    line: usize,
) -> Result<(String, &'t [Token]), LexError> {
    match toks.first().map(|t| &t.kind) {
        Some(Tok::Str(name)) => Ok((name.clone(), &toks[1..])),
        _ => Err(err(
            line,
            format!("{{{{{kw}}}}} needs a quoted template name, e.g. {{{{{kw} \"name\"}}}}"),
        )),
    }
}

fn make_branch(kw: &str, branches: Vec<(Pipe, Vec<Node>)>, otherwise: Option<Vec<Node>>) -> Node {
    if kw == "with" {
        Node::With {
            branches,
            otherwise,
        }
    } else {
        Node::If {
            branches,
            otherwise,
        }
    }
}

/// Parses a pipeline from tokens (the whole action, or the part after a
/// keyword). `allow_decl` permits `$x :=` / `$x =`.
fn pipeline(
    toks: &[Token],
    line: usize,
    is_func: &dyn Fn(&str) -> bool,
    allow_decl: bool,
) -> Result<Pipe, LexError> {
    let mut pos = 0;
    let mut vars = Vec::new();
    let mut assign = false;
    if allow_decl {
        // `$a :=`, `$a, $b :=`, `$a =`
        let mut j = 0;
        let mut names = Vec::new();
        while let Some(Token {
            kind: Tok::Var(v), ..
        }) = toks.get(j)
        {
            names.push(v.clone());
            j += 1;
            match toks.get(j).map(|t| &t.kind) {
                Some(Tok::Comma) => j += 1,
                Some(Tok::Declare) | Some(Tok::Assign) => break,
                _ => {
                    names.clear();
                    break;
                }
            }
        }
        if !names.is_empty() {
            if let Some(t) = toks.get(j) {
                if matches!(t.kind, Tok::Declare | Tok::Assign) {
                    assign = t.kind == Tok::Assign;
                    vars = names;
                    pos = j + 1;
                }
            }
        }
    }
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let rest = &toks[pos..];
    let mut i = 0;
    while i < rest.len() {
        let t = &rest[i];
        match &t.kind {
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err(err(t.line, "missing command before |"));
                }
                cmds.push(Cmd {
                    args: std::mem::take(&mut cur),
                });
                i += 1;
            }
            _ => {
                let (arg, next) = operand(rest, i, is_func)?;
                cur.push(arg);
                i = next;
            }
        }
    }
    if cur.is_empty() {
        return Err(err(line, "missing value for command"));
    }
    cmds.push(Cmd { args: cur });
    Ok(Pipe {
        line,
        vars,
        assign,
        cmds,
    })
}

/// One operand starting at `toks[i]`, with any chained `.Field`s.
fn operand(
    toks: &[Token],
    i: usize,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<(Arg, usize), LexError> {
    let t = &toks[i];
    let mut next = i + 1;
    let mut arg = match &t.kind {
        Tok::Dot => Arg::Dot,
        Tok::Field(names) => Arg::Field(names.clone()),
        Tok::Var(v) => Arg::Var(v.clone(), Vec::new()),
        Tok::Ident(name) => {
            if !is_func(name) {
                return Err(err(t.line, format!("function \"{name}\" not defined")));
            }
            Arg::Func(name.clone())
        }
        Tok::Str(s) => Arg::Lit(serde_json::Value::String(s.clone())),
        Tok::Int(n) => Arg::Lit(serde_json::Value::from(*n)),
        Tok::Float(f) => Arg::Lit(
            serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ),
        Tok::Bool(b) => Arg::Lit(serde_json::Value::Bool(*b)),
        Tok::Nil => Arg::Lit(serde_json::Value::Null),
        Tok::LParen => {
            let mut depth = 1;
            let mut j = i + 1;
            while j < toks.len() {
                match toks[j].kind {
                    Tok::LParen => {
                        depth += 1;
                        if depth > MAX_NESTING {
                            return Err(err(
                                t.line,
                                format!("parentheses nest deeper than {MAX_NESTING} levels"),
                            ));
                        }
                    }
                    Tok::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j >= toks.len() {
                return Err(err(t.line, "unclosed left paren"));
            }
            let inner = pipeline(&toks[i + 1..j], t.line, is_func, true)?;
            next = j + 1;
            Arg::Sub(Box::new(inner), Vec::new())
        }
        other => return Err(err(t.line, format!("unexpected {other} in operand"))),
    };
    // Chained fields: `$x.a`, `(...).a`, `.a.b` without spaces.
    while let Some(Token {
        kind: Tok::Field(more),
        space_before: false,
        ..
    }) = toks.get(next)
    {
        match &mut arg {
            Arg::Var(_, f) | Arg::Sub(_, f) | Arg::Field(f) => f.extend(more.iter().cloned()),
            Arg::Dot => arg = Arg::Field(more.clone()),
            _ => {
                return Err(err(
                    toks[next].line,
                    format!("unexpected .{} after {}", more.join("."), toks[i].kind),
                ))
            }
        }
        next += 1;
    }
    Ok((arg, next))
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn p(src: &str) -> Result<Vec<Node>, LexError> {
        parse(lex(src)?, &|n| matches!(n, "eq" | "index" | "printf"))
    }

    #[test]
    fn structures() {
        let n = p("{{ if eq .a 1 }}x{{ else if .b }}y{{ else }}z{{ end }}").unwrap();
        match &n[0] {
            Node::If {
                branches,
                otherwise,
            } => {
                assert_eq!(branches.len(), 2);
                assert!(otherwise.is_some());
            }
            other => panic!("{other:?}"),
        }
        let n = p("{{ range $k, $v := index .Vars \"x\" }}{{ $k }}{{ break }}{{ end }}").unwrap();
        match &n[0] {
            Node::Range { pipe, .. } => assert_eq!(pipe.vars, vec!["k", "v"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors() {
        assert_eq!(p("a\n{{ nope 1 }}").unwrap_err().line, 2);
        assert!(p("{{ if .a }}x")
            .unwrap_err()
            .message
            .contains("no {{end}}"));
        assert!(p("{{ end }}").is_err());
        assert!(p("{{ break }}").is_err());
        assert!(p("{{ (eq 1 }}").is_err());
    }
}
