//! Go's RE2 regular-expression syntax on top of the `regex` crate.
//!
//! goss compiles every pattern (`match-regexp`, `/re/` line patterns, the
//! templates' `regexMatch`...) with Go's `regexp`, so gossfiles are written
//! in RE2's dialect. The `regex` crate is close but not the same; this
//! module translates the differences before compiling and refuses what RE2
//! refuses:
//!
//! - `\Q…\E` quotes a literal (to the end of the pattern without `\E`).
//! - `\d \D \w \W \s \S \b \B` are ASCII-only in RE2 (Unicode in `regex`):
//!   they become explicit ASCII classes.
//! - Octal escapes `\0`, `\12`, `\123` are characters; `\1`…`\9` alone are
//!   backreferences, which RE2 refuses.
//! - Inside a class `[`, `&`, `~` and a second `-` are literals in RE2
//!   (`regex` reads nested classes and set operations there).
//! - A `{` that does not start a repetition is a literal; repetition counts
//!   above 1000 are refused.
//! - Flags: only `i`, `m`, `s`, `U` (RE2 refuses `x`, `u`, `R`); look-around
//!   `(?=`, `(?!`, `(?<=`, `(?<!` and `\<`, `\>`, `\Z` are refused.
//!
//! ```
//! let re = image_verify::re2::compile(r"^\Q1.30.2-1.1\E(-\d+)*$").unwrap();
//! assert!(re.is_match("1.30.2-1.1-3"));
//! assert!(!re.is_match("1x30x2-1.1"));
//! assert!(image_verify::re2::compile(r"(?x) a").is_err());
//! ```

/// The most repetitions RE2 accepts in `{n,m}`.
const MAX_REPEAT: u32 = 1000;
/// Patterns longer than this are refused (bounded compile work).
const MAX_PATTERN: usize = 64 * 1024;

/// Compiles an RE2 pattern. The error names the construct RE2 refuses.
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    let translated = translate(pattern)?;
    regex::RegexBuilder::new(&translated)
        .size_limit(16 << 20)
        .build()
        .map_err(|e| {
            // The regex crate's error spans lines (the translated pattern, a
            // caret): keep its last `error:` line, which says what is wrong.
            let text = e.to_string();
            let why = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.lines().next().unwrap_or_default());
            format!("bad regular expression {pattern:?}: {why}")
        })
}

/// Translates an RE2 pattern into the `regex` crate's syntax.
pub fn translate(pattern: &str) -> Result<String, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "regular expression is too long ({} bytes, at most {MAX_PATTERN})",
            pattern.len()
        ));
    }
    let bad = |what: &str| format!("bad regular expression {pattern:?}: {what}");
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err(bad("trailing backslash at end of expression"));
                };
                i += 2;
                match n {
                    'Q' => {
                        let mut lit = String::new();
                        while i < chars.len() {
                            if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                                i += 2;
                                break;
                            }
                            lit.push(chars[i]);
                            i += 1;
                        }
                        out.push_str(&regex::escape(&lit));
                    }
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str(r"[\t\n\x0C\r ]"),
                    'S' => out.push_str(r"[^\t\n\x0C\r ]"),
                    'b' => out.push_str(r"(?-u:\b)"),
                    'B' => out.push_str(r"(?-u:\B)"),
                    '0'..='7' => i = octal(&chars, i - 2, &mut out).map_err(|e| bad(&e))?,
                    '8' | '9' => return Err(bad(&format!("invalid escape sequence `\\{n}`"))),
                    '<' | '>' | 'Z' | 'C' => {
                        return Err(bad(&format!("invalid escape sequence `\\{n}`")))
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' => i = class(&chars, i, &mut out).map_err(|e| bad(&e))?,
            '(' if chars.get(i + 1) == Some(&'?') => {
                i = group(&chars, i, &mut out).map_err(|e| bad(&e))?;
            }
            '{' => match repeat(&chars, i) {
                Some((end, text)) => {
                    let (lo, hi) = counts(&text);
                    if lo > MAX_REPEAT || hi > MAX_REPEAT {
                        return Err(bad(&format!(
                            "invalid repeat count `{text}` (at most {MAX_REPEAT})"
                        )));
                    }
                    out.push_str(&text);
                    i = end;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            '}' => {
                out.push_str(r"\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// `\0`, `\12`, `\123` (octal; `start` is the backslash). A lone `\1`-`\7`
/// is a backreference, which RE2 refuses.
fn octal(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let mut i = start + 1;
    let first = chars[i];
    let mut digits = String::new();
    while i < chars.len() && digits.len() < 3 && ('0'..='7').contains(&chars[i]) {
        digits.push(chars[i]);
        i += 1;
    }
    if first != '0' && digits.len() == 1 {
        return Err(format!(
            "invalid escape sequence `\\{first}` (backreferences are not supported)"
        ));
    }
    let v = u32::from_str_radix(&digits, 8).map_err(|e| e.to_string())?;
    out.push_str(&format!(r"\x{{{v:X}}}"));
    Ok(i)
}

/// `{n}`, `{n,}`, `{n,m}` at `i`, with a trailing `?` kept by the caller's
/// loop. `None` when `{` is a literal (as in RE2).
fn repeat(chars: &[char], i: usize) -> Option<(usize, String)> {
    let mut j = i + 1;
    let mut text = String::from("{");
    let mut digits = 0;
    while j < chars.len() && chars[j].is_ascii_digit() {
        text.push(chars[j]);
        j += 1;
        digits += 1;
    }
    if digits == 0 {
        return None;
    }
    if chars.get(j) == Some(&',') {
        text.push(',');
        j += 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            text.push(chars[j]);
            j += 1;
        }
    }
    if chars.get(j) != Some(&'}') {
        return None;
    }
    text.push('}');
    Some((j + 1, text))
}

fn counts(text: &str) -> (u32, u32) {
    let inner = &text[1..text.len() - 1];
    let parse = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
    match inner.split_once(',') {
        Some((a, "")) => (parse(a), 0),
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(inner), 0),
    }
}

/// `(?flags)`, `(?flags:`, `(?P<name>`, `(?<name>` at `i`.
fn group(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let mut j = i + 2;
    match chars.get(j) {
        Some('P') if chars.get(j + 1) == Some(&'<') => {
            out.push_str("(?P<");
            return Ok(j + 2);
        }
        Some('<') if !matches!(chars.get(j + 1), Some('=') | Some('!')) => {
            out.push_str("(?<");
            return Ok(j + 1);
        }
        Some('=') | Some('!') | Some('<') => {
            return Err("look-around `(?=`, `(?!`, `(?<=`, `(?<!` is not supported by RE2".into())
        }
        _ => {}
    }
    let mut flags = String::new();
    while let Some(&c) = chars.get(j) {
        match c {
            'i' | 'm' | 's' | 'U' | '-' => flags.push(c),
            ')' | ':' => {
                out.push_str("(?");
                out.push_str(&flags);
                out.push(c);
                return Ok(j + 1);
            }
            other => {
                return Err(format!(
                "invalid or unsupported Perl syntax `(?{flags}{other}` (RE2 flags are i, m, s, U)"
            ))
            }
        }
        j += 1;
    }
    Err("missing closing )".into())
}

/// A character class at `i` (`[`), translated; returns the index after `]`.
fn class(chars: &[char], i: usize, out: &mut String) -> Result<usize, String> {
    let mut j = i + 1;
    out.push('[');
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    let mut first = true;
    let mut prev_dash = false;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err("missing closing ]".into());
        };
        if c == ']' && !first {
            out.push(']');
            return Ok(j + 1);
        }
        first = false;
        let mut dash = false;
        match c {
            '[' if chars.get(j + 1) == Some(&':') => {
                let rest: String = chars[j..].iter().take(16).collect();
                match rest.find(":]") {
                    Some(end) => {
                        out.push_str(&rest[..end + 2]);
                        j += rest[..end + 2].chars().count();
                        prev_dash = false;
                        continue;
                    }
                    None => out.push_str(r"\["),
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            ']' => out.push_str(r"\]"),
            '-' if prev_dash => out.push_str(r"\-"),
            '-' => {
                out.push('-');
                dash = true;
            }
            '\\' => {
                let Some(&n) = chars.get(j + 1) else {
                    return Err("trailing backslash at end of expression".into());
                };
                j += 2;
                match n {
                    'd' => out.push_str("0-9"),
                    'D' => out.push_str(r"\x00-/:-\x{10FFFF}"),
                    'w' => out.push_str("0-9A-Za-z_"),
                    'W' => out.push_str(r"\x00-/:-@\[-\^`\{-\x{10FFFF}"),
                    's' => out.push_str(r"\t\n\x0C\r "),
                    'S' => out.push_str(r"\x00-\x08\x0B\x0E-\x1F!-\x{10FFFF}"),
                    '0'..='7' => j = octal(chars, j - 2, out)?,
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                prev_dash = false;
                continue;
            }
            _ => out.push(c),
        }
        prev_dash = dash;
        j += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, s: &str) -> bool {
        compile(re).unwrap_or_else(|e| panic!("{e}")).is_match(s)
    }

    #[test]
    fn quoting() {
        assert!(m(r"^\Q1.30.2-1.1\E(-\d+(\.\d+)*)*$", "1.30.2-1.1"));
        assert!(m(r"^\Q1.30.2-1.1\E(-\d+(\.\d+)*)*$", "1.30.2-1.1-2.3"));
        assert!(!m(r"^\Q1.30.2-1.1\E$", "1x30x2-1.1"));
        assert!(m(r"^\Qa+b(", "a+b(c"));
        assert!(m(r"^\Q\E$", ""));
    }

    #[test]
    fn ascii_classes() {
        assert!(!m(r"^\d$", "٣"));
        assert!(m(r"^\d+$", "123"));
        assert!(!m(r"^\w$", "é"));
        assert!(m(r"^[\w.-]+$", "a_b.c-d"));
        assert!(m(r"^[^\s]+$", "ab"));
        assert!(!m(r"^\s$", "\u{b}"));
        assert!(m(r"^[\D]$", "x"));
        assert!(!m(r"^[\W]$", "a"));
        assert!(m(r"\bfoo\b", "a foo b"));
    }

    #[test]
    fn classes_are_literal_where_re2_says_so() {
        assert!(m(r"^[[]$", "["));
        assert!(m(r"^[a&&b]+$", "a&b"));
        assert!(m(r"^[]a]+$", "]a"));
        assert!(m(r"^[[:alpha:]]+$", "abc"));
        assert!(m(r"^[~]$", "~"));
    }

    #[test]
    fn braces_and_octal() {
        assert!(m(r"^a{2}$", "aa"));
        assert!(m(r"^a{$", "a{"));
        assert!(m(r"^{}$", "{}"));
        assert!(m(r"^\101$", "A"));
        assert!(compile(r"a{1001}").is_err());
        assert!(compile(r"(a)\1").is_err());
    }

    #[test]
    fn flags() {
        assert!(m(r"(?i)^abc$", "ABC"));
        assert!(m(r"(?s:a.b)", "a\nb"));
        assert!(m(r"(?P<x>a)(?<y>b)", "ab"));
        for bad in [r"(?x)a", r"(?=a)", r"(?<!a)b", r"\Z", r"a\<"] {
            assert!(compile(bad).is_err(), "{bad}");
        }
    }
}
