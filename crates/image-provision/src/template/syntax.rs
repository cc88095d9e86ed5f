//! Ansible's pre-processing of template text taken from YAML: inside
//! `{{ ... }}`, backslashes in string constants are literal
//! (`regex_replace('^(.*)$', '\1')` passes `\1`, not `\x01`), because YAML
//! already processed them once. Statements (`{% %}`), conditionals and
//! template files are not pre-processed, as in ansible-core. And Python's
//! `'%s' % x` string formatting, rewritten to the `format` filter for
//! every kind of template.

use std::borrow::Cow;

/// Doubles the backslashes of string constants in one expression.
pub(crate) fn escape_expr(expr: &str) -> Cow<'_, str> {
    if !expr.contains('\\') {
        return Cow::Borrowed(expr);
    }
    let mut out = String::with_capacity(expr.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match quote {
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
            Some(q) => {
                if c == '\\' {
                    out.push_str("\\\\");
                    // An escaped quote or backslash stays escaped, so the
                    // constant ends where Jinja's lexer ends it.
                    if let Some(n) = chars.next() {
                        if n == q || n == '\\' {
                            out.push('\\');
                        }
                        out.push(n);
                    }
                } else {
                    if c == q {
                        quote = None;
                    }
                    out.push(c);
                }
            }
        }
    }
    Cow::Owned(out)
}

/// Applies [`escape_expr`] to every `{{ ... }}` of a template.
pub(crate) fn escape_template(src: &str) -> Cow<'_, str> {
    if !src.contains('\\') {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 8);
    let mut rest = src;
    loop {
        let Some(start) = rest.find("{{") else {
            out.push_str(rest);
            break;
        };
        // Text and statements before the expression are copied as they are;
        // a `{% raw %}` block is copied whole.
        if let Some(raw) = rest[..start].find("{% raw") {
            if let Some(end) = rest[raw..].find("endraw") {
                let cut = raw + end + "endraw".len();
                out.push_str(&rest[..cut]);
                rest = &rest[cut..];
                continue;
            }
        }
        out.push_str(&rest[..start + 2]);
        rest = &rest[start + 2..];
        let end = expr_end(rest).unwrap_or(rest.len());
        out.push_str(&escape_expr(&rest[..end]));
        rest = &rest[end..];
    }
    Cow::Owned(out)
}

/// Where the `}}` closing an expression is: outside string constants and
/// brackets (`{{ {'a': {'b': 1}} }}` closes at the last `}}`), as Jinja's
/// lexer balances them.
pub(crate) fn expr_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'}' && depth == 0 && b.get(i + 1) == Some(&b'}') => return Some(i),
            None if c == b'{' || c == b'[' || c == b'(' => depth += 1,
            None if c == b'}' || c == b']' || c == b')' => depth = depth.saturating_sub(1),
            None => {}
        }
        i += 1;
    }
    None
}

/// The end (exclusive) of the string constant starting at `i` (a quote).
fn literal_end(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The end (exclusive) of the bracketed group opening at `i`.
fn group_end(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'\'' | b'"' => {
                j = literal_end(b, j);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// The operand right of a `%`: a parenthesized group, a constant, or a
/// name with its attributes, subscripts and calls (`users[0].name`).
fn operand_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'(' => group_end(b, i),
        b'\'' | b'"' => Some(literal_end(b, i)),
        c if c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-' => {
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    Some(c) if c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.' => j += 1,
                    Some(b'[') | Some(b'(') => j = group_end(b, j)?,
                    _ => return Some(j),
                }
            }
        }
        _ => None,
    }
}

/// Python's `'format' % args` on a string constant, which minijinja has
/// no operator for, rewritten to the `format` filter (printf style):
/// `'%02d' % x` is `('%02d' | format(x))`, `'%s-%s' % (a, b)` is
/// `('%s-%s' | format(a, b))`.
pub(crate) fn percent_format(expr: &str) -> Cow<'_, str> {
    if !expr.contains('%') {
        return Cow::Borrowed(expr);
    }
    let b = expr.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    let mut changed = false;
    while i < b.len() {
        if b[i] != b'\'' && b[i] != b'"' {
            i += 1;
            continue;
        }
        let lit_end = literal_end(b, i);
        let mut k = lit_end;
        while b.get(k) == Some(&b' ') {
            k += 1;
        }
        if b.get(k) != Some(&b'%') || matches!(b.get(k + 1), Some(b'}') | Some(b'%')) {
            i = lit_end;
            continue;
        }
        let mut r = k + 1;
        while b.get(r) == Some(&b' ') {
            r += 1;
        }
        let Some(end) = operand_end(b, r) else {
            i = lit_end;
            continue;
        };
        let rhs = &expr[r..end];
        let args = match rhs.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            Some(inner) => inner.trim_end().trim_end_matches(',').to_string(),
            None => rhs.to_string(),
        };
        out.push_str(&expr[copied..i]);
        out.push_str(&format!("({} | format({args}))", &expr[i..lit_end]));
        copied = end;
        i = end;
        changed = true;
    }
    if !changed {
        return Cow::Borrowed(expr);
    }
    out.push_str(&expr[copied..]);
    Cow::Owned(out)
}

/// [`percent_format`] inside every `{{ }}` and `{% %}` of a template.
pub(crate) fn percent_format_template(src: &str) -> Cow<'_, str> {
    // Fast path: no string constant followed by `%`.
    let b = src.as_bytes();
    let candidate = b.windows(2).enumerate().any(|(i, w)| {
        (w[0] == b'\'' || w[0] == b'"') && {
            let rest = &src[i + 1..];
            rest.trim_start_matches(' ').starts_with('%')
                && !rest.trim_start_matches(' ').starts_with("%}")
        }
    });
    if !candidate {
        return Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len() + 16);
    let mut rest = src;
    loop {
        let open = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(c)) => a.min(c),
            (Some(a), None) => a,
            (None, Some(c)) => c,
            (None, None) => {
                out.push_str(rest);
                break;
            }
        };
        out.push_str(&rest[..open + 2]);
        let is_stmt = rest[open..].starts_with("{%");
        rest = &rest[open + 2..];
        let end = if is_stmt {
            rest.find("%}").unwrap_or(rest.len())
        } else {
            expr_end(rest).unwrap_or(rest.len())
        };
        out.push_str(&percent_format(&rest[..end]));
        rest = &rest[end..];
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn backslashes_in_expression_strings_are_literal() {
        assert_eq!(
            escape_expr(r"x | regex_replace('a\.b', '\1')"),
            r"x | regex_replace('a\\.b', '\\1')"
        );
        assert_eq!(escape_expr(r"'it\'s'"), r"'it\\\'s'");
        assert_eq!(
            escape_template(r"a\1 {{ 'x\d' }} {% set y = 'q\n' %}{{ y }}"),
            r"a\1 {{ 'x\\d' }} {% set y = 'q\n' %}{{ y }}"
        );
        assert_eq!(escape_template(r"{{ '}}\n' }}"), r"{{ '}}\\n' }}");
        assert_eq!(expr_end("{'a': {'b': 1}} }} x"), Some(16));
    }

    #[test]
    fn python_percent_formatting_becomes_the_format_filter() {
        assert_eq!(percent_format("'%02d' % 5"), "('%02d' | format(5))");
        assert_eq!(
            percent_format("'%s-%s' % ('a', 'b') ~ x"),
            "('%s-%s' | format('a', 'b')) ~ x"
        );
        assert_eq!(
            percent_format("'%s' % users[0].name"),
            "('%s' | format(users[0].name))"
        );
        assert_eq!(percent_format("10 % 3"), "10 % 3");
        assert_eq!(
            percent_format_template("{% set x = '%d' % 1 %}{{ x }} 100%"),
            "{% set x = ('%d' | format(1)) %}{{ x }} 100%"
        );
    }
}
