//! Evaluator of parsed Go templates over `serde_json::Value` data, following
//! `text/template` semantics: truthiness, variable scopes, `range` over lists,
//! maps (sorted keys) and integers, `with`, pipelines (the piped value is the
//! last argument), short-circuit `and` / `or`, and `%v`-style printing. While
//! writing, it records for every output line the source line it came from.

use std::collections::HashMap;

use serde_json::Value;

use super::funcs;
use super::parser::{Arg, Cmd, Node, Pipe};

/// An execution error at a source line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecError {
    /// 1-based source line.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Executes `nodes` with `root` as `.` and `$`. Returns the text and, per
/// output line (0-based), the 1-based source line it came from.
pub fn execute(nodes: &[Node], root: &Value) -> Result<(String, Vec<usize>), ExecError> {
    let mut templates = HashMap::new();
    collect_defines(nodes, &mut templates);
    let mut st = State {
        vars: vec![(String::new(), root.clone())],
        out: String::new(),
        line_map: Vec::new(),
        at_line_start: true,
        templates,
        depth: 0,
        fuel: MAX_STEPS,
    };
    st.list(nodes, root)?;
    Ok((st.out, st.line_map))
}

/// Most nodes executed (each `range` iteration counts): bounded work on any
/// template.
pub const MAX_STEPS: u64 = 5_000_000;
/// Largest rendered output, and largest string a function may build.
pub const MAX_OUTPUT: usize = 16 << 20;
/// Deepest nesting of `{{template}}` calls (Go allows 100000 frames; ours
/// are on the thread's stack).
pub const MAX_DEPTH: usize = 200;

/// Every `{{define}}` anywhere in the tree (a later one replaces an earlier
/// one, as Go's `Parse`).
fn collect_defines<'n>(nodes: &'n [Node], out: &mut HashMap<String, &'n [Node]>) {
    for n in nodes {
        match n {
            Node::Define(name, body) => {
                out.insert(name.clone(), body);
                collect_defines(body, out);
            }
            Node::If {
                branches,
                otherwise,
            }
            | Node::With {
                branches,
                otherwise,
            } => {
                for (_, b) in branches {
                    collect_defines(b, out);
                }
                if let Some(o) = otherwise {
                    collect_defines(o, out);
                }
            }
            Node::Range {
                body, otherwise, ..
            } => {
                collect_defines(body, out);
                if let Some(o) = otherwise {
                    collect_defines(o, out);
                }
            }
            _ => {}
        }
    }
}

struct State<'n> {
    vars: Vec<(String, Value)>,
    out: String,
    line_map: Vec<usize>,
    at_line_start: bool,
    templates: HashMap<String, &'n [Node]>,
    depth: usize,
    fuel: u64,
}

/// Go's truthiness: false, 0, nil, and empty strings, lists and maps are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Prints a value as Go's `%v` does for values decoded from YAML/JSON.
pub fn display(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_text(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(display_inner).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", display_inner(&o[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn display_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => display(other),
    }
}

/// A number as Go prints it: integers plainly, floats in shortest form.
pub fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
        let s = format!("{f:e}");
        // Go writes e+21 / e-05.
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        f.to_string()
    }
}

impl<'n> State<'n> {
    fn emit(&mut self, text: &str, mut line: usize, literal: bool) {
        for piece in text.split_inclusive('\n') {
            if self.at_line_start && !piece.is_empty() {
                self.line_map.push(line);
                self.at_line_start = false;
            }
            self.out.push_str(piece);
            if piece.ends_with('\n') {
                self.at_line_start = true;
                if literal {
                    line += 1;
                }
            }
        }
    }

    fn list(&mut self, nodes: &'n [Node], dot: &Value) -> Result<Flow, ExecError> {
        for n in nodes {
            match self.node(n, dot)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn scoped(&mut self, nodes: &'n [Node], dot: &Value) -> Result<Flow, ExecError> {
        let mark = self.vars.len();
        let r = self.list(nodes, dot);
        self.vars.truncate(mark);
        r
    }

    /// One step of work; refuses when the template ran out of steps or its
    /// output is too large.
    fn step(&mut self, line: usize) -> Result<(), ExecError> {
        if self.fuel == 0 {
            return Err(ExecError {
                line,
                message: format!("template execution exceeds {MAX_STEPS} steps"),
            });
        }
        self.fuel -= 1;
        if self.out.len() > MAX_OUTPUT {
            return Err(ExecError {
                line,
                message: format!("template output exceeds {} MiB", MAX_OUTPUT >> 20),
            });
        }
        Ok(())
    }

    fn node(&mut self, n: &'n Node, dot: &Value) -> Result<Flow, ExecError> {
        self.step(node_line(n))?;
        match n {
            Node::Define(..) => {}
            Node::Template(name, pipe, line) => {
                let line = *line;
                let arg = match pipe {
                    Some(p) => self.pipe(p, dot)?,
                    None => Value::Null,
                };
                let Some(body) = self.templates.get(name).copied() else {
                    return Err(ExecError {
                        line,
                        message: format!("no such template {name:?}"),
                    });
                };
                if self.depth >= MAX_DEPTH {
                    return Err(ExecError {
                        line,
                        message: format!("exceeded maximum template depth ({MAX_DEPTH})"),
                    });
                }
                // A template sees only `$` (its argument), as in Go.
                let saved = std::mem::replace(&mut self.vars, vec![(String::new(), arg.clone())]);
                self.depth += 1;
                let r = self.list(body, &arg);
                self.depth -= 1;
                self.vars = saved;
                r?;
            }
            Node::Text(t, line) => self.emit(t, *line, true),
            Node::Action(p) => {
                let v = self.pipe(p, dot)?;
                if p.vars.is_empty() {
                    let text = display(&v);
                    self.emit(&text, p.line, false);
                }
            }
            Node::If {
                branches,
                otherwise,
            }
            | Node::With {
                branches,
                otherwise,
            } => {
                let is_with = matches!(n, Node::With { .. });
                let mark = self.vars.len();
                for (cond, body) in branches {
                    let v = self.pipe(cond, dot)?;
                    if truthy(&v) {
                        let d = if is_with { v } else { dot.clone() };
                        let r = self.scoped(body, &d);
                        self.vars.truncate(mark);
                        return r;
                    }
                }
                self.vars.truncate(mark);
                if let Some(o) = otherwise {
                    return self.scoped(o, dot);
                }
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => {
                // The range pipe's variables are bound per element, not to
                // the pipeline's value.
                let plain = Pipe {
                    vars: Vec::new(),
                    ..pipe.clone()
                };
                let v = self.pipe(&plain, dot)?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x.clone()))
                        .collect(),
                    Value::Object(o) => {
                        let mut keys: Vec<&String> = o.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), o[k].clone()))
                            .collect()
                    }
                    Value::Number(n) if n.as_i64().is_some() => {
                        let count = n.as_i64().unwrap_or(0).max(0);
                        if count as u64 > self.fuel {
                            return Err(ExecError {
                                line: pipe.line,
                                message: format!(
                                    "range over {count} exceeds the template's {MAX_STEPS} steps"
                                ),
                            });
                        }
                        (0..count)
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    other => {
                        return Err(ExecError {
                            line: pipe.line,
                            message: format!("range can't iterate over {}", display(other)),
                        })
                    }
                };
                if items.is_empty() {
                    if let Some(o) = otherwise {
                        return self.scoped(o, dot);
                    }
                    return Ok(Flow::Normal);
                }
                for (k, elem) in items {
                    self.step(pipe.line)?;
                    let mark = self.vars.len();
                    match pipe.vars.as_slice() {
                        [v1] => self.vars.push((v1.clone(), elem.clone())),
                        [v1, v2] => {
                            self.vars.push((v1.clone(), k));
                            self.vars.push((v2.clone(), elem.clone()));
                        }
                        _ => {}
                    }
                    let flow = self.list(body, &elem);
                    self.vars.truncate(mark);
                    match flow? {
                        Flow::Break => break,
                        Flow::Continue | Flow::Normal => {}
                    }
                }
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, ExecError> {
        let mut val: Option<Value> = None;
        for cmd in &p.cmds {
            val = Some(self.cmd(cmd, dot, val, p.line)?);
        }
        let v = val.unwrap_or(Value::Null);
        if p.assign {
            for name in &p.vars {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        return Err(ExecError {
                            line: p.line,
                            message: format!("undefined variable: ${name}"),
                        })
                    }
                }
            }
        } else {
            for name in &p.vars {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn cmd(
        &mut self,
        c: &Cmd,
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, ExecError> {
        let fail = |message: String| ExecError { line, message };
        if let Arg::Func(name) = &c.args[0] {
            // and / or short-circuit.
            if name == "and" || name == "or" {
                let mut last = Value::Null;
                let total = c.args.len() - 1 + usize::from(piped.is_some());
                if total == 0 {
                    return Err(fail(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                }
                for a in &c.args[1..] {
                    last = self.arg(a, dot, line)?;
                    if truthy(&last) != (name == "and") {
                        return Ok(last);
                    }
                }
                if let Some(p) = piped {
                    last = p;
                }
                return Ok(last);
            }
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(self.arg(a, dot, line)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return funcs::call(name, args).map_err(fail);
        }
        if c.args.len() > 1 || piped.is_some() {
            return Err(fail(format!(
                "can't give argument to non-function {}",
                arg_text(&c.args[0])
            )));
        }
        self.arg(&c.args[0], dot, line)
    }

    fn arg(&mut self, a: &Arg, dot: &Value, line: usize) -> Result<Value, ExecError> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(names) => fields(dot, names, line),
            Arg::Var(name, names) => {
                let v = {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| ExecError {
                            line,
                            message: format!("undefined variable: ${name}"),
                        })?
                };
                fields(&v, names, line)
            }
            Arg::Func(name) => {
                funcs::call(name, Vec::new()).map_err(|message| ExecError { line, message })
            }
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p, names) => {
                let v = self.pipe(p, dot)?;
                fields(&v, names, line)
            }
        }
    }
}

fn node_line(n: &Node) -> usize {
    match n {
        Node::Text(_, l) | Node::Template(_, _, l) | Node::Break(l) | Node::Continue(l) => *l,
        Node::Action(p) => p.line,
        Node::Range { pipe, .. } => pipe.line,
        Node::If { branches, .. } | Node::With { branches, .. } => {
            branches.first().map_or(0, |(p, _)| p.line)
        }
        Node::Define(..) => 0,
    }
}

fn arg_text(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".into(),
        Arg::Field(n) => format!(".{}", n.join(".")),
        Arg::Var(v, n) if n.is_empty() => format!("${v}"),
        Arg::Var(v, n) => format!("${v}.{}", n.join(".")),
        Arg::Func(f) => f.clone(),
        Arg::Lit(v) => display(v),
        Arg::Sub(..) => "(...)".into(),
    }
}

/// `.a.b.c` on `v`: map keys; a missing key is nil, a field of nil is an error.
fn fields(v: &Value, names: &[String], line: usize) -> Result<Value, ExecError> {
    let mut cur = v.clone();
    for (i, name) in names.iter().enumerate() {
        cur = match cur {
            Value::Object(mut o) => o.remove(name).unwrap_or(Value::Null),
            Value::Null => {
                let path = names[..i].join(".");
                return Err(ExecError {
                    line,
                    message: format!("nil pointer evaluating .{path}.{name} (.{path} is not set)"),
                });
            }
            other => {
                return Err(ExecError {
                    line,
                    message: format!("can't evaluate field {name} in {}", kind(&other)),
                })
            }
        };
    }
    Ok(cur)
}

/// The type of a value in words.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}
