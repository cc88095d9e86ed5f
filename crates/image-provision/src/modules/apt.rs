//! `apt`: installs (optionally pinned `name=version`, wildcards allowed),
//! upgrades to latest, removes packages, installs `.deb` files, updates the
//! cache (`cache_valid_time`; changed only when the package lists changed,
//! as ansible reports it), all in one script that first asks dpkg what is
//! installed and does nothing when everything is as wanted.
//!
//! As ansible's module, the result carries the whole standard output and
//! standard error of the last apt-get command run (install, remove,
//! upgrade, ...), each read apart, in ansible's locale and environment.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `apt` module.
pub struct Apt;

/// ansible's apt module runs on python3-apt: on a host with python3 but
/// without it (`auto_install_module_deps`, default true), ansible first runs
/// `apt-get update` (unless `update_cache: false` is written out) and
/// installs python3-apt, before anything else. The image gets both effects
/// (a fresh package cache, python3-apt installed), so image-cli does the
/// same; `cache_updated` does not count that update (as ansible's).
const AUTO_DEPS: &str = r#"if [ {auto} = 1 ] && [ "$CHECK" != 1 ] && [ -x /usr/bin/python3 ]; then
  _pa=0; for _f in /usr/lib/python3/dist-packages/apt_pkg*.so; do [ -e "$_f" ] && _pa=1; break; done
  if [ $_pa = 0 ]; then
    if [ {noupd} = 0 ]; then _o=$(apt-get update 2>&1) || fail "apt-get update (to install python3-apt, as ansible does): $(printf '%s' "$_o" | tail -n 10)"; fi
    _o=$(apt-get install python3-apt $F 2>&1) || fail "apt-get install python3-apt (as ansible does): $(printf '%s' "$_o" | tail -n 10)"
  fi
fi
if [ {auto} = 1 ] && [ "$CHECK" = 1 ] && [ -x /usr/bin/python3 ]; then
  _pa=0; for _f in /usr/lib/python3/dist-packages/apt_pkg*.so; do [ -e "$_f" ] && _pa=1; break; done
  [ $_pa = 1 ] || echo "@@deps_missing=1"
fi"#;

/// As ansible's `install` (`mark_installed_manually`): outside check mode
/// the named packages end up marked as installed by hand, even when
/// nothing was installed. `apt-mark` (which loads the whole package cache)
/// runs only for those `extended_states` marks automatic; one awk finds
/// them. In check mode it names them (`@@mark_pending`), so that a check
/// that saw no change is not taken for the real run, which would mark
/// them ([`ModuleResult::not_a_probe`]). `{specs}` are the task's packages
/// (`name[=version]`).
const MARK_MANUAL: &str = r#"if [ -r /var/lib/apt/extended_states ]; then
  _want=" "; for spec in {specs}; do _want="$_want${spec%%=*} "; done
  _auto=$(awk -v want="$_want" 'BEGIN { RS = "" } { p = ""; a = 0; n = split($0, l, "\n"); for (i = 1; i <= n; i++) { if (l[i] ~ /^Package: /) p = substr(l[i], 10); else if (l[i] ~ /^Auto-Installed: 1/) a = 1 } if (a && p != "" && index(want, " " p " ")) printf "%s ", p }' /var/lib/apt/extended_states 2>/dev/null)
  if [ -z "$_auto" ]; then :; elif [ "$CHECK" = 1 ]; then echo "@@mark_pending=$_auto"
  else _o=$(apt-mark manual $_auto 2>&1) || fail "'apt-mark manual $_auto' failed: $_o"; fi
fi
"#;

/// `pkgstates SPEC...` asks dpkg once for every plain name (dpkg-query reads
/// its whole database each time, ~8 ms); `pkgst NAME` then sets `$st` to
/// `STATUS-ABBREV|VERSION` (empty when not known). A name with an
/// architecture or a pattern is asked on its own.
const PKG_STATES: &str = r#"_nl='
'
pkgstates() { _ps=; for _n; do _n=${_n%%=*}; case $_n in *[*?:[]*) ;; *) _ps="$_ps $_n";; esac; done
  _pall=; [ -z "$_ps" ] || _pall=$(dpkg-query -W -f='${Package}|${db:Status-Abbrev}|${Version}\n' $_ps 2>/dev/null); _pall="$_nl$_pall$_nl"; }
pkgst() { case $1 in *[*?:[]*) st=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$1" 2>/dev/null); return;; esac
  case $_pall in *"$_nl$1|"*) st=${_pall#*"$_nl$1|"}; st=${st%%"$_nl"*};; *) st=;; esac; }"#;

/// ansible's apt module runs apt-get in the best parsable locale it finds
/// (`C.UTF-8` on Debian and Ubuntu), with every locale variable set.
/// glibc's own `C.utf8` directory answers without running `locale -a`.
const LOCALE: &str = "for _l in C.utf8 C.UTF-8 C; do if [ \"$_l\" = C ] || { [ \"$_l\" = C.utf8 ] && [ -d /usr/lib/locale/C.utf8 ]; } || locale -a 2>/dev/null | grep -qx \"$_l\"; then export LANG=$_l LC_ALL=$_l LC_MESSAGES=$_l LC_CTYPE=$_l LANGUAGE=$_l; break; fi; done";

/// A `@@key=BASE64` value as text (lossy UTF-8).
pub(super) fn decode_b64(b: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[async_trait]
impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "pkg",
            "package",
            "state",
            "update_cache",
            "update-cache",
            "cache_valid_time",
            "allow_downgrade",
            "allow_downgrades",
            "allow-downgrades",
            "deb",
            "install_recommends",
            "install-recommends",
            "purge",
            "autoremove",
            "autoclean",
            "clean",
            "force",
            "dpkg_options",
            "default_release",
            "default-release",
            "only_upgrade",
            "upgrade",
            "lock_timeout",
            "force_apt_get",
            "allow_unauthenticated",
            "allow_change_held_packages",
            "policy_rc_d",
            "fail_on_autoremove",
            "update_cache_retries",
            "update_cache_retry_max_delay",
            "auto_install_module_deps",
        ]
    }
    /// Installing or removing named packages, nothing else: every
    /// effect sets `C` (python3-apt's installation is flagged).
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let on = |k: &str| args.bool_or(k, false).unwrap_or(true);
        matches!(
            args.opt_str("state").as_deref(),
            None | Some("present" | "installed" | "absent" | "removed" | "fixed")
        ) && [
            "update_cache",
            "update-cache",
            "clean",
            "autoremove",
            "autoclean",
        ]
        .iter()
        .all(|k| !on(k))
            && args.get("deb").is_none()
            && args.opt_str("upgrade").is_none_or(|u| u == "no")
            && !args.list_any(&["name", "pkg", "package"]).is_empty()
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let names = args.list_any(&["name", "pkg", "package"]);
        let state = args.choice(
            "state",
            &[
                "present",
                "installed",
                "latest",
                "absent",
                "removed",
                "build-dep",
                "fixed",
            ],
            "present",
        )?;
        let update = args.bool_or("update_cache", false)? || args.bool_or("update-cache", false)?;
        // `update_cache: false` written out (ansible then installs its
        // python3-apt without updating the cache first).
        let no_update =
            !(args.bool_or("update_cache", true)? && args.bool_or("update-cache", true)?);
        let auto_deps = args.bool_or("auto_install_module_deps", true)?;
        let valid = args.opt_i64("cache_valid_time")?.unwrap_or(0);
        // As ansible: `cache_valid_time` alone updates an old cache too.
        let update = update || valid > 0;
        let downgrade =
            args.bool_or("allow_downgrade", false)? || args.bool_or("allow_downgrades", false)?;
        let recommends = args
            .get_any(&["install_recommends", "install-recommends"])
            .and_then(super::json_bool);
        let purge = args.bool_or("purge", false)?;
        let autoremove = args.bool_or("autoremove", false)?;
        let deb = args.opt_str("deb");
        let upgrade = args.opt_str("upgrade").unwrap_or_else(|| "no".into());
        let lock = args.opt_i64("lock_timeout")?.unwrap_or(60);
        let dpkg_opts = args
            .opt_str("dpkg_options")
            .unwrap_or_else(|| "force-confdef,force-confold".into());
        let default_release = args.opt_str_any(&["default_release", "default-release"]);
        // No `-q`: ansible's install/upgrade commands have none (its output
        // is the result's `stdout`); removal adds it, as ansible's does.
        let mut flags = format!("-y -o DPkg::Lock::Timeout={lock}");
        for o in dpkg_opts.split(',').filter(|o| !o.is_empty()) {
            flags.push_str(&format!(" -o Dpkg::Options::=--{}", o.trim()));
        }
        match recommends {
            Some(false) => flags.push_str(" --no-install-recommends"),
            Some(true) => flags.push_str(" --install-recommends"),
            None => {}
        }
        if downgrade {
            flags.push_str(" --allow-downgrades");
        }
        // `force`: apt-get's --force-yes (ansible: "implies
        // allow_unauthenticated and allow_downgrade", which --force-yes does).
        if args.bool_or("force", false)? {
            flags.push_str(" --force-yes");
        }
        if args.bool_or("only_upgrade", false)? {
            flags.push_str(" --only-upgrade");
        }
        if args.bool_or("fail_on_autoremove", false)? {
            flags.push_str(" --no-remove");
        }
        if args.bool_or("allow_unauthenticated", false)? {
            flags.push_str(" --allow-unauthenticated");
        }
        if args.bool_or("allow_change_held_packages", false)? {
            flags.push_str(" --allow-change-held-packages");
        }
        if let Some(r) = &default_release {
            flags.push_str(&format!(" -t {}", q(r)));
        }
        let specs = names.iter().map(|n| q(n)).collect::<Vec<_>>().join(" ");
        // `clean`: `apt-get clean` first; alone it is always a change.
        let clean = args.bool_or("clean", false)?;
        let mut body = format!(
            r#"export DEBIAN_FRONTEND=noninteractive DEBIAN_PRIORITY=critical
{locale}
F="{flags}"
upd=0
prc={prc}
{deps}
apt_run() {{ [ "$CHECK" = 1 ] && return 0
  if [ -n "$prc" ]; then pb=""; if [ -e /usr/sbin/policy-rc.d ]; then pb=$(mktemp -d) && mv /usr/sbin/policy-rc.d "$pb/" || fail "Fail to move /usr/sbin/policy-rc.d to $pb"; fi
    printf '#!/bin/sh\nexit %d\n' "$prc" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d || fail "Failed to create or chmod /usr/sbin/policy-rc.d"; fi
  _t=$(mktemp -d) || fail "cannot make a temporary directory"
  "$@" >"$_t/o" 2>"$_t/e"; _rc=$?
  if [ -n "$prc" ]; then rm -f /usr/sbin/policy-rc.d; if [ -n "$pb" ]; then mv "$pb/policy-rc.d" /usr/sbin/policy-rc.d && rmdir "$pb" || fail "Fail to move back $pb/policy-rc.d to /usr/sbin/policy-rc.d"; fi; fi
  printf '@@stdout='; b64 "$_t/o"; echo; printf '@@stderr='; b64 "$_t/e"; echo
  _m=$(tail -n 15 "$_t/e"); rm -rf "$_t"
  [ $_rc = 0 ] || fail "$*: $_m"; }}
if [ {update} = 1 ]; then
  st=/var/lib/apt/periodic/update-success-stamp; [ -e $st ] || st=/var/lib/apt/lists
  if [ {valid} -gt 0 ] && [ -e $st ] && [ $(( $(date +%s) - $(stat -c %Y $st) )) -le {valid} ]; then :; else
    if [ "$CHECK" = 1 ]; then upd=1; else
      l0=$(stat -c %Y.%Z /var/lib/apt/lists 2>/dev/null)
      _o=$(apt-get update -q -o DPkg::Lock::Timeout={lock} 2>&1) || fail "apt-get update: $(printf '%s' "$_o" | tail -n 10)"
      [ "$(stat -c %Y.%Z /var/lib/apt/lists 2>/dev/null)" = "$l0" ] || upd=1
    fi
  fi
fi
echo "@@cache_updated=$upd"
st=/var/lib/apt/periodic/update-success-stamp; [ -e $st ] || st=/var/lib/apt/lists
echo "@@cache_update_time=$(stat -c %Y $st 2>/dev/null || echo 0)"
"#,
            update = u8::from(update),
            locale = LOCALE,
            deps = AUTO_DEPS
                .replace("{auto}", if auto_deps { "1" } else { "0" })
                .replace("{noupd}", if no_update { "1" } else { "0" }),
            prc = match args.opt_i64("policy_rc_d")? {
                Some(n) => n.to_string(),
                None => String::new(),
            },
        );
        if clean {
            body.push_str("[ \"$CHECK\" = 1 ] || { _o=$(apt-get clean 2>&1) || fail \"apt-get clean failed: $_o\"; }\n");
            if names.is_empty() && deb.is_none() && upgrade == "no" {
                body.push_str("C=1\n");
            }
        }
        if let Some(deb) = &deb {
            body.push_str(&format!(
                r#"f={}
case $f in http://*|https://*) t=/var/tmp/image-cli-$(basename "$f"); [ -f "$t" ] || {{ dl "$f" "$t" 2>"$t.err" || {{ e=$(cat "$t.err"); rm -f "$t" "$t.err"; fail "download of $f failed: $e"; }}; rm -f "$t.err"; }}; f=$t;; esac
[ -f "$f" ] || fail "deb $f not found"
p=$(dpkg-deb -f "$f" Package); v=$(dpkg-deb -f "$f" Version)
iv=$(dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}' "$p" 2>/dev/null)
case $iv in "ii |$v"|"hi |$v") ;; *) C=1; apt_run apt-get install $F "$f";; esac
"#,
                q(deb)
            ));
        }
        if !names.is_empty() {
            match state.as_str() {
                "present" | "installed" | "fixed" => body.push_str(&format!(
                    r#"need=""
{PKG_STATES}
pkgstates {specs}
for spec in {specs}; do
  n=${{spec%%=*}}; v=""; case $spec in *=*) v=${{spec#*=}};; esac
  pkgst "$n"
  case $st in
    ii*|hi*) if [ -n "$v" ]; then iv=${{st#*|}}; case $iv in $v) ;; *) need="$need $spec";; esac; fi;;
    *) need="$need $spec";;
  esac
done
if [ -n "$need" ]; then C=1; echo "@@changes=$need"; apt_run apt-get install $F $need; fi
"#
                )),
                "latest" => body.push_str(&format!(
                    r#"plan=$(apt-get -s install $F {specs} 2>&1) || fail "$(printf '%s' "$plan" | tail -n 10)"
ch=$(printf '%s\n' "$plan" | awk '/^Inst /{{print $2}}' | tr '\n' ' ')
if [ -n "$ch" ]; then C=1; echo "@@changes=$ch"; apt_run apt-get install $F {specs}; fi
"#
                )),
                "absent" | "removed" => body.push_str(&format!(
                    r#"rm_=""
{PKG_STATES}
pkgstates {specs}
for n in {specs}; do n=${{n%%=*}}; pkgst "$n"; case $st in ii*|iU*|iF*|hi*) rm_="$rm_ $n";; rc*) [ {purge} = 1 ] && rm_="$rm_ $n";; esac; done
if [ -n "$rm_" ]; then C=1; echo "@@changes=$rm_"; apt_run apt-get -q remove $F {purgeflag} $rm_; fi
"#,
                    purge = u8::from(purge),
                    purgeflag = if purge { "--purge" } else { "" },
                )),
                other => return Err(ModuleError::Arg(format!("state={other} is not supported"))),
            }
        }
        if matches!(state.as_str(), "present" | "installed" | "fixed" | "latest")
            && !names.is_empty()
        {
            body.push_str(&MARK_MANUAL.replace("{specs}", &specs));
        }
        if upgrade != "no" && upgrade != "false" {
            let cmd = match upgrade.as_str() {
                "dist" | "full" => "dist-upgrade",
                _ => "upgrade",
            };
            body.push_str(&format!(
                "plan=$(apt-get -s {cmd} $F 2>&1); if printf '%s\\n' \"$plan\" | grep -q '^Inst '; then C=1; apt_run apt-get {cmd} $F; fi\n"
            ));
        }
        let autoclean = args.bool_or("autoclean", false)?;
        // As ansible: with no packages, autoclean runs alone (its cleanup
        // ends the module, so a requested autoremove does not run);
        // changed when apt-get deleted something ("Del ").
        let autoremove = if autoclean && names.is_empty() && deb.is_none() {
            body.push_str(&format!(
                "_s=''; [ \"$CHECK\" = 1 ] && _s=--simulate; _o=$(apt-get -y $F {} autoclean $_s 2>&1) || fail \"'apt-get autoclean' failed: $_o\"; case $_o in *'Del '*) C=1;; esac\n",
                if purge { "--purge" } else { "" }
            ));
            false
        } else {
            autoremove
        };
        if autoremove {
            body.push_str(&format!(
                "plan=$(apt-get -s autoremove $F 2>&1); if printf '%s\\n' \"$plan\" | grep -q '^Remv '; then C=1; apt_run apt-get autoremove $F {}; fi\n",
                if purge { "--purge" } else { "" }
            ));
        }
        if names.is_empty() && deb.is_none() && upgrade == "no" && !autoremove && !autoclean {
            body.push_str("[ $upd = 1 ] && C=1\n");
        }
        let out = ctx
            .run_script_dl(
                &body,
                None,
                &super::http::Request::get(deb.as_deref().unwrap_or("")),
            )
            .await?;
        let mut r = ModuleResult::from_script(&out, "apt");
        // The real run would install python3-apt first, or mark packages
        // as installed by hand.
        r.not_a_probe = out.get("deps_missing").is_some() || out.get("mark_pending").is_some();
        // `cache_updated` and `cache_update_time` (the mtime of apt's
        // update stamp, else of its lists) where ansible returns them: an
        // update with nothing else to do, or an install (its removal,
        // upgrade, `deb`, `clean` and autoclean/autoremove alone end
        // without them; a playbook reading them fails there under ansible).
        let install = matches!(
            state.as_str(),
            "present" | "installed" | "latest" | "build-dep" | "fixed"
        );
        let upgrading = upgrade != "no" && upgrade != "false";
        let alone = names.is_empty() && deb.is_none() && !upgrading;
        let cache_keys = if alone {
            !clean && (update || (install && !autoclean && !autoremove))
        } else {
            deb.is_none() && !upgrading && install
        };
        if cache_keys {
            r.data.insert(
                "cache_updated".into(),
                (out.get("cache_updated") == Some("1")).into(),
            );
            let time = out
                .get("cache_update_time")
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            r.data.insert("cache_update_time".into(), time.into());
        }
        if let Some(c) = out.get("changes") {
            let c = c.trim().to_string();
            if ctx.diff && out.changed {
                r.diff.push(crate::diff::Diff::new(
                    "packages",
                    "",
                    format!("{}\n", c.replace(' ', "\n")),
                ));
            }
            r.msg.get_or_insert_with(|| {
                format!(
                    "{} {}",
                    if ctx.check { "would change" } else { "changed" },
                    c
                )
            });
        }
        // The last apt-get command's outputs (none when nothing ran, as
        // ansible's result has no `stdout` then either).
        for key in ["stdout", "stderr"] {
            if let Some(b) = out.get(key) {
                let text = decode_b64(b);
                r.data
                    .insert(format!("{key}_lines"), super::splitlines(&text).into());
                r.data.insert(key.into(), text.into());
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_come_back_whole_with_python_lines() {
        // "Reading...\r\nSetting up\rx\n" in base64, as the script prints it.
        let text = decode_b64("UmVhZGluZy4uLg0KU2V0dGluZyB1cA14Cg==");
        assert_eq!(text, "Reading...\r\nSetting up\rx\n");
        assert_eq!(
            crate::modules::splitlines(&text),
            ["Reading...", "Setting up", "x"]
        );
        assert_eq!(crate::modules::splitlines("a\n\nb"), ["a", "", "b"]);
        assert!(crate::modules::splitlines("").is_empty());
    }
}
