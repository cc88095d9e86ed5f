//! `service_facts`: systemd services and their state into
//! `ansible_facts.services`, in one exec.
//!
//! The unit-file states (`systemctl list-unit-files`, which takes systemd
//! 0.1 to 1 s) depend only on the files in systemd's unit directories, so
//! as root they are kept in `/run/image-cli/service-facts` (tmpfs, gone at
//! boot) under a fingerprint of those directories (every `*.service` file
//! or link in them, its mtime to the nanosecond and its link target; not
//! the directories' own mtimes, which every SSH login's transient session
//! scope changes) and listed again only when the fingerprint differs. The
//! running state (`list-units`) is always asked.
//!
//! The units with a file but not loaded get `systemctl show`'s
//! ActiveState, as ansible asks it; systemd loads each to answer (2–3 ms a
//! unit, 150 ms on a plain Debian). A unit that is not loaded is inactive
//! unless it is an alias of a loaded one, so the answers follow from the
//! unit files' fingerprint and the loaded units' states (`list-units`):
//! they are kept in `/run/image-cli/service-facts-active` under both.
//!
//! The SysV scripts' states (ansible's `service --status-all`, one
//! `status` run per script in `/etc/init.d`, 20–30 ms each) are kept the
//! same way in `/run/image-cli/service-facts-sysv`, only on a systemd host
//! where every script sources `/lib/lsb/init-functions` (itself or
//! through `/lib/init/init-d-script`) and has a unit (a file or link named
//! after it in systemd's unit directories): there its `status` is
//! `systemctl status` of its unit (Debian's LSB hook), so the answer
//! follows from the scripts, the hook, the unit files (their fingerprint
//! above: load state, alias, mask) and the loaded units' states
//! (`list-units`, asked anyway), which make the key. A unit that is not
//! loaded is loaded from its file by the hook, so the files decide its
//! state; asking each with `systemctl show` instead cost ~40 ms for
//! Debian's nine scripts (issue #16). Any other script, or a script
//! without a unit (the hook then reloads systemd, an effect the cache
//! must not skip; the units are listed again after it, as ansible lists
//! them after the scripts), makes the list run for real.

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// Prints, as ansible's module gathers them: `s [ + ]  NAME` per SysV
/// script (`service --status-all`, where there is no chkconfig nor
/// OpenRC), `u UNIT ACTIVE SUB BAD` per loaded service (`BAD`: the first
/// of not-found/masked/failed among its words, else `-`), `f UNIT STATE`
/// per unit file, and `a UNIT STATE` (`systemctl show`'s ActiveState) per
/// unit file that is not loaded (templates have none).
const SCRIPT: &str = r#"me=$(id -u)
dirs='/etc/systemd/system /etc/systemd/system.control /run/systemd/system /run/systemd/system.control /run/systemd/transient /run/systemd/generator /run/systemd/generator.early /run/systemd/generator.late /usr/local/lib/systemd/system /usr/lib/systemd/system /lib/systemd/system'
lu=$(systemctl list-units --type=service --all --no-legend --no-pager --plain 2>/dev/null)
fp=$(find $dirs -name '*.service' -printf '%p|%T@|%l\n' 2>/dev/null | cksum)
if command -v service >/dev/null 2>&1 && ! command -v chkconfig >/dev/null 2>&1 && ! command -v rc-status >/dev/null 2>&1; then
  sc=/run/image-cli/service-facts-sysv; sk=; sold=
  if [ "$me" = 0 ] && [ -d /run/systemd/system ] && [ -e /lib/lsb/init-functions.d/40-systemd ] && [ -d /etc/init.d ] && [ -z "$(grep -L -e /lib/lsb/init-functions -e /lib/init/init-d-script /etc/init.d/* 2>/dev/null)" ]; then
    all=1
    for x in /etc/init.d/*; do
      [ -x "$x" ] || continue
      b=${x##*/}; n=${b%.sh}.service; got=
      for d in $dirs; do [ -e "$d/$n" ] && { got=1; break; }; done
      [ -n "$got" ] || { all=; break; }
    done
    if [ -n "$all" ]; then
      sk=$({ find /etc/init.d /lib/lsb/init-functions /lib/lsb/init-functions.d "$(command -v service)" -maxdepth 1 -printf '%p|%T@|%l\n' 2>/dev/null; printf '%s\n%s\n' "$fp" "$lu"; } | cksum)
      [ -r "$sc" ] && IFS= read -r sold < "$sc"
    fi
  fi
  if [ -n "$sk" ] && [ "$sold" = "$sk" ]; then
    tail -n +2 "$sc"
  else
    s=$(service --status-all 2>/dev/null | sed 's/^/s /')
    [ -n "$s" ] && printf '%s\n' "$s"
    # A script without a unit made the hook reload systemd: list again.
    if [ -z "$sk" ]; then
      lu=$(systemctl list-units --type=service --all --no-legend --no-pager --plain 2>/dev/null)
      fp=$(find $dirs -name '*.service' -printf '%p|%T@|%l\n' 2>/dev/null | cksum)
    fi
    if [ -n "$sk" ] && mkdir -p /run/image-cli 2>/dev/null; then
      { printf '%s\n%s\n' "$sk" "$s" > "$sc.$$" && mv -f "$sc.$$" "$sc"; } 2>/dev/null || rm -f "$sc.$$"
    fi
  fi
fi
u=$(printf '%s\n' "$lu" | awk '/\.service/ {bad="-"; for (i = 1; i < NF; i++) if ($i == "not-found" || $i == "masked" || $i == "failed") {bad = $i; break}; print "u " $1 " " $3 " " $4 " " bad}')
[ -n "$u" ] && printf '%s\n' "$u"
c=/run/image-cli/service-facts
old=
[ "$me" = 0 ] && [ -r "$c" ] && IFS= read -r old < "$c"
if [ -n "$old" ] && [ "$old" = "$fp" ]; then
  f=$(tail -n +2 "$c")
else
  f=$(systemctl list-unit-files --type=service --no-legend --no-pager 2>/dev/null | awk '/\.service/ {print "f " $1 " " $2}')
  if [ "$me" = 0 ] && [ -n "$f" ] && mkdir -p /run/image-cli 2>/dev/null; then
    { printf '%s\n%s\n' "$fp" "$f" > "$c.$$" && mv -f "$c.$$" "$c"; } 2>/dev/null || rm -f "$c.$$"
  fi
fi
[ -n "$f" ] && printf '%s\n' "$f"
miss=$({ printf '%s\n' "$u"; echo --; printf '%s\n' "$f"; } | awk '$0 == "--" {d = 1; next} !d {seen[$2] = 1; next} $1 == "f" && !($2 in seen) && $2 !~ /@\.service$/ {print $2}')
if [ -n "$miss" ]; then
  ac=/run/image-cli/service-facts-active; ak=$(printf '%s\n%s\n' "$fp" "$u" | cksum); aold=
  [ "$me" = 0 ] && [ -r "$ac" ] && IFS= read -r aold < "$ac"
  if [ "$aold" = "$ak" ]; then
    tail -n +2 "$ac"
  else
    a=$({ printf '%s\n' "$miss"; echo --; systemctl show -p ActiveState $miss 2>/dev/null; } | awk '$0 == "--" {d = 1; next} !d {m[++n] = $0; next} /^ActiveState=/ {print "a " m[++k] " " substr($0, 13)}')
    [ -n "$a" ] && printf '%s\n' "$a"
    if [ "$me" = 0 ] && mkdir -p /run/image-cli 2>/dev/null; then
      { printf '%s\n%s\n' "$ak" "$a" > "$ac.$$" && mv -f "$ac.$$" "$ac"; } 2>/dev/null || rm -f "$ac.$$"
    fi
  fi
fi
"#;

/// Unit states that stay a service's `status` whatever its unit file says.
const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// The `service_facts` module.
pub struct ServiceFacts;

#[async_trait]
impl Module for ServiceFacts {
    fn name(&self) -> &'static str {
        "service_facts"
    }
    fn params(&self) -> &'static [&'static str] {
        &[]
    }
    /// A probe: read-only (its cache on the target is not a change): a check-mode run is the run.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let out = ctx.sh(SCRIPT, None).await?;
        let mut svcs: Map<String, Json> = Map::new();
        let text = out.stdout_str();
        let lines = |tag: &str| -> Vec<Vec<String>> {
            text.lines()
                .filter_map(|l| l.strip_prefix(tag))
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .collect()
        };
        // SysV scripts first: systemd's entries win (as ansible merges).
        for l in text.lines().filter_map(|l| l.strip_prefix("s ")) {
            let l = l.trim_start();
            let state = match l.get(..5) {
                Some("[ + ]") => "running",
                Some("[ - ]") => "stopped",
                _ => continue,
            };
            let name = l[5..].trim();
            if !name.is_empty() {
                svcs.insert(
                    name.to_string(),
                    json!({"name": name, "state": state, "source": "sysv"}),
                );
            }
        }
        let mut loaded = std::collections::BTreeSet::new();
        for f in lines("u ") {
            let [unit, active, sub, bad] = f.as_slice() else {
                continue;
            };
            let status = if bad == "-" { active } else { bad };
            let state = if sub == "running" {
                "running"
            } else {
                "stopped"
            };
            loaded.insert(unit.clone());
            svcs.insert(
                unit.clone(),
                json!({"name": unit, "state": state, "status": status, "source": "systemd"}),
            );
        }
        let active: std::collections::BTreeMap<String, String> = lines("a ")
            .into_iter()
            .filter_map(|f| match f.as_slice() {
                [unit, state] => Some((unit.clone(), state.clone())),
                _ => None,
            })
            .collect();
        for f in lines("f ") {
            let [unit, file_state, ..] = f.as_slice() else {
                continue;
            };
            if loaded.contains(unit) {
                if let Some(e) = svcs.get_mut(unit) {
                    let bad = e["status"]
                        .as_str()
                        .is_some_and(|s| BAD_STATES.contains(&s));
                    if !bad {
                        e["status"] = json!(file_state);
                    }
                }
            } else {
                let state = active.get(unit).map_or("unknown", String::as_str);
                svcs.insert(
                    unit.clone(),
                    json!({"name": unit, "state": state, "status": file_state, "source": "systemd"}),
                );
            }
        }
        let mut r = ModuleResult::ok();
        let mut facts = Map::new();
        facts.insert("services".into(), Json::Object(svcs));
        r.ansible_facts = Some(facts);
        Ok(r)
    }
}
