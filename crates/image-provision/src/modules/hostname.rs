//! `hostname`: sets the host name (hostnamectl, else /etc/hostname +
//! `hostname`).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// Prints `@@fqdn=` Python's `socket.getfqdn()` of the host name (a
/// reverse lookup of its address: the first of the names found with a dot,
/// else the first; the host name when nothing is found).
const FQDN: &str = r#"h=$(hostname 2>/dev/null); ip=$(getent hosts "$h" | awk '{print $1; exit}')
fq=$([ -n "$ip" ] && getent hosts "$ip" | awk '{for (i = 2; i <= NF; i++) if (index($i, ".")) {print $i; exit}; print $2; exit}')
echo "@@fqdn=${fq:-$h}""#;

/// The `hostname` module.
pub struct Hostname;

#[async_trait]
impl Module for Hostname {
    fn name(&self) -> &'static str {
        "hostname"
    }
    fn params(&self) -> &'static [&'static str] {
        &["name", "use"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        // As ansible's systemd strategy: the transient name when the
        // current one differs, the static and pretty ones when the
        // permanent one does (`--pretty` too: /etc/machine-info gets it).
        let body = format!(
            "n={}\ncur=$(hostname 2>/dev/null); f=$(cat /etc/hostname 2>/dev/null)\nif [ \"$cur\" != \"$n\" ] || [ \"$f\" != \"$n\" ]; then C=1; fi\nif [ \"$CHECK\" != 1 ]; then\n  if [ \"$cur\" != \"$n\" ]; then hostnamectl --transient set-hostname \"$n\" 2>/dev/null || hostname \"$n\" 2>/dev/null || true; fi\n  if [ \"$f\" != \"$n\" ]; then hostnamectl --pretty --static set-hostname \"$n\" 2>/dev/null || printf '%s\\n' \"$n\" > /etc/hostname || fail \"setting the hostname failed\"; fi\nfi",
            q(&name)
        );
        // The facts ansible returns: the name's parts and Python's
        // `socket.getfqdn()` of the host name now (a reverse lookup of its
        // address: the first of the names found with a dot, else the first).
        let body = format!("{body}\n{FQDN}");
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, "hostname").with("name", name.clone());
        if !r.failed {
            let fqdn = out.get("fqdn").unwrap_or_default().trim().to_string();
            let domain = fqdn.split_once('.').map(|(_, d)| d).unwrap_or("");
            let mut f = serde_json::Map::new();
            let short = name.split('.').next().unwrap_or(&name);
            f.insert("ansible_hostname".into(), short.into());
            f.insert("ansible_nodename".into(), name.clone().into());
            f.insert("ansible_domain".into(), domain.into());
            f.insert("ansible_fqdn".into(), fqdn.into());
            r.ansible_facts = Some(f);
        }
        Ok(r)
    }
}
