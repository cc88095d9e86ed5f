//! Free-form module arguments: `copy: src=a dest=b`, `command: echo hi
//! chdir=/tmp`.

use serde_json::{Map, Value as Json};

use crate::modules::FreeForm;

/// Splits a free-form argument string into `key=value` pairs; for
/// [`FreeForm::Command`] modules the words that are not known parameters
/// form `_raw_params`, which keeps the original text (newlines and spacing
/// of a multi-line `shell: |` script) minus the parameters taken out.
pub fn free_form(s: &str, kind: FreeForm, params: &[&str]) -> Map<String, Json> {
    let joined = join_continued_lines(s);
    let s = joined.as_str();
    let mut out = Map::new();
    let mut raw = String::new();
    let mut last = 0;
    let mut any_raw = false;
    for (a, b) in split_words(s) {
        let word = &s[a..b];
        let kv = word.split_once('=').filter(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        let take = kv.is_some_and(|(k, _)| kind == FreeForm::KeyValue || params.contains(&k));
        match kv {
            Some((k, _)) if take => {
                let v = unquote(&word[k.len() + 1..]);
                out.insert(k.to_string(), Json::String(v));
                raw.push_str(&s[last..a]);
                // The blanks after a parameter go with it.
                last = b + s[b..].len() - s[b..].trim_start_matches([' ', '\t']).len();
            }
            _ => any_raw = true,
        }
    }
    if any_raw {
        raw.push_str(&s[last..]);
        let raw = if last == 0 {
            raw
        } else {
            raw.trim().to_string()
        };
        out.insert("_raw_params".into(), Json::String(raw));
    }
    out
}

/// ansible's line continuation (`split_args`): a `\` word (blank-separated,
/// outside quotes) is dropped with one blank, and its line is joined to the
/// next one, which keeps its indent (one blank when it has none), so
/// `find x \\\n  -exec y` is `find x  -exec y`. Other text is unchanged.
fn join_continued_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    let mut continued = false;
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            if !continued {
                out.push('\n');
            } else if !line.starts_with(' ') && !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
        }
        continued = false;
        let mut first = true;
        for tok in line.split(' ') {
            if tok == "\\" && quote.is_none() {
                continued = true;
                continue;
            }
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(tok);
            let mut escaped = false;
            for c in tok.chars() {
                match quote {
                    _ if escaped => {}
                    Some(q) if c == q => quote = None,
                    None if c == '"' || c == '\'' => quote = Some(c),
                    _ => {}
                }
                escaped = c == '\\' && !escaped;
            }
        }
    }
    out
}

/// Byte spans of the words of a command line, split on unquoted blanks
/// (outside `{...}` so that templates stay one word).
fn split_words(s: &str) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') => quote = Some(c),
            None if c == '{' => depth += 1,
            None if c == '}' => depth -= 1,
            None if c.is_whitespace() && depth <= 0 => {
                if let Some(a) = start.take() {
                    words.push((a, i));
                }
                continue;
            }
            None => {}
        }
        start.get_or_insert(i);
    }
    if let Some(a) = start {
        words.push((a, s.len()));
    }
    words
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_form_key_values() {
        let m = free_form(
            "path=/x state=directory mode='0755'",
            FreeForm::KeyValue,
            &[],
        );
        assert_eq!(m["path"], "/x");
        assert_eq!(m["mode"], "0755");
        let c = free_form(
            "echo a=b chdir=/tmp",
            FreeForm::Command,
            &["chdir", "creates"],
        );
        assert_eq!(c["chdir"], "/tmp");
        assert_eq!(c["_raw_params"], "echo a=b");
        // A multi-line script keeps its lines.
        let script = "set -eu\nfound=\"$(echo x)\"\necho \"got $found\"\n";
        let c = free_form(script, FreeForm::Command, &["chdir", "creates"]);
        assert_eq!(c["_raw_params"], script);
        let c = free_form(
            "creates=/x\nset -eu\necho hi",
            FreeForm::Command,
            &["chdir", "creates"],
        );
        assert_eq!(c["creates"], "/x");
        assert_eq!(c["_raw_params"], "set -eu\necho hi");
    }

    #[test]
    fn line_continuations_join_lines_as_ansible() {
        let c = |s: &str| free_form(s, FreeForm::Command, &["chdir"])["_raw_params"].clone();
        // image-builder's sysprep (redhat.yml): ansible's cmd.
        assert_eq!(
            c("set -o pipefail\nfind /d -name '*.x' \\\n  -exec sed {} +\n"),
            "set -o pipefail\nfind /d -name '*.x'  -exec sed {} +\n"
        );
        assert_eq!(c("a \\\nb"), "a b");
        assert_eq!(c("a \\ b\nc"), "a b c");
        assert_eq!(c("\\\nx"), "x");
        assert_eq!(c("a\n\\\n  b"), "a\n  b");
        // Inside quotes, glued to a word, or alone: kept.
        assert_eq!(c("echo '\\\n' x"), "echo '\\\n' x");
        assert_eq!(c("echo a\\\nb"), "echo a\\\nb");
        assert_eq!(c("printf '%s\\n' x"), "printf '%s\\n' x");
    }
}
