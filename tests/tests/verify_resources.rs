//! Every goss resource type, a passing and a failing case each, checked on
//! this machine through `LocalTarget` (the same probe scripts run over SSH:
//! see `verify_ssh.rs`). `service` needs a running systemd and is covered
//! on the test bed target.

use std::collections::BTreeMap;
use std::path::Path;

use image_core::local::LocalTarget;
use image_verify::report::{Report, Status};
use image_verify::runner::{run, RunOptions};
use image_verify::suite::load_str;
use image_verify::template::TemplateData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn check(yaml: &str) -> Report {
    let data = TemplateData {
        vars: serde_json::json!({}),
        env: BTreeMap::new(),
    };
    let suite = load_str("goss.yaml", yaml, Path::new("."), &data)
        .unwrap_or_else(|d| panic!("bad gossfile:\n{d}\n{yaml}"));
    run(&suite, &LocalTarget::new(), &RunOptions::default()).await
}

/// The status of `resource-id: property`, with the report for messages.
fn status(r: &Report, id: &str, prop: &str) -> Status {
    r.results
        .iter()
        .find(|t| t.resource_id == id && t.property == prop)
        .map(|t| t.status)
        .unwrap_or_else(|| panic!("no result for {id}: {prop}\n{r:#?}"))
}

/// Asserts that exactly the listed (id, property) checks failed.
fn assert_failed(r: &Report, failed: &[(&str, &str)]) {
    for t in &r.results {
        let want = failed.contains(&(t.resource_id.as_str(), t.property.as_str()));
        let got = t.status == Status::Failed;
        assert_eq!(
            got,
            want,
            "{}: expected {}, got {}",
            t.summary_line(),
            if want { "failure" } else { "success" },
            if got { "failure" } else { "success" }
        );
    }
}

fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn file() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("conf");
    std::fs::write(&f, "hello\nport 22\n").unwrap();
    std::os::unix::fs::symlink(&f, d.path().join("link")).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let p = f.display().to_string();
    let md5 = sh(&format!("md5sum {p} | cut -d' ' -f1"));
    let sha256 = sh(&format!("sha256sum {p} | cut -d' ' -f1"));
    let sha512 = sh(&format!("sha512sum {p} | cut -d' ' -f1"));
    let yaml = format!(
        r#"file:
  {p}:
    exists: true
    mode: "0640"
    size: 14
    owner: root
    group: root
    uid: 0
    filetype: file
    md5: {md5}
    sha256: {sha256}
    sha512: {sha512}
    contents: [hello, "/^port \\d+$/", "!absent"]
  {dir}/link:
    exists: true
    filetype: symlink
    linked-to: {p}
  {dir}:
    filetype: directory
  {dir}/missing:
    exists: false
  {dir}/bad:
    exists: true
  /etc/hostname-x:
    mode: "0644"
"#,
        dir = d.path().display()
    );
    let r = check(&yaml).await;
    let dir = d.path().display().to_string();
    assert_failed(
        &r,
        &[
            (&format!("{dir}/bad"), "exists"),
            ("/etc/hostname-x", "mode"),
        ],
    );
    let err = r
        .results
        .iter()
        .find(|t| t.resource_id == "/etc/hostname-x")
        .unwrap();
    assert!(
        err.error.as_deref().unwrap_or("").contains("no such file"),
        "{err:?}"
    );

    let wrong = format!(
        "file:\n  {p}:\n    mode: \"0644\"\n    size: {{gt: 100}}\n    owner: nobody\n    filetype: directory\n    md5: 00\n    contents: [nothere]\n"
    );
    let r = check(&wrong).await;
    assert_eq!(r.failed_count(), 6, "{r:#?}");
    let c = r.results.iter().find(|t| t.property == "contents").unwrap();
    assert_eq!(c.error.as_deref(), Some("patterns not found: [nothere]"));
}

#[tokio::test]
async fn package() {
    let bash = sh("dpkg-query -W -f='${Version}' bash");
    let r = check(&format!(
        "package:\n  bash:\n    installed: true\n    versions: [\"{bash}\"]\n  coreutils:\n    versions: {{semver-constraint: \">=8\"}}\n  no-such-pkg-xyz:\n    installed: false\n\
         package-bad:\n"
    ).replace("package-bad:\n", ""))
    .await;
    assert!(r.passed(), "{r:#?}");
    let r = check("package:\n  no-such-pkg-xyz:\n    installed: true\n    versions: [\"1.0\"]\n  bash:\n    versions: [\"0.0.1\"]\n").await;
    assert_failed(&r, &[("no-such-pkg-xyz", "installed"), ("bash", "version")]);
    // goss: a failed `installed` skips the package's other properties.
    assert_eq!(status(&r, "no-such-pkg-xyz", "version"), Status::Skipped);
}

#[tokio::test]
async fn command() {
    let r = check(
        r#"command:
  echo out; echo err >&2; exit 3:
    exit-status: 3
    stdout: [out]
    stderr: [err, "!out"]
  named:
    exec: "printf 'a\nb\n'"
    exit-status: 0
    stdout: {have-len: 4}
  sleep 5:
    exit-status: 0
    timeout: 200
  "false":
    exit-status: 0
"#,
    )
    .await;
    assert_failed(&r, &[("sleep 5", "exit-status"), ("false", "exit-status")]);
    let t = r
        .results
        .iter()
        .find(|t| t.resource_id == "sleep 5")
        .unwrap();
    assert!(
        t.error.as_deref().unwrap_or("").contains("timed out"),
        "{t:?}"
    );
    assert!(
        r.duration.as_secs() < 4,
        "commands ran concurrently and the timeout held"
    );
}

#[tokio::test]
async fn kernel_param() {
    let r = check("kernel-param:\n  kernel.ostype:\n    value: Linux\n  kernel.pid_max:\n    value: {gt: 100}\n  kernel.ostype2:\n    value: x\n  net.ipv4.ip_forward:\n    value: {or: [\"0\", \"1\"]}\n  kernel.hostname:\n    value: windows-box\n").await;
    assert_failed(
        &r,
        &[("kernel.ostype2", "value"), ("kernel.hostname", "value")],
    );
}

#[tokio::test]
async fn user_and_group() {
    let r = check(
        "user:\n  root:\n    exists: true\n    uid: 0\n    gid: \"0\"\n    groups: [root]\n    home: /root\n    shell: {have-suffix: sh}\n  ghost-user-x:\n    exists: false\n  nobody:\n    uid: 0\n    groups: {consist-of: [root]}\n\
         group:\n  root:\n    exists: true\n    gid: 0\n  ghost-group-x:\n    exists: true\n",
    )
    .await;
    assert_failed(
        &r,
        &[
            ("nobody", "uid"),
            ("nobody", "groups"),
            ("ghost-group-x", "exists"),
        ],
    );
}

#[tokio::test]
async fn process_port_addr_and_http() {
    let me = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if req.starts_with("GET /ok ") {
                    ("200 OK", "hello\nworld\n".to_string())
                } else if req.starts_with("POST /echo ") {
                    let body = req.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                    ("201 Created", body)
                } else {
                    ("404 Not Found", "nope\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nX-Test: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = format!(
        r#"process:
  {me}:
    running: true
  no-such-process-x:
    running: true
port:
  tcp:{port}:
    listening: true
    ip: [127.0.0.1]
  tcp:{closed}:
    listening: true
addr:
  tcp://127.0.0.1:{port}:
    reachable: true
  tcp://127.0.0.1:{closed}:
    reachable: true
    timeout: 300
http:
  http://127.0.0.1:{port}/ok:
    status: 200
    body: [world, "!nope"]
    headers: ["X-Test: yes"]
  http://127.0.0.1:{port}/echo:
    method: POST
    request-body: posted-data
    request-headers: ["Content-Type: text/plain"]
    status: 201
    body: [posted-data]
  http://127.0.0.1:{port}/missing:
    status: 200
    timeout: 2000
"#
    );
    let r = check(&yaml).await;
    assert_failed(
        &r,
        &[
            ("no-such-process-x", "running"),
            (&format!("tcp:{closed}"), "listening"),
            (&format!("tcp://127.0.0.1:{closed}"), "reachable"),
            (&format!("http://127.0.0.1:{port}/missing"), "status"),
        ],
    );
}

#[tokio::test]
async fn dns_interface_mount() {
    let r = check(
        r#"dns:
  localhost:
    resolvable: true
    addrs: {contain-element: 127.0.0.1}
  A:localhost:
    resolvable: true
  no-such-host.invalid:
    resolvable: true
    timeout: 2000
interface:
  lo:
    exists: true
    mtu: 65536
    addrs: [127.0.0.1/8]
  nope0:
    exists: true
mount:
  /:
    exists: true
  /proc:
    exists: true
    filesystem: proc
    opts: {contain-element: rw}
  /no/such/mount:
    exists: true
"#,
    )
    .await;
    assert_failed(
        &r,
        &[
            ("no-such-host.invalid", "resolvable"),
            ("nope0", "exists"),
            ("/no/such/mount", "exists"),
        ],
    );
}

#[tokio::test]
async fn matching_skip_title_meta() {
    let r = check(
        r#"matching:
  numbers as strings:
    content: "42"
    matches: {gt: 40}
  list:
    content: [a, b, c]
    matches: {consist-of: [c, b, a]}
  wrong:
    content: abc
    matches: {have-prefix: x}
  skipped:
    skip: true
    title: not now
    meta: {owner: me}
    content: x
    matches: y
"#,
    )
    .await;
    assert_failed(&r, &[("wrong", "matches")]);
    assert_eq!(status(&r, "skipped", "matches"), Status::Skipped);
    let s = r
        .results
        .iter()
        .find(|t| t.resource_id == "skipped")
        .unwrap();
    assert_eq!(
        (s.title.as_str(), &s.meta),
        ("not now", &serde_json::json!({"owner": "me"}))
    );
    assert_eq!(r.exit_code().code(), 1);
}

#[tokio::test]
async fn retries_until_the_check_passes_or_times_out() {
    let d = tempfile::tempdir().unwrap();
    let flag = d.path().join("ready");
    let yaml = format!("file:\n  {}:\n    exists: true\n", flag.display());
    let data = TemplateData::default();
    let suite = load_str("g.yaml", &yaml, Path::new("."), &data).unwrap();
    let opts = RunOptions {
        retry_timeout: std::time::Duration::from_millis(400),
        sleep: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let r = run(&suite, &LocalTarget::new(), &opts).await;
    assert!(r.timed_out && r.attempts >= 3, "{r:#?}");
    assert_eq!(r.exit_code().code(), 3);
    let f2 = flag.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let _ = tokio::fs::write(f2, "").await;
    });
    let opts = RunOptions {
        retry_timeout: std::time::Duration::from_secs(5),
        ..opts
    };
    let r = run(&suite, &LocalTarget::new(), &opts).await;
    assert!(r.passed() && r.attempts >= 2, "{r:#?}");
}

/// goss's per-resource retries: a failing command is run again after
/// `retry_delay`, up to `retry_count` more times; a package that never
/// appears fails after its retries.
#[tokio::test]
async fn retry_count_reruns_a_failed_resource() {
    let d = tempfile::tempdir().unwrap();
    let n = d.path().join("n");
    // Passes on the third run.
    let cmd = format!(
        "c=$(cat {p} 2>/dev/null || echo 0); c=$((c+1)); echo $c > {p}; [ $c -ge 3 ]",
        p = n.display()
    );
    let yaml = format!(
        "command:\n  ok-third:\n    exec: {cmd:?}\n    exit-status: 0\n    retry_count: 3\n    retry_delay: 50ms\n  \
         never:\n    exec: \"false\"\n    exit-status: 0\n    retry_count: 2\n    retry_delay: 10\n\
         package:\n  no-such-pkg-xyz:\n    installed: true\n    retry_count: 1\n    retry_delay: 10ms\n"
    );
    let t0 = std::time::Instant::now();
    let r = check(&yaml).await;
    assert_failed(
        &r,
        &[("never", "exit-status"), ("no-such-pkg-xyz", "installed")],
    );
    assert_eq!(std::fs::read_to_string(&n).unwrap().trim(), "3");
    assert!(t0.elapsed() < std::time::Duration::from_secs(3));
    // Not a goss attribute of `file`: ignored with a warning.
    let data = TemplateData::default();
    let s = load_str(
        "g.yaml",
        "file:\n  /:\n    exists: true\n    retry_count: 2\n",
        Path::new("."),
        &data,
    )
    .unwrap();
    assert!(
        s.warnings
            .to_string()
            .contains("unknown attribute `retry_count`"),
        "{}",
        s.warnings
    );
    assert!(load_str(
        "g.yaml",
        "command:\n  x:\n    exit-status: 0\n    retry_delay: soon\n",
        Path::new("."),
        &data
    )
    .is_err());
}

/// gjson on a command's JSON output and an HTTP body; goss's header
/// lines (canonical names); `matching` with `as-reader`; the `xml`
/// matcher; mount `usage`.
#[tokio::test]
async fn gjson_headers_as_reader_and_usage() {
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let body = r#"{"status": "ok", "nodes": [{"name": "a", "ready": true}, {"name": "b", "ready": false}]}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-multi-word-header: v\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        port
    };
    let yaml = format!(
        r#"command:
  json:
    exec: "echo '{{\"a\": {{\"b\": [1, 2, 3]}}, \"name\": \"x\"}}'"
    exit-status: 0
    stdout:
      gjson:
        a.b.#: 3
        a.b.1: {{gt: 1}}
        name: x
  json-wrong:
    exec: "echo '{{\"a\": 1}}'"
    exit-status: 0
    stdout: {{gjson: {{a: 2}}}}
http:
  http://127.0.0.1:{port}/:
    status: 200
    headers: ["Content-Type: application/json", "X-Multi-Word-Header: v", "!/^x-/"]
    body:
      gjson:
        status: ok
        nodes.#(ready==true).name: a
        nodes.#.name: [a, b]
matching:
  reader:
    content: "line one\nline two"
    as-reader: true
    matches: ["two", "!three", "/^line o/"]
  xml:
    content: "<order><book isbn='1'><title>A</title></book><book isbn='2'><title>B</title></book></order>"
    matches:
      and:
        - xml: {{xpath: "count(//book)", result: 2}}
        - xml: {{xpath: "//book[@isbn='2']/title", result: "<title>B</title>"}}
  xml-wrong:
    content: "<order><book/></order>"
    matches: {{xml: {{xpath: "count(//book)", result: 2}}}}
mount:
  /:
    exists: true
    usage: {{and: [{{ge: 0}}, {{le: 100}}]}}
"#
    );
    let r = check(&yaml).await;
    assert_failed(&r, &[("json-wrong", "stdout"), ("xml-wrong", "matches")]);
    let t = r
        .results
        .iter()
        .find(|t| t.resource_id == "json-wrong" && t.property == "stdout")
        .unwrap();
    assert!(
        t.error.as_deref().unwrap_or("").contains("gjson `a`"),
        "{t:?}"
    );
    // goss names http's text properties Body and Headers.
    assert_eq!(
        status(&r, &format!("http://127.0.0.1:{port}/"), "Body"),
        Status::Passed
    );
    assert_eq!(
        status(&r, &format!("http://127.0.0.1:{port}/"), "Headers"),
        Status::Passed
    );
}
