//! Controller-side HTTP(S) for the modules that download (`get_url`,
//! `uri`, `deb822_repository`) when the target has no downloader (no curl,
//! wget or python3): the request is made from this machine and the body is
//! uploaded through the [`Target`](image_core::target::Target). Not a
//! module; a helper with one job. Bodies are bounded ([`MAX_BODY`]).

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The largest body read (2 GiB).
pub const MAX_BODY: usize = 2 << 30;

/// Which redirects are followed (uri's `follow_redirects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// None.
    None,
    /// Only for GET and HEAD (ansible's `safe`, the default).
    Safe,
    /// All (`all`, `yes`, `urllib2`).
    All,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `http://` or `https://`.
    pub url: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Option<Vec<u8>>,
    /// Whole-request deadline.
    pub timeout: Duration,
    /// Verify the server's certificate.
    pub validate_certs: bool,
    /// Redirects followed.
    pub redirects: Redirects,
}

/// The answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The reason phrase (`OK`).
    pub reason: String,
    /// The URL finally answered (after redirects).
    pub url: String,
    /// Response headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// A redirect was followed.
    pub redirected: bool,
}

impl Request {
    /// A GET with the defaults of the downloading modules (certificates
    /// checked, redirects followed, 60 s).
    pub fn get(url: &str) -> Request {
        Request {
            method: "GET".into(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(60),
            validate_certs: true,
            redirects: Redirects::All,
        }
    }
}

/// Sends `req`, following redirects as asked (at most 10).
pub async fn send(req: &Request) -> Result<Response, String> {
    match tokio::time::timeout(req.timeout, send_inner(req)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Request failed: timed out after {} s",
            req.timeout.as_secs()
        )),
    }
}

async fn send_inner(req: &Request) -> Result<Response, String> {
    let mut method = req.method.to_ascii_uppercase();
    let mut url = req.url.clone();
    let mut body = req.body.clone();
    let mut redirected = false;
    for _ in 0..=10 {
        let resp = once(
            &method,
            &url,
            &req.headers,
            body.as_deref(),
            req.validate_certs,
        )
        .await?;
        let follow = match req.redirects {
            Redirects::None => false,
            Redirects::Safe => method == "GET" || method == "HEAD",
            Redirects::All => true,
        };
        let loc = header(&resp.headers, "location").map(str::to_string);
        if follow && matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = loc {
                url = resolve(&url, &loc);
                redirected = true;
                if matches!(resp.status, 301..=303) && method != "HEAD" {
                    method = "GET".into();
                    body = None;
                }
                continue;
            }
        }
        return Ok(Response {
            redirected,
            url,
            ..resp
        });
    }
    Err(format!("Request failed: too many redirects ({url})"))
}

/// A header's value (name lowercase).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `loc` relative to `base`.
fn resolve(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..auth_end]);
    if let Some(net) = loc.strip_prefix("//") {
        return format!("{scheme}://{net}");
    }
    if loc.starts_with('/') {
        return format!("{origin}{loc}");
    }
    let path = &rest[auth_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{origin}{dir}/{loc}")
}

async fn once(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    validate: bool,
) -> Result<Response, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("Request failed: not a URL `{url}`: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(format!(
            "Request failed: only http:// and https:// URLs can be fetched from the controller, not `{url}`"
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let tls = if validate {
        let mut roots = rustls::RootCertStore::empty();
        let found = native_certs();
        roots.add_parsable_certificates(found);
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut b = hyper::Request::builder().method(method).uri(uri);
    let mut has_agent = false;
    for (k, v) in headers {
        has_agent |= k.eq_ignore_ascii_case("user-agent");
        b = b.header(k.as_str(), v.as_str());
    }
    if !has_agent {
        b = b.header(hyper::header::USER_AGENT, "ansible-httpget");
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_vec())))
        .map_err(|e| format!("Request failed: bad request: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("Request failed: {}", chain(&e)))?;
    let status = resp.status();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("Request failed: reading the body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        url: url.to_string(),
        headers,
        body,
        redirected: false,
    })
}

/// The system's root certificates (Debian, RHEL and Alpine bundle paths).
fn native_certs() -> Vec<CertificateDer<'static>> {
    let mut out = Vec::new();
    for f in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ] {
        if let Ok(pem) = std::fs::read_to_string(f) {
            for block in pem.split("-----BEGIN CERTIFICATE-----").skip(1) {
                let b64: String = block
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                use base64::Engine as _;
                if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
                    out.push(CertificateDer::from(der));
                }
            }
            if !out.is_empty() {
                break;
            }
        }
    }
    out
}

/// `validate_certs: false`: accepts any server certificate (signatures
/// are still checked with the provider's algorithms).
#[derive(Debug)]
struct NoVerify(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An error and its causes, `: `-separated.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        assert_eq!(resolve("http://h:1/a/b?x", "c"), "http://h:1/a/c");
        assert_eq!(resolve("http://h:1/a/b", "/c"), "http://h:1/c");
        assert_eq!(resolve("https://h/a", "http://o/x"), "http://o/x");
        assert_eq!(resolve("https://h/a", "//o/x"), "https://o/x");
    }
}
