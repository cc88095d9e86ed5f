//! Diffs for `--diff`: the before and after text of a changed file and a
//! small unified-diff renderer (longest common subsequence over lines).

use serde::Serialize;

/// One changed thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// What changed (a path, a package list).
    pub header: String,
    /// The old text.
    pub before: String,
    /// The new text.
    pub after: String,
}

impl Diff {
    /// A diff of `header` from `before` to `after`.
    pub fn new(
        header: impl Into<String>,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> Self {
        Diff {
            header: header.into(),
            before: before.into(),
            after: after.into(),
        }
    }

    /// A unified diff with three lines of context.
    pub fn unified(&self) -> String {
        let a: Vec<&str> = self.before.lines().collect();
        let b: Vec<&str> = self.after.lines().collect();
        let mut out = format!("--- before: {}\n+++ after: {}\n", self.header, self.header);
        let ops = if a.len().saturating_mul(b.len()) > 4_000_000 {
            let mut v: Vec<(char, &str)> = a.iter().map(|l| ('-', *l)).collect();
            v.extend(b.iter().map(|l| ('+', *l)));
            v
        } else {
            lcs_ops(&a, &b)
        };
        let n = ops.len();
        let mut i = 0;
        while i < n {
            if ops[i].0 == ' ' {
                i += 1;
                continue;
            }
            let start = i.saturating_sub(3);
            let mut end = i;
            let mut last_change = i;
            while end < n {
                if ops[end].0 != ' ' {
                    last_change = end;
                } else if end - last_change > 6 {
                    break;
                }
                end += 1;
            }
            let end = (last_change + 4).min(n);
            out.push_str("@@\n");
            for (c, l) in &ops[start..end] {
                out.push(*c);
                out.push_str(l);
                out.push('\n');
            }
            i = end;
        }
        out
    }
}

fn lcs_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (a.len(), b.len());
    let mut t = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i * (m + 1) + j] = if a[i] == b[j] {
                t[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                t[(i + 1) * (m + 1) + j].max(t[i * (m + 1) + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1] {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    ops.extend(a[i..].iter().map(|l| ('-', *l)));
    ops.extend(b[j..].iter().map(|l| ('+', *l)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_marks_changes() {
        let d = Diff::new("f", "a\nb\nc\n", "a\nB\nc\n");
        let u = d.unified();
        assert!(u.contains("-b\n+B\n"), "{u}");
        assert!(u.contains(" a\n"));
    }
}
