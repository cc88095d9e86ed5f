//! A small HTTP/1.1 reverse proxy in front of moto that injects faults
//! moto cannot: per-call latency, N `RequestLimitExceeded` (503) or
//! `InternalError` (500) answers for an action, and images reported
//! `pending` either for N `DescribeImages` polls (per image id, polls by
//! id only: [`FaultProxy::pending_polls`]) or for a fixed time after the
//! `CreateImage` / `CopyImage` call that made them, whoever asks and however
//! often ([`FaultProxy::pending_for`]), as EC2 does; and instant
//! `CreateFleet` answers without capacity ([`Fault::NoCapacity`]).
//!
//! std only (one thread per connection); configured at run time through
//! [`FaultProxy`]'s methods, which share state with the serving threads.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What to answer instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 with EC2's `RequestLimitExceeded` error body.
    Throttle,
    /// HTTP 500 with `InternalError`.
    ServerError,
    /// HTTP 403 with `UnauthorizedOperation` (a policy without the action):
    /// not retried by anyone.
    Denied,
    /// `CreateFleet` only: HTTP 200 with no instance and an
    /// `InsufficientInstanceCapacity` error naming the request's first
    /// override (type, subnet or zone), as an instant EC2 Fleet answers
    /// when that spot pool has no capacity; moto is not called.
    NoCapacity,
}

#[derive(Default)]
struct State {
    latency: Duration,
    action_latency: HashMap<String, Duration>,
    faults: HashMap<String, Vec<Fault>>,
    pending_polls: usize,
    polls_per_image: HashMap<String, usize>,
    /// Time mode: images made through the proxy are pending this long.
    pending_for: Duration,
    /// Image id -> when the CreateImage/CopyImage answer naming it came
    /// back from moto, and when a DescribeImages answer first showed it
    /// `available` (time mode).
    images: HashMap<String, ImageTimes>,
    calls: HashMap<String, usize>,
    injected: HashMap<String, usize>,
    rewritten: usize,
    /// `GetConsoleOutput`: (text, calls answered empty before it shows).
    console: Option<(String, usize)>,
}

/// When an image made through the proxy was created and first shown
/// `available`.
#[derive(Debug, Clone, Copy)]
pub struct ImageTimes {
    /// When moto's `CreateImage` / `CopyImage` answer came back.
    pub created: Instant,
    /// `CreateImage` or `CopyImage`.
    pub copy: bool,
    /// When a `DescribeImages` answer first showed it `available`.
    pub available_seen: Option<Instant>,
}

/// The proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:<free port>, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || {
                    let _ = serve(conn, upstream, &st);
                });
            }
        });
        FaultProxy { addr, state, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Latency added to every call.
    pub fn set_latency(&self, d: Duration) {
        self.state.lock().unwrap().latency = d;
    }

    /// Latency added to calls of `action`.
    pub fn set_action_latency(&self, action: &str, d: Duration) {
        self.state
            .lock()
            .unwrap()
            .action_latency
            .insert(action.to_string(), d);
    }

    /// The next `n` calls of `action` answer `fault`.
    pub fn fail(&self, action: &str, n: usize, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(action.to_string())
            .or_default()
            .extend((0..n).map(|_| fault));
    }

    /// `DescribeImages` by id reports `pending` for the first `n` polls of
    /// each image id.
    pub fn pending_polls(&self, n: usize) {
        self.state.lock().unwrap().pending_polls = n;
    }

    /// Time mode: every image a `CreateImage` / `CopyImage` call through
    /// the proxy made is `pending` in every `DescribeImages` answer (by id,
    /// by filter, by owner) until `d` has passed since that call answered;
    /// `Duration::ZERO` turns it off. Independent of [`Self::pending_polls`]
    /// (an image is pending when either says so).
    pub fn pending_for(&self, d: Duration) {
        self.state.lock().unwrap().pending_for = d;
    }

    /// The images made through the proxy so far (id, times), oldest first.
    pub fn images(&self) -> Vec<(String, ImageTimes)> {
        let s = self.state.lock().unwrap();
        let mut v: Vec<(String, ImageTimes)> =
            s.images.iter().map(|(k, t)| (k.clone(), *t)).collect();
        v.sort_by_key(|(_, t)| t.created);
        v
    }

    /// `GetConsoleOutput` answers `text` (base64, as EC2 does) after
    /// `empty_first` answers with an empty console (a booting instance),
    /// like cloud-init's output on a real instance.
    pub fn console_output(&self, text: &str, empty_first: usize) {
        self.state.lock().unwrap().console = Some((text.to_string(), empty_first));
    }

    /// How many calls of `action` reached the proxy (faulted ones included).
    pub fn calls(&self, action: &str) -> usize {
        *self.state.lock().unwrap().calls.get(action).unwrap_or(&0)
    }

    /// How many faults were injected for `action`.
    pub fn injected(&self, action: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .injected
            .get(action)
            .unwrap_or(&0)
    }

    /// How many `available` states were rewritten to `pending`.
    pub fn rewritten(&self) -> usize {
        self.state.lock().unwrap().rewritten
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    head: String,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut len = 0usize;
    for l in head.lines() {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            if k.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked" {
                return Err(std::io::Error::other("chunked requests not supported"));
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(Request { head, body }))
}

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

fn error_body(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
    )
}

/// A `CreateFleet` answer without instances whose one error names the
/// request's first override.
fn no_capacity_body(form: &str) -> String {
    let first = "LaunchTemplateConfigs.1.Overrides.1.";
    let field = |name: &str, tag: &str| {
        form_value(form, &format!("{first}{name}"))
            .map(|v| {
                format!(
                    "<{tag}>{}</{tag}>",
                    v.replace("%2D", "-").replace("%2E", ".")
                )
            })
            .unwrap_or_default()
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateFleetResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>fault-proxy</requestId><fleetId>fleet-00000000-0000-0000-0000-000000000000</fleetId><errorSet><item><launchTemplateAndOverrides><overrides>{}{}{}</overrides></launchTemplateAndOverrides><lifecycle>spot</lifecycle><errorCode>InsufficientInstanceCapacity</errorCode><errorMessage>There is no Spot capacity available that matches your request.</errorMessage></item></errorSet><fleetInstanceSet/></CreateFleetResponse>",
        field("InstanceType", "instanceType"),
        field("SubnetId", "subnetId"),
        field("AvailabilityZone", "availabilityZone"),
    )
}

fn write_response(
    w: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        let lk = k.to_ascii_lowercase();
        if lk == "content-length" || lk == "transfer-encoding" || lk == "connection" {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    ));
    w.write_all(out.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn serve(conn: TcpStream, upstream: SocketAddr, st: &Mutex<State>) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r)? {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let action = form_value(&body, "Action").unwrap_or("").to_string();
        let (delay, fault, pending, console) = {
            let mut s = st.lock().unwrap();
            *s.calls.entry(action.clone()).or_default() += 1;
            let delay = s.latency + s.action_latency.get(&action).copied().unwrap_or_default();
            let fault = s.faults.get_mut(&action).and_then(|v| {
                if v.is_empty() {
                    None
                } else {
                    Some(v.remove(0))
                }
            });
            if fault.is_some() {
                *s.injected.entry(action.clone()).or_default() += 1;
            }
            let mut pending = false;
            if action == "DescribeImages" && s.pending_polls > 0 {
                if let Some(id) = form_value(&body, "ImageId.1") {
                    let n = s.polls_per_image.entry(id.to_string()).or_default();
                    *n += 1;
                    pending = *n <= s.pending_polls;
                }
            }
            let console = match (&mut s.console, action.as_str()) {
                (Some((_, n)), "GetConsoleOutput") if *n > 0 => {
                    *n -= 1;
                    Some(String::new())
                }
                (Some((text, _)), "GetConsoleOutput") => Some(text.clone()),
                _ => None,
            };
            (delay, fault, pending, console)
        };
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        match fault {
            Some(Fault::Throttle) => {
                let b = error_body("RequestLimitExceeded", "Request limit exceeded.");
                write_response(
                    &mut w,
                    503,
                    "Service Unavailable",
                    &[("Content-Type".into(), "text/xml".into())],
                    b.as_bytes(),
                )?;
                continue;
            }
            Some(Fault::ServerError) => {
                let b = error_body("InternalError", "An internal error has occurred.");
                write_response(
                    &mut w,
                    500,
                    "Internal Server Error",
                    &[("Content-Type".into(), "text/xml".into())],
                    b.as_bytes(),
                )?;
                continue;
            }
            Some(Fault::Denied) => {
                let b = error_body(
                    "UnauthorizedOperation",
                    "You are not authorized to perform this operation.",
                );
                write_response(
                    &mut w,
                    403,
                    "Forbidden",
                    &[("Content-Type".into(), "text/xml".into())],
                    b.as_bytes(),
                )?;
                continue;
            }
            Some(Fault::NoCapacity) => {
                let b = no_capacity_body(&body);
                write_response(
                    &mut w,
                    200,
                    "OK",
                    &[("Content-Type".into(), "text/xml".into())],
                    b.as_bytes(),
                )?;
                continue;
            }
            None => {}
        }
        let (status, reason, headers, mut resp) = forward(upstream, &req)?;
        match action.as_str() {
            "CreateImage" | "CopyImage" if status == 200 => {
                let copy = action == "CopyImage";
                record_created(st, &resp, copy);
            }
            "DescribeImages" if status == 200 => {
                if let Some(r) = pending_by_time(st, &resp, pending) {
                    resp = r;
                }
            }
            _ => {}
        }
        if pending {
            let text = String::from_utf8_lossy(&resp).into_owned();
            if text.contains("<imageState>available</imageState>") {
                resp = text
                    .replace(
                        "<imageState>available</imageState>",
                        "<imageState>pending</imageState>",
                    )
                    .into_bytes();
                st.lock().unwrap().rewritten += 1;
            }
        }
        if let Some(text) = console {
            resp = with_console_output(&resp, &text);
        }
        write_response(&mut w, status, &reason, &headers, &resp)?;
    }
    let _ = w.shutdown(Shutdown::Both);
    Ok(())
}

/// The text of the first `<tag>…</tag>` in `xml` at or after `from`, and
/// where its closing tag ends.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let a = from + xml.get(from..)?.find(&open)? + open.len();
    let b = a + xml[a..].find(&close)?;
    Some((&xml[a..b], b + close.len()))
}

/// Records the image a `CreateImage` / `CopyImage` answer names, made now.
fn record_created(st: &Mutex<State>, resp: &[u8], copy: bool) {
    let xml = String::from_utf8_lossy(resp);
    if let Some((id, _)) = element(&xml, "imageId", 0) {
        st.lock().unwrap().images.insert(
            id.to_string(),
            ImageTimes {
                created: Instant::now(),
                copy,
                available_seen: None,
            },
        );
    }
}

/// Time mode: `resp` (a `DescribeImages` answer) with each image made less
/// than `pending_for` ago shown `pending`; `None` when nothing changes. The
/// first answer showing an image `available` is recorded, unless the poll
/// count mode is about to show it pending (`by_count`).
fn pending_by_time(st: &Mutex<State>, resp: &[u8], by_count: bool) -> Option<Vec<u8>> {
    const AVAILABLE: &str = "<imageState>available</imageState>";
    const PENDING: &str = "<imageState>pending</imageState>";
    let xml = String::from_utf8_lossy(resp);
    let now = Instant::now();
    let mut s = st.lock().unwrap();
    if s.images.is_empty() {
        return None;
    }
    let pending_for = s.pending_for;
    let mut out = String::with_capacity(xml.len());
    let (mut copied, mut pos, mut changed) = (0, 0, 0);
    // Each image's <imageId> comes before its <imageState> (moto's and
    // EC2's order); nested items (block devices, tags) carry neither.
    while let Some((id, end)) = element(&xml, "imageId", pos) {
        pos = end;
        let Some(times) = s.images.get_mut(id) else {
            continue;
        };
        let next_id = xml[pos..].find("<imageId>").map_or(xml.len(), |i| pos + i);
        let Some(at) = xml[pos..next_id].find(AVAILABLE).map(|i| pos + i) else {
            continue;
        };
        if now.duration_since(times.created) < pending_for {
            out.push_str(&xml[copied..at]);
            out.push_str(PENDING);
            copied = at + AVAILABLE.len();
            changed += 1;
        } else if times.available_seen.is_none() && !by_count {
            times.available_seen = Some(now);
        }
        pos = next_id;
    }
    if changed == 0 {
        return None;
    }
    s.rewritten += changed;
    out.push_str(&xml[copied..]);
    Some(out.into_bytes())
}

/// A `GetConsoleOutput` response with `<output>` replaced by `text`
/// (base64-encoded; empty text: no output element content).
fn with_console_output(resp: &[u8], text: &str) -> Vec<u8> {
    use base64::Engine as _;
    let xml = String::from_utf8_lossy(resp);
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    match (xml.find("<output>"), xml.find("</output>")) {
        (Some(a), Some(b)) if a < b => {
            format!("{}<output>{encoded}{}", &xml[..a], &xml[b..]).into_bytes()
        }
        _ => xml
            .replace(
                "</GetConsoleOutputResponse>",
                &format!("<output>{encoded}</output></GetConsoleOutputResponse>"),
            )
            .into_bytes(),
    }
}

type Response = (u16, String, Vec<(String, String)>, Vec<u8>);

fn forward(upstream: SocketAddr, req: &Request) -> std::io::Result<Response> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_nodelay(true)?;
    let mut head = String::new();
    for (i, l) in req.head.lines().enumerate() {
        if i > 0 {
            if let Some((k, _)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("connection") {
                    continue;
                }
            }
        }
        head.push_str(l);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    up.flush()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("HTTP/1.1 502 Bad Gateway");
    let mut parts = status_line.splitn(3, ' ');
    let _ = parts.next();
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(502);
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut chunked = false;
    let mut len = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse::<usize>().ok();
            }
            headers.push((k, v));
        }
    }
    if chunked {
        body = dechunk(&body);
    } else if let Some(n) = len {
        body.truncate(n);
    }
    Ok((status, reason, headers, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size_s = String::from_utf8_lossy(&b[..pos]);
        let size =
            usize::from_str_radix(size_s.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}
