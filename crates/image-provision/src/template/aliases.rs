//! Fully qualified names: `x | ansible.builtin.to_json`,
//! `x is ansible.builtin.version(...)`, as playbooks written for
//! ansible-core 2.10+ spell them. Each name is an alias of the short one
//! (lookups strip the prefix themselves).

use minijinja::value::Rest;
use minijinja::{Environment, Error, State, Value};

/// ansible's own filters (ansible.builtin), registered by this module.
const FILTERS: &[&str] = &[
    "b64decode",
    "b64encode",
    "basename",
    "bool",
    "checksum",
    "combinations",
    "combine",
    "comment",
    "dict2items",
    "difference",
    "dirname",
    "expanduser",
    "expandvars",
    "extract",
    "flatten",
    "from_json",
    "from_yaml",
    "from_yaml_all",
    "hash",
    "human_readable",
    "human_to_bytes",
    "intersect",
    "items2dict",
    "log",
    "mandatory",
    "md5",
    "normpath",
    "password_hash",
    "path_join",
    "permutations",
    "pow",
    "product",
    "quote",
    "random",
    "realpath",
    "regex_escape",
    "regex_findall",
    "regex_replace",
    "regex_search",
    "relpath",
    "root",
    "sha1",
    "shuffle",
    "split",
    "splitext",
    "strftime",
    "subelements",
    "symmetric_difference",
    "ternary",
    "to_datetime",
    "to_json",
    "to_nice_json",
    "to_nice_yaml",
    "to_uuid",
    "to_yaml",
    "type_debug",
    "union",
    "unique",
    "urlsplit",
    "version_compare",
    "zip",
    "zip_longest",
    "min",
    "max",
    "sum",
];

/// ansible's own tests (ansible.builtin).
const TESTS: &[&str] = &[
    "abs",
    "all",
    "any",
    "change",
    "changed",
    "contains",
    "directory",
    "exists",
    "failed",
    "failure",
    "falsy",
    "file",
    "finished",
    "is_abs",
    "is_dir",
    "is_file",
    "is_link",
    "is_mount",
    "is_same_file",
    "link",
    "match",
    "mount",
    "nan",
    "reachable",
    "regex",
    "same_file",
    "search",
    "skip",
    "skipped",
    "started",
    "subset",
    "succeeded",
    "success",
    "successful",
    "superset",
    "truthy",
    "unreachable",
    "vault_encrypted",
    "vaulted_file",
    "version",
    "version_compare",
];

pub(super) fn register(env: &mut Environment<'static>) {
    for name in FILTERS {
        env.add_filter(
            format!("ansible.builtin.{name}"),
            move |state: &State, args: Rest<Value>| -> Result<Value, Error> {
                state.apply_filter(name, &args)
            },
        );
    }
    for name in TESTS {
        env.add_test(
            format!("ansible.builtin.{name}"),
            move |state: &State, args: Rest<Value>| -> Result<bool, Error> {
                state.perform_test(name, &args)
            },
        );
    }
}
