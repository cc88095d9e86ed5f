//! `modprobe`: loads or unloads a kernel module and, with `persistent`,
//! keeps it in `/etc/modules-load.d/<name>.conf` (and its `params` in
//! `/etc/modprobe.d/<name>.conf`; `persistent: absent` comments their lines
//! out, as ansible's). In a container, where modules cannot be
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
  else C=1; _o=$(modprobe "$n" {params} 2>&1 >/dev/null) || {{ _rc=$?; [ $incontainer = 1 ] && fail "modprobe $n failed: $_o (modules cannot be loaded from a container: load $n on the host, or use persistent: present to load it at boot)"; echo "@@rc=$_rc"; printf '@@stderr64=%s\n' "$(printf '%s\n' "$_o" | base64 -w0)"; fail "$_o"; }}; fi
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
            // As ansible's: the lines naming the module (and its
            // `options` lines) are commented out in every file; the files
            // stay (rewritten as it does: lines joined with an extra "\n").
            "absent" => body.push_str(&format!(
                r##"comment_out() {{ for f in "$1"/*; do [ -f "$f" ] || continue; grep -qE "$2" "$f" || continue; C=1; before "$f"; [ "$CHECK" = 1 ] && continue
  awk -v re="$2" 'NR>1 {{ printf "\n" }} {{ if ($0 ~ re) printf "#%s\n", $0; else printf "%s\n", $0 }}' "$f" >"$f.tb-new" && cat "$f.tb-new" >"$f" && rm -f "$f.tb-new" || fail "rewriting $f failed"; done; }}
comment_out /etc/modules-load.d {m}
comment_out /etc/modprobe.d {o}
"##,
                m = q(&format!("^ *{name} *([#;].*)?$")),
                o = q(&format!("^options {name} [A-Za-z0-9_]+=[^[:space:]]+ *([#;].*)?$"))
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
        // A failed modprobe: its exit status and stderr, which is also the
        // message (as ansible's `fail_json(msg=err, rc=rc, ...)`).
        if let Some(rc) = out.get("rc").and_then(|v| v.parse::<i64>().ok()) {
            use base64::Engine as _;
            let stderr = out
                .get("stderr64")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            r.data.insert("rc".into(), rc.into());
            r.data.insert("stdout".into(), "".into());
            r.data.insert("stderr".into(), stderr.clone().into());
            r.msg = Some(stderr);
        }
        r.data.insert("name".into(), name.into());
        r.data.insert("params".into(), params.into());
        r.data.insert("state".into(), state.into());
        Ok(r)
    }
}
