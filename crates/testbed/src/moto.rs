//! [`Moto`]: a `moto_server` (from the test bed venv) on a free port of
//! 127.0.0.1, ready when `GET /moto-api/` answers; killed on drop.
//!
//! Its log and its recorder file live in its run dir
//! (`$TESTBED_DIR/run/moto-<pid>-<n>/`).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::http;
use crate::run::{self, RunDir};
use crate::{Error, IoContext, Result, Testbed};

const START_DEADLINE: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto server. Dropping it stops it (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Moto {
    child: Option<Child>,
    port: u16,
    url: String,
    run: Option<RunDir>,
    recording: PathBuf,
    log: PathBuf,
}

/// Picks a free TCP port on 127.0.0.1 (bind to port 0, then release it).
pub(crate) fn free_port() -> Result<u16> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .ctx(|| "binding 127.0.0.1:0".into())?;
    Ok(l.local_addr().ctx(|| "local_addr".into())?.port())
}

impl Moto {
    /// Locates the test bed and starts a moto server.
    pub fn start() -> Result<Moto> {
        Self::start_with(&Testbed::locate()?, &[])
    }

    /// Starts a moto server from `testbed` with extra environment variables
    /// (e.g. `MOTO_AMIS_PATH`).
    pub fn start_with(testbed: &Testbed, env: &[(&str, &str)]) -> Result<Moto> {
        let _ = testbed.reap_stale();
        let (rundir, _name) = RunDir::create(&testbed.run_dir(), "moto")?;
        let mut moto = Moto {
            child: None,
            port: 0,
            url: String::new(),
            recording: rundir.path().join("recording.jsonl"),
            log: rundir.path().join("moto.log"),
            run: Some(rundir),
        };
        let mut last_err = None;
        // A port picked free can be taken before moto binds it: retry.
        for _ in 0..3 {
            match moto.spawn(testbed, env) {
                Ok(()) => return Ok(moto),
                Err(e) => {
                    moto.kill();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn spawn(&mut self, testbed: &Testbed, env: &[(&str, &str)]) -> Result<()> {
        let port = free_port()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .ctx(|| format!("opening {}", self.log.display()))?;
        let log2 = log.try_clone().ctx(|| "dup log".into())?;
        let bin = testbed.moto_server_bin();
        let started = Instant::now();
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", &self.recording)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(self.run.as_ref().expect("run dir").path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().ctx(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        self.child = Some(child);
        if let Some(r) = &self.run {
            r.record("pids", &format!("moto_server {pid}"))?;
        }
        self.port = port;
        self.url = format!("http://127.0.0.1:{port}");
        let deadline = started + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(Error::Failed(format!(
                    "moto_server exited with {status} before answering; log: {}",
                    self.log.display()
                )));
            }
            if let Ok(r) = http::request(
                self.addr(),
                "GET",
                "/moto-api/",
                &[],
                b"",
                Duration::from_secs(2),
            ) {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "moto_server on port {port} did not answer within {START_DEADLINE:?}; log: {}",
                    self.log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for AWS SDK clients.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's stdout/stderr log.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// Sends a raw HTTP request to the server; returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let r = http::request(self.addr(), method, path, headers, body, HTTP_TIMEOUT)?;
        Ok((r.status, r.body))
    }

    /// Sends an EC2 query-API call (`body` like `Action=DescribeImages&...`)
    /// for `region` with a dummy SigV4 header (moto does not check it);
    /// returns the XML answer, or an error on a non-2xx status.
    pub fn ec2_query(&self, region: &str, body: &str) -> Result<String> {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
        let body = if body.contains("Version=") {
            body.to_string()
        } else {
            format!("{body}&Version=2016-11-15")
        };
        let (status, answer) = self.request(
            "POST",
            "/",
            &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("Authorization", &auth),
            ],
            body.as_bytes(),
        )?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        if status / 100 != 2 {
            return Err(Error::Failed(format!(
                "EC2 {body}: HTTP {status}: {answer}"
            )));
        }
        Ok(answer)
    }

    fn post_ok(&self, path: &str) -> Result<()> {
        let (status, body) = self.request("POST", path, &[], b"")?;
        if status / 100 != 2 {
            return Err(Error::Failed(format!(
                "POST {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(())
    }

    /// Wipes all state (`POST /moto-api/reset`).
    pub fn reset(&self) -> Result<()> {
        self.post_ok("/moto-api/reset")
    }

    /// Clears the recording and starts recording every API call.
    pub fn start_recording(&self) -> Result<()> {
        self.post_ok("/moto-api/recorder/reset-recording")?;
        self.post_ok("/moto-api/recorder/start-recording")
    }

    /// Stops recording (the recording is kept).
    pub fn stop_recording(&self) -> Result<()> {
        self.post_ok("/moto-api/recorder/stop-recording")
    }

    /// The calls recorded since [`Moto::start_recording`]: one JSON object per
    /// call with `method`, `url`, `headers`, `body` (base64 if `body_encoded`).
    pub fn recorded_calls(&self) -> Result<Vec<serde_json::Value>> {
        let text = match std::fs::read_to_string(&self.recording) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).ctx(|| format!("reading {}", self.recording.display())),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| Error::Failed(format!("bad recording line {l:?}: {e}")))
            })
            .collect()
    }

    /// The `Action` names (e.g. `DescribeImages`) of the recorded query-API
    /// calls, in order; calls without an action (moto-api) are skipped.
    pub fn recorded_actions(&self) -> Result<Vec<String>> {
        Ok(self
            .recorded_calls()?
            .iter()
            .filter_map(action_of)
            .collect())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                run::signal(child.id(), libc::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    if child.try_wait().ok().flatten().is_some() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The `Action` parameter of a recorded call, from its body or its URL query.
fn action_of(call: &serde_json::Value) -> Option<String> {
    let body = call.get("body").and_then(|b| b.as_str()).unwrap_or("");
    let body = if call.get("body_encoded").and_then(|b| b.as_bool()) == Some(true) {
        String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()?,
        )
        .into_owned()
    } else {
        body.to_string()
    };
    let query = call
        .get("url")
        .and_then(|u| u.as_str())
        .and_then(|u| u.split_once('?'))
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    [body.as_str(), query.as_str()]
        .iter()
        .flat_map(|s| s.split('&'))
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_string)
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
        if let Some(r) = self.run.take() {
            r.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_from_encoded_body_and_query() {
        let b64 = base64::engine::general_purpose::STANDARD
            .encode("Action=DescribeImages&Version=2016-11-15");
        let call = serde_json::json!({"url": "http://x/", "body": b64, "body_encoded": true});
        assert_eq!(action_of(&call).as_deref(), Some("DescribeImages"));
        let call = serde_json::json!({"url": "http://x/?Version=1&Action=RunInstances", "body": "", "body_encoded": false});
        assert_eq!(action_of(&call).as_deref(), Some("RunInstances"));
        let call = serde_json::json!({"url": "http://x/moto-api/reset", "body": "", "body_encoded": false});
        assert_eq!(action_of(&call), None);
    }
}
