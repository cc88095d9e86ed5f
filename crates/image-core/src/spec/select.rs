//! `--only` / `--except`: which builds to resolve. Each is a list of names or
//! globs (comma-separated when given as one string); a pattern that matches
//! no build is an error listing the builds there are.

use globset::Glob;

use crate::diag::{did_you_mean, Diagnostic, Diagnostics};

/// Build names or globs to keep (`only`, empty = all) and to drop (`except`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Keep only builds matching one of these.
    pub only: Vec<String>,
    /// Drop builds matching one of these.
    pub except: Vec<String>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Selection::default()
    }

    /// From flag values, each possibly comma-separated.
    pub fn from_lists(only: &[String], except: &[String]) -> Self {
        let split = |v: &[String]| -> Vec<String> {
            v.iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        Selection {
            only: split(only),
            except: split(except),
        }
    }

    /// The selected names among `names`, in their order.
    pub fn apply<'a>(&self, names: &[&'a str]) -> Result<Vec<&'a str>, Diagnostics> {
        let (selected, diags) = self.apply_lenient(names);
        diags.into_result(selected)
    }

    /// Like [`Selection::apply`], but also returns what the patterns that do
    /// match select when some do not, so the caller can report the selected
    /// builds' problems too.
    pub fn apply_lenient<'a>(&self, names: &[&'a str]) -> (Vec<&'a str>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let only = matches("--only", &self.only, names, &mut diags);
        let except = matches("--except", &self.except, names, &mut diags);
        let selected: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| self.only.is_empty() || only.contains(i))
            .filter(|(i, _)| !except.contains(i))
            .map(|(_, n)| *n)
            .collect();
        if selected.is_empty() && !diags.has_errors() {
            diags.push(
                Diagnostic::error(None, "--only/--except leave no build to run")
                    .with_help(format!("available builds: {}", names.join(", "))),
            );
        }
        (selected, diags)
    }
}

fn matches(flag: &str, patterns: &[String], names: &[&str], diags: &mut Diagnostics) -> Vec<usize> {
    let mut out = Vec::new();
    for p in patterns {
        let matcher = match Glob::new(p) {
            Ok(g) => g.compile_matcher(),
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        None,
                        format!("{flag} `{p}` is not a valid glob: {}", e.kind()),
                    )
                    .with_help("use build names or globs like `ubuntu-*`"),
                );
                continue;
            }
        };
        let hits: Vec<usize> = (0..names.len())
            .filter(|i| matcher.is_match(names[*i]))
            .collect();
        if hits.is_empty() {
            let available = format!("available builds: {}", names.join(", "));
            let help = match did_you_mean(p, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? {available}"),
                None => available,
            };
            diags.push(
                Diagnostic::error(None, format!("{flag} `{p}` matches no build")).with_help(help),
            );
        }
        out.extend(hits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["ubuntu-2204", "ubuntu-2404", "flatcar"];

    #[test]
    fn only_and_except_with_globs() {
        let s = Selection::from_lists(&["ubuntu-*".into()], &["*2204".into()]);
        assert_eq!(s.apply(&NAMES).unwrap(), vec!["ubuntu-2404"]);
        let s = Selection::from_lists(&["flatcar,ubuntu-2204".into()], &[]);
        assert_eq!(s.apply(&NAMES).unwrap(), vec!["ubuntu-2204", "flatcar"]);
        assert_eq!(Selection::all().apply(&NAMES).unwrap().len(), 3);
    }

    #[test]
    fn unmatched_patterns_are_errors() {
        let s = Selection::from_lists(&["ubuntu-2044".into()], &["rhel-*".into()]);
        let e = s.apply(&NAMES).unwrap_err().to_string();
        assert!(e.contains("--only `ubuntu-2044` matches no build"), "{e}");
        assert!(e.contains("did you mean `ubuntu-2204`?"), "{e}");
        assert!(e.contains("--except `rhel-*` matches no build"), "{e}");
        let s = Selection::from_lists(&[], &["*".into()]);
        assert!(s.apply(&NAMES).is_err());
    }
}
