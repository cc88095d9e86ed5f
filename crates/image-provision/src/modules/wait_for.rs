//! `wait_for`: waits on the target for a TCP port to open/close, a path to
//! appear/disappear, or a regex in a file, with a timeout; the loop runs in
//! one remote script.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `wait_for` module.
pub struct WaitFor;

#[async_trait]
impl Module for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }
    fn one_exec(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "host",
            "port",
            "path",
            "state",
            "timeout",
            "delay",
            "sleep",
            "search_regex",
            "connect_timeout",
            "msg",
            "active_connection_states",
            "exclude_hosts",
        ]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        if ctx.check {
            // As ansible: no check-mode support, skipped.
            return Ok(ModuleResult::no_check_mode(self.name()));
        }
        let state = args.choice(
            "state",
            &["started", "stopped", "present", "absent", "drained"],
            "started",
        )?;
        let timeout = args.opt_i64("timeout")?.unwrap_or(300);
        let delay = args.opt_i64("delay")?.unwrap_or(0);
        let sleep = args.opt_i64("sleep")?.unwrap_or(1).max(1);
        let host = args.opt_str("host").unwrap_or_else(|| "127.0.0.1".into());
        let want_up = matches!(state.as_str(), "started" | "present");
        let test = if let Some(p) = args.opt_i64("port")? {
            format!(
                "timeout 2 bash -c {} >/dev/null 2>&1",
                q(&format!("exec 3<>/dev/tcp/{host}/{p}"))
            )
        } else if let Some(path) = args.opt_str("path") {
            match args.opt_str("search_regex") {
                Some(re) => format!("grep -Eq {} {} 2>/dev/null", q(&re), q(&path)),
                None => format!("[ -e {} ]", q(&path)),
            }
        } else {
            // Only a delay/timeout: sleep.
            "false".to_string()
        };
        let neg = if want_up { "" } else { "! " };
        let body = if test == "false" {
            format!("sleep {delay}\nend=$(( $(date +%s) + {timeout} ))\nwhile :; do [ $(date +%s) -ge $end ] && break; sleep {sleep}; done\nreturn 0")
        } else {
            // A condition met at once (a re-run's usual case) costs no
            // `sleep` and no `date` process: elapsed is the delay then.
            let pause = if delay > 0 {
                format!("sleep {delay}\n")
            } else {
                String::new()
            };
            let msg = args
                .opt_str("msg")
                .unwrap_or_else(|| format!("Timeout when waiting for {state} condition"));
            format!(
                "{pause}if {neg}{test}; then echo @@elapsed={delay}; return 0; fi\n\
                 end=$(( $(date +%s) + {timeout} - {delay} ))\n\
                 while :; do [ $(date +%s) -ge $end ] && break; sleep {sleep}; if {neg}{test}; then echo @@elapsed=$(( $(date +%s) - end + {timeout} )); return 0; fi; done\n\
                 fail {}",
                q(&msg)
            )
        };
        let path = args.opt_str("path");
        let body = match &path {
            Some(p) => format!("wf() {{\n{body}\n}}\nwf\nfattrs {}", q(p)),
            None => body,
        };
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, "wait_for");
        r.changed = false;
        if let Some(e) = out.get("elapsed") {
            r.data
                .insert("elapsed".into(), e.parse::<i64>().unwrap_or(0).into());
        }
        // ansible's return keys; with a `path`, its file keys (and `state`
        // the file's).
        let port = args.opt_i64("port")?;
        r.data.insert("state".into(), state.into());
        r.data.insert("port".into(), port.into());
        r.data.insert("path".into(), path.clone().into());
        r.data
            .insert("search_regex".into(), args.opt_str("search_regex").into());
        r.data.insert("match_groups".into(), serde_json::json!([]));
        r.data
            .insert("match_groupdict".into(), serde_json::json!({}));
        if path.is_some() && !r.failed {
            super::path_info::insert(&out, &mut r.data);
        }
        Ok(r)
    }
}
