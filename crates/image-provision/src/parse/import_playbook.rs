//! `import_playbook:` items of a playbook: the named playbook's plays are
//! read (relative to the importing file, like ansible) and take the item's
//! place, statically, before anything runs. Imports may nest; a loop is an
//! error. `vars:` and `when:` on the item are refused (not implemented).

use std::path::Path;
use std::sync::Arc;

use image_core::yaml::{self, Node};

use super::Loader;
use crate::task::Play;

/// The keys that spell the keyword.
const KEYS: &[&str] = &[
    "import_playbook",
    "ansible.builtin.import_playbook",
    "ansible.legacy.import_playbook",
];

/// The item's `import_playbook` value, when it is such an item.
pub(super) fn target(n: &Node) -> Option<&Node> {
    KEYS.iter().find_map(|k| n.get(k))
}

impl Loader {
    /// The plays of the playbook an `import_playbook` item names.
    pub(super) fn import_playbook(
        &mut self,
        item: &Node,
        file: &Node,
        dir: &Arc<std::path::PathBuf>,
    ) -> Vec<Play> {
        if let Some(pairs) = item.as_map() {
            for (k, _) in pairs {
                let key = k.as_key().unwrap_or_default();
                if !KEYS.contains(&key.as_str()) && key != "name" {
                    self.diags.push(
                        k.error(format!("`{key}` on import_playbook is not supported"))
                            .with_help("set it in the imported plays"),
                    );
                }
            }
        }
        let Some(name) = file.scalar_string().filter(|s| !s.is_empty()) else {
            self.diags.push(
                file.type_error("import_playbook", "a file name")
                    .with_help("e.g. `import_playbook: playbooks/base.yml`"),
            );
            return Vec::new();
        };
        if name.contains("{{") {
            self.diags.push(
                file.error("import_playbook needs a static file name")
                    .with_help("templates are not expanded here (ansible expands only extra vars)"),
            );
            return Vec::new();
        }
        let path = dir.join(&name);
        let shown = path.display().to_string();
        if self.loading.contains(&shown) {
            self.diags.push(
                file.error(format!(
                    "{shown} imports itself (through {})",
                    self.loading.join(" -> ")
                ))
                .with_help("remove the import that closes the loop"),
            );
            return Vec::new();
        }
        let src = match yaml::read_file(&path) {
            Ok(s) => s,
            Err(e) => {
                self.diags.push(
                    file.error(format!("cannot read {shown}: {e}"))
                        .with_help("the file name is relative to the importing playbook"),
                );
                return Vec::new();
            }
        };
        let doc = match yaml::parse(&shown, &src) {
            Ok(d) => d,
            Err(d) => {
                self.diags.push(d);
                return Vec::new();
            }
        };
        let sub = Arc::new(path.parent().map(Path::to_path_buf).unwrap_or_default());
        self.loading.push(shown);
        let plays = self.document(&doc, &sub);
        self.loading.pop();
        plays
    }
}
