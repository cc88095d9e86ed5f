//! `--tags` / `--skip-tags` selection, with ansible's special tags
//! (`always`, `never`, `tagged`, `untagged`, `all`).

use super::Runner;

impl Runner<'_> {
    /// Whether a task with `tags` runs under the command line's selection.
    pub(super) fn tags_ok(&self, tags: &[String]) -> bool {
        select(tags, &self.opts.tags, &self.opts.skip_tags)
    }
}

fn select(tags: &[String], only: &[String], skip: &[String]) -> bool {
    let has = |list: &[String], t: &str| list.iter().any(|x| x == t);
    let inter = |a: &[String], b: &[String]| a.iter().any(|x| b.contains(x));
    if !skip.is_empty()
        && (inter(tags, skip)
            || (has(skip, "tagged") && !tags.is_empty())
            || (has(skip, "untagged") && tags.is_empty()))
    {
        return false;
    }
    let never = has(tags, "never");
    if only.is_empty() || has(only, "all") {
        return !never || inter(tags, only);
    }
    if has(tags, "always") && !has(skip, "always") {
        return true;
    }
    tags.iter()
        .any(|t| t != "never" && t != "always" && only.contains(t))
        || (has(only, "tagged") && !tags.is_empty())
        || (has(only, "untagged") && tags.is_empty())
        || (never && has(only, "never"))
}

#[cfg(test)]
mod tests {
    use super::select;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn special_tags() {
        assert!(select(&v(&[]), &v(&[]), &v(&[])));
        assert!(!select(&v(&["never"]), &v(&[]), &v(&[])));
        assert!(select(&v(&["never", "x"]), &v(&["x"]), &v(&[])));
        assert!(select(&v(&["always"]), &v(&["x"]), &v(&[])));
        assert!(!select(&v(&["always"]), &v(&["x"]), &v(&["always"])));
        assert!(select(&v(&[]), &v(&["untagged"]), &v(&[])));
        assert!(!select(&v(&["a"]), &v(&[]), &v(&["tagged"])));
    }
}
