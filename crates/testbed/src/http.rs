//! A minimal HTTP/1.0 client over `std::net::TcpStream` for moto's control
//! API (HTTP/1.0 so that the answer is never chunked: read to EOF).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Error, IoContext, Result};

/// A response: status code and body.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Sends `method path` with `body` to `addr`, waiting at most `timeout` for
/// each of connect/read/write.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response> {
    let what = || format!("{method} http://{addr}{path}");
    let mut s = TcpStream::connect_timeout(&addr, timeout).ctx(what)?;
    s.set_read_timeout(Some(timeout)).ctx(what)?;
    s.set_write_timeout(Some(timeout)).ctx(what)?;
    s.set_nodelay(true).ctx(what)?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: image-testbed\r\nAccept: */*\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ctx(what)?;
    s.write_all(body).ctx(what)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ctx(what)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::Failed(format!("{}: malformed HTTP response", what())))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::Failed(format!("{}: malformed status line", what())))?;
    Ok(Response {
        status,
        body: raw[split + 4..].to_vec(),
    })
}
