//! `pip`: Python packages with the target's pip (or in a `virtualenv`,
//! created when missing). Present packages are read from `pip freeze` in
//! the same script, so an idempotent run is one round trip.
//!
//! What `pip freeze` cannot settle (a version range, a requirements file,
//! `state: latest`) is left to pip: a real run is changed when pip says it
//! installed something; check mode asks `pip install --dry-run` and reports
//! a change when that pip cannot tell (pip older than 22.2).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `pip` module.
pub struct Pip;

/// `name` as a list, with the parts of a version range that a comma split
/// apart (`foo>=1,<2`) joined again.
fn names(args: &Args) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in args.list("name") {
        match out.last_mut() {
            Some(prev) if n.starts_with(['<', '>', '=', '!', '~']) => {
                prev.push(',');
                prev.push_str(&n);
            }
            _ => out.push(n),
        }
    }
    out
}

/// Whether `s` is a bare distribution name (no version specifier).
fn is_bare(s: &str) -> bool {
    !s.contains(['<', '>', '=', '!', '~', ';', ' '])
}

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
        super::refuse::check(self.name(), args)?;
        let names = names(args);
        let requirements = args.opt_str("requirements");
        if names.is_empty() && requirements.is_none() {
            return Err(ModuleError::Arg("pip needs name or requirements".into()));
        }
        let state = args.choice(
            "state",
            &["present", "latest", "absent", "forcereinstall"],
            "present",
        )?;
        let version = args.opt_str("version");
        if version.is_some() {
            if names.len() != 1 {
                return Err(ModuleError::Arg(
                    "pip: `version` is ambiguous with several names; put the version next to \
                     each name (`foo==1.0`)"
                        .into(),
                ));
            }
            if !is_bare(&names[0]) {
                return Err(ModuleError::Arg(format!(
                    "pip: `version` cannot be used with a version in the name `{}`",
                    names[0]
                )));
            }
        }
        if args.bool_or("editable", false)? {
            return Err(ModuleError::Arg(
                "pip: `editable` is not supported (use `command: pip install -e ...`)".into(),
            ));
        }
        let umask = args.opt_str("umask");
        if let Some(u) = &umask {
            if u.is_empty() || u.len() > 4 || !u.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(ModuleError::Arg(format!(
                    "pip: umask `{u}` is not an octal mode like 0022"
                )));
            }
        }
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
                Some(v) => format!("{n}=={v}"),
                None => n.clone(),
            })
            .collect();
        // Specs are words of the script: no globbing of `foo[extra]`.
        let mut body = String::from("set -f\n");
        if let Some(u) = &umask {
            body.push_str(&format!("umask {u}\n"));
        }
        if let Some(v) = &venv {
            let mut cmd = args.opt_str("virtualenv_command").unwrap_or_else(|| {
                format!(
                    "{} -m venv",
                    args.opt_str("virtualenv_python")
                        .unwrap_or_else(|| "python3".into())
                )
            });
            if args.bool_or("virtualenv_site_packages", false)? {
                cmd.push_str(" --system-site-packages");
            }
            body.push_str(&format!("[ -x {v}/bin/pip ] || {{ C=1; [ \"$CHECK\" = 1 ] && return 0; _o=$({cmd} {v} 2>&1) || fail \"creating virtualenv {v} failed: $_o\"; }}\n", v = q(v)));
        }
        if let Some(dir) = args.opt_str("chdir") {
            body.push_str(&format!("cd {} || fail 'chdir failed'\n", q(&dir)));
        }
        body.push_str(&format!(
            "P={}\nfrz=$($P freeze 2>/dev/null | tr 'A-Z_' 'a-z-')\n",
            q(&pip)
        ));
        // `inst ARGS`: pip install; changed when pip installed something (in
        // check mode: when --dry-run would, or cannot say).
        body.push_str(&format!(
            "inst() {{ if [ \"$CHECK\" = 1 ]; then _o=$($P install --dry-run {extra} \"$@\" 2>&1) || {{ C=1; return 0; }}; printf '%s\\n' \"$_o\" | grep -q '^Would install' && C=1; else _o=$($P install {extra} \"$@\" 2>&1) || fail \"pip install failed: $_o\"; printf '%s\\n' \"$_o\" | grep -q '^Successfully installed' && C=1; fi; return 0; }}\n"
        ));
        if let Some(req) = requirements {
            let req = q(&req);
            body.push_str(&match state.as_str() {
                "present" => format!("inst -r {req}\n"),
                "latest" => format!("inst -U -r {req}\n"),
                "forcereinstall" => format!(
                    "C=1; [ \"$CHECK\" = 1 ] || {{ _o=$($P install --force-reinstall {extra} -r {req} 2>&1) || fail \"pip install failed: $_o\"; }}\n"
                ),
                // As ansible: check mode cannot tell, so it reports a change.
                _ => format!(
                    "if [ \"$CHECK\" = 1 ]; then C=1; else _o=$($P uninstall -y -r {req} 2>&1) || fail \"pip uninstall failed: $_o\"; [ \"$($P freeze 2>/dev/null | tr 'A-Z_' 'a-z-')\" = \"$frz\" ] || C=1; fi\n"
                ),
            });
        }
        let list = specs.iter().map(|s| q(s)).collect::<Vec<_>>().join(" ");
        // `$n`: the normalised name of spec `$s`.
        let name_of = "n=$(printf '%s' \"$s\" | sed 's/[<>=!~ ;\\[].*//' | tr 'A-Z_' 'a-z-')";
        if !specs.is_empty() {
            body.push_str(&match state.as_str() {
                // Satisfied by what freeze lists: a bare name that is there,
                // `name==version` with that version; anything else asks pip.
                "present" => format!(
                    "todo=\"\"\nfor s in {list}; do {name_of}; case $s in *[\\<\\>=\\!~\\;\\ ]*) v=$(printf '%s' \"$s\" | sed -n 's/^[^<>=!~;]*==\\([^<>=!~,*; ]*\\)$/\\1/p'); if [ -n \"$v\" ] && echo \"$frz\" | grep -qxF \"$n==$v\"; then :; else todo=\"$todo $s\"; fi ;; *) echo \"$frz\" | grep -q \"^$n==\" || todo=\"$todo $s\" ;; esac; done\n[ -z \"$todo\" ] || inst $todo\n"
                ),
                "latest" => format!("inst -U {list}\n"),
                "forcereinstall" => format!("C=1; [ \"$CHECK\" = 1 ] || {{ _o=$($P install --force-reinstall {extra} {list} 2>&1) || fail \"pip install failed: $_o\"; }}\n"),
                _ => format!(
                    "rm_=\"\"\nfor s in {list}; do {name_of}; echo \"$frz\" | grep -q \"^$n==\" && rm_=\"$rm_ $n\"; done\nif [ -n \"$rm_\" ]; then C=1; [ \"$CHECK\" = 1 ] || {{ _o=$($P uninstall -y $rm_ 2>&1) || fail \"pip uninstall failed: $_o\"; }}; fi\n"
                ),
            });
        }
        let out = ctx.run_script(&body, None).await?;
        Ok(ModuleResult::from_script(&out, "pip"))
    }
}
