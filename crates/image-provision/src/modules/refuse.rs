//! Parameters a module accepts (so a playbook parses) but does not
//! implement: set to a value that would change what ansible does, they are
//! refused with a clear message instead of being silently ignored. One
//! table for every module; each module's `run` starts with [`check`].
//! A parameter left at its default (or set to it) is fine.

use serde_json::Value as Json;

use super::{json_bool, json_to_string, Args, ModuleError};

/// When a value is refused.
#[derive(Clone, Copy)]
enum When {
    /// Any value other than null, empty, or false.
    Set,
    /// Any value other than this default (compared as text; booleans by
    /// ansible's spellings).
    Not(&'static str),
}

/// `(module or "*", parameter, when, why)`.
const RULES: &[(&str, &str, When, &str)] = &[
    (
        "*",
        "attributes",
        When::Set,
        "file attributes (chattr flags) are not supported",
    ),
    (
        "*",
        "attr",
        When::Set,
        "file attributes (chattr flags) are not supported",
    ),
    (
        "*",
        "seuser",
        When::Set,
        "SELinux contexts are not supported",
    ),
    (
        "*",
        "serole",
        When::Set,
        "SELinux contexts are not supported",
    ),
    (
        "*",
        "setype",
        When::Set,
        "SELinux contexts are not supported",
    ),
    (
        "*",
        "selevel",
        When::Set,
        "SELinux contexts are not supported",
    ),
    (
        "apt_key",
        "validate_certs",
        When::Not("true"),
        "`validate_certs: false` is not supported",
    ),
    (
        "apt_repository",
        "codename",
        When::Set,
        "`codename` (PPA lines) is not supported",
    ),
    (
        "apt_repository",
        "validate_certs",
        When::Not("true"),
        "`validate_certs: false` is not supported",
    ),
    (
        "blockinfile",
        "append_newline",
        When::Set,
        "`append_newline` is not supported",
    ),
    (
        "blockinfile",
        "prepend_newline",
        When::Set,
        "`prepend_newline` is not supported",
    ),
    (
        "command",
        "expand_argument_vars",
        When::Not("true"),
        "`expand_argument_vars: false` is not supported",
    ),
    ("copy", "follow", When::Set, "`follow` is not supported"),
    (
        "copy",
        "local_follow",
        When::Not("true"),
        "`local_follow: false` is not supported",
    ),
    ("copy", "checksum", When::Set, "`checksum` is not supported"),
    ("dnf", "security", When::Set, "`security` is not supported"),
    ("dnf", "bugfix", When::Set, "`bugfix` is not supported"),
    (
        "dnf",
        "releasever",
        When::Set,
        "`releasever` is not supported",
    ),
    (
        "dnf",
        "installroot",
        When::Not("/"),
        "`installroot` is not supported",
    ),
    (
        "dnf",
        "skip_broken",
        When::Set,
        "`skip_broken` is not supported",
    ),
    (
        "dnf",
        "update_only",
        When::Set,
        "`update_only` is not supported",
    ),
    (
        "dnf",
        "download_only",
        When::Set,
        "`download_only` is not supported",
    ),
    (
        "dnf",
        "conf_file",
        When::Set,
        "`conf_file` is not supported",
    ),
    (
        "dnf",
        "use_backend",
        When::Not("auto"),
        "`use_backend` is not supported",
    ),
    ("dnf", "list", When::Set, "`list` is not supported"),
    (
        "dnf",
        "validate_certs",
        When::Not("true"),
        "`validate_certs: false` is not supported",
    ),
    (
        "group",
        "local",
        When::Set,
        "`local` (lgroupadd) is not supported",
    ),
    (
        "group",
        "non_unique",
        When::Set,
        "`non_unique` is not supported",
    ),
    ("group", "force", When::Set, "`force` is not supported"),
    (
        "include_vars",
        "depth",
        When::Set,
        "`depth` is not supported",
    ),
    (
        "include_vars",
        "files_matching",
        When::Set,
        "`files_matching` is not supported",
    ),
    (
        "include_vars",
        "ignore_files",
        When::Set,
        "`ignore_files` is not supported",
    ),
    (
        "include_vars",
        "extensions",
        When::Set,
        "`extensions` is not supported",
    ),
    (
        "include_vars",
        "hash_behaviour",
        When::Set,
        "`hash_behaviour` is not supported",
    ),
    ("ini_file", "follow", When::Set, "`follow` is not supported"),
    (
        "replace",
        "encoding",
        When::Not("utf-8"),
        "only `encoding: utf-8` is supported",
    ),
    (
        "rpm_key",
        "validate_certs",
        When::Not("true"),
        "`validate_certs: false` is not supported",
    ),
    ("systemd", "force", When::Set, "`force` is not supported"),
    (
        "systemd",
        "arguments",
        When::Set,
        "`arguments` is not supported",
    ),
    ("systemd", "args", When::Set, "`arguments` is not supported"),
    (
        "template",
        "newline_sequence",
        When::Not("\n"),
        "only `newline_sequence: \\n` is supported",
    ),
    (
        "template",
        "lstrip_blocks",
        When::Set,
        "`lstrip_blocks` is not supported",
    ),
    (
        "template",
        "trim_blocks",
        When::Not("true"),
        "`trim_blocks: false` is not supported",
    ),
    (
        "template",
        "output_encoding",
        When::Not("utf-8"),
        "only `output_encoding: utf-8` is supported",
    ),
    ("template", "follow", When::Set, "`follow` is not supported"),
    (
        "template",
        "block_start_string",
        When::Set,
        "custom template delimiters are not supported",
    ),
    (
        "template",
        "block_end_string",
        When::Set,
        "custom template delimiters are not supported",
    ),
    (
        "template",
        "variable_start_string",
        When::Set,
        "custom template delimiters are not supported",
    ),
    (
        "template",
        "variable_end_string",
        When::Set,
        "custom template delimiters are not supported",
    ),
    (
        "template",
        "comment_start_string",
        When::Set,
        "custom template delimiters are not supported",
    ),
    (
        "template",
        "comment_end_string",
        When::Set,
        "custom template delimiters are not supported",
    ),
    (
        "unarchive",
        "include",
        When::Set,
        "`include` is not supported",
    ),
    (
        "unarchive",
        "exclude",
        When::Set,
        "`exclude` is not supported",
    ),
    (
        "unarchive",
        "list_files",
        When::Set,
        "`list_files` is not supported",
    ),
    (
        "unarchive",
        "keep_newer",
        When::Set,
        "`keep_newer` is not supported",
    ),
    (
        "unarchive",
        "validate_certs",
        When::Not("true"),
        "`validate_certs: false` is not supported",
    ),
    ("user", "force", When::Set, "`force` is not supported"),
    (
        "user",
        "password_lock",
        When::Set,
        "`password_lock` is not supported",
    ),
    ("user", "expires", When::Set, "`expires` is not supported"),
    (
        "user",
        "non_unique",
        When::Set,
        "`non_unique` is not supported",
    ),
    ("user", "local", When::Set, "`local` is not supported"),
    ("user", "umask", When::Set, "`umask` is not supported"),
    ("user", "skeleton", When::Set, "`skeleton` is not supported"),
    (
        "user",
        "generate_ssh_key",
        When::Set,
        "`generate_ssh_key` is not supported",
    ),
    (
        "wait_for",
        "active_connection_states",
        When::Set,
        "`active_connection_states` is not supported",
    ),
    (
        "wait_for",
        "exclude_hosts",
        When::Set,
        "`exclude_hosts` is not supported",
    ),
];

/// Refuses a parameter of `module` that is set to a value it does not
/// implement.
pub fn check(module: &str, args: &Args) -> Result<(), ModuleError> {
    for (m, p, when, why) in RULES {
        if *m != "*" && *m != module {
            continue;
        }
        let Some(v) = args.get(p) else { continue };
        if refused(v, *when) {
            return Err(ModuleError::Arg(format!(
                "{module}: `{p}: {}` would change what the module does, and image-cli does not implement it: {why}",
                json_to_string(v)
            )));
        }
    }
    Ok(())
}

fn refused(v: &Json, when: When) -> bool {
    match when {
        When::Set => match v {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::String(s) => !s.is_empty() && json_bool(v) != Some(false),
            Json::Array(a) => !a.is_empty(),
            Json::Object(o) => !o.is_empty(),
            Json::Number(_) => true,
        },
        When::Not(default) => {
            let d = Json::String(default.to_string());
            match (json_bool(v), json_bool(&d)) {
                (Some(a), Some(b)) if matches!(default, "true" | "false") => a != b,
                _ => !json_to_string(v).eq_ignore_ascii_case(default),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Json) -> Args {
        Args(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn defaults_pass_others_refused() {
        assert!(check("group", &args(json!({"force": false}))).is_ok());
        assert!(check("group", &args(json!({"force": "yes"}))).is_err());
        assert!(check("copy", &args(json!({"attributes": ""}))).is_ok());
        let e = check("lineinfile", &args(json!({"attributes": "+i"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("attributes"), "{e}");
        assert!(check("template", &args(json!({"trim_blocks": "yes"}))).is_ok());
        assert!(check("template", &args(json!({"trim_blocks": false}))).is_err());
        assert!(check("replace", &args(json!({"encoding": "UTF-8"}))).is_ok());
        assert!(check("dnf", &args(json!({"installroot": "/mnt"}))).is_err());
    }
}
