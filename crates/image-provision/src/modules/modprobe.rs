//! `modprobe`: loads or unloads a kernel module and, with `persistent`,
//! keeps it in `/etc/modules-load.d/<name>.conf` (and its `params` in
//! `/etc/modprobe.d/<name>.conf`). In a container, where modules cannot be
//! loaded, a module that is not loaded fails with a message saying so —
//! unless `persistent: present`, in which case the files are written and
//! loading is left to the next boot (reported as a warning).

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `modprobe` module.
pub struct Modprobe;

#[async_trait]
impl Module for Modprobe {
    fn name(&self) -> &'static str {
        "modprobe"
    }
    fn params(&self) -> &'static [&'static str] {
        &["name", "state", "params", "persistent"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let params = args.opt_str("params").unwrap_or_default();
        let persistent =
            args.choice("persistent", &["disabled", "present", "absent"], "disabled")?;
        let sys = name.replace('-', "_");
        let mut body = format!(
            "n={}; loaded=0; [ -d /sys/module/{} ] && loaded=1\nincontainer=0; {{ systemd-detect-virt -cq 2>/dev/null || [ -f /run/.containerenv ] || [ -f /.dockerenv ]; }} && incontainer=1\n",
            q(&name),
            q(&sys)
        );
        if state == "present" {
            body.push_str(&format!(
                r#"if [ $loaded = 0 ]; then
  if [ $incontainer = 1 ] && [ {p} = 1 ]; then echo "@@warn=module $n is not loaded and cannot be loaded in a container; it will be loaded at boot from /etc/modules-load.d/$n.conf"
  elif [ "$CHECK" = 1 ]; then C=1; [ $incontainer = 1 ] && echo "@@warn=module $n is not loaded and cannot be loaded in a container"
  else C=1; _o=$(modprobe "$n" {params} 2>&1) || {{ [ $incontainer = 1 ] && fail "modprobe $n failed: $_o (modules cannot be loaded from a container: load $n on the host, or use persistent: present to load it at boot)"; fail "modprobe $n failed: $_o"; }}; fi
fi
"#,
                p = u8::from(persistent == "present"),
                params = params.split_whitespace().map(q).collect::<Vec<_>>().join(" ")
            ));
        } else {
            body.push_str("if [ $loaded = 1 ]; then C=1; do_ modprobe -r \"$n\"; fi\n");
        }
        match persistent.as_str() {
            "present" => {
                body.push_str(&format!("[ \"$CHECK\" = 1 ] || mkdir -p /etc/modules-load.d /etc/modprobe.d || fail 'cannot create /etc/modules-load.d'\nputc /etc/modules-load.d/{f}.conf {n}\n", f = name, n = q(&name)));
                if params.is_empty() {
                    body.push_str(&format!("rmf /etc/modprobe.d/{name}.conf\n"));
                } else {
                    body.push_str(&format!(
                        "putc /etc/modprobe.d/{name}.conf {}\n",
                        q(&format!("options {name} {params}"))
                    ));
                }
            }
            "absent" => body.push_str(&format!(
                "rmf /etc/modules-load.d/{name}.conf\nrmf /etc/modprobe.d/{name}.conf\n"
            )),
            _ => {}
        }
        if name.contains('/') || name.contains(' ') {
            return Err(ModuleError::Arg(format!("bad module name `{name}`")));
        }
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, &name);
        r.diff.clear();
        if let Some(w) = out.get("warn") {
            r.data.insert("warnings".into(), serde_json::json!([w]));
            if !r.failed {
                r.msg = Some(w.to_string());
            }
        }
        r.data.insert("name".into(), name.into());
        Ok(r)
    }
}
