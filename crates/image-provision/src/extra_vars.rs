//! Extra variables as `ansible-playbook -e` takes them (highest
//! precedence): `k=v` words, `@FILE` (a YAML or JSON mapping) or a JSON
//! object, merged in order into [`crate::Options::extra_vars`].
//!
//! ```
//! let vars = image_provision::extra_vars::parse(&[
//!     "kubernetes_version=1.31.4 arch=amd64".to_string(),
//!     r#"{"pause": {"tag": "3.10"}}"#.to_string(),
//! ])?;
//! assert_eq!(vars["arch"], "amd64");
//! assert_eq!(vars["pause"]["tag"], "3.10");
//! # Ok::<(), image_core::diag::Diagnostic>(())
//! ```

use image_core::diag::Diagnostic;
use serde_json::{Map, Value as Json};

/// Parses `-e` values, in order (later ones win); a bad one is an error
/// naming it, with a `help:` line.
pub fn parse(items: &[String]) -> Result<Map<String, Json>, Diagnostic> {
    let mut m = Map::new();
    for it in items {
        if let Some(file) = it.strip_prefix('@') {
            let text = image_core::yaml::read_file(std::path::Path::new(file)).map_err(|e| {
                Diagnostic::error(None, format!("-e @{file}: {e}"))
                    .with_help("check the path of the variables file")
            })?;
            let doc = image_core::yaml::parse(file, &text)?;
            match doc.to_json() {
                Json::Object(o) => m.extend(o),
                Json::Null => {}
                _ => {
                    return Err(doc
                        .error(format!(
                            "-e @{file} must hold a mapping, found {}",
                            doc.kind()
                        ))
                        .with_help("write `name: value` lines"))
                }
            }
        } else if it.trim_start().starts_with('{') {
            match serde_json::from_str::<Json>(it) {
                Ok(Json::Object(o)) => m.extend(o),
                _ => {
                    return Err(
                        Diagnostic::error(None, format!("-e {it}: not a JSON object"))
                            .with_help(r#"quote the whole value: -e '{"name": "value"}'"#),
                    )
                }
            }
        } else {
            for word in it.split_whitespace() {
                let (k, v) = word.split_once('=').ok_or_else(|| {
                    Diagnostic::error(
                        None,
                        format!("-e {word}: expected key=value, @FILE or JSON"),
                    )
                    .with_help("e.g. -e version=1.30, -e @vars.yml or -e '{\"version\": \"1.30\"}'")
                })?;
                m.insert(k.to_string(), Json::String(v.to_string()));
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_vars_forms() {
        let m = parse(&["a=1 b=x".into(), r#"{"c": [1]}"#.into()]).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x");
        assert_eq!(m["c"][0], 1);
    }
}
