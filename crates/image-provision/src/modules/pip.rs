//! `pip`: Python packages with the target's pip (or in a `virtualenv`,
//! created when missing). Present packages are read from `pip freeze` in
//! the same script, so an idempotent run is one round trip.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `pip` module.
pub struct Pip;

#[async_trait]
impl Module for Pip {
    fn name(&self) -> &'static str {
        "pip"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "version",
            "requirements",
            "virtualenv",
            "virtualenv_command",
            "virtualenv_python",
            "virtualenv_site_packages",
            "executable",
            "state",
            "extra_args",
            "chdir",
            "editable",
            "umask",
            "break_system_packages",
        ]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        let names = args.list("name");
        let state = args.choice(
            "state",
            &["present", "latest", "absent", "forcereinstall"],
            "present",
        )?;
        let version = args.opt_str("version");
        let venv = args.opt_str("virtualenv");
        let pip = match (&venv, args.opt_str("executable")) {
            (Some(v), _) => format!("{}/bin/pip", v.trim_end_matches('/')),
            (None, Some(e)) => e,
            (None, None) => "pip3".into(),
        };
        let mut extra = args.opt_str("extra_args").unwrap_or_default();
        if args.bool_or("break_system_packages", false)? {
            extra.push_str(" --break-system-packages");
        }
        let specs: Vec<String> = names
            .iter()
            .map(|n| match &version {
                Some(v) if names.len() == 1 => format!("{n}=={v}"),
                _ => n.clone(),
            })
            .collect();
        let mut body = String::new();
        if let Some(v) = &venv {
            let cmd = args.opt_str("virtualenv_command").unwrap_or_else(|| {
                format!(
                    "{} -m venv",
                    args.opt_str("virtualenv_python")
                        .unwrap_or_else(|| "python3".into())
                )
            });
            body.push_str(&format!("[ -x {v}/bin/pip ] || {{ C=1; [ \"$CHECK\" = 1 ] && return 0; _o=$({cmd} {v} 2>&1) || fail \"creating virtualenv {v} failed: $_o\"; }}\n", v = q(v)));
        }
        if let Some(dir) = args.opt_str("chdir") {
            body.push_str(&format!("cd {} || fail 'chdir failed'\n", q(&dir)));
        }
        body.push_str(&format!(
            "P={}\nfrz=$($P freeze 2>/dev/null | tr 'A-Z_' 'a-z-')\n",
            q(&pip)
        ));
        if let Some(req) = args.opt_str("requirements") {
            body.push_str(&format!(
                "_o=$($P install {extra} -r {} 2>&1) || fail \"pip install -r failed: $_o\"; printf '%s' \"$_o\" | grep -q '^Successfully installed' && C=1\n",
                q(&req)
            ));
        }
        let list = specs.iter().map(|s| q(s)).collect::<Vec<_>>().join(" ");
        if !specs.is_empty() {
            body.push_str(&match state.as_str() {
                "present" => format!(
                    "need=\"\"\nfor s in {list}; do n=$(printf '%s' \"$s\" | sed 's/[<>=!~ ;\\[].*//' | tr 'A-Z_' 'a-z-'); v=$(printf '%s' \"$s\" | sed -n 's/.*==//p'); if [ -n \"$v\" ]; then echo \"$frz\" | grep -qx \"$n==$v\" || need=\"$need $s\"; else echo \"$frz\" | grep -q \"^$n==\" || need=\"$need $s\"; fi; done\nif [ -n \"$need\" ]; then C=1; [ \"$CHECK\" = 1 ] || {{ _o=$($P install {extra} $need 2>&1) || fail \"pip install failed: $_o\"; }}; fi\n"
                ),
                "latest" => format!(
                    "if [ \"$CHECK\" != 1 ]; then _o=$($P install -U {extra} {list} 2>&1) || fail \"pip install failed: $_o\"; printf '%s' \"$_o\" | grep -q '^Successfully installed' && C=1; else C=1; fi\n"
                ),
                "forcereinstall" => format!("C=1; [ \"$CHECK\" = 1 ] || {{ _o=$($P install --force-reinstall {extra} {list} 2>&1) || fail \"pip install failed: $_o\"; }}\n"),
                _ => format!(
                    "rm_=\"\"\nfor s in {list}; do n=$(printf '%s' \"$s\" | sed 's/[<>=!~ ;\\[].*//' | tr 'A-Z_' 'a-z-'); echo \"$frz\" | grep -q \"^$n==\" && rm_=\"$rm_ $n\"; done\nif [ -n \"$rm_\" ]; then C=1; [ \"$CHECK\" = 1 ] || {{ _o=$($P uninstall -y $rm_ 2>&1) || fail \"pip uninstall failed: $_o\"; }}; fi\n"
                ),
            });
        }
        let out = ctx.run_script(&body, None).await?;
        Ok(ModuleResult::from_script(&out, "pip"))
    }
}
