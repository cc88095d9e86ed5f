//! Gathering: the probes of every resource type of a run, sent to the target
//! as one shell script, so that a verify of any size and mix costs a few
//! round trips instead of one per type (and one per `command` or `http`).
//!
//! A resource type describes its probe as a [`Plan`]: [`Section`]s (shell
//! programs, each run by `sh -c` as it would be in an exec of its own, with
//! an optional timeout and standard input) and a reader that turns their
//! results into one [`Observed`] per resource. The same plan runs two ways:
//!
//! - [`alone`]: one exec per section (concurrently, up to
//!   `--max-concurrent`), the target enforcing each timeout: what a
//!   per-resource retry or `verify add` uses, and the fallback.
//! - [`together`]: every section of every plan in one script ([`script`]),
//!   sections running concurrently (in waves of `max_concurrent`), each with
//!   its standard output and standard error kept in files of a private
//!   temporary directory, its exit status collected with `wait`, all sent
//!   back length-framed ([`parse`]). A section with a timeout runs under
//!   coreutils' `timeout`, which kills its process group, and reads as
//!   [`SectionError::TimedOut`] then (see [`script`]). Scripts are cut into
//!   chunks of at most [`CHUNK_BYTES`], one exec each.
//!   When a chunk cannot set itself up (no `mktemp`, no `timeout`) or its
//!   output does not frame, its plans run [`alone`] instead, so gathering
//!   never changes what is observed; when its exec fails (a lost
//!   connection), its sections fail with that error, as their own execs
//!   would have, and no command runs twice.
//!
//! With sudo (`--become`), a section that must run without it
//! ([`Section::no_become`], the `http` requests) goes in a chunk of its own,
//! run as the connecting user.
//!
//! One difference remains with a command of its own: a command killed by a
//! signal reports the shell's `128+N` as its exit status where a separate
//! exec reported -1.

use std::time::Duration;

use image_core::target::{shell_quote, Exec, Output, TargetError};

use crate::resource::{Observed, Probe, ResourceSpec};

/// The most script text sent in one exec (quoted as it is sent; Linux
/// refuses a single argument of 128 KiB or more).
pub const CHUNK_BYTES: usize = 100 * 1024;

/// One shell program of a probe.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The program, run with `sh -c`.
    pub script: String,
    /// Kill it (and what it started) after this long.
    pub timeout: Option<Duration>,
    /// Written to its standard input (else it reads an empty input).
    pub stdin: Option<Vec<u8>>,
    /// Run as the connecting user even when the run uses sudo.
    pub no_become: bool,
    /// The program is the user's (a `command`): it runs in a shell of its
    /// own (`sh -c`) even when gathered; a probe's own program runs in a
    /// subshell of the gathered script there (one process less).
    pub users: bool,
}

impl Section {
    /// A program without timeout or input.
    pub fn new(script: impl Into<String>) -> Self {
        Section {
            script: script.into(),
            ..Default::default()
        }
    }
}

/// Why a section has no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionError {
    /// Killed at its timeout.
    TimedOut(Duration),
    /// Could not run (the message says why).
    Failed(String),
}

impl std::fmt::Display for SectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SectionError::TimedOut(d) => write!(f, "timed out after {d:?}"),
            SectionError::Failed(e) => f.write_str(e),
        }
    }
}

/// What became of a section.
pub type SectionResult = Result<Output, SectionError>;

/// Reads the section results of a plan (one per section, in order) into one
/// observation per resource, in order.
pub type Reader<'s> = Box<dyn FnOnce(Vec<SectionResult>) -> Vec<Observed> + Send + 's>;

/// How a resource type observes its resources: sections and their reader.
pub struct Plan<'s> {
    /// The programs to run.
    pub sections: Vec<Section>,
    /// Turns their results into observations.
    pub read: Reader<'s>,
}

impl<'s> Plan<'s> {
    /// A plan of one section whose standard output `parse` reads; when the
    /// section fails or exits non-zero, every spec fails with the same error
    /// (see [`stdout`]).
    pub fn one(
        specs: &[&'s ResourceSpec],
        section: Section,
        parse: impl FnOnce(&str) -> Vec<Observed> + Send + 's,
    ) -> Self {
        let n = specs.len();
        Plan {
            sections: vec![section],
            read: Box::new(move |mut res: Vec<SectionResult>| {
                let first = if res.is_empty() {
                    Err(SectionError::Failed("no result".into()))
                } else {
                    res.swap_remove(0)
                };
                match stdout(first) {
                    Ok(out) => parse(&out),
                    Err(e) => vec![Observed::failed(e); n],
                }
            }),
        }
    }

    /// [`Plan::one`] for a script built from the specs' ids and a parser of
    /// its output for those ids.
    pub fn ids(
        specs: &[&'s ResourceSpec],
        script: fn(&[&str]) -> String,
        parse: fn(&str, &[&str]) -> Vec<Observed>,
    ) -> Self {
        let ids: Vec<&'s str> = specs.iter().map(|s| s.id.as_str()).collect();
        let section = Section::new(script(&ids));
        Plan::one(specs, section, move |out| parse(out, &ids))
    }
}

/// A section's standard output, or why there is none: it could not run, or
/// exited non-zero (`probe script exited with N: STDERR`).
pub fn stdout(r: SectionResult) -> Result<String, String> {
    match r {
        Ok(out) if out.status == 0 => Ok(out.stdout_str()),
        Ok(out) => Err(format!(
            "probe script exited with {}: {}",
            out.status,
            out.stderr_str().trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs a plan with one exec per section.
pub async fn alone(probe: &Probe<'_>, plan: Plan<'_>) -> Vec<Observed> {
    use futures::stream::StreamExt;
    type Run<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = SectionResult> + Send + 'a>>;
    let runs: Vec<Run<'_>> = plan
        .sections
        .into_iter()
        .map(|s| {
            let mut cmd = Exec::new(s.script);
            if let Some(t) = s.timeout {
                cmd = cmd.timeout(t);
            }
            if let Some(i) = s.stdin {
                cmd = cmd.stdin(i);
            }
            let no_become = s.no_become;
            Box::pin(async move {
                let res = if no_become {
                    probe.exec_as_user(cmd).await
                } else {
                    probe.exec(cmd).await
                };
                res.map_err(|e| match e {
                    TargetError::Timeout { after, .. } => SectionError::TimedOut(after),
                    e => SectionError::Failed(e.to_string()),
                })
            }) as Run<'_>
        })
        .collect();
    let results: Vec<SectionResult> = futures::stream::iter(runs)
        .buffered(probe.max_concurrent.max(1))
        .collect()
        .await;
    (plan.read)(results)
}

/// Sections sent in one exec.
struct Chunk {
    /// Run without sudo.
    no_become: bool,
    /// (plan, section) indices.
    items: Vec<(usize, usize)>,
    /// Script size so far.
    bytes: usize,
}

/// Runs every plan, their sections gathered in as few execs as
/// [`CHUNK_BYTES`] allows; one observation list per plan, in order.
pub async fn together(probe: &Probe<'_>, plans: Vec<Plan<'_>>) -> Vec<Vec<Observed>> {
    // (plan, section) pairs in chunks, sudo and no-sudo apart.
    let mut chunks: Vec<Chunk> = Vec::new();
    for (p, plan) in plans.iter().enumerate() {
        for (s, sec) in plan.sections.iter().enumerate() {
            // Quoted twice: in the script, then as the exec's `sh -c` line.
            let stdin = sec.stdin.as_ref().map_or(0, Vec::len);
            let size = shell_quote(&shell_quote(&sec.script)).len() + stdin * 4 + 200;
            // Without sudo, a no-sudo section goes with the others.
            let apart = sec.no_become && probe.become_.is_some();
            let fits = |c: &&mut Chunk| {
                c.no_become == apart && (c.bytes + size <= CHUNK_BYTES || c.items.is_empty())
            };
            match chunks.iter_mut().rev().find(fits) {
                Some(c) => {
                    c.items.push((p, s));
                    c.bytes += size;
                }
                None => chunks.push(Chunk {
                    no_become: apart,
                    items: vec![(p, s)],
                    bytes: size,
                }),
            }
        }
    }
    let mut results: Vec<Vec<Option<SectionResult>>> =
        plans.iter().map(|p| vec![None; p.sections.len()]).collect();
    let mut failed_plans = vec![false; plans.len()];
    let runs = chunks.iter().map(|Chunk { no_become, items, .. }| {
        let sections: Vec<&Section> = items.iter().map(|(p, s)| &plans[*p].sections[*s]).collect();
        let text = script(&sections, probe.max_concurrent);
        tracing::trace!(sections = sections.len(), bytes = text.len(), "verify: gathered probe:\n{text}");
        async move {
            let cmd = Exec::new(text);
            let t0 = std::time::Instant::now();
            let out = if *no_become {
                probe.exec_as_user(cmd).await
            } else {
                probe.exec(cmd).await
            };
            tracing::debug!(sections = sections.len(), elapsed = ?t0.elapsed(), "verify: gathered probe ran");
            // A script that ran but could not set up (or whose output does
            // not frame) is retried type by type; one that could not run
            // fails its sections as a probe of their own would have (the
            // commands may have run: they are not run twice).
            let parsed = match out {
                Ok(o) => parse(&o, &sections),
                Err(e) => Ok(vec![Err(SectionError::Failed(e.to_string())); sections.len()]),
            };
            if let Err(e) = &parsed {
                tracing::debug!(error = %e, "verify: gathered probe failed; observing its types one by one");
            }
            (items, parsed)
        }
    });
    let done: Vec<_> = futures::future::join_all(runs).await;
    for (items, parsed) in done {
        match parsed {
            Ok(res) => {
                for ((p, s), r) in items.iter().zip(res) {
                    results[*p][*s] = Some(r);
                }
            }
            Err(_) => {
                for (p, _) in items {
                    failed_plans[*p] = true;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(plans.len());
    let mut retry = Vec::new();
    for (i, (plan, res)) in plans.into_iter().zip(results).enumerate() {
        if failed_plans[i] {
            retry.push(i);
            out.push((Some(plan), Vec::new()));
            continue;
        }
        let res: Vec<SectionResult> = res
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SectionError::Failed("no result".into()))))
            .collect();
        out.push((None, (plan.read)(res)));
    }
    let again: Vec<(usize, Plan<'_>)> = retry
        .into_iter()
        .filter_map(|i| out[i].0.take().map(|p| (i, p)))
        .collect();
    let redone = futures::future::join_all(
        again
            .into_iter()
            .map(|(i, plan)| async move { (i, alone(probe, plan).await) }),
    )
    .await;
    for (i, obs) in redone {
        out[i].1 = obs;
    }
    out.into_iter().map(|(_, o)| o).collect()
}

/// Exit status of a gathered script that could not set itself up.
const SETUP_FAILED: i32 = 97;
const STATUS: &str = "#IMAGE-VERIFY-STATUS";
const HEAD: &str = "#IMAGE-VERIFY-SIZES";
const DATA: &str = "#IMAGE-VERIFY-DATA";

/// The script that runs `sections` concurrently, `max_concurrent` at a
/// time, and prints their exit statuses, then the sizes and contents of
/// their output, error and (for a section with a timeout) status files.
///
/// Each section is one background subshell (`sh -c` for a user's program,
/// see [`Section::users`]) whose status `wait` collects. A
/// section with a timeout runs under `timeout`, and its shell records its
/// status from an `EXIT` trap (set on the program's first line, so line
/// numbers in messages do not change): no status file and `timeout`'s 124
/// mean it was killed at its timeout; a program that ends with `exec` (or
/// replaces the trap) still reports `timeout`'s status, which is its own.
pub fn script(sections: &[&Section], max_concurrent: usize) -> String {
    let mut s = String::new();
    if sections.iter().any(|x| x.timeout.is_some()) {
        s.push_str(&format!(
            "command -v timeout >/dev/null 2>&1 || exit {SETUP_FAILED}\n"
        ));
    }
    s.push_str(&format!(
        "_ivd=$(mktemp -d) || exit {SETUP_FAILED}\ntrap 'rm -rf \"$_ivd\"' EXIT\n_ivst=\n"
    ));
    let collect = |s: &mut String, from: usize, to: usize| {
        for i in from..to {
            s.push_str(&format!("wait $_ivp{i}; _ivst=\"$_ivst {i}:$?\"\n"));
        }
    };
    let wave = max_concurrent.max(1);
    for (i, sec) in sections.iter().enumerate() {
        if i > 0 && i % wave == 0 {
            collect(&mut s, i - wave, i);
        }
        let input = match &sec.stdin {
            Some(b) => format!(
                "printf '%s' {} | ",
                shell_quote(&String::from_utf8_lossy(b))
            ),
            None => String::new(),
        };
        let stdin = if sec.stdin.is_some() {
            ""
        } else {
            "</dev/null "
        };
        let redir = format!("{stdin}>\"$_ivd/{i}o\" 2>\"$_ivd/{i}e\"");
        match sec.timeout {
            Some(t) => {
                let program = format!("trap 'echo $? >\"$_ivs\"' EXIT; {}", sec.script);
                s.push_str(&format!(
                    "{input}_ivs=\"$_ivd/{i}s\" timeout -k 1 {:.3} sh -c {} {redir} & _ivp{i}=$!\n",
                    t.as_secs_f64(),
                    shell_quote(&program)
                ));
            }
            None if sec.users => s.push_str(&format!(
                "{input}sh -c {} {redir} & _ivp{i}=$!\n",
                shell_quote(&sec.script)
            )),
            None => s.push_str(&format!(
                "{input}(\n{}\n) {redir} & _ivp{i}=$!\n",
                sec.script
            )),
        }
    }
    let n = sections.len();
    collect(&mut s, n.saturating_sub(1) / wave * wave, n);
    let files: Vec<String> = sections
        .iter()
        .enumerate()
        .map(|(i, sec)| match sec.timeout {
            Some(_) => format!("{i}o {i}e {i}s"),
            None => format!("{i}o {i}e"),
        })
        .collect();
    let files = files.join(" ");
    s.push_str(&format!(
        "cd \"$_ivd\" || exit {SETUP_FAILED}\necho \"{STATUS}$_ivst\"\necho '{HEAD}'\nwc -c -- {files} 2>/dev/null\necho '{DATA}'\ncat -- {files} 2>/dev/null\nexit 0\n"
    ));
    s
}

/// Splits a gathered script's output into one result per section.
pub fn parse(out: &Output, sections: &[&Section]) -> Result<Vec<SectionResult>, String> {
    if out.status != 0 {
        return Err(format!(
            "gathered probe exited with {}: {}",
            out.status,
            out.stderr_str().trim()
        ));
    }
    let raw = &out.stdout;
    let head = format!("\n{HEAD}\n");
    let data = format!("\n{DATA}\n");
    let status_at = find(raw, STATUS.as_bytes()).ok_or("gathered probe: no statuses")?;
    let start = find(&raw[status_at..], head.as_bytes())
        .map(|i| i + status_at)
        .ok_or("gathered probe: no size table")?;
    let mut waited: Vec<Option<i32>> = vec![None; sections.len()];
    for item in String::from_utf8_lossy(&raw[status_at + STATUS.len()..start]).split_whitespace() {
        let (i, st) = item
            .split_once(':')
            .ok_or_else(|| format!("gathered probe: bad status {item}"))?;
        let (i, st): (usize, i32) = match (i.parse(), st.parse()) {
            (Ok(i), Ok(st)) if i < sections.len() => (i, st),
            _ => return Err(format!("gathered probe: bad status {item}")),
        };
        waited[i] = Some(st);
    }
    // From the size table's newline on: an empty table is no lines.
    let table_start = start + head.len() - 1;
    let table_end = find(&raw[table_start..], data.as_bytes())
        .map(|i| i + table_start)
        .ok_or("gathered probe: no data")?;
    let table = String::from_utf8_lossy(&raw[table_start..table_end]);
    let mut body = &raw[table_end + data.len()..];
    // Files in `wc` order (the order `cat` reads them in).
    let mut sizes: Vec<(usize, char, usize)> = Vec::new();
    for line in table.lines() {
        let mut w = line.split_whitespace();
        let (Some(n), Some(name)) = (w.next(), w.next()) else {
            continue;
        };
        if name == "total" {
            continue;
        }
        let n: usize = n.parse().map_err(|_| format!("gathered probe: {line}"))?;
        let (idx, kind) = name.split_at(name.len().saturating_sub(1));
        let idx: usize = idx.parse().map_err(|_| format!("gathered probe: {line}"))?;
        let kind = kind.chars().next().unwrap_or('?');
        if idx >= sections.len() {
            return Err(format!("gathered probe: unknown file {name}"));
        }
        sizes.push((idx, kind, n));
    }
    let mut parts: Vec<[Option<Vec<u8>>; 3]> = vec![Default::default(); sections.len()];
    for (idx, kind, n) in sizes {
        if body.len() < n {
            return Err("gathered probe: output cut short".into());
        }
        let (chunk, rest) = body.split_at(n);
        body = rest;
        let slot = match kind {
            's' => 0,
            'o' => 1,
            'e' => 2,
            _ => return Err(format!("gathered probe: unknown file kind {kind}")),
        };
        parts[idx][slot] = Some(chunk.to_vec());
    }
    let mut res = Vec::with_capacity(sections.len());
    for (i, ([trapped, stdout, stderr], sec)) in parts.into_iter().zip(sections).enumerate() {
        let trapped = trapped.and_then(|s| String::from_utf8_lossy(&s).trim().parse::<i32>().ok());
        let waited =
            waited[i].ok_or_else(|| format!("gathered probe: no status for section {i}"))?;
        let status = match (sec.timeout, trapped) {
            (Some(_), Some(st)) => st,
            (Some(t), None) if waited == 124 => {
                res.push(Err(SectionError::TimedOut(t)));
                continue;
            }
            _ => waited,
        };
        res.push(Ok(Output {
            status,
            stdout: stdout.unwrap_or_default(),
            stderr: stderr.unwrap_or_default(),
        }));
    }
    Ok(res)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(script: &str, timeout: Option<u64>) -> Section {
        Section {
            script: script.into(),
            timeout: timeout.map(Duration::from_millis),
            ..Default::default()
        }
    }

    fn run_local(sections: &[&Section], max: usize) -> Vec<SectionResult> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(sections, max))
            .output()
            .expect("sh");
        let out = Output {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        };
        parse(&out, sections).expect("framed output")
    }

    #[test]
    fn sections_keep_their_own_status_output_and_error() {
        let a = sec("printf 'a\\0b'; echo err >&2; exit 3", None);
        let b = sec("sleep 5", Some(200));
        let c = sec("exit 124", Some(2000));
        let d = Section {
            stdin: Some(b"in put\n".to_vec()),
            users: true,
            ..sec("cat; echo $0 \"$1\"", None)
        };
        let e = sec("echo '#IMAGE-VERIFY-DATA'; : > /dev/null", None);
        let f = sec("echo x; exit 5", Some(2000));
        let g = sec("exec sh -c 'exit 6'", Some(2000));
        let h = sec("nope-no-such-command", Some(2000));
        let t0 = std::time::Instant::now();
        let r = run_local(&[&a, &b, &c, &d, &e, &f, &g, &h], 3);
        assert!(t0.elapsed() < Duration::from_secs(3), "the timeout held");
        let a = r[0].as_ref().unwrap();
        assert_eq!(
            (a.status, &a.stdout[..], &a.stderr[..]),
            (3, &b"a\0b"[..], &b"err\n"[..])
        );
        assert_eq!(
            r[1],
            Err(SectionError::TimedOut(Duration::from_millis(200)))
        );
        assert_eq!(r[2].as_ref().unwrap().status, 124);
        assert_eq!(r[3].as_ref().unwrap().stdout, b"in put\nsh \n");
        assert_eq!(r[4].as_ref().unwrap().stdout, b"#IMAGE-VERIFY-DATA\n");
        let f = r[5].as_ref().unwrap();
        assert_eq!((f.status, &f.stdout[..]), (5, &b"x\n"[..]));
        assert_eq!(r[6].as_ref().unwrap().status, 6);
        let h = r[7].as_ref().unwrap();
        assert_eq!(h.status, 127);
        // The message is the one of `sh -c` alone: line 1.
        assert!(
            String::from_utf8_lossy(&h.stderr).contains("1: nope-no-such-command"),
            "{h:?}"
        );
    }

    /// A local target that counts execs and, with `refuse`, fails the
    /// gathered scripts (as a host without `mktemp` would).
    struct Counting {
        inner: image_core::local::LocalTarget,
        execs: std::sync::atomic::AtomicUsize,
        refuse: bool,
    }

    #[async_trait::async_trait]
    impl image_core::target::Target for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        async fn exec(&self, cmd: &Exec) -> Result<Output, TargetError> {
            self.execs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.refuse && cmd.command.contains("_ivd=$(mktemp -d)") {
                return Ok(Output {
                    status: SETUP_FAILED,
                    ..Default::default()
                });
            }
            self.inner.exec(cmd).await
        }
        async fn put(
            &self,
            path: &str,
            content: &[u8],
            meta: &image_core::target::FileMeta,
            become_: Option<&image_core::target::Become>,
        ) -> Result<(), TargetError> {
            self.inner.put(path, content, meta, become_).await
        }
        async fn get(
            &self,
            path: &str,
            become_: Option<&image_core::target::Become>,
        ) -> Result<Vec<u8>, TargetError> {
            self.inner.get(path, become_).await
        }
    }

    const SUITE: &str = "file:\n  /etc/passwd: {exists: true, filetype: file, owner: root}\n  /no/such: {exists: false}\n  /bin/sh: {exists: true}\n\
        command:\n  echo one: {exit-status: 0, stdout: [one]}\n  echo two >&2; exit 4: {exit-status: 4, stderr: [two]}\n  \"exit 124\": {exit-status: 124}\n  sleep 5: {exit-status: 0, timeout: 300}\n\
        kernel-param:\n  kernel.ostype: {value: Linux}\n  no.such.param: {value: x}\n\
        user:\n  root: {exists: true, uid: 0, home: /root}\n  no-such-user-x: {exists: false}\n\
        group:\n  root: {exists: true, gid: 0}\n\
        process:\n  no-such-process-x: {running: false}\n\
        mount:\n  /: {exists: true}\n\
        interface:\n  lo: {exists: true, mtu: 65536}\n\
        dns:\n  localhost: {resolvable: true}\n\
        matching:\n  m: {content: [a], matches: {contain-element: a}}\n";

    async fn run_counting(
        refuse: bool,
    ) -> (
        Vec<(String, String, crate::Status, Option<serde_json::Value>)>,
        usize,
    ) {
        let data = crate::template::TemplateData {
            vars: serde_json::json!({}),
            env: Default::default(),
        };
        let suite = crate::suite::load_str("g.yaml", SUITE, std::path::Path::new("."), &data)
            .expect("suite");
        let t = Counting {
            inner: image_core::local::LocalTarget::new(),
            execs: Default::default(),
            refuse,
        };
        let report = crate::runner::run(&suite, &t, &Default::default()).await;
        let got = report
            .results
            .into_iter()
            .map(|r| (r.resource_id, r.property, r.status, r.found))
            .collect();
        (got, t.execs.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_run_of_every_kind_is_one_round_trip_and_observes_as_one_exec_per_section() {
        let (gathered, trips) = run_counting(false).await;
        assert_eq!(trips, 1, "one exec for the whole suite");
        // Refused: each type (and each command) is observed on its own.
        let (alone, trips) = run_counting(true).await;
        assert_eq!(
            trips,
            1 + 9 + 3,
            "the refused script, then one exec per type and command"
        );
        assert_eq!(gathered, alone);
        let failed: Vec<&str> = gathered
            .iter()
            .filter(|r| r.2 == crate::Status::Failed)
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(failed, ["sleep 5", "no.such.param"], "{gathered:#?}");
    }

    #[test]
    fn broken_output_is_an_error() {
        let a = sec("true", None);
        let out = |s: &str| Output {
            status: 0,
            stdout: s.as_bytes().to_vec(),
            stderr: vec![],
        };
        assert!(parse(&out("nothing"), &[&a]).is_err());
        let st = "#IMAGE-VERIFY-STATUS 0:0\n#IMAGE-VERIFY-SIZES\n";
        assert!(parse(&out(&format!("{st}2 0o\n#IMAGE-VERIFY-DATA\n0")), &[&a]).is_err());
        assert!(parse(&out(&format!("{st}2 5o\n#IMAGE-VERIFY-DATA\nab")), &[&a]).is_err());
        assert!(parse(
            &out("#IMAGE-VERIFY-STATUS\n#IMAGE-VERIFY-SIZES\n#IMAGE-VERIFY-DATA\n"),
            &[&a]
        )
        .is_err());
        let ok = parse(&out(&format!("{st}2 0o\n#IMAGE-VERIFY-DATA\nab")), &[&a]).unwrap();
        assert_eq!(ok[0].as_ref().unwrap().stdout, b"ab");
        assert_eq!(ok[0].as_ref().unwrap().status, 0);
    }
}
