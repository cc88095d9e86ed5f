//! The corpus of playbooks under `tests/corpus/ansible/`: one `*.yml` per
//! construct at the top level (shared roles, templates, files and task files
//! live in subdirectories), each opening with header comments:
//!
//! ```text
//! # construct: loop with loop_control.index_var
//! # paths: /etc/example.conf /usr/local/bin/example   (optional)
//! # ends: failed                                      (optional)
//! # alone: why                                        (optional)
//! ```
//!
//! Every playbook writes under its own directory `/srv/diff/<stem>`; `paths`
//! names anything else it touches (compared too). `ends: failed` marks a
//! playbook whose run fails under ansible-core: ansible-playbook stops its
//! batch there, so such playbooks run alone. `alone:` marks a playbook that
//! needs a fresh ansible-playbook process for another reason: facts (gathered
//! or `set_fact`) of the playbooks before it in a batch stay visible to it.

use std::path::{Path, PathBuf};

/// One playbook of the corpus.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// File name without `.yml`.
    pub stem: String,
    /// Absolute path.
    pub path: PathBuf,
    /// What it exercises (`# construct:`).
    pub construct: String,
    /// Paths on the target compared after the run: `/srv/diff/<stem>` and `# paths:`.
    pub paths: Vec<String>,
    /// `# ends: failed`.
    pub ends_failed: bool,
    /// `# alone: why`: runs in an ansible-playbook invocation of its own.
    pub alone: bool,
}

/// The corpus directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/ansible")
}

/// Every playbook of the corpus, sorted by name.
pub fn load() -> Vec<Playbook> {
    load_dir(&dir())
}

/// Every playbook (`*.yml` with the headers above) of `dir`, sorted by name
/// (`tests/corpus/rpm/` for the RPM target).
pub fn load_dir(dir: &Path) -> Vec<Playbook> {
    let dir = dir.to_path_buf();
    let mut out = Vec::new();
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") || !path.is_file() {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut pb = Playbook {
            paths: vec![format!("/srv/diff/{stem}")],
            stem,
            path,
            construct: String::new(),
            ends_failed: false,
            alone: false,
        };
        for line in text.lines().take_while(|l| l.starts_with('#')) {
            let line = line.trim_start_matches('#').trim();
            if let Some(c) = line.strip_prefix("construct:") {
                pb.construct = c.trim().to_string();
            } else if let Some(p) = line.strip_prefix("paths:") {
                pb.paths.extend(p.split_whitespace().map(str::to_string));
            } else if let Some(e) = line.strip_prefix("ends:") {
                pb.ends_failed = e.trim() == "failed";
            } else if line.starts_with("alone:") {
                pb.alone = true;
            }
        }
        assert!(
            !pb.construct.is_empty(),
            "{}: needs a `# construct:` header",
            pb.path.display()
        );
        out.push(pb);
    }
    out.sort_by(|a, b| a.stem.cmp(&b.stem));
    out
}
