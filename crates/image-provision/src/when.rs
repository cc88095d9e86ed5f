//! Condition text shared by the parser and the modules that take
//! expressions (`assert: that`, `debug: var`).

/// `"{{ x }}"` -> `x` (ansible warns about braces in `when`; we accept them).
pub fn strip_braces(s: &str) -> String {
    let t = s.trim();
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        if !inner.contains("{{") {
            return inner.trim().to_string();
        }
    }
    t.to_string()
}
