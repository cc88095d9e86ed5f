//! `dnf` / `yum`: installs, updates or removes RPM packages, asking rpm
//! first so that an idempotent run is one round trip.

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Shell functions of the script: `snap` lists the installed packages as
/// dnf names them (`name-[epoch:]version-release.arch`), `newer_ SPEC`
/// succeeds when the package SPEC names is installed in a newer version
/// than SPEC's (versions compared with `sort -V`), `fetch_ URL` downloads a
/// package as ansible's `fetch_file` does (into a module temporary
/// directory under `~/.ansible/tmp`, named after the URL's file with a
/// random part; the path in `got_`), `run_ VERB ARGS` runs dnf
/// (changed; in check mode `preview_` prints what dnf would install and
/// remove as `@@would=Installed: NEVRA` lines, from its `--assumeno` table).
const SNAP: &str = r#"snap() { rpm -qa --qf '%{NAME}-%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}.%{ARCH}\n' 2>/dev/null | grep -v '^gpg-pubkey-' | sort; }
B_=$(mktemp); A_=$(mktemp); snap >"$B_"
newer_() { case $1 in /*|*.rpm|*://*) return 1;; esac; r_=$($M -q repoquery $F --qf '%{name} %{evr}' "$1" 2>/dev/null | sort -k2,2V | tail -n1); [ -n "$r_" ] && rpm -q "${r_%% *}" >/dev/null 2>&1 || return 1; i_=$(rpm -q --qf '%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n' "${r_%% *}" 2>/dev/null | sort -V | tail -n1); [ -n "$i_" ] && [ "$i_" != "${r_#* }" ] && [ "$(printf '%s\n%s\n' "$i_" "${r_#* }" | sort -V | tail -n1)" = "$i_" ]; }
run_() { C=1; [ "$CHECK" = 1 ] && { preview_ "$@"; return 0; }; v_=$1; shift; _o=$($M "$v_" $F "$@" 2>&1) || { rm -f "$B_" "$A_"; [ -z "$MT_" ] || rm -rf "$MT_"; fail "$M $v_ failed: $_o"; }; }
MT_=""
fetch_() { [ -n "$MT_" ] || { mkdir -p "$HOME/.ansible/tmp" && MT_=$(mktemp -d "$HOME/.ansible/tmp/ansible-moduletmp-$(date +%s.%N)-XXXXXXXX"); } || fail "no temporary directory for $1"; b_=${1##*/}; b_=${b_%%[?#]*}; case $b_ in ?*.*) x_=.${b_##*.}; b_=${b_%.*};; *) x_="";; esac; got_=$(mktemp --suffix="$x_" "$MT_/${b_}XXXXXXXX") && dl "$1" "$got_" 2>"$MT_/.err" || { e_=$(cat "$MT_/.err"); rm -rf "$MT_" "$B_" "$A_"; fail "downloading $1 failed: $e_"; }; }
preview_() { v_=$1; shift; $M "$v_" --assumeno ${F#-y -q} "$@" 2>/dev/null | awk '/^(Installing|Upgrading|Downgrading|Reinstalling)/ {m="Installed"; next} /^(Removing|Erasing)/ {m="Removed"; next} /^[^ ]/ {m=""} m != "" && NF >= 5 {print "@@would=" m ": " $1 "-" $3 "." $2}'; }
"#;

/// The end of the script: changed when the rpm database changed (outside
/// check mode); what was installed and removed (`@@installed=a|b`,
/// `@@removed=c`; as in ansible's, an upgraded package's old version is
/// "removed").
const REPORT: &str = r#"snap >"$A_"
if [ "$CHECK" != 1 ]; then if cmp -s "$B_" "$A_"; then C=0; else C=1; fi; fi
echo "@@installed=$(comm -13 "$B_" "$A_" | tr '\n' '|')"
echo "@@removed=$(comm -23 "$B_" "$A_" | tr '\n' '|')"
rm -f "$B_" "$A_"
[ -z "$MT_" ] || rm -rf "$MT_"
"#;

/// The `dnf` module (also `yum`).
pub struct Dnf;

#[async_trait]
impl Module for Dnf {
    fn name(&self) -> &'static str {
        "dnf"
    }
    fn reads_vars(&self) -> bool {
        true
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
            "allowerasing",
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
    /// ansible's dnf action: with no backend named (`use_backend` absent,
    /// `auto` or `yum`) and no `pkg_mgr` fact yet, it asks the host which
    /// package manager it has and returns that as the `pkg_mgr` fact.
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        let named = args
            .opt_str("use_backend")
            .is_some_and(|b| b != "auto" && b != "yum");
        let known = ctx
            .vars
            .get("ansible_facts")
            .is_some_and(|f| f.get("pkg_mgr").is_some_and(|m| !m.is_null()));
        let mut r = self.packages(ctx, args).await?;
        let mgr = ctx.fact("pkg_mgr");
        if !named && !known && !mgr.is_empty() {
            let mut f = serde_json::Map::new();
            f.insert("pkg_mgr".into(), Json::String(mgr.to_string()));
            r.ansible_facts = Some(f);
        }
        Ok(r)
    }
}

impl Dnf {
    /// The module itself, as ansible's package action runs it (without
    /// the dnf action's `pkg_mgr` fact).
    pub(super) async fn packages(
        &self,
        ctx: &ModuleCtx<'_>,
        args: &Args,
    ) -> Result<ModuleResult, ModuleError> {
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
        if args.bool_or("allowerasing", false)? {
            flags.push_str(" --allowerasing");
        }
        // Without it, a spec older than the installed package is not
        // installed (dnf's CLI would downgrade; ansible's module does not).
        let downgrade = u8::from(args.bool_or("allow_downgrade", false)?);
        if args.get("install_weak_deps").and_then(super::json_bool) == Some(false) {
            flags.push_str(" --setopt=install_weak_deps=False");
        }
        // ansible's dnf removes what a removed package pulled in only with
        // `autoremove` (dnf's own default is to remove it).
        let autoremove = args.bool_or("autoremove", false)?;
        flags.push_str(&format!(
            " --setopt=clean_requirements_on_remove={}",
            if autoremove { "True" } else { "False" }
        ));
        let list = names.iter().map(|n| q(n)).collect::<Vec<_>>().join(" ");
        let mut body = format!("M=$(command -v dnf || command -v yum) || fail 'neither dnf nor yum on the target'\nF=\"{flags}\"\n{SNAP}");
        if args.bool_or("update_cache", false)? {
            body.push_str("[ \"$CHECK\" = 1 ] || $M makecache -q >/dev/null 2>&1\n");
        }
        body.push_str(&match state.as_str() {
            // Installed when rpm knows the spec as a package (`name`,
            // `name-version`, ...) or a capability it provides.
            "present" | "installed" => format!("need=\"\"\nfor p in {list}; do case $p in *://*) fetch_ \"$p\"; p=$got_; echo \"@@file=$p\";; *.rpm) echo \"@@file=$p\";; esac; case $p in /*|*.rpm|http*) n=$(rpm -qp --qf '%{{NAME}}' \"$p\" 2>/dev/null || echo \"$p\");; *) n=$p;; esac; rpm -q \"$n\" >/dev/null 2>&1 || rpm -q --whatprovides \"$n\" >/dev/null 2>&1 || {{ [ {downgrade} = 0 ] && newer_ \"$p\"; }} || need=\"$need $p\"; done\nif [ -n \"$need\" ]; then run_ install $need; fi\n"),
            // `*`: every installed package (ansible's upgrade_all).
            "latest" if names == ["*"] => "up=$($M -q check-update $F 2>/dev/null | awk 'NF==3 {print $1}' | tr '\\n' ' ')\nif [ -n \"$up\" ]; then run_ upgrade; fi\n".to_string(),
            "latest" => format!("need=\"\"\nfor p in {list}; do rpm -q \"$p\" >/dev/null 2>&1 || need=\"$need $p\"; done\nup=$($M -q check-update $F {list} 2>/dev/null | awk 'NF==3 {{print $1}}' | tr '\\n' ' ')\nif [ -n \"$need\" ]; then run_ install $need; fi\nif [ -n \"$up\" ]; then run_ upgrade {list}; fi\n"),
            _ => format!("rm_=\"\"\nfor p in {list}; do if rpm -q \"$p\" >/dev/null 2>&1; then rm_=\"$rm_ $p\"; else echo \"@@nomatch=$p\"; fi; done\nif [ -n \"$rm_\" ]; then run_ remove $rm_; fi\n"),
        });
        // autoremove: leaf packages installed as dependencies; on its own
        // (no names) as ansible's dnf does it.
        if autoremove {
            if !names.is_empty() && state != "absent" && state != "removed" {
                return Err(ModuleError::Arg(
                    "dnf: `autoremove` with package names needs state=absent".into(),
                ));
            }
            body.push_str("_o=$($M autoremove ${F#-y -q} --assumeno 2>&1); case $_o in *Removing*|*Erasing*) run_ autoremove;; esac\n");
        }
        body.push_str(REPORT);
        let out = match names.iter().find(|n| n.contains("://")) {
            Some(url) => {
                ctx.run_script_dl(&body, None, &super::http::Request::get(url))
                    .await?
            }
            None => ctx.run_script(&body, None).await?,
        };
        let mut r = ModuleResult::from_script(&out, "dnf");
        let list_of = |k: &str, word: &str| -> Vec<Json> {
            out.get(k)
                .unwrap_or("")
                .split('|')
                .filter(|p| !p.is_empty())
                .map(|p| Json::String(format!("{word}: {p}")))
                .collect()
        };
        if r.failed {
            // ansible: rc 1, one failure per package dnf found no match
            // for, worded as ansible's (else what dnf said).
            let said = r.msg.clone().unwrap_or_default();
            let mut failures: Vec<Json> = said
                .split("No match for argument: ")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next())
                .map(|p| Json::String(format!("No package {p} available.")))
                .collect();
            if failures.is_empty() {
                failures = said
                    .split(" Error: ")
                    .skip(1)
                    .map(|f| Json::String(f.trim().to_string()))
                    .collect();
            } else {
                r.msg = Some(format!(
                    "Failed to install some of the specified packages ({})",
                    said.trim()
                ));
            }
            return Ok(r
                .with("rc", 1)
                .with("results", Vec::<Json>::new())
                .with("failures", failures));
        }
        // ansible: first `Installed FILE` for each package file (a URL's
        // download), whether or not it was installed.
        let mut results: Vec<Json> = out
            .kv
            .iter()
            .filter(|(k, _)| k == "file")
            .map(|(_, f)| Json::String(format!("Installed {f}")))
            .collect();
        results.extend(list_of("installed", "Installed"));
        results.extend(list_of("removed", "Removed"));
        results.extend(
            out.kv
                .iter()
                .filter(|(k, _)| k == "would")
                .map(|(_, v)| Json::String(v.clone())),
        );
        // ansible's dnf on a name it cannot remove: not installed.
        if !r.changed {
            results.extend(
                out.kv
                    .iter()
                    .filter(|(k, _)| k == "nomatch")
                    .map(|(_, p)| Json::String(format!("No match for argument: {p}"))),
            );
        }
        if r.changed && ctx.check {
            r.msg = Some("Check mode: No changes made, but would have if not in check mode".into());
        } else if r.changed {
            r.msg = Some(String::new());
        } else {
            r.msg = Some("Nothing to do".into());
        }
        Ok(r.with("rc", 0).with("results", results))
    }
}
