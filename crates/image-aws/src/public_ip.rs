//! This machine's public address, for the temporary security group.
//!
//! A request whose temporary security group has no source CIDRs
//! ([`crate::SecurityGroupSpec::Temporary`] with empty `source_cidrs`) opens
//! SSH to this machine's public address only: `/32` (IPv6: `/128`), asked of
//! a "what is my IP" service with one HTTP GET before any EC2 call — what
//! packer's `temporary_security_group_source_public_ip` does. 0.0.0.0/0 is
//! never assumed: when the address cannot be learned the build fails and
//! says to set `temporary_security_group_source_cidrs`.
//!
//! The service is [`DEFAULT_URL`] (it answers the address as text), or
//! [`crate::ClientOptions::checkip_url`] (`image-cli` reads it from the
//! environment variable [`URL_ENV`]); `http://` works too (tests serve a
//! local answer). The answer is asked once per [`Ec2Clients`]: fifty
//! builds at once make one request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), image_aws::public_ip::PublicIpError> {
//! use image_aws::public_ip;
//! let ip = public_ip::learn(public_ip::DEFAULT_URL, public_ip::TIMEOUT).await?;
//! println!("SSH from {}", public_ip::cidr_of(ip));
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use image_core::events::{Event, EventSink};

pub use crate::error::PublicIpError;
use crate::error::{BuildError, Step, StepError};
use crate::request::{BuildRequest, SecurityGroupSpec};
use crate::Ec2Clients;

/// The service asked by default (AWS's own; answers `203.0.113.9\n`).
pub const DEFAULT_URL: &str = "https://checkip.amazonaws.com";

/// The environment variable `image-cli` reads into
/// [`crate::ClientOptions::checkip_url`] (replacing [`DEFAULT_URL`]).
pub const URL_ENV: &str = "IMAGE_BUILDER_CHECKIP_URL";

/// How long the whole lookup (connect, TLS, answer) may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The longest answer read: an address is at most 45 characters.
const MAX_BODY: usize = 1024;

/// The URL to ask: `configured` if set and not empty, else [`DEFAULT_URL`].
/// (This crate reads no environment: the CLI maps [`URL_ENV`] onto
/// [`crate::ClientOptions::checkip_url`].)
pub fn url(configured: Option<&str>) -> String {
    match configured.map(str::trim) {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => DEFAULT_URL.to_string(),
    }
}

/// The CIDR of one address: `/32` for IPv4, `/128` for IPv6.
pub fn cidr_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// The address in an answer: the whole body, trimmed, must be one IPv4 or
/// IPv6 address (an IPv4-mapped IPv6 address counts as IPv4).
pub fn parse_body(body: &[u8]) -> Result<IpAddr, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the answer is not text".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("the answer is empty".to_string());
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => Ok(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        Ok(ip) => Ok(ip),
        Err(_) => {
            let shown: String = text.chars().take(60).collect();
            let more = if text.chars().count() > 60 { "…" } else { "" };
            Err(format!("the answer `{shown}{more}` is not an IP address"))
        }
    }
}

/// GETs `url` and returns the address it answers, within `timeout`
/// overall. Fails on a refused or slow connection, a TLS failure, a status
/// other than 2xx, or an answer that is not exactly one address.
pub async fn learn(url: &str, timeout: Duration) -> Result<IpAddr, PublicIpError> {
    let fail = |reason: String| PublicIpError {
        url: url.to_string(),
        reason,
    };
    match tokio::time::timeout(timeout, fetch(url)).await {
        Ok(Ok(body)) => parse_body(&body).map_err(fail),
        Ok(Err(reason)) => Err(fail(reason)),
        Err(_) => Err(fail(format!("no answer within {timeout:?}"))),
    }
}

/// The body of a GET of `url` (2xx only, at most [`MAX_BODY`] bytes).
async fn fetch(url: &str) -> Result<Bytes, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must start with https:// or http://".to_string()),
    };
    // The process-global crypto provider is left alone: this one is explicit.
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if https {
        builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no TLS root certificates: {e}"))?
    } else {
        // Plain HTTP never uses TLS: no need for the system's certificates.
        let tls = rustls::ClientConfig::builder_with_provider(provider.into())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.with_tls_config(tls)
    };
    let connector = builder.https_or_http().enable_http1().build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = hyper::Request::get(uri)
        .header(hyper::header::USER_AGENT, "image-builder-rs")
        .body(Empty::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let resp = client.request(req).await.map_err(|e| chain(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(body.to_bytes())
}

/// An error and its causes, `: `-separated (hyper's own message is vague).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// Whether `req` needs this machine's address: a temporary group without
/// source CIDRs, in a request that is otherwise fit to launch (an unfit
/// one, e.g. a private SSH interface without CIDRs, is left for validation
/// to report).
fn needs_address(req: &BuildRequest) -> bool {
    matches!(&req.security_group, SecurityGroupSpec::Temporary { source_cidrs } if source_cidrs.is_empty())
        && req.validate_launch().is_ok()
}

/// The request with its empty temporary-group CIDRs replaced by this
/// machine's public address (`None`: nothing to learn), and a message event
/// naming it. Called before any EC2 call; a failure is a [`BuildError`] at
/// [`Step::SecurityGroup`] telling to set the CIDRs.
pub(crate) async fn fill_source_cidrs(
    ec2: &Ec2Clients,
    req: &BuildRequest,
    events: &dyn EventSink,
) -> Result<Option<BuildRequest>, BuildError> {
    if !needs_address(req) {
        return Ok(None);
    }
    let url = url(ec2.checkip_url());
    let started = Instant::now();
    let answer = ec2
        .learned_address()
        .get_or_init(|| learn(&url, TIMEOUT))
        .await
        .clone();
    match answer {
        Ok(ip) => {
            let cidr = cidr_of(ip);
            tracing::debug!(%url, %cidr, elapsed = ?started.elapsed(), "learned the public address");
            events.emit(&Event::Message {
                build: req.name.clone(),
                text: format!(
                    "temporary security group: SSH from {cidr} (this machine's public address, from {url})"
                ),
            });
            let mut out = req.clone();
            out.security_group = SecurityGroupSpec::Temporary {
                source_cidrs: vec![cidr],
            };
            Ok(Some(out))
        }
        Err(e) => Err(BuildError {
            build: req.name.clone(),
            build_id: String::new(),
            step: Step::SecurityGroup,
            region: None,
            error: StepError::PublicAddress(e),
            left: Vec::new(),
            cleanup_failures: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn an_answer_is_one_address_trimmed() {
        assert_eq!(
            parse_body(b"203.0.113.9\n"),
            Ok(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
        );
        assert_eq!(
            parse_body(b"  2001:db8::7 \r\n"),
            Ok(IpAddr::V6("2001:db8::7".parse::<Ipv6Addr>().unwrap()))
        );
        assert_eq!(
            parse_body(b"::ffff:203.0.113.9"),
            Ok(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b""[..],
            b" \n",
            b"203.0.113.9/32",
            b"203.0.113.9 198.51.100.1",
            b"203.0.113",
            b"<html>rate limited</html>",
            b"\xff\xfe",
        ] {
            let e = parse_body(bad).unwrap_err();
            assert!(e.starts_with("the answer"), "{bad:?}: {e}");
        }
        let long = "x".repeat(500);
        let e = parse_body(long.as_bytes()).unwrap_err();
        assert!(e.len() < 120, "{e}");
    }

    #[test]
    fn cidrs_are_single_addresses() {
        assert_eq!(
            cidr_of(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
            "203.0.113.9/32"
        );
        assert_eq!(cidr_of("2001:db8::7".parse().unwrap()), "2001:db8::7/128");
    }

    #[test]
    fn a_configured_url_wins() {
        assert_eq!(url(Some(" http://127.0.0.1:9/ ")), "http://127.0.0.1:9/");
        assert_eq!(url(None), DEFAULT_URL);
        assert_eq!(url(Some(" ")), DEFAULT_URL);
    }

    #[tokio::test]
    async fn failures_name_the_url() {
        // Nothing listens on a port just released.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let u = format!("http://127.0.0.1:{port}/");
        let e = learn(&u, TIMEOUT).await.unwrap_err();
        assert_eq!(e.url, u);
        assert!(e.to_string().contains(&u), "{e}");
        // HTTPS: the TLS setup comes first, then the same refusal.
        let u = format!("https://127.0.0.1:{port}/");
        let e = learn(&u, TIMEOUT).await.unwrap_err();
        assert!(e.to_string().contains(&u), "{e}");
        let e = learn("ftp://example.com/", TIMEOUT).await.unwrap_err();
        assert!(e.reason.contains("https://"), "{e}");
    }

    /// Answers every connection with `response`; returns the URL.
    async fn serve(response: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let u = format!("http://{}/", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        u
    }

    #[tokio::test]
    async fn learns_over_plain_http() {
        let u = serve(
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n203.0.113.9\n",
        )
        .await;
        assert_eq!(
            learn(&u, TIMEOUT).await,
            Ok(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
        );
        let u = serve(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let e = learn(&u, TIMEOUT).await.unwrap_err();
        assert!(e.reason.contains("503"), "{e}");
        let u =
            serve("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").await;
        let e = learn(&u, TIMEOUT).await.unwrap_err();
        assert!(e.reason.contains("`hello` is not an IP address"), "{e}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let u = format!("http://{}/", l.local_addr().unwrap());
        // Accepts, never answers.
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let e = learn(&u, Duration::from_millis(200)).await.unwrap_err();
        assert!(e.reason.contains("no answer within"), "{e}");
        keep.abort();
    }
}
