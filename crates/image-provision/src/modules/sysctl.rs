//! `sysctl` (ansible.posix): keeps `name=value` in a sysctl file (default
//! `/etc/sysctl.conf`) and the live value, in ansible's order of effects:
//! the live value is set first (`sysctl_set`) and a failure there stops
//! before the file is written; then the file is rewritten (normalised as
//! ansible does: stripped lines, `key=value`, first occurrence of a key
//! kept); then, when anything changed and `reload` is on, `sysctl -p FILE`.
//! With `reload` on and the file already right, a live value that differs
//! still counts as a change and triggers the reload (as ansible).
//!
//! One read round trip when all is in place, one more to apply.

use async_trait::async_trait;
use base64::Engine as _;

use super::{file_spec, json_bool, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::diff::Diff;
use crate::script::{self, q};

/// The `sysctl` module.
pub struct Sysctl;

#[async_trait]
impl Module for Sysctl {
    fn name(&self) -> &'static str {
        "sysctl"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "key",
            "value",
            "val",
            "state",
            "sysctl_file",
            "reload",
            "sysctl_set",
            "ignoreerrors",
            "mode",
            "owner",
            "group",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name|key"]
    }
    /// Reads, then writes and reloads only a change.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let _ = args;
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str_any(&["name", "key"])?.trim().to_string();
        if name.is_empty() {
            return Ok(ModuleResult::fail("name cannot be blank"));
        }
        let state = args.choice("state", &["present", "absent"], "present")?;
        let value = args.get_any(&["value", "val"]).map(parse_value);
        if state == "present" {
            match value.as_deref() {
                None => return Ok(ModuleResult::fail("value cannot be None")),
                Some("") => return Ok(ModuleResult::fail("value cannot be blank")),
                _ => {}
            }
        }
        let value = value.unwrap_or_default();
        let file = args
            .opt_str("sysctl_file")
            .unwrap_or_else(|| "/etc/sysctl.conf".into());
        let reload = args.bool_or("reload", true)?;
        let set = args.bool_or("sysctl_set", false)?;
        let ignore = args.bool_or("ignoreerrors", false)?;
        let read = format!(
            "{}_v=$(LANG=C LC_ALL=C sysctl -e -n {} 2>/dev/null) && printf '@@live=%s\\n' \"$(printf '%s' \"$_v\" | b64s)\"\n",
            script::read_file_body(&file),
            q(&name)
        );
        let read = format!("b64s() {{ base64 -w0 2>/dev/null || base64 | tr -d '\\n'; }}\n{read}");
        let out = ctx.run_script(&read, None).await?;
        if let Some(f) = &out.failed {
            return Ok(ModuleResult::fail(f.clone()));
        }
        let before = script::read_content(&out).unwrap_or_default();
        let proc_value = out.get("live").map(|b| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let plan = plan(
            &before,
            proc_value.as_deref(),
            &name,
            &value,
            &state,
            reload,
            set,
        );
        let spec = file_spec(&Args::default(), file.clone())?;
        let spec = script::FileSpec {
            mode: args.mode("mode")?,
            owner: args.opt_str("owner"),
            group: args.opt_str("group"),
            ..spec
        };
        let attrs_ok = out
            .get("stat")
            .is_some_and(|s| script::stat_matches(s, &spec))
            || (spec.mode.is_none() && spec.owner.is_none() && spec.group.is_none());
        if !plan.changed && attrs_ok {
            return Ok(ModuleResult::ok());
        }
        let e = if ignore { "-e " } else { "" };
        let mut body = String::new();
        if plan.set_proc {
            // ansible quotes the value and shlex-splits the command: the
            // program sees `name=value` as one word.
            let v = value.clone();
            body.push_str(&format!(
                "C=1; if [ \"$CHECK\" != 1 ]; then _o=$(LANG=C LC_ALL=C sysctl {e}-w {} 2>&1); _rc=$?\n  if [ $_rc != 0 ] || printf '%s\\n' \"$_o\" | grep -Eq '^sysctl: setting key \"[^\"]+\": (Invalid argument|Read-only file system)$'; then cat >/dev/null; fail \"setting {} failed: $_o\"; fi; fi\n",
                q(&format!("{name}={v}")),
                name.replace(['"', '$', '`', '\\'], "")
            ));
        }
        if plan.write_file {
            body.push_str(&script::write_file_body(
                &spec,
                &script::sha256_hex(plan.after.as_bytes()),
            ));
        } else {
            body.push_str(&format!(
                "{h}drain\n[ -e {f} ] && attrs {f} {m} {o} {g}\n",
                h = script::hint_stat(&file),
                f = q(&file),
                m = q(spec.mode.as_deref().unwrap_or("")),
                o = q(spec.owner.as_deref().unwrap_or("")),
                g = q(spec.group.as_deref().unwrap_or("")),
            ));
        }
        if plan.changed {
            body.push_str("C=1\n");
            if reload {
                body.push_str(&format!(
                    "if [ \"$CHECK\" != 1 ]; then _o=$(LANG=C LC_ALL=C sysctl {e}-p {} 2>&1); _rc=$?\n  if [ $_rc != 0 ] || printf '%s\\n' \"$_o\" | grep -Eq '^sysctl: setting key \"[^\"]+\": (Invalid argument|Read-only file system)$'; then fail \"Failed to reload sysctl: $_o\"; fi; fi\n",
                    q(&file)
                ));
            }
        }
        let out = ctx
            .run_script(&body, Some(plan.after.clone().into_bytes()))
            .await?;
        let mut r = ModuleResult::from_script(&out, &file);
        r.diff.clear();
        if ctx.diff && plan.write_file {
            r.diff.push(Diff::new(&file, before, plan.after));
        }
        Ok(r)
    }
}

/// What ansible's sysctl decides from the file and the live value.
#[derive(Debug, PartialEq)]
struct Plan {
    changed: bool,
    set_proc: bool,
    write_file: bool,
    after: String,
}

fn plan(
    before: &str,
    proc_value: Option<&str>,
    name: &str,
    value: &str,
    state: &str,
    reload: bool,
    sysctl_set: bool,
) -> Plan {
    let present = state == "present";
    let mut file_value: Option<String> = None;
    let mut checked: Vec<String> = Vec::new();
    let mut fixed: Vec<String> = Vec::new();
    for raw in before.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || !line.contains('=')
        {
            fixed.push(line.to_string());
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let (k, v) = (k.trim(), v.trim());
        if k == name {
            file_value = Some(v.to_string());
        }
        if checked.iter().any(|c| c == k) {
            continue;
        }
        checked.push(k.to_string());
        if k == name {
            if present {
                fixed.push(format!("{k}={value}"));
            }
        } else {
            fixed.push(format!("{k}={v}"));
        }
    }
    if present && !checked.iter().any(|c| c == name) {
        fixed.push(format!("{name}={value}"));
    }
    let after: String = fixed.iter().map(|l| format!("{l}\n")).collect();
    let equal =
        |a: Option<&str>| a.is_some_and(|a| a.split_whitespace().eq(value.split_whitespace()));
    let (mut changed, mut write_file, mut set_proc) = (false, false, false);
    match (&file_value, present) {
        (None, true) => (changed, write_file) = (true, true),
        (None, false) => {}
        (Some(v), false) if !v.is_empty() => (changed, write_file) = (true, true),
        (Some(v), _) if v != value => (changed, write_file) = (true, true),
        _ if reload && !equal(proc_value) => {
            changed = true;
        }
        _ => {}
    }
    if sysctl_set && present {
        if proc_value.is_none() {
            changed = true;
        } else if !equal(proc_value) {
            changed = true;
            set_proc = true;
        }
    }
    Plan {
        changed,
        set_proc,
        write_file,
        after,
    }
}

/// ansible's `_parse_value`: booleans as 1/0, strings stripped.
fn parse_value(v: &serde_json::Value) -> String {
    if let serde_json::Value::String(s) = v {
        let l = s.trim().to_ascii_lowercase();
        // ansible's BOOLEANS_TRUE/FALSE, without the numeric spellings'
        // change of meaning ("1" stays "1").
        return match l.as_str() {
            "yes" | "on" | "true" | "y" | "t" => "1".into(),
            "no" | "off" | "false" | "n" | "f" => "0".into(),
            _ => s.trim().to_string(),
        };
    }
    match json_bool(v) {
        Some(b) if v.is_boolean() => if b { "1" } else { "0" }.into(),
        _ => super::json_to_string(v).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_keeps_first_key() {
        let p = plan(
            " a = 1\n# c\nb=2\na=3\n",
            Some("0\n"),
            "b",
            "5",
            "present",
            true,
            true,
        );
        assert_eq!(p.after, "a=1\n# c\nb=5\n");
        assert!(p.changed && p.write_file && p.set_proc);
    }

    #[test]
    fn reload_alone_changes_when_live_differs() {
        let p = plan("x=1\n", Some("0\n"), "x", "1", "present", true, false);
        assert!(p.changed && !p.write_file && !p.set_proc);
        let p = plan("x=1\n", Some("1\n"), "x", "1", "present", true, false);
        assert!(!p.changed);
        let p = plan("x=1\n", Some("0\n"), "x", "1", "present", false, false);
        assert!(!p.changed);
    }

    #[test]
    fn unreadable_live_value_changes_but_does_not_set() {
        let p = plan("", None, "vm.x", "1", "present", false, true);
        assert!(p.changed && p.write_file && !p.set_proc);
        assert_eq!(p.after, "vm.x=1\n");
    }

    #[test]
    fn absent_removes() {
        let p = plan("a=1\nb=2\n", Some("1"), "a", "", "absent", true, false);
        assert_eq!(p.after, "b=2\n");
        assert!(p.changed && p.write_file);
    }

    #[test]
    fn values() {
        assert_eq!(parse_value(&serde_json::json!(true)), "1");
        assert_eq!(parse_value(&serde_json::json!("yes")), "1");
        assert_eq!(parse_value(&serde_json::json!(" 10 ")), "10");
        assert_eq!(parse_value(&serde_json::json!(1)), "1");
    }
}
