//! `uri`'s plain-HTTP request without urllib (issue #16): python3's
//! imports of urllib take ~40 ms of a `uri` task's ~55 ms, its start
//! ~15 ms. For a GET or HEAD without a body to an `http://` URL the
//! target's python3 only opens the socket, sends the bytes [`request`]
//! builds (the request urllib would send: its headers, title-cased, in its
//! order) and prints what comes back; [`answer`] reads it as http.client
//! and urllib do: the status line (100 Continue skipped), the headers,
//! the body (chunked, Content-Length or until the close; none for HEAD,
//! 1xx, 204 and 304), urllib's messages for a failure and for a status
//! outside 2xx. A redirect urllib would follow is not read here: the
//! request is made again through urllib (a second GET of the first URL).
//! The python side takes urllib's way from the start when any `*_proxy`
//! variable is set on the target. Not a module; a helper with one job.

/// What the target's python3 did with the request.
pub struct Raw<'a> {
    /// The bytes that came back.
    pub data: &'a [u8],
    /// The error that stopped the connection or the send (urllib wraps
    /// those in `<urlopen error ...>`), if any.
    pub send_error: Option<&'a str>,
    /// The error that stopped the reading, if any.
    pub recv_error: Option<&'a str>,
}

/// The answer, as the module reports it.
#[derive(Debug, PartialEq)]
pub struct Answer {
    /// The HTTP status (-1: no answer).
    pub status: i64,
    /// urllib's message (`OK (N bytes)`, `HTTP Error N: REASON`,
    /// `Request failed: ...`).
    pub msg: String,
    /// The headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The connection (host, port) and the bytes urllib would send for
/// `method` `url` with `headers` (in order; a later one of the same name
/// wins, in the first one's place), or `None` when the request is not
/// one this path makes the same as urllib (another scheme or method, a
/// body, a user or fragment in the URL, a header urllib sets itself).
pub fn request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    has_body: bool,
) -> Option<(String, u16, Vec<u8>)> {
    if has_body || !matches!(method, "GET" | "HEAD") {
        return None;
    }
    let rest = url.strip_prefix("http://")?;
    if rest
        .bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || b == b'#')
    {
        return None;
    }
    let (netloc, selector) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match netloc.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => (netloc, 80),
    };
    let host_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    if host.is_empty() || !host.bytes().all(host_ok) {
        return None;
    }
    // urllib sends a query without a path as it is (`GET ?a HTTP/1.1`).
    if selector.starts_with('?') {
        return None;
    }
    let selector = if selector.is_empty() { "/" } else { selector };
    // urllib's Request.add_header: name.capitalize(), a later value
    // replaces an earlier one in its place.
    let mut mine: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        let token = |b: u8| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b);
        if k.is_empty()
            || !k.bytes().all(token)
            || !v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return None;
        }
        let lower = k.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "accept-encoding" | "connection" | "content-length" | "transfer-encoding"
        ) {
            return None;
        }
        match mine.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
            Some(e) => e.1 = v.clone(),
            None => mine.push((k.clone(), v.clone())),
        }
    }
    // Without one, urllib sends its own (`Python-urllib/3.x`).
    if !mine
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        return None;
    }
    let mut out =
        format!("{method} {selector} HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: {netloc}\r\n");
    for (k, v) in &mine {
        out.push_str(&format!("{}: {v}\r\n", title(k)));
    }
    out.push_str("Connection: close\r\n\r\n");
    Some((host.to_string(), port, out.into_bytes()))
}

/// Python's `str.title()` for a header name.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_cased {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_cased = true;
        } else {
            out.push(c);
            prev_cased = false;
        }
    }
    out
}

/// The answer to `method` as urllib would give it, or `None` for a
/// redirect urllib would follow (`follow`: uri's `safe`, `all`, `none`).
pub fn answer(raw: &Raw, method: &str, follow: &str) -> Option<Answer> {
    let failed = |msg: String| Answer {
        status: -1,
        msg: format!("Request failed: {msg}"),
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Some(e) = raw.send_error {
        return Some(failed(format!("<urlopen error {e}>")));
    }
    let mut data = raw.data;
    let (status, reason, headers) = loop {
        let Some((line, rest)) = split_line(data) else {
            return Some(failed(match raw.recv_error {
                Some(e) => e.to_string(),
                None if data.is_empty() => "Remote end closed connection without response".into(),
                None => latin1(data),
            }));
        };
        let line_s = latin1(line);
        let mut parts = line_s.trim_end_matches(['\r', '\n']).splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status = parts.next().and_then(|s| s.parse::<i64>().ok());
        let reason = parts.next().unwrap_or("").trim().to_string();
        let Some(status) =
            status.filter(|s| version.starts_with("HTTP/") && (100..1000).contains(s))
        else {
            return Some(failed(line_s));
        };
        let Some((headers, rest)) = read_headers(rest) else {
            return Some(failed(
                raw.recv_error
                    .unwrap_or("Remote end closed connection without response")
                    .to_string(),
            ));
        };
        data = rest;
        if status != 100 {
            let headers: Headers = headers
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect();
            break (status, reason, headers);
        }
    };
    if matches!(status, 301 | 302 | 303 | 307 | 308) && follow != "none" {
        return None;
    }
    let get = |n: &str| super::http::header(&headers, n);
    let none = method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let chunked =
        get("transfer-encoding").is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
    let body = if none {
        Vec::new()
    } else if chunked {
        match dechunk(data) {
            Some(b) => b,
            None => {
                return Some(failed(
                    raw.recv_error
                        .unwrap_or("IncompleteRead(0 bytes read)")
                        .to_string(),
                ))
            }
        }
    } else {
        match get("content-length").and_then(|l| l.trim().parse::<usize>().ok()) {
            Some(n) if data.len() >= n => data[..n].to_vec(),
            Some(n) => {
                return Some(failed(match raw.recv_error {
                    Some(e) => e.to_string(),
                    None => format!(
                        "IncompleteRead({} bytes read, {} more expected)",
                        data.len(),
                        n - data.len()
                    ),
                }))
            }
            // Until the close: a reading that failed fails the request.
            None => match raw.recv_error {
                Some(e) => return Some(failed(e.to_string())),
                None => data.to_vec(),
            },
        }
    };
    let msg = if (200..300).contains(&status) {
        format!("OK ({} bytes)", get("content-length").unwrap_or("unknown"))
    } else {
        format!("HTTP Error {status}: {reason}")
    };
    Some(Answer {
        status,
        msg,
        headers,
        body,
    })
}

/// The first line of `data` (with its end) and the rest, if it ends.
fn split_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = data.iter().position(|&b| b == b'\n')?;
    Some((&data[..=i], &data[i + 1..]))
}

/// Bytes as python's latin-1 decoding gives them.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// Header names and values, in order.
type Headers = Vec<(String, String)>;

/// The header block that starts `data` (names as sent, values as the
/// email parser gives them: leading blanks and the line end taken off,
/// a folded line kept after a CRLF) and what follows it.
fn read_headers(mut data: &[u8]) -> Option<(Headers, &[u8])> {
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        let (line, rest) = split_line(data)?;
        data = rest;
        if line == b"\r\n" || line == b"\n" {
            return Some((out, data));
        }
        let text = latin1(line);
        if text.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str("\r\n");
                last.1.push_str(text.trim_end_matches(['\r', '\n']));
            }
            continue;
        }
        if let Some((k, v)) = text.split_once(':') {
            let v = v
                .trim_start_matches([' ', '\t'])
                .trim_end_matches(['\r', '\n']);
            out.push((k.to_string(), v.to_string()));
        }
    }
}

/// A chunked body's data, or `None` when it ends early.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (line, rest) = split_line(data)?;
        let size = latin1(line);
        let size = size.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        if rest.len() < n {
            return None;
        }
        out.extend_from_slice(&rest[..n]);
        data = rest[n..]
            .strip_prefix(b"\r\n")
            .or_else(|| rest[n..].strip_prefix(b"\n"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(data: &[u8]) -> Raw<'_> {
        Raw {
            data,
            send_error: None,
            recv_error: None,
        }
    }

    #[test]
    fn builds_the_request_urllib_sends() {
        let h = vec![
            ("user-agent".to_string(), "x".to_string()),
            ("X-api-key2abc".to_string(), "k".to_string()),
            ("User-Agent".to_string(), "ansible-httpget".to_string()),
        ];
        let (host, port, req) = request("GET", "http://h.example:8080/p?a=1", &h, false).unwrap();
        assert_eq!((host.as_str(), port), ("h.example", 8080));
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "GET /p?a=1 HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: h.example:8080\r\nUser-Agent: ansible-httpget\r\nX-Api-Key2Abc: k\r\nConnection: close\r\n\r\n"
        );
        assert!(request("POST", "http://h/", &[], false).is_none());
        assert!(request("GET", "http://h/", &[], true).is_none());
        assert!(request("GET", "https://h/", &[], false).is_none());
        assert!(request("GET", "http://u@h/", &[], false).is_none());
        assert!(request("GET", "http://h/#f", &[], false).is_none());
        assert!(request("GET", "http://[::1]/", &[], false).is_none());
        assert!(request("GET", "http://h/a b", &[], false).is_none());
        assert!(request("GET", "http://h?a", &h, false).is_none());
        assert!(
            request("GET", "http://h/", &[], false).is_none(),
            "no User-Agent"
        );
        let host = vec![("Host".to_string(), "o".to_string())];
        assert!(request("GET", "http://h/", &host, false).is_none());
    }

    #[test]
    fn reads_the_answer_as_http_client_does() {
        let a = answer(
            &ok(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A:  v \r\nX-A: w\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            "GET",
            "safe",
        )
        .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.msg, "OK (unknown bytes)");
        assert_eq!(a.body, b"abcde");
        assert_eq!(
            a.headers,
            [
                ("content-type".to_string(), "text/plain".to_string()),
                ("x-a".to_string(), "v ".to_string()),
                ("x-a".to_string(), "w".to_string()),
                ("transfer-encoding".to_string(), "chunked".to_string())
            ]
        );
        let a = answer(
            &ok(b"HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\nnopeEXTRA"),
            "GET",
            "safe",
        )
        .unwrap();
        assert_eq!(
            (a.status, a.msg.as_str(), &a.body[..]),
            (404, "HTTP Error 404: Not Found", &b"nope"[..])
        );
        let a = answer(
            &ok(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n"),
            "HEAD",
            "safe",
        )
        .unwrap();
        assert_eq!((a.msg.as_str(), a.body.len()), ("OK (9 bytes)", 0));
        let a = answer(&ok(b"HTTP/1.0 200 OK\r\n\r\nuntil close"), "GET", "safe").unwrap();
        assert_eq!(a.body, b"until close");
        assert!(answer(
            &ok(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n"),
            "GET",
            "safe"
        )
        .is_none());
        let a = answer(
            &ok(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n"),
            "GET",
            "none",
        )
        .unwrap();
        assert_eq!(a.msg, "HTTP Error 302: Found");
        let a = answer(
            &ok(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
            "GET",
            "safe",
        )
        .unwrap();
        assert_eq!(
            a.msg,
            "Request failed: IncompleteRead(3 bytes read, 6 more expected)"
        );
        let a = answer(&ok(b""), "GET", "safe").unwrap();
        assert_eq!(
            (a.status, a.msg.as_str()),
            (
                -1,
                "Request failed: Remote end closed connection without response"
            )
        );
        let refused = Raw {
            data: b"",
            send_error: Some("[Errno 111] Connection refused"),
            recv_error: None,
        };
        assert_eq!(
            answer(&refused, "GET", "safe").unwrap().msg,
            "Request failed: <urlopen error [Errno 111] Connection refused>"
        );
        let timeout = Raw {
            data: b"HTTP/1.0 200 OK\r\n",
            send_error: None,
            recv_error: Some("timed out"),
        };
        assert_eq!(
            answer(&timeout, "GET", "safe").unwrap().msg,
            "Request failed: timed out"
        );
    }
}
