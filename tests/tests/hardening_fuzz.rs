//! A bounded fuzz test of the three input loaders — the definition
//! (`Spec::parse_lenient` and `resolve`), step lists (`parse::parse_str`,
//! with the roles they reach) and goss files (`suite::load_str`): random
//! mutations of the built-in definition (`images/kubernetes.yaml`), the node
//! step list and roles (`images/node/`) and its goss files, plus generated
//! deep nesting, alias and merge-key bombs and deeply nested templates.
//! Every input must come back (accepted or refused) without a panic and
//! within [`INPUT_LIMIT`].
//!
//! The run is time-boxed (`HARDENING_FUZZ_SECONDS`, default 20) and
//! reproducible: the inputs come from a seeded PRNG
//! (`HARDENING_FUZZ_SEED`, default fixed). An input that panics or is too
//! slow is written to `tests/corpus/fuzz/<kind>/<hash>.yaml`; every file
//! there is run first, on each run, as a regression case. (An input that
//! overflows the stack aborts the process: the input being run is always
//! in `$CARGO_TARGET_TMPDIR/hardening-fuzz-current.yaml`.)

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use image_core::spec::select::Selection;
use image_core::spec::values::VarInputs;
use image_core::spec::Spec;
use image_verify::template::TemplateData;

/// The longest one input may take (debug build, a loaded machine; inputs
/// take milliseconds).
const INPUT_LIMIT: Duration = Duration::from_secs(3);
/// Stack of the thread that loads an input: the main thread's, and
/// image-cli's tokio workers' (which load step lists and goss files during
/// `build`).
const STACK: usize = 8 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Definition,
    Steps,
    Goss,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Definition, Kind::Steps, Kind::Goss];

    fn dir(self) -> &'static str {
        match self {
            Kind::Definition => "definition",
            Kind::Steps => "steps",
            Kind::Goss => "goss",
        }
    }
}

/// splitmix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn workspace() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").is_file() {
        assert!(dir.pop(), "workspace root not found");
    }
    dir
}

/// A seed input: its text and the file it came from (relative files are
/// found next to it).
struct Seed {
    path: PathBuf,
    text: String,
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
}

fn seeds(kind: Kind) -> Vec<Seed> {
    let images = workspace().join("images");
    let mut paths = Vec::new();
    match kind {
        Kind::Definition => paths.push(images.join("kubernetes.yaml")),
        Kind::Steps => {
            paths.push(images.join("node/node.yml"));
            // Task and handler files of the roles (their defaults, vars and
            // meta are mappings, not step lists; they are reached through
            // node.yml).
            let mut all = Vec::new();
            yaml_files(&images.join("node/roles"), &mut all);
            paths.extend(all.into_iter().filter(|p| {
                p.components()
                    .any(|c| matches!(c.as_os_str().to_str(), Some("tasks" | "handlers")))
            }));
        }
        Kind::Goss => {
            yaml_files(&images.join("node/goss"), &mut paths);
            paths.retain(|p| !p.ends_with("goss-vars.yaml"));
        }
    }
    let out: Vec<Seed> = paths
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            Some(Seed { path, text })
        })
        .collect();
    assert!(!out.is_empty(), "no seed files for {kind:?}");
    out
}

/// Fragments mutations insert: YAML structure, anchors, templates of both
/// engines with huge sizes, keywords with wrong types.
const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "-",
    ":",
    "? ",
    "&a ",
    "*a",
    "<<: *a",
    "<<: [*a, *a]",
    "&b [*a, *a, *a]",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "\t",
    "\n",
    "  ",
    "#",
    "|",
    ">-",
    "!!str ",
    "!!binary ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\u{feff}",
    "\\",
    "\u{0}",
    "~",
    "null",
    "yes",
    "no",
    "0x7fffffffffffffff",
    "99999999999999999999999",
    "-1",
    "1e999",
    ".nan",
    "\"\"",
    "{{",
    "}}",
    "{%",
    "%}",
    "{{ x }}",
    "{{ x | indent(99999999999) }}",
    "{{ '%99999999999d' | format(1) }}",
    "{{ 'a' * 999999999 }}",
    "{{ 'x' | center(999999999) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ {} | to_nice_json(indent=99999999) }}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{{ printf \"%99999999d\" 1 }}",
    "{{ printf \"%.99999999f\" 1.0 }}",
    "{{ repeat 99999999 \"x\" }}",
    "{{ range $i := .Vars }}",
    "{{ end }}",
    "{{ if }}",
    "{{ .Vars.x.y.z }}",
    "loop: 42",
    "notify: nothing",
    "when: x ==",
    "become: maybe",
    "block:",
    "include_tasks: x.yml",
    "import_tasks: x.yml",
    "gossfile:\n  '*': {}",
    "builds:",
    "variables:",
    "{{ timestamp }}",
];

/// One random edit of `s` (on characters, so the text stays UTF-8).
fn mutate(rng: &mut Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len().max(1);
    let at = rng.below(n);
    let len = 1 + rng.below(64.min(n));
    let end = (at + len).min(chars.len());
    let mut out: String;
    match rng.below(9) {
        // Delete a range.
        0 => {
            out = chars[..at.min(chars.len())].iter().collect();
            out.extend(&chars[end..]);
        }
        // Duplicate a range.
        1 => {
            out = chars[..end].iter().collect();
            out.extend(&chars[at.min(chars.len())..]);
        }
        // Insert a token.
        2 | 3 => {
            out = chars[..at.min(chars.len())].iter().collect();
            out.push_str(TOKENS[rng.below(TOKENS.len())]);
            out.extend(&chars[at.min(chars.len())..]);
        }
        // Replace a character by a random one (ASCII mostly).
        4 => {
            let c = if rng.below(8) == 0 {
                char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')
            } else {
                (0x20 + rng.below(0x5f)) as u8 as char
            };
            out = chars
                .iter()
                .enumerate()
                .map(|(i, o)| if i == at { c } else { *o })
                .collect();
        }
        // Swap two lines / move a line / re-indent a line.
        5..=7 => {
            let mut lines: Vec<String> = s.lines().map(String::from).collect();
            if lines.is_empty() {
                return TOKENS[rng.below(TOKENS.len())].to_string();
            }
            let a = rng.below(lines.len());
            let b = rng.below(lines.len());
            match rng.below(3) {
                0 => lines.swap(a, b),
                1 => {
                    let l = lines.remove(a);
                    lines.insert(b.min(lines.len()), l);
                }
                _ => {
                    let l = &lines[a];
                    lines[a] = if rng.below(2) == 0 {
                        format!("  {l}")
                    } else {
                        l.trim_start().to_string()
                    };
                }
            }
            out = lines.join("\n");
            out.push('\n');
        }
        // Truncate.
        _ => out = chars[..at.min(chars.len())].iter().collect(),
    }
    out
}

/// Structured inputs: deep nesting of every YAML construct, alias and
/// merge-key bombs, deeply nested templates of both engines.
fn generate(rng: &mut Rng, kind: Kind) -> String {
    let max = if rng.below(4) == 0 { 20_000 } else { 600 };
    let depth = 1 + rng.below(max);
    let wrap = |body: String| -> String {
        // Put the construct where each file kind reads values.
        match kind {
            Kind::Definition => format!(
                "variables:\n  x:\n    default: 1\nbuilds:\n  b:\n    source_ami: ami-0123456789abcdef0\n    instance_type: t3.small\n    region: us-east-1\n    ssh_username: u\n    ami_name: abc\n    tags:\n      k: {body}\n"
            ),
            Kind::Steps => format!("- name: t\n  debug:\n    msg: {body}\n"),
            Kind::Goss => format!("command:\n  \"echo {body}\":\n    exit-status: 0\n"),
        }
    };
    match rng.below(10) {
        0 => format!("x: {}\n", "[".repeat(depth)),
        1 => format!("x: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth)),
        2 => format!("x:\n  {}x\n", "- ".repeat(depth)),
        3 => {
            let mut s = String::from("x:\n");
            for i in 0..depth.min(3000) {
                s.push_str(&" ".repeat(2 * (i + 1)));
                s.push_str("a:\n");
            }
            s
        }
        4 | 5 => {
            // An alias bomb: `width` copies per level, `levels` levels.
            let width = 2 + rng.below(12);
            let levels = 2 + rng.below(12);
            let merge = rng.below(2) == 0;
            let mut s = format!("x-bomb:\n  a0: &a0 [{}]\n", vec!["x"; width].join(", "));
            for i in 1..levels {
                let refs = vec![format!("*a{}", i - 1); width].join(", ");
                if merge {
                    s.push_str(&format!("  a{i}: &a{i}\n    <<: [{refs}]\n"));
                } else {
                    s.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
                }
            }
            s
        }
        6 => wrap(format!(
            "\"{{{{ {}1{} }}}}\"",
            "(".repeat(depth),
            ")".repeat(depth)
        )),
        7 => wrap(format!(
            "\"{}x{}\"",
            "{% if true %}".repeat(depth.min(5000)),
            "{% endif %}".repeat(depth.min(5000))
        )),
        8 => wrap(format!(
            "\"{}x{}\"",
            "{{ if 1 }}".repeat(depth.min(5000)),
            "{{ end }}".repeat(depth.min(5000))
        )),
        _ => wrap(format!(
            "\"{{{{ {}1{} }}}}\"",
            "x[".repeat(depth),
            "]".repeat(depth)
        )),
    }
}

/// Loads `text` as `kind` (as if it were the file at `path`). The result
/// does not matter; coming back does.
fn load(kind: Kind, path: &Path, text: &str, goss_data: &TemplateData) {
    let name = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new("."));
    match kind {
        Kind::Definition => {
            if let Ok(spec) = Spec::parse_lenient(&name, text, dir) {
                let _ = spec.resolve(&VarInputs::default(), &Selection::default(), 1_700_000_000);
            }
        }
        Kind::Steps => {
            let roles = workspace().join("images/node/roles");
            let _ = image_provision::parse::parse_str(&name, text, dir, &[roles]);
        }
        Kind::Goss => {
            let _ = image_verify::suite::load_str(&name, text, dir, goss_data);
        }
    }
}

/// What went wrong with one input.
enum Bad {
    Panic(String),
    Slow,
}

fn run_one(kind: Kind, path: &Path, text: &str, data: &TemplateData) -> Option<Bad> {
    let current = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hardening-fuzz-current.yaml");
    let _ = std::fs::write(
        &current,
        format!("# {kind:?} as {}\n{text}", path.display()),
    );
    let (tx, rx) = mpsc::channel();
    let (path, text, data) = (path.to_path_buf(), text.to_string(), data.clone());
    let spawned = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                load(kind, &path, &text, &data)
            }));
            let _ = tx.send(r.err().map(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            }));
        })
        .expect("spawn a loader thread");
    match rx.recv_timeout(INPUT_LIMIT) {
        Ok(None) => {
            let _ = spawned.join();
            None
        }
        Ok(Some(msg)) => Some(Bad::Panic(msg)),
        // The thread is left running: the test fails anyway.
        Err(_) => Some(Bad::Slow),
    }
}

fn regression_dir(kind: Kind) -> PathBuf {
    workspace().join("tests/corpus/fuzz").join(kind.dir())
}

/// Keeps `text` as a regression case; returns its path.
fn keep(kind: Kind, text: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let dir = regression_dir(kind);
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!("{:016x}.yaml", h.finish()));
    let _ = std::fs::write(&p, text);
    p
}

#[test]
fn loaders_survive_mutated_and_generated_input() {
    let seconds: u64 = std::env::var("HARDENING_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("HARDENING_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1a2b_3c4d);
    let vars_file = workspace().join("images/node/goss/goss-vars.yaml");
    let vars = image_verify::suite::load_vars(&[vars_file], &[]).expect("goss vars");
    let data = TemplateData::new(vars);
    let seeds: Vec<(Kind, Vec<Seed>)> = Kind::ALL.iter().map(|k| (*k, seeds(*k))).collect();
    let mut failures = Vec::new();
    let mut report = |kind: Kind, text: &str, bad: Bad| {
        let kept = keep(kind, text);
        failures.push(match bad {
            Bad::Panic(m) => format!("{kind:?}: panicked ({m}); kept as {}", kept.display()),
            Bad::Slow => format!(
                "{kind:?}: took over {INPUT_LIMIT:?}; kept as {}",
                kept.display()
            ),
        });
    };

    // The regression cases first.
    let mut regressions = 0;
    for kind in Kind::ALL {
        let mut files = Vec::new();
        yaml_files(&regression_dir(kind), &mut files);
        let at = seeds.iter().find(|(k, _)| *k == kind).unwrap().1[0]
            .path
            .clone();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            regressions += 1;
            if let Some(bad) = run_one(kind, &at, &text, &data) {
                report(kind, &text, bad);
            }
        }
    }

    let mut rng = Rng(seed);
    let started = Instant::now();
    let deadline = Duration::from_secs(seconds);
    let (mut mutated, mut generated, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let mut i = 0usize;
    while started.elapsed() < deadline {
        let (kind, kind_seeds) = &seeds[i % seeds.len()];
        i += 1;
        let base = rng.pick(kind_seeds);
        let text = if rng.below(4) == 0 {
            generated += 1;
            generate(&mut rng, *kind)
        } else {
            mutated += 1;
            let mut t = base.text.clone();
            for _ in 0..1 + rng.below(4) {
                t = mutate(&mut rng, &t);
            }
            t
        };
        let t0 = Instant::now();
        if let Some(bad) = run_one(*kind, &base.path, &text, &data) {
            report(*kind, &text, bad);
        }
        slowest = slowest.max(t0.elapsed());
    }
    eprintln!(
        "seed {seed}: {regressions} regression cases, {mutated} mutated and {generated} generated inputs in {:?}; slowest {slowest:?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        mutated + generated >= 100,
        "only {} inputs in {seconds} s",
        mutated + generated
    );
}
