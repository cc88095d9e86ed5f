//! `package_facts`: installed packages (dpkg or rpm) into
//! `ansible_facts.packages`.
//!
//! The manager is chosen as ansible's `manager: auto` does: its managers in
//! name order (apt before rpm), each usable when the target's python can
//! import its library (`apt` = python3-apt, `rpm`), so a host with dpkg but
//! no python3-apt and an rpm database lists its rpm packages; without any
//! python the first package database found (dpkg, then rpm); with python
//! but no usable manager it fails as ansible does. RPM entries
//! carry ansible's keys (`version`, `release`, `epoch`, `arch`; an absent
//! epoch or arch is the string `None`) in the rpm database's order.
//!
//! An apt entry's `origin` is what ansible reads through python-apt: the
//! `Origin` of the first package index that holds the installed version
//! (the lists in sources order, the dpkg status file last, whose origin is
//! empty), asked of python3-apt on the target (`apt_pkg`); without it
//! (no python, so no ansible either) the key is left out.
//!
//! Whether python imports a manager's library (`python3 -c 'import apt'`,
//! ~40 ms) changes only with the interpreter and the packages installed,
//! so as root the answer is kept in `/run/image-cli/package-facts-py-*`
//! (tmpfs) under a fingerprint of the python binaries and the dpkg/rpm
//! databases, and asked again only when that differs. The origins (a
//! python run that reads the whole apt cache, ~150 ms) are kept the same
//! way in `/run/image-cli/package-facts-origins`, under that fingerprint
//! plus the apt sources, preferences and package lists.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// The `package_facts` module.
pub struct PackageFacts;

#[async_trait]
impl Module for PackageFacts {
    fn name(&self) -> &'static str {
        "package_facts"
    }
    fn params(&self) -> &'static [&'static str] {
        &["manager", "strategy"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let out = ctx.sh(LIST, None).await?;
        if out.stdout_str().trim() == "none" {
            return Ok(ModuleResult::fail(NONE_USABLE));
        }
        let text = out.stdout_str();
        // python-apt's origin of each installed version, by name and arch.
        let mut origins: HashMap<(&str, &str), Json> = HashMap::new();
        for l in text.lines() {
            if let ["origin", name, arch, origin, none] =
                l.split('\t').collect::<Vec<_>>().as_slice()
            {
                let v = if *none == "1" {
                    Json::Null
                } else {
                    Json::String((*origin).to_string())
                };
                origins.insert((name, arch), v);
            }
        }
        let mut pkgs: Map<String, Json> = Map::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split('\t').collect();
            let entry = match f.as_slice() {
                // ansible's `category` is the version's section.
                ["apt", name, version, arch, section] => {
                    let mut e = json!({"name": name, "version": version, "arch": arch, "category": section, "source": "apt"});
                    if let (Some(o), Json::Object(m)) = (origins.get(&(*name, *arch)), &mut e) {
                        m.insert("origin".into(), o.clone());
                    }
                    e
                }
                ["rpm", name, version, release, epoch, arch] => json!({
                    "name": name, "version": version, "release": release,
                    "epoch": rpm_none(epoch), "arch": rpm_none(arch), "source": "rpm",
                }),
                _ => continue,
            };
            let e = pkgs.entry(f[1].to_string()).or_insert_with(|| json!([]));
            if let Json::Array(a) = e {
                a.push(entry);
            }
        }
        let mut r = ModuleResult::ok();
        let mut facts = Map::new();
        facts.insert("packages".into(), Json::Object(pkgs));
        r.ansible_facts = Some(facts);
        Ok(r)
    }
}

/// Lists the installed packages as `apt\tNAME\tVERSION\tARCH` or
/// `rpm\tNAME\tVERSION\tRELEASE\tEPOCH\tARCH` lines, from the manager
/// ansible's `auto` picks (see the module docs).
const LIST: &str = r#"me=$(id -u); key=
py_has() {
    c=/run/image-cli/package-facts-py-$1
    if [ "$me" = 0 ]; then
        [ -n "$key" ] || key=$({ for p in /usr/bin/python3 /usr/libexec/platform-python; do [ -e "$p" ] && stat -L -c '%n %i %Y %s' "$p"; done; stat -c '%n %Y %s' /var/lib/dpkg/status /var/lib/rpm /var/lib/rpm/* /usr/lib/sysimage/rpm /usr/lib/sysimage/rpm/* 2>/dev/null; } | cksum)
        if [ -r "$c" ]; then
            { IFS= read -r k; IFS= read -r v; } < "$c"
            if [ "$k" = "$key" ]; then [ "$v" = 0 ]; return; fi
        fi
    fi
    r=1
    for p in /usr/bin/python3 /usr/libexec/platform-python; do
        [ -x "$p" ] && "$p" -c "import $1" 2>/dev/null && { r=0; break; }
    done
    if [ "$me" = 0 ] && mkdir -p /run/image-cli 2>/dev/null; then
        { printf '%s\n%s\n' "$key" "$r" > "$c.$$" && mv -f "$c.$$" "$c"; } 2>/dev/null || rm -f "$c.$$"
    fi
    return $r
}
apt_list() {
    dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${Section}\n' |
        awk -F'\t' '$1 ~ /^[ih]i/ {print "apt\t" $2 "\t" $3 "\t" $4 "\t" $5}'
}
apt_origins() {
    c=/run/image-cli/package-facts-origins
    if [ "$me" = 0 ] && mkdir -p /run/image-cli 2>/dev/null; then
        okey=$({ printf '%s\n' "$key"; stat -c '%n %y %s' /var/lib/dpkg/status /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences.d/* /var/lib/apt/lists/* 2>/dev/null; } | cksum)
        if [ -r "$c" ]; then
            { IFS= read -r k; } < "$c"
            if [ "$k" = "$okey" ]; then tail -n +2 "$c"; return 0; fi
        fi
        if apt_origins_py > "$c.$$" 2>/dev/null; then
            cat "$c.$$"; { printf '%s\n' "$okey"; cat "$c.$$"; } > "$c.$$.k" 2>/dev/null && mv -f "$c.$$.k" "$c"
            rm -f "$c.$$" "$c.$$.k"
        fi
        rm -f "$c.$$"; return 0
    fi
    apt_origins_py
}
apt_origins_py() {
    for p in /usr/bin/python3 /usr/libexec/platform-python; do
        [ -x "$p" ] || continue
        "$p" - <<'PY' 2>/dev/null && return 0
import apt_pkg
apt_pkg.init()
cache = apt_pkg.Cache(None)
for pkg in cache.packages:
    ver = pkg.current_ver
    if ver is None:
        continue
    files = ver.file_list
    origin = files[0][0].origin if files else ""
    print("origin\t%s\t%s\t%s\t%d" % (pkg.name, ver.arch, origin or "", origin is None))
PY
    done
}
rpm_list() { rpm -qa --qf 'rpm\t%{NAME}\t%{VERSION}\t%{RELEASE}\t%{EPOCH}\t%{ARCH}\n'; }
have() { command -v "$1" >/dev/null 2>&1; }
if have /usr/bin/python3 || have /usr/libexec/platform-python; then
    if { have apt || have apt-get || have aptitude; } && py_has apt; then apt_list; apt_origins
    elif have rpm && py_has rpm; then rpm_list
    else echo none
    fi
elif have dpkg-query; then apt_list
elif have rpm; then rpm_list
fi"#;

/// ansible's failure when no manager of `auto` is usable (python but neither
/// python3-apt nor the rpm bindings).
const NONE_USABLE: &str = "Could not detect a supported package manager from the following list: \
    ['apk', 'apt', 'pacman', 'pkg', 'pkg_info', 'portage', 'rpm', 'dnf', 'dnf5', 'yum', 'zypper', \
    'pkg5', 'pkgng', 'openbsd_pkg'], or the required Python library is not installed. Check warnings for details.";

/// rpm's `(none)` (no epoch, no arch) as ansible's `to_text(None)`.
fn rpm_none(v: &str) -> &str {
    if v == "(none)" {
        "None"
    } else {
        v
    }
}
