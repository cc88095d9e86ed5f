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

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};

/// Prints `u UNIT SUB` per loaded service and `f UNIT STATE` per unit file.
const SCRIPT: &str = r#"systemctl list-units --type=service --all --no-legend --no-pager --plain 2>/dev/null | awk '{print "u " $1 " " $4}'
c=/run/image-cli/service-facts
fp=$(find /etc/systemd/system /etc/systemd/system.control /run/systemd/system /run/systemd/system.control /run/systemd/transient /run/systemd/generator /run/systemd/generator.early /run/systemd/generator.late /usr/local/lib/systemd/system /usr/lib/systemd/system /lib/systemd/system -name '*.service' -printf '%p|%T@|%l\n' 2>/dev/null | cksum)
old=; me=$(id -u)
[ "$me" = 0 ] && [ -r "$c" ] && IFS= read -r old < "$c"
if [ -n "$old" ] && [ "$old" = "$fp" ]; then
  tail -n +2 "$c"
else
  f=$(systemctl list-unit-files --type=service --no-legend --no-pager 2>/dev/null | awk '{print "f " $1 " " $2}')
  [ -n "$f" ] && printf '%s\n' "$f"
  if [ "$me" = 0 ] && [ -n "$f" ] && mkdir -p /run/image-cli 2>/dev/null; then
    { printf '%s\n%s\n' "$fp" "$f" > "$c.$$" && mv -f "$c.$$" "$c"; } 2>/dev/null || rm -f "$c.$$"
  fi
fi
"#;

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
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let out = ctx.sh(SCRIPT, None).await?;
        let mut svcs: Map<String, Json> = Map::new();
        for l in out.stdout_str().lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 3 {
                continue;
            }
            let e = svcs
                .entry(f[1].to_string())
                .or_insert_with(|| json!({"name": f[1], "source": "systemd", "state": "stopped", "status": "unknown"}));
            if f[0] == "u" {
                e["state"] = json!(if f[2] == "running" {
                    "running"
                } else {
                    "stopped"
                });
            } else {
                e["status"] = json!(f[2]);
            }
        }
        let mut r = ModuleResult::ok();
        let mut facts = Map::new();
        facts.insert("services".into(), Json::Object(svcs));
        r.ansible_facts = Some(facts);
        Ok(r)
    }
}
