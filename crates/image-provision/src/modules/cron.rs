//! `cron`: manages one job (under a `#Ansible: NAME` comment) or one
//! environment variable (`env: true`) of a user's crontab (read with
//! `crontab -l`, installed with `crontab FILE`) or of a `cron_file` (under
//! `/etc/cron.d` unless absolute; the job line then names the user), as
//! ansible's module does: new jobs go at the end, new variables at the top
//! (or after/before another, `insertafter`/`insertbefore`), a job found by
//! its exact line without a comment gets one. Returns `jobs` and `envs`
//! (the names found afterwards) and `cron_file`.

use async_trait::async_trait;
use serde_json::json;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::diff::Diff;
use crate::script::{q, read_content};

/// The comment that names a job.
const MARK: &str = "#Ansible: ";

/// The `cron` module.
pub struct Cron;

#[async_trait]
impl Module for Cron {
    fn name(&self) -> &'static str {
        "cron"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "user",
            "job",
            "value",
            "cron_file",
            "state",
            "backup",
            "minute",
            "hour",
            "day",
            "dom",
            "month",
            "weekday",
            "dow",
            "special_time",
            "disabled",
            "env",
            "insertafter",
            "insertbefore",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name"]
    }
    /// A probe: the check reads the crontab and writes nothing; an unchanged tab returns what a real run does.
    fn check_is_probe(
        &self,
        _args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str("name")?;
        let user = args.opt_str("user");
        let job = args.opt_str_any(&["job", "value"]);
        let present = args.choice("state", &["present", "absent"], "present")? == "present";
        let env = args.bool_or("env", false)?;
        let cron_file = args.opt_str("cron_file").map(|f| {
            if f.starts_with('/') {
                f
            } else {
                format!("/etc/cron.d/{f}")
            }
        });
        let time = |k: &[&str]| args.opt_str_any(k).unwrap_or_else(|| "*".into());
        let fields = [
            time(&["minute"]),
            time(&["hour"]),
            time(&["day", "dom"]),
            time(&["month"]),
            time(&["weekday", "dow"]),
        ];
        let special = args.opt_str("special_time");
        if let Some(s) = &special {
            let allowed = [
                "reboot", "yearly", "annually", "monthly", "weekly", "daily", "hourly",
            ];
            if !allowed.contains(&s.as_str()) {
                return Err(ModuleError::Arg(format!(
                    "`special_time` must be one of {}, got `{s}`",
                    allowed.join(", ")
                )));
            }
            if fields.iter().any(|f| f != "*") {
                return Ok(ModuleResult::fail(
                    "You cannot combine special_time with any of the time or day/date parameters.",
                ));
            }
        }
        if cron_file.as_deref() == Some("/etc/crontab") {
            return Ok(ModuleResult::fail(
                "Will not manage /etc/crontab via cron_file, see documentation.",
            ));
        }
        if present {
            if cron_file.is_some() && user.is_none() {
                return Ok(ModuleResult::fail(
                    "To use cron_file=... parameter you must specify user=... as well",
                ));
            }
            if job.is_none() {
                return Ok(ModuleResult::fail(
                    "You must specify 'job' to install a new cron job or variable",
                ));
            }
            let ins = args.get("insertafter").is_some() || args.get("insertbefore").is_some();
            if ins && !env {
                return Ok(ModuleResult::fail(
                    "Insertafter and insertbefore parameters are valid only with env=yes",
                ));
            }
        }
        let u = user
            .as_deref()
            .map(|u| format!("-u {} ", q(u)))
            .unwrap_or_default();
        let read = match &cron_file {
            Some(f) => crate::script::read_file_body(f),
            None => format!(
                "command -v crontab >/dev/null || fail 'Failed to find required executable \"crontab\"'\nif _t=$(crontab {u}-l 2>/dev/null && echo x); then echo @@exists=1; printf '@@content='; printf '%s' \"${{_t%x}}\" | base64 -w0; echo; else echo @@exists=0; fi"
            ),
        };
        let out = ctx.run_script(&read, None).await?;
        if let Some(f) = out.failed {
            return Ok(ModuleResult::fail(f));
        }
        let existing = read_content(&out).unwrap_or_default();
        let mut tab = Tab::read(&existing, cron_file.is_none());
        let mut changed = if env {
            if name.contains(' ') {
                return Ok(ModuleResult::fail("Invalid name for environment variable"));
            }
            let decl = format!("{name}=\"{}\"", job.clone().unwrap_or_default());
            match tab.set_env(&name, present.then_some(decl.as_str()), args) {
                Ok(c) => c,
                Err(msg) => return Ok(ModuleResult::fail(msg)),
            }
        } else if present {
            let line = job_line(
                &fields,
                special.as_deref(),
                cron_file.as_ref().and(user.as_deref()),
                job.as_deref().unwrap_or(""),
                args.bool_or("disabled", false)?,
            );
            tab.set_job(&name, Some(&line))
        } else {
            tab.set_job(&name, None)
        };
        if !changed && !tab.existing.is_empty() && !tab.existing.ends_with(['\n', '\r']) {
            changed = true;
        }
        let mut r = ModuleResult::changed(changed);
        r.data.insert("jobs".into(), json!(tab.names()));
        r.data.insert("envs".into(), json!(tab.env_names()));
        if let Some(f) = &cron_file {
            r.data.insert("cron_file".into(), json!(f));
        }
        let rendered = tab.render();
        if changed && ctx.diff {
            r.diff.push(Diff::new(
                cron_file.as_deref().unwrap_or("crontab"),
                tab.existing.clone(),
                rendered.clone(),
            ));
        }
        if !changed || ctx.check {
            return Ok(r);
        }
        // A cron_file left without any line is removed, as ansible does.
        let write = match &cron_file {
            Some(f) if !present && rendered.trim().is_empty() => format!("rm -f {}", q(f)),
            Some(f) => format!(
                "t=$(mktemp {dir}/.image-cli-cron.XXXXXX) || fail 'cannot write in {dir}'\ncat > \"$t\" && chmod 644 \"$t\" && mv -f \"$t\" {f} || {{ rm -f \"$t\"; fail 'writing {f} failed'; }}",
                dir = q(f.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d })),
                f = q(f)
            ),
            None => format!(
                "t=$(mktemp /tmp/crontab.XXXXXX) || fail 'cannot make a temporary file'\ncat > \"$t\"; chmod 644 \"$t\"; _o=$(crontab {u}\"$t\" 2>&1); _r=$?; rm -f \"$t\"; [ $_r = 0 ] || fail \"Unable to write crontab: $_o\""
            ),
        };
        let out = ctx.run_script(&write, Some(rendered.into_bytes())).await?;
        if let Some(f) = out.failed {
            return Ok(ModuleResult::fail(f));
        }
        Ok(r)
    }
}

/// The job's line: five time fields (or `@special`), the user for a
/// cron_file, the command; `#` in front when disabled.
fn job_line(
    fields: &[String; 5],
    special: Option<&str>,
    user: Option<&str>,
    job: &str,
    disabled: bool,
) -> String {
    let job = job.trim_matches(['\r', '\n']);
    let hash = if disabled { "#" } else { "" };
    let when = match special {
        Some(s) => format!("@{s}"),
        None => fields.join(" "),
    };
    match user {
        Some(u) => format!("{hash}{when} {u} {job}"),
        None => format!("{hash}{when} {job}"),
    }
}

/// A crontab's lines.
struct Tab {
    lines: Vec<String>,
    /// The content as read (the `crontab -l` header lines taken out).
    existing: String,
}

impl Tab {
    /// The lines of `text`; for a user crontab, the header `crontab`
    /// writes (`# DO NOT EDIT THIS FILE`, `# (/tmp/… installed on …)`,
    /// `# (Cron version …)`) among the first three lines is dropped.
    fn read(text: &str, user_tab: bool) -> Tab {
        let mut lines = Vec::new();
        let mut existing = text.to_string();
        for (i, l) in text.lines().enumerate() {
            let header = user_tab
                && i <= 2
                && (l.starts_with("# DO NOT EDIT THIS FILE - edit the master and reinstall.")
                    || (l.starts_with("# (/tmp/")
                        && l.contains("installed on")
                        && l.ends_with(')'))
                    || (l.starts_with("# (") && l.contains("version") && l.ends_with(')')));
            if header {
                for end in ["\n", "\r", ""] {
                    let with = format!("{l}{end}");
                    if let Some(at) = existing.find(&with) {
                        existing.replace_range(at..at + with.len(), "");
                        break;
                    }
                }
            } else {
                lines.push(l.to_string());
            }
        }
        Tab { lines, existing }
    }

    /// Sets (or with `None` removes) the job named `name`; true when the
    /// lines changed.
    fn set_job(&mut self, name: &str, line: Option<&str>) -> bool {
        let comment = format!("{MARK}{name}");
        let at = self
            .lines
            .iter()
            .position(|l| *l == comment)
            .filter(|i| *i + 1 < self.lines.len());
        match (at, line) {
            (Some(i), Some(new)) => {
                if self.lines[i + 1] == new {
                    return false;
                }
                self.lines[i + 1] = new.to_string();
                true
            }
            (Some(i), None) => {
                self.lines.drain(i..i + 2);
                true
            }
            (None, Some(new)) => {
                // The same line without its comment: name it.
                if let Some(j) = self.lines.iter().position(|l| l == new) {
                    if j == 0 || !self.lines[j - 1].starts_with(MARK) {
                        self.lines.insert(j, comment);
                        return true;
                    }
                    // A comment without a name (ansible writes `None`).
                    if self.lines[j - 1] == format!("{MARK}None") {
                        self.lines[j - 1] = comment;
                        return true;
                    }
                }
                self.lines.push(comment);
                self.lines.push(new.to_string());
                true
            }
            (None, None) => false,
        }
    }

    /// Sets (or removes) the variable `name`; `Err` when the variable to
    /// insert after/before is missing.
    fn set_env(&mut self, name: &str, decl: Option<&str>, args: &Args) -> Result<bool, String> {
        let prefix = format!("{name}=");
        let at = self.lines.iter().position(|l| l.starts_with(&prefix));
        match (at, decl) {
            (Some(i), Some(d)) => {
                if self.lines[i] == d {
                    return Ok(false);
                }
                self.lines.retain(|l| !l.starts_with(&prefix));
                self.lines.insert(i.min(self.lines.len()), d.to_string());
                Ok(true)
            }
            (Some(_), None) => {
                self.lines.retain(|l| !l.starts_with(&prefix));
                Ok(true)
            }
            (None, Some(d)) => {
                let after = args.opt_str("insertafter");
                let before = args.opt_str("insertbefore");
                let Some(other) = after.clone().or(before) else {
                    self.lines.insert(0, d.to_string());
                    return Ok(true);
                };
                let op = format!("{other}=");
                let Some(j) = self.lines.iter().position(|l| l.starts_with(&op)) else {
                    return Err(format!("Variable named '{other}' not found."));
                };
                let idx = if after.is_some() { j + 1 } else { j };
                self.lines.insert(idx, d.to_string());
                Ok(true)
            }
            (None, None) => Ok(false),
        }
    }

    fn names(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix(MARK).map(str::to_string))
            .collect()
    }

    fn env_names(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| {
                l.split_once('=')
                    .is_some_and(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
            })
            .filter_map(|l| l.split('=').next().map(str::to_string))
            .collect()
    }

    fn render(&self) -> String {
        let s = self.lines.join("\n");
        let s = s.trim_end_matches(['\r', '\n']);
        if s.is_empty() {
            String::new()
        } else {
            format!("{s}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(m: &str) -> [String; 5] {
        [m.into(), "*".into(), "*".into(), "*".into(), "*".into()]
    }

    #[test]
    fn a_job_is_added_named_updated_and_removed() {
        let head = "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n# (/tmp/crontab.x installed on Sat Dec  5 18:17:06 2026)\n# (Cron version -- $Id: crontab.c,v 2.13 1994/01/17 03:20:37 vixie Exp $)\n";
        let mut t = Tab::read(&format!("{head}MAILTO=x\n"), true);
        assert_eq!(t.existing, "MAILTO=x\n");
        let line = job_line(&fields("5"), None, None, "/bin/true\n", false);
        assert_eq!(line, "5 * * * * /bin/true");
        assert!(t.set_job("corpus job", Some(&line)));
        assert_eq!(
            t.render(),
            "MAILTO=x\n#Ansible: corpus job\n5 * * * * /bin/true\n"
        );
        assert!(!t.set_job("corpus job", Some(&line)));
        assert_eq!(t.names(), ["corpus job"]);
        assert_eq!(t.env_names(), ["MAILTO"]);
        assert!(t.set_job("corpus job", None));
        assert_eq!(t.render(), "MAILTO=x\n");
    }

    #[test]
    fn cron_files_name_the_user_and_special_times() {
        let l = job_line(&fields("*"), Some("reboot"), Some("root"), "x", true);
        assert_eq!(l, "#@reboot root x");
        let mut t = Tab::read("1 * * * * root x\n", false);
        assert!(t.set_job("n", Some("1 * * * * root x")));
        assert_eq!(t.render(), "#Ansible: n\n1 * * * * root x\n");
    }
}
