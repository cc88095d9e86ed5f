//! goss resources: one file per resource type, all behind [`Resource`].
//!
//! A resource type knows its gossfile key (`kernel-param`), the name goss
//! prints (`KernelParam`), its testable properties and its settings, and how
//! to observe the state of *all* resources of its type on the target: a
//! [`Plan`] of shell sections (one script for all `file`s, one `dpkg-query`
//! / `rpm -q` for all `package`s, one `systemctl show` for all `service`s,
//! one section per `command` and `http` request) that the runner gathers
//! with the other types' into one exec ([`crate::gather`]). Scripts use
//! POSIX sh, coreutils and what Debian, Ubuntu and AL2023 ship; nothing is
//! installed on the target.
//!
//! The runner compares each property's matcher with the observed value, so
//! a resource only turns target output into values.
//!
//! `gossfile` is not observed: [`gossfile`] expands includes when a
//! gossfile is loaded.

pub mod addr;
pub mod command;
pub mod dns;
pub mod file;
pub mod gossfile;
pub mod group;
pub mod http;
pub mod interface;
pub mod kernel_param;
pub mod matching;
pub mod mount;
pub mod package;
pub mod port;
pub mod process;
pub mod service;
pub mod user;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use image_core::diag::Diagnostic;
use std::sync::atomic::{AtomicUsize, Ordering};

use image_core::target::{Become, Exec, Target, TargetError};
use serde_json::Value;

use crate::gather::Plan;
use crate::matcher::Matcher;

/// A testable property of a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// The gossfile key (`exit-status`).
    pub name: &'static str,
    /// A text property: strings in lists are line patterns.
    pub text: bool,
}

impl Property {
    /// A value property.
    pub const fn value(name: &'static str) -> Self {
        Property { name, text: false }
    }
    /// A text property (line patterns).
    pub const fn text(name: &'static str) -> Self {
        Property { name, text: true }
    }
}

/// What a resource type observed for one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Property values. A property missing here fails with [`Self::absent`]
    /// (or "not found").
    pub values: BTreeMap<&'static str, Value>,
    /// Why properties are missing ("no such file"), for failure messages.
    pub absent: Option<String>,
    /// The resource could not be observed at all: every check fails with it.
    pub error: Option<String>,
}

impl Observed {
    /// A value for `prop`.
    pub fn set(&mut self, prop: &'static str, v: impl Into<Value>) -> &mut Self {
        self.values.insert(prop, v.into());
        self
    }

    /// Observation failed.
    pub fn failed(error: impl Into<String>) -> Self {
        Observed {
            error: Some(error.into()),
            ..Default::default()
        }
    }

    /// Does not exist: `prop` (e.g. `exists`) is false, other properties
    /// fail with `why`.
    pub fn missing(prop: &'static str, why: impl Into<String>) -> Self {
        let mut o = Observed {
            absent: Some(why.into()),
            ..Default::default()
        };
        o.set(prop, false);
        o
    }
}

/// One property check of a resource.
#[derive(Debug, Clone)]
pub struct Check {
    /// The property.
    pub property: &'static str,
    /// What is expected.
    pub matcher: Matcher,
    /// Where it was written.
    pub loc: image_core::diag::Location,
}

/// One resource from a gossfile, parsed and validated.
#[derive(Clone)]
pub struct ResourceSpec {
    /// Its type.
    pub kind: &'static dyn Resource,
    /// What is observed: the key (a path, a package name, a command line),
    /// or the attribute that overrides it (`path`, `name`, ... see
    /// [`name_attribute`]).
    pub id: String,
    /// The key as written in the gossfile.
    pub key: String,
    /// `title`.
    pub title: String,
    /// `meta`.
    pub meta: Value,
    /// `skip: true`, or included by a skipped gossfile.
    pub skip: bool,
    /// The properties to check, in file order.
    pub checks: Vec<Check>,
    /// Settings (`timeout`, `exec`, `method`, ...), as written.
    pub settings: BTreeMap<String, Value>,
    /// The attributes as written (for `render`).
    pub raw: Value,
    /// Where the resource's key is.
    pub loc: image_core::diag::Location,
}

impl fmt::Debug for ResourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceSpec")
            .field("kind", &self.kind.key())
            .field("id", &self.id)
            .field("skip", &self.skip)
            .field("checks", &self.checks.len())
            .field("loc", &self.loc)
            .finish()
    }
}

impl ResourceSpec {
    /// The id goss reports: the key, or `key: name` when a name attribute
    /// overrides it.
    pub fn report_id(&self) -> String {
        if self.id == self.key {
            self.key.clone()
        } else {
            format!("{}: {}", self.key, self.id)
        }
    }

    /// A setting as a string.
    pub fn setting_str(&self, key: &str) -> Option<String> {
        self.settings.get(key).map(crate::matcher::as_text)
    }

    /// A setting as a boolean (`true`, `"true"`, `yes`).
    pub fn setting_bool(&self, key: &str) -> bool {
        match self.settings.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "yes" | "on"),
            _ => false,
        }
    }

    /// A `timeout` setting in milliseconds, or `default_ms`. As in goss, a
    /// timeout of 0 (or none) means the default.
    pub fn timeout(&self, default_ms: u64) -> Duration {
        let ms = match self.settings.get("timeout") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Duration::from_millis(ms.filter(|m| *m > 0).unwrap_or(default_ms))
    }

    /// goss's per-resource retries (`retry_count`, `retry_delay`, on
    /// `command`, `dns` and `package`): how many more attempts after a
    /// failed one, and the pause before each (default and minimum 1 s as
    /// goss: a delay of 0 or less is 1 s).
    pub fn retry(&self) -> (u32, Duration) {
        let count = match self.settings.get("retry_count") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        let delay = self
            .settings
            .get("retry_delay")
            .and_then(|v| parse_retry_delay(v).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        (u32::try_from(count).unwrap_or(u32::MAX), delay)
    }

    /// True when the resource checks `prop`.
    pub fn checks_property(&self, prop: &str) -> bool {
        self.checks.iter().any(|c| c.property == prop)
    }
}

/// The resource types that take `retry_count` / `retry_delay` (goss).
pub const RETRYING: &[&str] = &["command", "dns", "package"];

/// A `retry_delay` as goss reads it: a number is milliseconds, a string is
/// a Go duration (`500ms`, `2s`, `1m30s`) or a number of milliseconds.
pub fn parse_retry_delay(v: &Value) -> Result<Duration, String> {
    let ms = |f: f64| {
        if f.is_finite() && f >= 0.0 {
            Ok(Duration::from_secs_f64(f / 1000.0))
        } else {
            Ok(Duration::ZERO)
        }
    };
    match v {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => ms(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(Duration::ZERO);
            }
            go_duration(s)
                .or_else(|| s.parse::<f64>().ok().and_then(|f| ms(f).ok()))
                .ok_or_else(|| format!("invalid retry_delay value {s:?}"))
        }
        other => Err(format!("invalid retry_delay value {other}")),
    }
}

/// Parses a Go `time.ParseDuration` string (`1h2m3.5s`, `250ms`, `10us`);
/// negative durations are zero.
pub fn go_duration(s: &str) -> Option<Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut any = false;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * secs;
        any = true;
    }
    if !any || !total.is_finite() {
        return None;
    }
    Some(if neg {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(total)
    })
}

/// How a resource type reaches the target; counts the execs (round trips)
/// made through it.
pub struct Probe<'a> {
    /// The host.
    pub target: &'a dyn Target,
    /// Run through sudo.
    pub become_: Option<Become>,
    /// At most this many commands at once (for `command`, `http`, ...).
    pub max_concurrent: usize,
    /// Execs made so far.
    pub execs: AtomicUsize,
}

impl<'a> Probe<'a> {
    /// A probe of `target`, through sudo with `become_`.
    pub fn new(target: &'a dyn Target, become_: Option<Become>, max_concurrent: usize) -> Self {
        Probe {
            target,
            become_,
            max_concurrent: max_concurrent.max(1),
            execs: AtomicUsize::new(0),
        }
    }

    /// Execs (round trips to the target) made so far.
    pub fn round_trips(&self) -> usize {
        self.execs.load(Ordering::Relaxed)
    }

    /// Runs a shell script; `Err` only when it could not run at all.
    pub async fn sh(&self, script: &str) -> Result<image_core::target::Output, String> {
        self.exec(Exec::new(script))
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs a command (sudo folded in).
    pub async fn exec(&self, cmd: Exec) -> Result<image_core::target::Output, TargetError> {
        self.exec_as_user(cmd.become_opt(self.become_.clone()))
            .await
    }

    /// Runs a command as the connecting user, without sudo.
    pub async fn exec_as_user(&self, cmd: Exec) -> Result<image_core::target::Output, TargetError> {
        self.execs.fetch_add(1, Ordering::Relaxed);
        self.target.exec(&cmd).await
    }

    /// Runs `script` and returns its stdout, or the same error for every
    /// spec when it failed to run or exited non-zero.
    pub async fn sh_stdout(&self, script: &str) -> Result<String, String> {
        let out = self.sh(script).await?;
        if out.status != 0 {
            return Err(format!(
                "probe script exited with {}: {}",
                out.status,
                out.stderr_str().trim()
            ));
        }
        Ok(out.stdout_str())
    }
}

/// A goss resource type.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The gossfile key: `file`, `kernel-param`.
    fn key(&self) -> &'static str;

    /// The type as goss prints it: `File`, `KernelParam`.
    fn type_name(&self) -> &'static str;

    /// Testable properties.
    fn properties(&self) -> &'static [Property];

    /// Attributes that configure the check instead of being checked
    /// (`timeout`, `exec`, `method`).
    fn settings(&self) -> &'static [&'static str] {
        &[]
    }

    /// Old names of properties: (old, new).
    fn aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Checks the id and settings of a resource at load time.
    fn validate(&self, _spec: &ResourceSpec) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// The probe of every resource of `specs` (all of this type) as shell
    /// sections and their reader, so that the runner can gather the probes
    /// of all types in one script ([`crate::gather`]). `None` (the
    /// default): the type is observed with [`Resource::observe`] only.
    fn plan<'s>(&self, _specs: &[&'s ResourceSpec]) -> Option<Plan<'s>> {
        None
    }

    /// Observes every resource of `specs` (all of this type), returning one
    /// [`Observed`] per spec, in order. The default runs [`Resource::plan`]
    /// with one exec per section.
    async fn observe(&self, probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        match self.plan(specs) {
            Some(plan) => crate::gather::alone(probe, plan).await,
            None => all_failed(specs, &format!("{} cannot be observed", self.key())),
        }
    }
}

/// Every resource type, in goss's order of keys.
pub fn all() -> &'static [&'static dyn Resource] {
    &[
        &addr::Addr,
        &command::Command,
        &dns::Dns,
        &file::File,
        &group::Group,
        &http::Http,
        &interface::Interface,
        &kernel_param::KernelParam,
        &matching::Matching,
        &mount::Mount,
        &package::Package,
        &port::Port,
        &process::Process,
        &service::Service,
        &user::User,
    ]
}

/// The attribute that names what a resource observes instead of its key
/// (goss's `path`, `name`, `username`...); goss then reports `key: name`.
pub fn name_attribute(key: &str) -> Option<&'static str> {
    Some(match key {
        "addr" => "address",
        "dns" => "resolve",
        "file" => "path",
        "group" => "groupname",
        "http" => "url",
        "interface" | "kernel-param" | "package" | "service" => "name",
        "mount" => "mountpoint",
        "port" => "port",
        "process" => "comm",
        "user" => "username",
        _ => return None,
    })
}

/// The property goss checks first for a type: when it fails (or finds
/// `false`), the resource's other properties are skipped (goss's
/// `shouldSkip`).
pub fn gate_property(key: &str) -> Option<&'static str> {
    Some(match key {
        "dns" => "resolvable",
        "file" | "group" | "interface" | "mount" | "user" => "exists",
        "http" => "status",
        "package" => "installed",
        "port" => "listening",
        _ => return None,
    })
}

/// The property name goss reports for a gossfile attribute where the two
/// differ (`http` `body` is reported as `Body`, `package` `versions` as
/// `version`, `file` `linked-to` as `linkedto`).
pub fn reported_property(key: &str, prop: &'static str) -> &'static str {
    match (key, prop) {
        ("http", "body") => "Body",
        ("http", "headers") => "Headers",
        ("file", "linked-to") => "linkedto",
        ("package", "versions") => "version",
        _ => prop,
    }
}

/// The resource type for a gossfile key.
pub fn by_key(key: &str) -> Option<&'static dyn Resource> {
    all().iter().copied().find(|r| r.key() == key)
}

/// Shell-quotes every item and joins them with spaces.
pub fn quote_all<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(image_core::target::shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The same error for every spec.
pub fn all_failed(specs: &[&ResourceSpec], error: &str) -> Vec<Observed> {
    specs.iter().map(|_| Observed::failed(error)).collect()
}

#[cfg(test)]
mod retry_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_delays_as_goss_reads_them() {
        let d = |v| parse_retry_delay(&v).unwrap();
        assert_eq!(d(json!(500)), Duration::from_millis(500));
        assert_eq!(d(json!("250ms")), Duration::from_millis(250));
        assert_eq!(d(json!("2s")), Duration::from_secs(2));
        assert_eq!(d(json!("1m30s")), Duration::from_secs(90));
        assert_eq!(d(json!("1.5s")), Duration::from_millis(1500));
        assert_eq!(d(json!("750")), Duration::from_millis(750));
        assert_eq!(d(json!(null)), Duration::ZERO);
        assert!(parse_retry_delay(&json!("soon")).is_err());
        assert!(parse_retry_delay(&json!("5x")).is_err());
        assert!(parse_retry_delay(&json!([1])).is_err());
        assert_eq!(go_duration("-1s"), Some(Duration::ZERO));
        assert_eq!(go_duration("10us"), Some(Duration::from_micros(10)));
    }
}
