//! Bounded templates: a minijinja [`Environment`] made safe for input
//! nobody vetted. [`harden`] gives it fuel (so a loop cannot run forever)
//! and replaces the builtin filters whose arguments size their output —
//! `format` (printf width and precision, also given as `*`) and `indent`
//! (width) — by versions that refuse a size over [`MAX_WIDTH`] with an
//! error instead of aborting on a huge allocation.
//!
//! The definition's templates ([`super::template`]) use it; any other
//! minijinja environment fed with user files can call [`harden`] too.
//!
//! ```
//! let mut env = minijinja::Environment::new();
//! image_core::spec::bounded::harden(&mut env);
//! let e = env.render_str("{{ '%999999999d' | format(1) }}", ()).unwrap_err();
//! assert!(e.to_string().contains("larger than 4096"));
//! assert!(env.render_str("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", ()).is_err());
//! ```

use minijinja::value::{Kwargs, Rest, StringInput};
use minijinja::{Environment, Error, ErrorKind, State, Value};

/// Instructions one render may execute.
pub const FUEL: u64 = 200_000;
/// The largest width, precision or indentation a filter accepts.
pub const MAX_WIDTH: u64 = 4096;

/// Sets fuel and bounds `format` and `indent` (see the module doc).
pub fn harden(env: &mut Environment<'_>) {
    env.set_fuel(Some(FUEL));
    env.add_filter("format", format);
    env.add_filter("indent", indent);
}

/// Refuses a width, count or indentation over [`MAX_WIDTH`] for any filter
/// or method that sizes its output by an argument (`center`, `ljust`,
/// `zfill`, `to_nice_json(indent=…)`, …); `what` names it in the error.
pub fn check_width(what: &str, n: usize) -> Result<(), Error> {
    if n as u64 > MAX_WIDTH {
        return Err(too_large(what, n));
    }
    Ok(())
}

/// `env.compile_expression(expr)`, refusing first an expression with `}}`
/// outside its strings: minijinja 2.24's expression lexer panics ("empty
/// lexer stack") when anything follows such a `}}` (`a }} b`).
pub fn compile_expression<'env, 'source>(
    env: &'env Environment<'source>,
    expr: &'source str,
) -> Result<minijinja::Expression<'env, 'source>, Error> {
    if closes_outside_strings(expr) {
        return Err(Error::new(
            ErrorKind::SyntaxError,
            "unexpected `}}` in an expression",
        ));
    }
    env.compile_expression(expr)
}

/// Whether `expr` has `}}` outside its string literals and brackets (where
/// minijinja's lexer takes it for the end of a `{{ }}` block).
fn closes_outside_strings(expr: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '}' if depth == 0 && chars.peek() == Some(&'}') => return true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    false
}

/// True when `err` is minijinja running out of fuel.
pub fn is_out_of_fuel(err: &Error) -> bool {
    err.kind() == ErrorKind::OutOfFuel
}

fn too_large(what: &str, n: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} {n} is larger than {MAX_WIDTH}"),
    )
}

/// `format` with every width and precision checked first.
fn format(state: &State, format_str: &Value, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(s) = format_str.as_str() {
        check_printf(s, &args)?;
    }
    minijinja::filters::format(state, format_str, args)
}

/// `indent` with its width checked first.
fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let w = match width {
        Some(w) => Some(w),
        None => kwargs.peek::<Option<usize>>("width")?,
    };
    if let Some(w) = w {
        if w as u64 > MAX_WIDTH {
            return Err(too_large("indent: width", w));
        }
    }
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// Checks the widths and precisions of a printf-style format string
/// (`%[(key)][flags][width][.precision][hlL]type`, `*` taking the next
/// argument).
fn check_printf(fmt: &str, args: &[Value]) -> Result<(), Error> {
    let b = fmt.as_bytes();
    let mut i = 0;
    let mut arg = 0usize;
    let star = |arg: &mut usize, what: &str| -> Result<(), Error> {
        let v = args.get(*arg).and_then(|v| i64::try_from(v.clone()).ok());
        *arg += 1;
        match v {
            Some(n) if n.unsigned_abs() > MAX_WIDTH => Err(too_large(what, n)),
            _ => Ok(()),
        }
    };
    let number = |i: &mut usize, what: &str| -> Result<(), Error> {
        let start = *i;
        let mut n: u64 = 0;
        while *i < b.len() && b[*i].is_ascii_digit() {
            n = n.saturating_mul(10).saturating_add(u64::from(b[*i] - b'0'));
            *i += 1;
        }
        if *i > start && n > MAX_WIDTH {
            return Err(too_large(what, &fmt[start..*i]));
        }
        Ok(())
    };
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        let keyed = b.get(i) == Some(&b'(');
        if keyed {
            while i < b.len() && b[i] != b')' {
                i += 1;
            }
            i += 1;
        }
        while i < b.len() && matches!(b[i], b'#' | b'0' | b'-' | b' ' | b'+') {
            i += 1;
        }
        if b.get(i) == Some(&b'*') {
            i += 1;
            star(&mut arg, "format: width")?;
        } else {
            number(&mut i, "format: width")?;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if b.get(i) == Some(&b'*') {
                i += 1;
                star(&mut arg, "format: precision")?;
            } else {
                number(&mut i, "format: precision")?;
            }
        }
        while i < b.len() && matches!(b[i], b'h' | b'l' | b'L') {
            i += 1;
        }
        i += 1;
        if !keyed {
            arg += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment<'static> {
        let mut env = Environment::new();
        harden(&mut env);
        env
    }

    #[test]
    fn ordinary_formatting_still_works() {
        let env = env();
        let r = |s: &str| env.render_str(s, ()).unwrap();
        assert_eq!(r("{{ '%05d-%s' | format(42, 'x') }}"), "00042-x");
        assert_eq!(r("{{ '%.2f|%4d' | format(1.5, 7) }}"), "1.50|   7");
        assert_eq!(r("{{ '100%%' | format() }}"), "100%");
        assert_eq!(r("{{ 'a\nb' | indent(2) }}"), "a\n  b");
        assert_eq!(
            r("{{ 'a\nb' | indent(width=3, first=true) }}"),
            "   a\n   b"
        );
    }

    #[test]
    fn huge_sizes_are_errors() {
        let env = env();
        for src in [
            "{{ '%99999999999d' | format(1) }}",
            "{{ '%.99999999999f' | format(1.0) }}",
            "{{ '%*d' | format(999999999, 1) }}",
            "{{ '%s %.*f' | format('x', -999999999, 1.0) }}",
            "{{ '%(a)99999s' | format({'a': 1}) }}",
            "{{ 'a\nb' | indent(999999999999) }}",
            "{{ 'a\nb' | indent(width=999999999999) }}",
        ] {
            let e = env.render_str(src, ()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidOperation, "{src}: {e}");
            assert!(e.to_string().contains("larger than 4096"), "{src}: {e}");
        }
    }

    #[test]
    fn a_closing_delimiter_in_an_expression_is_an_error_not_a_panic() {
        let env = env();
        for bad in ["a }} b", "a -}} b", "a }}}", "x }}"] {
            let e = compile_expression(&env, bad).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::SyntaxError, "{bad}");
        }
        for good in ["a == '}}'", "a ~ \"}} x\"", "{'a': {'b': 1}}['a']", "x"] {
            assert!(compile_expression(&env, good).is_ok(), "{good}");
        }
    }

    #[test]
    fn endless_loops_run_out_of_fuel() {
        let e = env()
            .render_str(
                "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
                (),
            )
            .unwrap_err();
        assert!(is_out_of_fuel(&e), "{e}");
    }
}
