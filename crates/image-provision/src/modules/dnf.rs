//! `dnf` / `yum`: installs, updates or removes RPM packages, asking rpm
//! first so that an idempotent run is one round trip.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `dnf` module (also `yum`).
pub struct Dnf;

#[async_trait]
impl Module for Dnf {
    fn name(&self) -> &'static str {
        "dnf"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "pkg",
            "state",
            "update_cache",
            "enablerepo",
            "disablerepo",
            "disable_gpg_check",
            "exclude",
            "disable_excludes",
            "allow_downgrade",
            "autoremove",
            "security",
            "bugfix",
            "install_weak_deps",
            "lock_timeout",
            "releasever",
            "installroot",
            "skip_broken",
            "update_only",
            "validate_certs",
            "download_only",
            "conf_file",
            "use_backend",
            "list",
            "disable_plugin",
            "enable_plugin",
            "sslverify",
            "nobest",
            "best",
            "cacheonly",
        ]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let names = args.list_any(&["name", "pkg"]);
        let state = args.choice(
            "state",
            &["present", "installed", "latest", "absent", "removed"],
            "present",
        )?;
        let mut flags = String::from("-y -q");
        for r in args.list("enablerepo") {
            flags.push_str(&format!(" --enablerepo={}", q(&r)));
        }
        for r in args.list("disablerepo") {
            flags.push_str(&format!(" --disablerepo={}", q(&r)));
        }
        for r in args.list("exclude") {
            flags.push_str(&format!(" --exclude={}", q(&r)));
        }
        // `all`, `main` or a repo id: ignore the `exclude=` of those
        // (how a held package is installed on purpose).
        if let Some(d) = args.opt_str("disable_excludes") {
            flags.push_str(&format!(" --disableexcludes={}", q(&d)));
        }
        for p in args.list("disable_plugin") {
            flags.push_str(&format!(" --disableplugin={}", q(&p)));
        }
        for p in args.list("enable_plugin") {
            flags.push_str(&format!(" --enableplugin={}", q(&p)));
        }
        if args.get("sslverify").and_then(super::json_bool) == Some(false) {
            flags.push_str(" --setopt=sslverify=False");
        }
        if let Some(b) = args.get("best").and_then(super::json_bool) {
            flags.push_str(&format!(
                " --setopt=best={}",
                if b { "True" } else { "False" }
            ));
        }
        if args.get("nobest").and_then(super::json_bool) == Some(true) {
            flags.push_str(" --nobest");
        }
        if args.bool_or("cacheonly", false)? {
            flags.push_str(" --cacheonly");
        }
        if args.bool_or("disable_gpg_check", false)? {
            flags.push_str(" --nogpgcheck");
        }
        if args.bool_or("allow_downgrade", false)? {
            flags.push_str(" --allowerasing");
        }
        if args.get("install_weak_deps").and_then(super::json_bool) == Some(false) {
            flags.push_str(" --setopt=install_weak_deps=False");
        }
        let list = names.iter().map(|n| q(n)).collect::<Vec<_>>().join(" ");
        let mut body = format!("M=$(command -v dnf || command -v yum) || fail 'neither dnf nor yum on the target'\nF=\"{flags}\"\n");
        if args.bool_or("update_cache", false)? {
            body.push_str("[ \"$CHECK\" = 1 ] || $M makecache -q >/dev/null 2>&1\n");
        }
        body.push_str(&match state.as_str() {
            "present" | "installed" => format!("need=\"\"\nfor p in {list}; do case $p in /*|*.rpm|http*) n=$(rpm -qp --qf '%{{NAME}}' \"$p\" 2>/dev/null || echo \"$p\");; *) n=$p;; esac; rpm -q --whatprovides \"$n\" >/dev/null 2>&1 || need=\"$need $p\"; done\nif [ -n \"$need\" ]; then C=1; echo \"@@changes=$need\"; [ \"$CHECK\" = 1 ] || {{ _o=$($M install $F $need 2>&1) || fail \"$M install failed: $_o\"; }}; fi\n"),
            "latest" => format!("need=\"\"\nfor p in {list}; do rpm -q \"$p\" >/dev/null 2>&1 || need=\"$need $p\"; done\nup=$($M -q check-update {list} 2>/dev/null | awk 'NF==3 {{print $1}}' | tr '\\n' ' ')\nif [ -n \"$need$up\" ]; then C=1; echo \"@@changes=$need $up\"; [ \"$CHECK\" = 1 ] || {{ _o=$($M install $F {list} 2>&1) && {{ [ -z \"$up\" ] || _o=$($M upgrade $F {list} 2>&1); }} || fail \"$M failed: $_o\"; }}; fi\n"),
            _ => format!("rm_=\"\"\nfor p in {list}; do rpm -q \"$p\" >/dev/null 2>&1 && rm_=\"$rm_ $p\"; done\nif [ -n \"$rm_\" ]; then C=1; echo \"@@changes=$rm_\"; [ \"$CHECK\" = 1 ] || {{ _o=$($M remove $F $rm_ 2>&1) || fail \"$M remove failed: $_o\"; }}; fi\n"),
        });
        // autoremove: leaf packages installed as dependencies; on its own
        // (no names) as ansible's dnf does it.
        if args.bool_or("autoremove", false)? {
            if !names.is_empty() && state != "absent" && state != "removed" {
                return Err(ModuleError::Arg(
                    "dnf: `autoremove` with package names needs state=absent".into(),
                ));
            }
            body.push_str("_o=$($M autoremove ${F#-y -q} --assumeno 2>&1); case $_o in *Removing*|*Erasing*) C=1; [ \"$CHECK\" = 1 ] || { _o=$($M autoremove $F 2>&1) || fail \"$M autoremove failed: $_o\"; };; esac\n");
        }
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, "dnf");
        if let Some(c) = out.get("changes") {
            r.msg
                .get_or_insert_with(|| format!("changed: {}", c.trim()));
        }
        Ok(r)
    }
}
