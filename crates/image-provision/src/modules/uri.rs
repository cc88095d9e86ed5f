//! `uri`: one HTTP(S) request, made ON THE TARGET with python3's urllib
//! (what ansible's own module uses); a plain-http GET or HEAD with python3
//! and a socket only, read here as urllib reads it ([`super::uri_fast`]);
//! on a host without python3 it is made from the controller
//! ([`super::http`]). Returns ansible's keys: `status`,
//! `url`, `msg`, `redirected`, `elapsed`, every response header (lowercase,
//! `-` as `_`), `cookies`, `cookies_string`, `json` for JSON answers,
//! `content` with `return_content`, `path` with `dest`. A status outside
//! `status_code` fails with ansible's message. `creates`/`removes` skip the
//! request. Like ansible (no check-mode support) it is skipped in check
//! mode. `body_format`: raw, json, form-urlencoded (form-multipart is
//! refused).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use super::get_url::{auth_headers, headers};
use super::{
    file_spec, http, json_to_string, uri_fast, Args, Module, ModuleCtx, ModuleError, ModuleResult,
};
use crate::script::q;

/// The `uri` module.
pub struct Uri;

const PY: &str = r#"
import os, sys
# A plain-http GET/HEAD (URI_FAST: host, port, timeout, the request's
# bytes in base64; see uri_fast.rs): the socket only, no urllib imports.
def _fast():
    f = os.environ.get("URI_FAST")
    if not f or any(k.lower().endswith("_proxy") for k in os.environ):
        return False
    import binascii, socket
    host, port, tmo, req = f.split(" ")
    out, send, recv = [], "", ""
    try:
        s = socket.create_connection((host, int(port)), float(tmo))
        try:
            s.sendall(binascii.a2b_base64(req))
        except OSError as e:
            send = str(e)
        if not send:
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    out.append(b)
            except OSError as e:
                recv = str(e)
        s.close()
    except OSError as e:
        send = str(e)
    e64 = lambda b: binascii.b2a_base64(b, newline=False).decode()
    sys.stdout.write("@@raw=%s\n@@rawsend=%s\n@@rawrecv=%s\n" % (e64(b"".join(out)), e64(send.encode()), e64(recv.encode())))
    return True
if _fast():
    sys.exit(0)
import base64, json, ssl, urllib.error, urllib.request
q = json.loads(base64.b64decode(os.environ["URI_REQ"]))
follow = q["follow"]
class R(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, hdrs, newurl):
        if follow == "none" or (follow == "safe" and req.get_method() not in ("GET", "HEAD")):
            return None
        n = urllib.request.HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, hdrs, newurl)
        if n is None and follow == "all":
            n = urllib.request.Request(newurl, data=req.data, headers=dict(req.header_items()), method=req.get_method())
        return n
# No context for a verified request: http.client makes the default one when
# an https connection opens (loading the CA store costs ~40 ms, issue #16).
ctx = ssl._create_unverified_context() if q["insecure"] else None
o = urllib.request.build_opener(R(), urllib.request.HTTPSHandler(context=ctx))
data = base64.b64decode(q["body"]) if q["body"] is not None else None
req = urllib.request.Request(q["url"], data=data, method=q["method"])
for k, v in q["headers"]:
    req.add_header(k, v)
res = {}
try:
    r = o.open(req, timeout=q["timeout"])
    body = r.read()
    res = {"status": r.status, "msg": "OK (%s bytes)" % (r.headers.get("Content-Length") or "unknown"), "url": r.geturl()}
    hdrs = r.headers.items()
except urllib.error.HTTPError as e:
    body = e.read() if e.fp else b""
    res = {"status": e.code, "msg": "HTTP Error %s: %s" % (e.code, e.reason), "url": e.geturl() or q["url"]}
    hdrs = e.headers.items() if e.headers else []
except Exception as e:
    body = b""
    res = {"status": -1, "msg": "Request failed: %s" % e, "url": q["url"], "transport_error": True}
    hdrs = []
res["headers"] = [[k.lower(), v] for k, v in hdrs]
res["body"] = base64.b64encode(body).decode()
print("@@resp=" + base64.b64encode(json.dumps(res).encode()).decode())
"#;

#[async_trait]
impl Module for Uri {
    fn name(&self) -> &'static str {
        "uri"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "url",
            "dest",
            "url_username",
            "user",
            "url_password",
            "password",
            "body",
            "body_format",
            "src",
            "method",
            "return_content",
            "follow_redirects",
            "creates",
            "removes",
            "status_code",
            "timeout",
            "headers",
            "unix_socket",
            "remote_src",
            "ca_path",
            "unredirected_headers",
            "decompress",
            "ciphers",
            "use_netrc",
            "force",
            "http_agent",
            "use_proxy",
            "validate_certs",
            "force_basic_auth",
            "client_cert",
            "client_key",
            "use_gssapi",
            "mode",
            "owner",
            "group",
            "attributes",
            "unsafe_writes",
            "seuser",
            "serole",
            "setype",
            "selevel",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["url"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        for k in [
            "src",
            "unix_socket",
            "ca_path",
            "client_cert",
            "client_key",
            "ciphers",
        ] {
            if args.get(k).is_some() {
                return Err(ModuleError::Arg(format!("uri: `{k}` is not supported")));
            }
        }
        if args.bool_or("use_gssapi", false)? {
            return Err(ModuleError::Arg(
                "uri: `use_gssapi` is not supported".into(),
            ));
        }
        if !args.list("unredirected_headers").is_empty() {
            return Err(ModuleError::Arg(
                "uri: `unredirected_headers` is not supported".into(),
            ));
        }
        let url = args.str("url")?;
        let method = args.opt_str("method").unwrap_or_else(|| "GET".into());
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Ok(ModuleResult::fail(
                "Parameter 'method' needs to be a single word in uppercase, like GET or POST.",
            ));
        }
        let body_format = args.choice(
            "body_format",
            &["raw", "json", "form-urlencoded", "form-multipart"],
            "raw",
        )?;
        let mut hdrs = headers(args, "uri")?;
        let has_ct = hdrs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let body: Option<Vec<u8>> = match (args.get("body"), body_format.as_str()) {
            (None, _) => None,
            (_, "form-multipart") => {
                return Err(ModuleError::Arg(
                    "uri: `body_format: form-multipart` is not supported".into(),
                ))
            }
            (Some(b), "json") => {
                if !has_ct {
                    hdrs.push(("Content-Type".into(), "application/json".into()));
                }
                Some(match b {
                    Json::String(s) => s.clone().into_bytes(),
                    other => python_json(other).into_bytes(),
                })
            }
            (Some(b), "form-urlencoded") => {
                if !has_ct {
                    hdrs.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
                Some(form_urlencoded(b).into_bytes())
            }
            (Some(b), _) => Some(json_to_string(b).into_bytes()),
        };
        if let Some(a) = args.opt_str("http_agent") {
            hdrs.push(("User-Agent".into(), a));
        } else {
            hdrs.push(("User-Agent".into(), "ansible-httpget".into()));
        }
        let user = args.opt_str_any(&["url_username", "user"]);
        let pass = args.opt_str_any(&["url_password", "password"]);
        let hdrs = auth_headers(&hdrs, user.as_deref(), pass.as_deref());
        let status_codes: Vec<i64> = match args.get("status_code") {
            None => vec![200],
            Some(_) => args
                .list("status_code")
                .iter()
                .map(|s| {
                    s.trim().parse::<i64>().map_err(|_| {
                        ModuleError::Arg(format!("uri: status_code `{s}` is not an integer"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let follow = match args.opt_str("follow_redirects").as_deref() {
            None | Some("safe") => "safe",
            Some("all" | "yes" | "urllib2") => "all",
            Some("none" | "no") => "none",
            Some(o) => {
                return Err(ModuleError::Arg(format!(
                    "uri: `follow_redirects` must be one of all, no, none, safe, urllib2, yes, got `{o}`"
                )))
            }
        };
        let timeout = args.opt_i64("timeout")?.unwrap_or(30).max(1);
        let insecure = !args.bool_or("validate_certs", true)?;
        let return_content = args.bool_or("return_content", false)?;

        if ctx.check {
            return Ok(ModuleResult::no_check_mode(self.name()));
        }
        let req_json = json!({
            "method": method, "url": url, "headers": hdrs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body": body.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            "timeout": timeout, "insecure": insecure, "follow": follow,
        });
        let enc = base64::engine::general_purpose::STANDARD.encode(req_json.to_string());
        let mut pre = String::new();
        if let Some(c) = args.opt_str("creates") {
            pre.push_str(&format!(
                "[ -e {p} ] && {{ echo \"@@skip=skipped, since '{c}' exists\"; return 0; }}\n",
                p = q(&c),
                c = c.replace(['"', '$', '`', '\\'], "")
            ));
        }
        if let Some(r) = args.opt_str("removes") {
            pre.push_str(&format!(
                "[ -e {p} ] || {{ echo \"@@skip=skipped, since '{c}' does not exist\"; return 0; }}\n",
                p = q(&r),
                c = r.replace(['"', '$', '`', '\\'], "")
            ));
        }
        let fast = uri_fast::request(&method, &url, &hdrs, body.is_some()).map(|(h, p, req)| {
            let req = base64::engine::general_purpose::STANDARD.encode(req);
            format!("URI_FAST={} ", q(&format!("{h} {p} {timeout} {req}")))
        });
        let body_sh = |fast: &str| {
            format!(
                "{pre}if command -v python3 >/dev/null 2>&1; then URI_REQ={enc} {fast}python3 -S -c {py} || fail \"python3 failed\"; else echo @@nopy=1; fi\n",
                enc = q(&enc),
                py = q(PY)
            )
        };
        let started = Instant::now();
        let mut out = ctx
            .run_script(&body_sh(fast.as_deref().unwrap_or("")), None)
            .await?;
        let mut fast_answer = None;
        if out.get("raw").is_some() {
            let field = |k: &str| {
                let v = out.get(k).unwrap_or("");
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .unwrap_or_default()
            };
            let data = field("raw");
            let (send, recv) = (field("rawsend"), field("rawrecv"));
            let text = |b: &[u8]| (!b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned());
            let (send, recv) = (text(&send), text(&recv));
            let r = uri_fast::Raw {
                data: &data,
                send_error: send.as_deref(),
                recv_error: recv.as_deref(),
            };
            match uri_fast::answer(&r, &method, follow) {
                Some(a) => fast_answer = Some(a),
                // A redirect urllib follows: the request again, through it.
                None => out = ctx.run_script(&body_sh(""), None).await?,
            }
        }
        if let Some(f) = out.failed {
            return Ok(ModuleResult::fail(f));
        }
        if let Some(s) = out.get("skip") {
            return Ok(ModuleResult::ok().with("stdout", s.to_string()));
        }
        let resp = if let Some(a) = fast_answer {
            Resp {
                status: a.status,
                msg: a.msg,
                url: url.clone(),
                headers: a.headers,
                body: a.body,
            }
        } else if out.get("nopy").is_some() {
            let r = http::send(&http::Request {
                method: method.clone(),
                url: url.clone(),
                headers: hdrs.clone(),
                body: body.clone(),
                timeout: Duration::from_secs(timeout as u64),
                validate_certs: !insecure,
                redirects: match follow {
                    "all" => http::Redirects::All,
                    "none" => http::Redirects::None,
                    _ => http::Redirects::Safe,
                },
            })
            .await;
            match r {
                Ok(r) => Resp {
                    status: i64::from(r.status),
                    msg: if (200..300).contains(&r.status) {
                        format!(
                            "OK ({} bytes)",
                            http::header(&r.headers, "content-length").unwrap_or("unknown")
                        )
                    } else {
                        format!("HTTP Error {}: {}", r.status, r.reason)
                    },
                    url: r.url,
                    headers: r.headers,
                    body: r.body,
                },
                Err(e) => Resp {
                    status: -1,
                    msg: e,
                    url: url.clone(),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
            }
        } else {
            let Some(raw) = out.get("resp") else {
                return Ok(ModuleResult::fail(format!(
                    "uri: no answer from python3 on the target: {}",
                    out.stderr.trim()
                )));
            };
            parse_py(raw).map_err(|e| ModuleError::Arg(format!("uri: {e}")))?
        };
        let elapsed = started.elapsed().as_secs();
        let mut r = ModuleResult::ok();
        r.data.insert("redirected".into(), json!(resp.url != url));
        r.data.insert("url".into(), json!(resp.url));
        r.data.insert("status".into(), json!(resp.status));
        r.data.insert("elapsed".into(), json!(elapsed));
        r.data.insert("changed".into(), json!(false));
        let mut cookies = Map::new();
        for (k, v) in &resp.headers {
            let key = k.replace('-', "_").to_lowercase();
            if key == "set_cookie" {
                if let Some((n, val)) = v.split(';').next().and_then(|c| c.split_once('=')) {
                    cookies.insert(n.trim().to_string(), json!(val.trim()));
                }
            }
            let val = if key == "location" {
                json!(join_url(&url, v))
            } else {
                json!(v)
            };
            // Repeated headers are joined with ", " as urllib does.
            match r.data.get_mut(&key) {
                Some(Json::String(prev))
                    if !["url", "status", "redirected", "elapsed", "changed"]
                        .contains(&key.as_str()) =>
                {
                    prev.push_str(", ");
                    prev.push_str(v);
                }
                _ => {
                    r.data.insert(key, val);
                }
            }
        }
        let cookies_string = cookies
            .iter()
            .map(|(k, v)| format!("{k}={}", json_to_string(v)))
            .collect::<Vec<_>>()
            .join("; ");
        r.data.insert("cookies".into(), Json::Object(cookies));
        r.data
            .insert("cookies_string".into(), json!(cookies_string));
        let ctype =
            http::header(&resp.headers, "content-type").unwrap_or("application/octet-stream");
        let sub = ctype
            .split(';')
            .next()
            .unwrap_or("")
            .split('/')
            .nth(1)
            .unwrap_or("")
            .to_lowercase();
        let sub = sub.rsplit('+').next().unwrap_or("").to_string();
        let maybe_json = sub == "json" || sub == "javascript";
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        if maybe_json {
            if let Ok(j) = serde_json::from_str::<Json>(&text) {
                r.data.insert("json".into(), j);
            }
        }
        let ok = status_codes.contains(&resp.status);
        if ok {
            if let Some(dest) = args.opt_str("dest") {
                if resp.status != 304 {
                    let spec = file_spec(args, dest.clone())?;
                    let w = super::write_content(ctx, &spec, &resp.body, None).await?;
                    if w.failed {
                        return Ok(w);
                    }
                    r.changed = true;
                    r.data.insert("changed".into(), json!(true));
                }
                r.data.insert("path".into(), json!(dest));
            }
        }
        if return_content {
            r.data.insert("content".into(), json!(text));
        }
        if !ok {
            r.failed = true;
            r.msg = Some(format!(
                "Status code was {} and not {:?}: {}",
                resp.status, status_codes, resp.msg
            ));
        } else {
            r.msg = Some(resp.msg);
        }
        r.data.remove("changed");
        Ok(r)
    }
}

struct Resp {
    status: i64,
    msg: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_py(raw: &str) -> Result<Resp, String> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|e| format!("bad answer: {e}"))?;
    let v: Json = serde_json::from_slice(&b).map_err(|e| format!("bad answer: {e}"))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["body"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let headers = v["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Resp {
        status: v["status"].as_i64().unwrap_or(-1),
        msg: v["msg"].as_str().unwrap_or("").to_string(),
        url: v["url"].as_str().unwrap_or("").to_string(),
        headers,
        body,
    })
}

/// `urljoin(base, loc)` for the `location` header.
fn join_url(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let end = rest.find('/').unwrap_or(rest.len());
    if loc.starts_with('/') {
        return format!("{scheme}://{}{loc}", &rest[..end]);
    }
    let path = &rest[end..];
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{scheme}://{}{dir}/{loc}", &rest[..end])
}

/// `json.dumps` spacing (`", "` and `": "`), as ansible sends a JSON body.
fn python_json(v: &Json) -> String {
    match v {
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Json::String(k.clone()), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Json::Array(a) => format!(
            "[{}]",
            a.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// ansible's `form_urlencoded` for a dict or list of pairs.
fn form_urlencoded(b: &Json) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|c| match c {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                    (c as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{c:02X}"),
            })
            .collect::<String>()
    };
    let mut out = Vec::new();
    let mut push = |k: &str, v: &Json| match v {
        Json::Array(a) => {
            for x in a.iter().filter(|x| !x.is_null()) {
                out.push(format!("{}={}", enc(k), enc(&json_to_string(x))));
            }
        }
        Json::Null => {}
        x => out.push(format!("{}={}", enc(k), enc(&json_to_string(x)))),
    };
    match b {
        Json::Object(m) => m.iter().for_each(|(k, v)| push(k, v)),
        Json::Array(a) => a.iter().for_each(|p| {
            if let Json::Array(kv) = p {
                if kv.len() == 2 {
                    push(&json_to_string(&kv[0]), &kv[1]);
                }
            }
        }),
        other => return json_to_string(other),
    }
    out.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(python_json(&json!({"a": [1, "x"]})), r#"{"a": [1, "x"]}"#);
        assert_eq!(
            form_urlencoded(&json!({"a": "b c", "d": ["1", "2"]})),
            "a=b+c&d=1&d=2"
        );
        assert_eq!(join_url("http://h/a/b", "c"), "http://h/a/c");
    }
}
