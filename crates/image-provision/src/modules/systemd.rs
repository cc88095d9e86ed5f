//! `systemd` / `systemd_service` / `service`: daemon-reload, mask/unmask,
//! enable/disable, start/stop/restart/reload, in one script that asks
//! systemctl for the current state first. Returns ansible's `status`: every
//! property `systemctl show` gives for the unit before the task changes it.

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Shell for the script: `props` reads the `systemctl show` text in `$_sh`
/// into `$_Id`, `$_LoadState`, `$_ActiveState` and `$_UnitFileState`
/// (empty when absent) with the shell alone, in one pass over its lines
/// (dash's `${x#*pattern}` is quadratic on a text this long).
const PROPS: &str = "nl='\n'\nprops() { _Id= _LoadState= _ActiveState= _UnitFileState=; _o=$IFS; IFS=$nl; set -f; for _l in $_sh; do case $_l in Id=*) _Id=${_l#*=};; LoadState=*) _LoadState=${_l#*=};; ActiveState=*) _ActiveState=${_l#*=};; UnitFileState=*) _UnitFileState=${_l#*=};; esac; done; IFS=$_o; set +f; }\n";

/// The `systemd` module (also `systemd_service` and `service`).
pub struct Systemd;

#[async_trait]
impl Module for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "unit",
            "service",
            "state",
            "enabled",
            "masked",
            "daemon_reload",
            "daemon-reload",
            "daemon_reexec",
            "daemon-reexec",
            "scope",
            "no_block",
            "force",
            "pattern",
            "sleep",
            "arguments",
            "args",
            "runlevel",
            "use",
        ]
    }
    /// Every effect sets `C`, but for `daemon_reload` and `daemon_reexec`.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        !args.bool_or("daemon_reload", false).unwrap_or(true)
            && !args.bool_or("daemon-reload", false).unwrap_or(true)
            && !args.bool_or("daemon_reexec", false).unwrap_or(true)
            && !args.bool_or("daemon-reexec", false).unwrap_or(true)
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.opt_str_any(&["name", "unit", "service"]);
        let state = args.opt_str("state");
        if let Some(s) = &state {
            if !["started", "stopped", "restarted", "reloaded"].contains(&s.as_str()) {
                return Err(ModuleError::Arg(format!(
                    "state must be started, stopped, restarted or reloaded, got `{s}`"
                )));
            }
        }
        let enabled = args
            .get("enabled")
            .map(super::json_bool)
            .map(|b| b.ok_or_else(|| ModuleError::Arg("`enabled` must be a boolean".into())))
            .transpose()?;
        let masked = args
            .get("masked")
            .map(super::json_bool)
            .map(|b| b.ok_or_else(|| ModuleError::Arg("`masked` must be a boolean".into())))
            .transpose()?;
        let reload =
            args.bool_or("daemon_reload", false)? || args.bool_or("daemon-reload", false)?;
        let reexec =
            args.bool_or("daemon_reexec", false)? || args.bool_or("daemon-reexec", false)?;
        let user = args.opt_str("scope").as_deref() == Some("user");
        let sc = if user {
            "systemctl --user"
        } else {
            "systemctl"
        };
        let nb = if args.bool_or("no_block", false)? {
            " --no-block"
        } else {
            ""
        };
        if name.is_none() && (state.is_some() || enabled.is_some() || masked.is_some()) {
            return Err(ModuleError::Arg(
                "`name` is needed with state, enabled or masked".into(),
            ));
        }
        let mut body = String::new();
        if reexec {
            body.push_str(&format!(
                "[ \"$CHECK\" = 1 ] || {sc} daemon-reexec || fail 'daemon-reexec failed'\n"
            ));
        }
        if reload {
            // A reload costs ~0.1 s; skip it when nothing can need it: no
            // unit file changed since the last reload we did (a stamp in
            // /run, gone at boot) and the named unit does not ask for one.
            let need_unit = match &name {
                Some(n) => format!(
                    "[ \"$({sc} show -p NeedDaemonReload --value {} 2>/dev/null)\" = yes ] && _r=1\n",
                    q(n)
                ),
                None => "_r=1\n".to_string(),
            };
            let stamp = if user {
                "${XDG_RUNTIME_DIR:-/tmp}/image-cli-daemon-reload-user.stamp"
            } else {
                "/run/image-cli/daemon-reload.stamp"
            };
            body.push_str(&format!(
                r#"_s={stamp}; _r=0
if [ ! -f "$_s" ]; then _r=1; else
  [ -n "$(find /etc/systemd /run/systemd/system /lib/systemd/system /usr/lib/systemd/system ${{XDG_CONFIG_HOME:-$HOME/.config}}/systemd -newer "$_s" \( -type f -o -type l \) -print -quit 2>/dev/null)" ] && _r=1
fi
{need_unit}if [ $_r = 1 ] && [ "$CHECK" != 1 ]; then
  _o=$({sc} daemon-reload 2>&1) || fail "daemon-reload failed: $_o"
  mkdir -p "$(dirname "$_s")" && touch "$_s"
fi
"#
            ));
        }
        if let Some(n) = &name {
            body.push_str(&format!("u={}\n", q(n)));
            // The unit's properties before anything changes (ansible's
            // `status`), printed as they are (the script's plain output),
            // and the states the task needs read from them with the shell
            // alone: one systemctl for the common case (issue #16).
            body.push_str(&format!(
                "if _sh=$({sc} show \"$u\" 2>/dev/null); then printf '%s\\n' \"$_sh\"; else _sh=; fi\n{PROPS}props; ls=$_LoadState\n"
            ));
            // `is-enabled` prints the UnitFileState for a unit named by its
            // own name; an alias, an instance, a SysV script or a state
            // is-enabled words differently asks systemctl.
            body.push_str(&format!(
                "isen() {{ cur=$_UnitFileState; case $u in *@*) cur=;; esac; case $_Id in \"$u\"|\"$u.service\") ;; *) cur=;; esac; case $cur in enabled|enabled-runtime|disabled|static|masked|masked-runtime|indirect) ;; *) cur=$({sc} is-enabled \"$u\" 2>/dev/null);; esac; }}\n"
            ));
            if let Some(m) = masked {
                body.push_str(&format!(
                    "isen\nif [ {m} = 1 ] && [ \"$cur\" != masked ] && [ \"$cur\" != masked-runtime ]; then C=1; do_ {sc} mask \"$u\"; _sh=; elif [ {m} = 0 ] && [ \"$cur\" = masked ]; then C=1; do_ {sc} unmask \"$u\"; _sh=; fi\nprops\n",
                    m = u8::from(m)
                ));
            }
            if state.is_some() || enabled.is_some() {
                // Whether the unit exists is decided before masking (as
                // ansible's `found`); a missing one fails after the mask,
                // and the failure drops `changed` (ansible's fail_json).
                body.push_str(
                    "if [ \"$ls\" = not-found ] || [ -z \"$ls\" ]; then [ \"$CHECK\" = 1 ] && { C=1; echo \"@@note=$u is not installed yet\"; return 0; }; C=0; fail \"Could not find the requested service $u: host\"; fi\n",
                );
            }
            if let Some(e) = enabled {
                body.push_str("isen\necho \"@@enabled_was=$cur\"\n");
                if e {
                    body.push_str(&format!("case $cur in enabled|enabled-runtime|static|alias|indirect|generated|transient) ;; masked) fail \"$u is masked\";; *) C=1; do_ {sc} enable \"$u\";; esac\n"));
                } else {
                    body.push_str(&format!("case $cur in enabled|enabled-runtime) C=1; do_ {sc} disable \"$u\";; esac\n"));
                }
            }
            if let Some(s) = &state {
                // `is-active` prints the ActiveState.
                body.push_str(&format!(
                    "act=$_ActiveState; [ -n \"$act\" ] || act=$({sc} is-active \"$u\" 2>/dev/null)\necho \"@@active_was=$act\"\n"
                ));
                body.push_str(&match s.as_str() {
                    "started" => format!("case $act in active|activating|reloading) ;; *) C=1; do_ {sc} start{nb} \"$u\";; esac\n"),
                    "stopped" => format!("case $act in active|activating|reloading|deactivating) C=1; do_ {sc} stop{nb} \"$u\";; esac\n"),
                    "restarted" => format!("C=1; do_ {sc} restart{nb} \"$u\"\n"),
                    _ => format!("C=1; case $act in active) do_ {sc} reload{nb} \"$u\";; *) do_ {sc} start{nb} \"$u\";; esac\n"),
                });
            }
        }
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, name.as_deref().unwrap_or("systemd"));
        let status = parse_show(&out.stdout);
        if let Some(n) = name {
            r.data.insert("name".into(), n.into());
        }
        if let Some(s) = state {
            // restarted/reloaded report `started` once the unit's state is
            // known, as ansible's do.
            let s = if status.contains_key("ActiveState") && (s == "restarted" || s == "reloaded") {
                "started".to_string()
            } else {
                s
            };
            r.data.insert("state".into(), s.into());
        }
        r.data.insert("status".into(), Json::Object(status));
        if let Some(e) = enabled {
            r.data.insert("enabled".into(), e.into());
        }
        if let Some(f) = &r.msg {
            if r.failed
                && out
                    .stderr
                    .contains("System has not been booted with systemd")
            {
                r.msg = Some(format!("{f} (the target does not run systemd)"));
            }
        }
        Ok(r)
    }
}

/// `systemctl show` output as ansible reads it: `Key=value` per line, the
/// value trimmed; only `Exec*` values that open a `{` without closing it
/// go on over the following lines up to one ending in `}`.
fn parse_show(text: &str) -> Map<String, Json> {
    let mut m = Map::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in text.split('\n') {
        if let Some((k, mut parts)) = open.take() {
            parts.push(line.to_string());
            if line.trim_end().ends_with('}') {
                m.insert(k, Json::String(parts.join("\n").trim().to_string()));
            } else {
                open = Some((k, parts));
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.starts_with("Exec") && v.trim_start().starts_with('{') && !v.trim_end().ends_with('}')
        {
            open = Some((k.to_string(), vec![v.to_string()]));
            continue;
        }
        m.insert(k.to_string(), Json::String(v.trim().to_string()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_reads_as_ansible_reads_it() {
        let m = parse_show(
            "Type=simple\nDescription={ not closed\nExecStart={ path=/bin/true ;\n argv[]=/bin/true }\nActiveState=active \n\n",
        );
        assert_eq!(m["Type"], "simple");
        assert_eq!(m["Description"], "{ not closed");
        assert_eq!(m["ExecStart"], "{ path=/bin/true ;\n argv[]=/bin/true }");
        assert_eq!(m["ActiveState"], "active");
        assert_eq!(m.len(), 4);
    }
}
