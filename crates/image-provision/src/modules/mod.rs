//! The modules: one file per ansible module, all behind the [`Module`] trait.
//!
//! A module declares the parameters it accepts (checked when the step list is
//! parsed, before anything runs) and runs with rendered arguments against a
//! [`ModuleCtx`]. Modules that touch the target do their check-and-apply in
//! one generated `sh` script (see [`crate::script`]), so an idempotent task
//! costs one round trip.

use std::path::PathBuf;

use async_trait::async_trait;
use image_core::target::{Become, Exec, Output, Target, TargetError};
use serde_json::{Map, Value as Json};

use crate::diff::Diff;
use crate::script::{self, ScriptOut};
use crate::template::Templater;

pub mod apt;
pub mod apt_key;
pub mod apt_repository;
pub mod assemble;
pub mod assert;
pub mod blockinfile;
pub mod command;
pub mod copy;
pub mod copy_dir;
pub mod cron;
pub mod deb822_repository;
pub mod debug;
pub mod dnf;
pub mod dpkg_selections;
pub mod fail;
pub mod fetch;
pub mod file;
pub mod find;
pub mod get_url;
pub mod getent;
pub mod group;
pub mod hostname;
pub mod http;
pub mod include_vars;
pub mod ini_file;
pub mod iptables;
pub mod iptables_state;
pub mod lineinfile;
pub mod modprobe;
pub mod mount;
pub mod package;
pub mod package_facts;
pub mod path_info;
pub mod pause;
pub mod pip;
pub mod raw;
pub mod reboot;
pub mod refuse;
pub mod replace;
pub mod rpm_key;
pub mod script_run;
pub mod service_facts;
pub mod set_fact;
pub mod shell;
pub mod slurp;
pub mod stat;
pub mod sysctl;
pub mod systemd;
pub mod tempfile;
pub mod template;
pub mod unarchive;
pub mod unsupported;
pub mod uri;
pub mod uri_fast;
pub mod user;
pub mod wait_for;
pub mod yum_repository;

/// How a module takes a free-form string (`command: echo hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeForm {
    /// `key=value key2="quoted value"` only.
    KeyValue,
    /// The string is the command (`_raw_params`); leading `key=value` words
    /// naming known parameters (`creates=`, `chdir=`) are taken out.
    Command,
}

/// One ansible module.
#[async_trait]
pub trait Module: Send + Sync {
    /// The short name (`apt`, `copy`).
    fn name(&self) -> &'static str;

    /// The parameters it accepts (aliases included). `_raw_params` is
    /// accepted by [`FreeForm::Command`] modules.
    fn params(&self) -> &'static [&'static str];

    /// Parameters that must be given (checked up front when args are static).
    fn required(&self) -> &'static [&'static str] {
        &[]
    }

    /// How a free-form string is read.
    fn free_form(&self) -> FreeForm {
        FreeForm::KeyValue
    }

    /// True when any parameter name is fine (`set_fact`).
    fn any_params(&self) -> bool {
        false
    }

    /// True when a check-mode run with these arguments is a pure probe:
    /// it changes nothing on the host, and when it reports no change and
    /// no failure, a real run would change nothing either (every effect
    /// of a real run counts as a change) and return the same result. A
    /// loop of such items is checked in one round trip (the engine's
    /// `batch`). `facts` are the host's (the package manager). False by
    /// default.
    fn check_is_probe(&self, _args: &Args, _facts: &Map<String, Json>) -> bool {
        false
    }

    /// True for modules that report a change on every run that is not
    /// skipped (`command`, `shell`, `raw`, `script`: they run what they are
    /// told). Such a change does not mean the host was out of shape, so it
    /// does not stop the engine from checking the tasks ahead in one batch
    /// (see `engine::lookahead`). False by default.
    fn always_changes(&self) -> bool {
        false
    }

    /// True when a real run sends at most one command to the host and
    /// nothing else (no file moved, nothing read after it): such a task
    /// carries the checks of the tasks after it in its own exec, run
    /// after it (see `engine::fuse`). False by default.
    fn one_exec(&self) -> bool {
        false
    }

    /// True when a run reads variables beyond its rendered arguments
    /// (`template` renders its file with all of them): a check made with
    /// other variables says nothing about it, even with the same
    /// arguments (see `engine::lookahead`). False by default.
    fn reads_vars(&self) -> bool {
        false
    }

    /// Runs with rendered arguments. A failure of the managed thing is a
    /// result with `failed: true`; an `Err` is a bad argument or a broken
    /// connection.
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError>;
}

/// Every module, by short name; FQCN prefixes are stripped by [`lookup`].
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    let short = name
        .strip_prefix("ansible.builtin.")
        .or_else(|| name.strip_prefix("ansible.posix."))
        .or_else(|| name.strip_prefix("community.general."))
        .or_else(|| name.strip_prefix("ansible.legacy."))
        .or_else(|| name.strip_prefix("amazon.aws."))
        .unwrap_or(name);
    let m: &'static dyn Module = match short {
        "apt" => &apt::Apt,
        "apt_key" => &apt_key::AptKey,
        "apt_repository" => &apt_repository::AptRepository,
        "assemble" => &assemble::Assemble,
        "assert" => &assert::Assert,
        "blockinfile" => &blockinfile::BlockInFile,
        "command" => &command::Command,
        "copy" => &copy::Copy,
        "cron" => &cron::Cron,
        "deb822_repository" => &deb822_repository::Deb822Repository,
        "debug" => &debug::Debug,
        "dnf" | "yum" => &dnf::Dnf,
        "dpkg_selections" => &dpkg_selections::DpkgSelections,
        "fail" => &fail::Fail,
        "fetch" => &fetch::Fetch,
        "file" => &file::File,
        "find" => &find::Find,
        "get_url" => &get_url::GetUrl,
        "getent" => &getent::Getent,
        "group" => &group::Group,
        "hostname" => &hostname::Hostname,
        "include_vars" => &include_vars::IncludeVars,
        "ini_file" => &ini_file::IniFile,
        "iptables" => &iptables::Iptables,
        "iptables_state" => &iptables_state::IptablesState,
        "lineinfile" => &lineinfile::LineInFile,
        "modprobe" => &modprobe::Modprobe,
        "mount" => &mount::Mount,
        "package" => &package::Package,
        "package_facts" => &package_facts::PackageFacts,
        "pause" => &pause::Pause,
        "pip" => &pip::Pip,
        "raw" => &raw::Raw,
        "reboot" => &reboot::Reboot,
        "replace" => &replace::Replace,
        "rpm_key" => &rpm_key::RpmKey,
        "script" => &script_run::Script,
        "service_facts" => &service_facts::ServiceFacts,
        "set_fact" => &set_fact::SetFact,
        "shell" => &shell::Shell,
        "slurp" => &slurp::Slurp,
        "stat" => &stat::Stat,
        "sysctl" => &sysctl::Sysctl,
        "systemd" | "systemd_service" | "service" => &systemd::Systemd,
        "template" => &template::Template,
        "tempfile" => &tempfile::Tempfile,
        "unarchive" => &unarchive::Unarchive,
        "uri" => &uri::Uri,
        "redhat_subscription" => &unsupported::REDHAT_SUBSCRIPTION,
        "rhsm_repository" => &unsupported::RHSM_REPOSITORY,
        "user" => &user::User,
        "wait_for" => &wait_for::WaitFor,
        "yum_repository" => &yum_repository::YumRepository,
        _ => return None,
    };
    Some(m)
}

/// All short module names, for "did you mean".
pub const NAMES: &[&str] = &[
    "apt",
    "apt_key",
    "apt_repository",
    "assemble",
    "assert",
    "blockinfile",
    "command",
    "copy",
    "cron",
    "deb822_repository",
    "debug",
    "dnf",
    "yum",
    "dpkg_selections",
    "fail",
    "fetch",
    "file",
    "find",
    "get_url",
    "getent",
    "group",
    "hostname",
    "include_vars",
    "ini_file",
    "iptables",
    "iptables_state",
    "lineinfile",
    "modprobe",
    "mount",
    "package",
    "package_facts",
    "pause",
    "pip",
    "raw",
    "reboot",
    "replace",
    "rpm_key",
    "script",
    "service_facts",
    "set_fact",
    "shell",
    "slurp",
    "stat",
    "sysctl",
    "systemd",
    "systemd_service",
    "service",
    "template",
    "tempfile",
    "unarchive",
    "uri",
    "redhat_subscription",
    "rhsm_repository",
    "user",
    "wait_for",
    "yum_repository",
];

/// What a module runs with.
pub struct ModuleCtx<'a> {
    /// The host.
    pub target: &'a dyn Target,
    /// sudo, when the task becomes.
    pub become_: Option<Become>,
    /// `environment:` of the task.
    pub env: Vec<(String, String)>,
    /// Check mode: report, change nothing.
    pub check: bool,
    /// A check the engine makes ahead of a real (not check-mode) run, to
    /// stand for it when nothing would change ([`Module::check_is_probe`];
    /// `engine::batch`): a module whose check-mode words differ from its
    /// real run's (`command`'s "Would not run") gives the real run's
    /// result then.
    pub probe: bool,
    /// Compute diffs.
    pub diff: bool,
    /// Templates (for `template`, `assert`, `debug`).
    pub templates: &'a Templater,
    /// The task's variables.
    pub vars: &'a crate::template::Ctx,
    /// Directories searched for `src:` of copy/template/unarchive, in order
    /// (role `files`/`templates` first, then the step list's directory).
    pub search: &'a [PathBuf],
    /// Host facts (`ansible_facts`).
    pub facts: &'a Map<String, Json>,
}

impl ModuleCtx<'_> {
    /// Runs a script through `sh` with the task's become and environment.
    pub async fn sh(&self, script: &str, stdin: Option<Vec<u8>>) -> Result<Output, ModuleError> {
        self.sh_on(script, stdin, false).await
    }

    /// [`ModuleCtx::sh`], on a pseudo-terminal when `tty` (as ansible runs
    /// `raw` and `script`: `ssh -tt`; see [`Exec::tty`]).
    pub async fn sh_on(
        &self,
        script: &str,
        stdin: Option<Vec<u8>>,
        tty: bool,
    ) -> Result<Output, ModuleError> {
        self.exec(script, stdin, tty, false).await
    }

    async fn exec(
        &self,
        script: &str,
        stdin: Option<Vec<u8>>,
        tty: bool,
        subshell: bool,
    ) -> Result<Output, ModuleError> {
        let mut e = Exec::new(script.to_string()).become_opt(self.become_.clone());
        e.env = self.env.clone();
        e.stdin = stdin;
        e.tty = tty;
        e.subshell = subshell && !script.contains("$$");
        Ok(self.target.exec(&e).await?)
    }

    /// Runs a generated script (with [`script::PRELUDE`]) and parses its
    /// `@@` lines.
    pub async fn run_script(
        &self,
        body: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<ScriptOut, ModuleError> {
        let s = script::wrap(body, self.check, self.diff);
        // A script of our own: a become shell may run it in a subshell.
        let out = self.exec(&s, stdin, false, true).await?;
        Ok(ScriptOut::parse(&out))
    }

    /// Runs a script that downloads with [`script::DL`]'s `dl`. When the
    /// target has no downloader (`@@nodl=URL`), the controller fetches the
    /// URL ([`http`]), uploads it to a temporary file on the target and
    /// runs the script again with it in `DL_CACHE` (at most 4 URLs); the
    /// temporary files are removed afterwards. `stdin` is sent on every run.
    pub async fn run_script_dl(
        &self,
        body: &str,
        stdin: Option<Vec<u8>>,
        req: &http::Request,
    ) -> Result<ScriptOut, ModuleError> {
        let mut cache: Vec<(String, String)> = Vec::new();
        let result = async {
            for _ in 0..5 {
                let lines: Vec<String> =
                    cache.iter().map(|(u, p)| format!("{u}\t{p}")).collect();
                let full = format!(
                    "{}DL_CACHE={}\n{body}",
                    script::DL,
                    script::q(&lines.join("\n"))
                );
                let out = self.run_script(&full, stdin.clone()).await?;
                let Some(url) = out.get("nodl").map(str::to_string) else {
                    return Ok(out);
                };
                if cache.iter().any(|(u, _)| *u == url) || cache.len() >= 4 {
                    return Ok(out);
                }
                let r = http::send(&http::Request {
                    url: url.clone(),
                    ..req.clone()
                })
                .await;
                let resp = match r {
                    Ok(resp) if (200..300).contains(&resp.status) => resp,
                    Ok(resp) => {
                        let mut o = out.clone();
                        o.failed = Some(format!(
                            "Request failed (from the controller: the target has no curl, wget or python3): HTTP Error {}: {} ({url})",
                            resp.status, resp.reason
                        ));
                        return Ok(o);
                    }
                    Err(e) => {
                        let mut o = out.clone();
                        o.failed = Some(format!(
                            "{e} (from the controller: the target has no curl, wget or python3) ({url})"
                        ));
                        return Ok(o);
                    }
                };
                let up = self
                    .sh(
                        "t=$(mktemp /tmp/.image-cli-dl.XXXXXX) && cat > \"$t\" && echo \"$t\"",
                        Some(resp.body),
                    )
                    .await?;
                if !up.success() {
                    return Err(ModuleError::Arg(format!(
                        "uploading {url} to the target failed: {}",
                        up.stderr_str().trim()
                    )));
                }
                cache.push((url, up.stdout_str().trim().to_string()));
            }
            Err(ModuleError::Arg("too many downloads".into()))
        }
        .await;
        if !cache.is_empty() {
            let files: Vec<String> = cache.iter().map(|(_, p)| script::q(p)).collect();
            let _ = self.sh(&format!("rm -f {}", files.join(" ")), None).await;
        }
        result
    }

    /// Finds `src` in the search path (absolute paths as they are).
    pub fn find_local(&self, src: &str, sub: &str) -> Result<PathBuf, ModuleError> {
        let p = PathBuf::from(src);
        if p.is_absolute() {
            return Ok(p);
        }
        for dir in self.search {
            for cand in [dir.join(sub).join(src), dir.join(src)] {
                if cand.exists() {
                    return Ok(cand);
                }
            }
        }
        Err(ModuleError::Arg(format!(
            "could not find `{src}` in {}",
            self.search
                .iter()
                .map(|d| d.join(sub).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// The value of a fact (`os_family`).
    pub fn fact(&self, k: &str) -> &str {
        self.facts.get(k).and_then(Json::as_str).unwrap_or("")
    }
}

/// What a module did.
#[derive(Debug, Clone, Default)]
pub struct ModuleResult {
    /// Something changed (or would, in check mode).
    pub changed: bool,
    /// The managed thing failed.
    pub failed: bool,
    /// Not run (command with `creates` in check mode, ...).
    pub skipped: bool,
    /// A message.
    pub msg: Option<String>,
    /// What changed, for `--diff`.
    pub diff: Vec<Diff>,
    /// Module-specific return values (rc, stdout, stat, ...).
    pub data: Map<String, Json>,
    /// Variables set on the host (set_fact).
    pub facts: Option<Map<String, Json>>,
    /// Facts added to `ansible_facts` (package_facts, service_facts).
    pub ansible_facts: Option<Map<String, Json>>,
    /// Variables loaded by include_vars.
    pub include_vars: Option<Map<String, Json>>,
    /// Set by a check-mode run that saw the real run would do something
    /// it does not count as a change (apt installing python3-apt first):
    /// its result cannot stand for the real run's (see
    /// [`Module::check_is_probe`]).
    pub not_a_probe: bool,
}

impl ModuleResult {
    /// Unchanged.
    pub fn ok() -> Self {
        Self::default()
    }

    /// Changed or not.
    pub fn changed(changed: bool) -> Self {
        ModuleResult {
            changed,
            ..Default::default()
        }
    }

    /// Failed with a message.
    pub fn fail(msg: impl Into<String>) -> Self {
        ModuleResult {
            failed: true,
            msg: Some(msg.into()),
            ..Default::default()
        }
    }

    /// Skipped, with a message.
    pub fn skipped(msg: impl Into<String>) -> Self {
        ModuleResult {
            skipped: true,
            msg: Some(msg.into()),
            ..Default::default()
        }
    }

    /// ansible's result under check mode for a module without check-mode
    /// support (`name`: the module's): skipped.
    pub fn no_check_mode(name: &str) -> Self {
        Self::skipped(format!(
            "remote module ({name}) does not support check mode"
        ))
    }

    /// With a message.
    pub fn msg(mut self, m: impl Into<String>) -> Self {
        self.msg = Some(m.into());
        self
    }

    /// With a return value.
    pub fn with(mut self, k: &str, v: impl Into<Json>) -> Self {
        self.data.insert(k.to_string(), v.into());
        self
    }

    /// From a script's result lines: `@@changed`, `@@fail msg`, `@@before`.
    pub fn from_script(out: &ScriptOut, path: &str) -> Self {
        let mut r = ModuleResult {
            changed: out.changed,
            failed: out.failed.is_some(),
            msg: out.failed.clone(),
            ..Default::default()
        };
        if let (Some(b), Some(a)) = (&out.before, &out.after) {
            r.diff.push(Diff::new(path, b.clone(), a.clone()));
        }
        r
    }
}

/// Why a module could not run.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// A bad or missing argument.
    #[error("{0}")]
    Arg(String),
    /// The target failed (connection, sudo, ...).
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// Rendered arguments with typed getters.
#[derive(Debug, Clone, Default)]
pub struct Args(pub Map<String, Json>);

impl Args {
    /// The raw value.
    pub fn get(&self, k: &str) -> Option<&Json> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    /// The first of several names (aliases) that is given.
    pub fn get_any(&self, ks: &[&str]) -> Option<&Json> {
        ks.iter().find_map(|k| self.get(k))
    }

    /// A string (numbers and booleans as text).
    pub fn opt_str(&self, k: &str) -> Option<String> {
        self.get(k).map(json_to_string)
    }

    /// A string from any of the aliases.
    pub fn opt_str_any(&self, ks: &[&str]) -> Option<String> {
        self.get_any(ks).map(json_to_string)
    }

    /// A required string.
    pub fn str(&self, k: &str) -> Result<String, ModuleError> {
        self.opt_str(k)
            .ok_or_else(|| ModuleError::Arg(format!("missing required argument `{k}`")))
    }

    /// A required string from any of the aliases.
    pub fn str_any(&self, ks: &[&str]) -> Result<String, ModuleError> {
        self.opt_str_any(ks)
            .ok_or_else(|| ModuleError::Arg(format!("missing required argument `{}`", ks[0])))
    }

    /// A boolean (ansible spellings), `default` when absent.
    pub fn bool_or(&self, k: &str, default: bool) -> Result<bool, ModuleError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => json_bool(v)
                .ok_or_else(|| ModuleError::Arg(format!("`{k}` must be a boolean, got {v}"))),
        }
    }

    /// An integer.
    pub fn opt_i64(&self, k: &str) -> Result<Option<i64>, ModuleError> {
        match self.get(k) {
            None => Ok(None),
            Some(Json::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| ModuleError::Arg(format!("`{k}` must be an integer"))),
            Some(Json::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ModuleError::Arg(format!("`{k}` must be an integer, got `{s}`"))),
            Some(v) => Err(ModuleError::Arg(format!(
                "`{k}` must be an integer, got {v}"
            ))),
        }
    }

    /// A list: a YAML list, or a comma-separated string.
    pub fn list(&self, k: &str) -> Vec<String> {
        match self.get(k) {
            None => Vec::new(),
            Some(Json::Array(a)) => a.iter().map(json_to_string).collect(),
            Some(v) => json_to_string(v)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    /// A list from any alias.
    pub fn list_any(&self, ks: &[&str]) -> Vec<String> {
        ks.iter()
            .find(|k| self.get(k).is_some())
            .map(|k| self.list(k))
            .unwrap_or_default()
    }

    /// A file mode as octal text without leading zeros (`644`, `1777`);
    /// accepts `0644`, `'0644'`, `644` (YAML 1.2 reads `0644` as decimal
    /// 644, which we read back as the octal the user wrote) and symbolic
    /// modes, which are passed to chmod as they are.
    pub fn mode(&self, k: &str) -> Result<Option<String>, ModuleError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let s = json_to_string(v);
        let s = s.trim();
        if s == "preserve" {
            return Ok(None);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let oct = u32::from_str_radix(s, 8)
                .map_err(|_| ModuleError::Arg(format!("`{k}`: `{s}` is not an octal mode")))?;
            return Ok(Some(format!("{oct:o}")));
        }
        if s.chars().all(|c| "ugoa+-=rwxXst,".contains(c)) && !s.is_empty() {
            return Ok(Some(s.to_string()));
        }
        Err(ModuleError::Arg(format!("`{k}`: `{s}` is not a file mode")))
    }

    /// One of the allowed values, `default` when absent.
    pub fn choice(&self, k: &str, allowed: &[&str], default: &str) -> Result<String, ModuleError> {
        let v = self.opt_str(k).unwrap_or_else(|| default.to_string());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(ModuleError::Arg(format!(
                "`{k}` must be one of {}, got `{v}`",
                allowed.join(", ")
            )))
        }
    }
}

/// A JSON scalar as text (strings without quotes).
pub fn json_to_string(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Python's `str.splitlines()`, which ansible uses for `stdout_lines` and
/// `stderr_lines`: breaks at `\n`, `\r\n`, `\r` and the other Unicode line
/// boundaries; no empty last line for a trailing break.
pub fn splitlines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Ansible's boolean conversion.
pub fn json_bool(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => Some(n.as_f64() != Some(0.0)),
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "on" | "true" | "1" | "t" => Some(true),
            "no" | "n" | "off" | "false" | "0" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a file on the target, edits it locally, writes it back only if
/// the content (or mode/ownership) differs: one round trip when nothing
/// changes, two when something does. `edit` gets the current content
/// (`None` when the file is absent) and returns the new one, or `None` to
/// leave the file as it is (absent stays absent).
pub async fn edit_file(
    ctx: &ModuleCtx<'_>,
    spec: &script::FileSpec,
    edit: impl FnOnce(Option<&str>) -> Result<Option<String>, String>,
) -> Result<ModuleResult, ModuleError> {
    let out = ctx
        .run_script(&script::read_file_body(&spec.dest), None)
        .await?;
    if let Some(f) = &out.failed {
        return Ok(ModuleResult::fail(f.clone()));
    }
    let before = script::read_content(&out);
    let after = match edit(before.as_deref()) {
        Ok(a) => a,
        Err(msg) => return Ok(ModuleResult::fail(msg)),
    };
    let mut unchanged = ModuleResult::ok();
    path_info::insert(&out, &mut unchanged.data);
    let Some(after) = after else {
        return Ok(unchanged);
    };
    let same = before.as_deref() == Some(after.as_str());
    if same
        && out
            .get("stat")
            .is_some_and(|s| script::stat_matches(s, spec))
    {
        return Ok(unchanged);
    }
    write_content(ctx, spec, after.as_bytes(), before).await
}

/// Writes `content` to `spec.dest` with [`script::write_file_body`] (one
/// round trip), with a diff from `known_before` or the script's `@@before`.
pub async fn write_content(
    ctx: &ModuleCtx<'_>,
    spec: &script::FileSpec,
    content: &[u8],
    known_before: Option<String>,
) -> Result<ModuleResult, ModuleError> {
    let body = script::write_file_body(spec, &script::sha256_hex(content));
    let out = ctx.run_script(&body, Some(content.to_vec())).await?;
    let mut r = ModuleResult::from_script(&out, &spec.dest);
    if out.changed && ctx.diff && out.failed.is_none() {
        let before = known_before.or(out.before.clone()).unwrap_or_default();
        if let Ok(after) = std::str::from_utf8(content) {
            if before != after {
                r.diff = vec![Diff::new(&spec.dest, before, after)];
            }
        }
    }
    // The file written (`dest/<name>` when `dest` is a directory).
    let dest = out.get("dest").unwrap_or(&spec.dest).to_string();
    r.data.insert("dest".into(), Json::String(dest.clone()));
    if !r.changed {
        r.data.insert("path".into(), Json::String(dest));
    }
    path_info::insert(&out, &mut r.data);
    if let Some(b) = out.get("backup_file") {
        r.data
            .insert("backup_file".into(), Json::String(b.to_string()));
    }
    r.data
        .insert("checksum".into(), Json::String(sha1_hex(content)));
    r.data
        .insert("md5sum".into(), Json::String(md5_hex(content)));
    Ok(r)
}

/// ansible's `msg` of a file-editing module (lineinfile, blockinfile,
/// replace): the content message, plus the attribute note when the task
/// changed with no content message (only mode or ownership changed).
pub fn attrs_msg(content_msg: &str, changed: bool) -> String {
    if changed && content_msg.is_empty() {
        "ownership, perms or SE linux context changed".to_string()
    } else {
        content_msg.to_string()
    }
}

/// The sha1 of some bytes as hex (ansible's `checksum`).
pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The md5 of some bytes as hex (ansible's `md5sum`).
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when each of the mode arguments `keys` is absent or octal: a
/// symbolic mode (`u+x`) is only seen to change by applying it, so a
/// check-mode run cannot tell (see [`Module::check_is_probe`]).
pub fn octal_modes(args: &Args, keys: &[&str]) -> bool {
    keys.iter().all(|k| match args.mode(k) {
        Ok(None) => true,
        Ok(Some(m)) => m.bytes().all(|b| b.is_ascii_digit()),
        Err(_) => false,
    })
}

/// The common file attributes of a module's arguments.
pub fn file_spec(args: &Args, dest: String) -> Result<script::FileSpec, ModuleError> {
    Ok(script::FileSpec {
        basename: None,
        dest,
        mode: args.mode("mode")?,
        owner: args.opt_str("owner"),
        group: args.opt_str("group"),
        backup: args.bool_or("backup", false)?,
        force: args.bool_or("force", true)?,
        validate: args.opt_str("validate"),
        unsafe_writes: args.bool_or("unsafe_writes", false)?,
    })
}
