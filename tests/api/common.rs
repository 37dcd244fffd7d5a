//! A real `reshost` process per test, on a free port, with its own data directory
//! and a compiled-component cache shared by all tests (so each component is compiled
//! once per test run, not once per server).

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, multipart};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tokens of the two tenants every test server has.
pub const ACME: &str = "acme-token";
pub const GLOBEX: &str = "globex-token";

/// The config tables of the two test tenants; every test server's config ends with them.
pub const TENANTS: &str = r#"
[[tenants]]
name = "acme"
tokens = ["acme-token"]

[[tenants]]
name = "globex"
tokens = ["globex-token"]
"#;

/// Runs `command` in the session's shell as `token` (30 s timeout), in a task of
/// its own, for tests that do something else while it runs.
pub fn spawn_shell(
    server: &std::sync::Arc<Server>,
    token: &'static str,
    sid: &str,
    command: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (server, path) = (server.clone(), shell_path(sid));
    let body = serde_json::json!({"command": command, "timeout": 30});
    tokio::spawn(async move { server.post(&path, token, body).await })
}

/// `GET`s `path` as `token` in a task of its own.
pub fn spawn_get(
    server: &std::sync::Arc<Server>,
    token: &'static str,
    path: String,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let server = server.clone();
    tokio::spawn(async move { server.get(&path, token).await })
}

/// A well-formed session id that no server ever issued.
pub const UNKNOWN_SESSION: &str = "conv_00000000000000000000000000000000";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    config: String,
    /// Flags after `serve --config FILE`.
    args: Vec<String>,
    http: Client,
}

pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// The top-level config keys of a test server in `dir`: a free port, `dir/data`, the
/// shared component cache.
pub fn config_preamble(dir: &Path) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ncache_dir = {:?}\n",
        dir.join("data"),
        shared_cache_dir()
    )
}

/// Reads a starting server's stdout until it prints its address and returns that
/// URL (panicking with `log()` if it ends first); the rest is drained in the background.
pub fn listening_address(stdout: ChildStdout, log: impl FnOnce() -> String) -> String {
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.trim().to_owned();
                }
            }
            _ => panic!("reshost did not start: {}", log()),
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    addr
}

impl Server {
    /// A server with the two test tenants and default limits.
    pub async fn start() -> Server {
        Server::with_config("").await
    }

    /// A server whose config is the base config followed by `extra` (TOML: top-level
    /// keys must come first, so `extra` holds only tables such as `[limits]`).
    pub async fn with_config(extra: &str) -> Server {
        Server::with_config_in(&std::env::temp_dir(), extra).await
    }

    /// As `with_config`, with the server's directory (data dir, config) made in `parent`.
    pub async fn with_config_in(parent: &Path, extra: &str) -> Server {
        Server::with_args(parent, extra, &[])
    }

    /// As `with_config_in`, started with `args` after `serve --config FILE`.
    pub fn with_args(parent: &Path, extra: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let config = format!("{}{extra}\n{TENANTS}", config_preamble(dir.path()));
        let mut server = Server {
            child: None,
            base: String::new(),
            dir,
            config,
            args: args.iter().map(|a| a.to_string()).collect(),
            http: Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
        };
        server.spawn();
        server
    }

    /// A handle on a server this test did not start (a proxy in front of
    /// servers), at `base`: every request helper works on it.
    pub fn at(base: String) -> Server {
        Server {
            child: None,
            base,
            dir: tempfile::tempdir().unwrap(),
            config: String::new(),
            args: Vec::new(),
            http: Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("reshost.toml")
    }

    /// Starts the process and waits until it prints its address.
    pub fn spawn(&mut self) {
        std::fs::write(self.config_path(), &self.config).unwrap();
        let stderr = std::fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_reshost"))
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .args(&self.args)
            .env("RESHOST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.base = listening_address(child.stdout.take().unwrap(), || self.stderr());
        self.child = Some(child);
    }

    /// The server process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Sets the running server's limit of open files (the soft limit, which is
    /// what refuses an open; the hard limit stays) to `n`.
    pub fn limit_open_files(&self, n: u64) {
        let pid = self.pid() as libc::pid_t;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit writes the current limit into `limit`, then reads it.
        let got = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut limit) };
        assert_eq!(got, 0, "prlimit: {}", std::io::Error::last_os_error());
        limit.rlim_cur = n;
        let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
        assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let mut child = self.child.take().expect("server is running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        panic!("reshost did not exit within 15 s of SIGTERM");
    }

    /// The blob store's counts, read from the stopped server's database as it is.
    pub fn stored_blobs(&self) -> reshost::testing::BlobStats {
        assert!(self.child.is_none(), "stop the server first");
        reshost::testing::inspect_blobs(&self.data_dir()).unwrap()
    }

    /// Stops the server with SIGTERM (it must exit cleanly), then counts its blobs.
    pub fn stop_and_count_blobs(&mut self) -> reshost::testing::BlobStats {
        assert!(
            self.terminate(),
            "reshost did not exit cleanly: {}",
            self.stderr()
        );
        self.stored_blobs()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        json_of(
            self.request(Method::GET, path, Some(token))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        json_of(
            self.request(Method::DELETE, path, Some(token))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let rb = self.request(Method::POST, path, Some(token)).json(&body);
        json_of(rb.send().await.unwrap()).await
    }

    /// A new session of the token's tenant; returns its id.
    pub async fn session(&self, token: &str) -> String {
        let (status, body) = self
            .post("/v1/sessions", token, serde_json::json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Uploads `bytes` as the `file` part; returns the status and body.
    pub async fn upload(
        &self,
        token: &str,
        session: &str,
        filename: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut part = multipart::Part::bytes(bytes).file_name(filename.to_owned());
        if let Some(ct) = content_type {
            part = part.mime_str(ct).unwrap();
        }
        let form = multipart::Form::new().part("file", part);
        let rb = self
            .request(Method::POST, &files_path(session), Some(token))
            .multipart(form);
        json_of(rb.send().await.unwrap()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn files_path(session: &str) -> String {
    format!("/v1/sessions/{session}/resources/files")
}

/// The status and JSON body of a response (`Value::Null` for an empty body).
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// Asserts the API's list shape (`object`, `data`, a boolean `has_more`, and
/// `first_id`/`last_id` naming the first and last item, or null when empty);
/// returns the item ids.
#[track_caller]
pub fn assert_list(body: &Value) -> Vec<String> {
    assert_eq!(body["object"], "list", "{body}");
    let data = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"));
    assert!(body["has_more"].is_boolean(), "{body}");
    let ids: Vec<String> = data
        .iter()
        .map(|item| {
            item["id"]
                .as_str()
                .unwrap_or_else(|| panic!("item without id: {body}"))
                .to_owned()
        })
        .collect();
    assert_eq!(
        body["first_id"],
        ids.first().map_or(Value::Null, |f| Value::from(f.as_str())),
        "{body}"
    );
    assert_eq!(
        body["last_id"],
        ids.last().map_or(Value::Null, |l| Value::from(l.as_str())),
        "{body}"
    );
    ids
}

/// Asserts the API's one error shape with the given status and code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    assert!(got.1["error"]["message"].is_string(), "body: {}", got.1);
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The host pids of the live processes whose command line is `argv` (a
/// sandboxed process's own view of its pid is of another PID namespace).
pub fn host_pids(argv: &[&str]) -> Vec<u32> {
    let want = argv.join("\0") + "\0";
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (cmdline == want.as_bytes()).then_some(pid)
        })
        .collect()
}

/// The current time in unix seconds, to compare timestamps the server reports.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A file's mtime in unix seconds, to compare with a reported `modified_at`.
pub fn mtime_secs(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// The default environment.

/// The URL path of a session's `default` environment.
pub fn env_url(sid: &str) -> String {
    format!("/v1/sessions/{sid}/resources/environments/default")
}

/// The URL path of a session's `shell` endpoint.
pub fn shell_path(sid: &str) -> String {
    format!("{}/shell", env_url(sid))
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
pub fn pct(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL path of `path` (environment-relative, `/`-separated; empty: the root) in
/// the filesystem.
pub fn fs_url(sid: &str, path: &str) -> String {
    let root = format!("{}/filesystem", env_url(sid));
    if path.is_empty() {
        root
    } else {
        format!("{root}/{}", pct(path, true))
    }
}

/// The directory of a session's workspace on the server's disk.
pub fn workspace(server: &Server, sid: &str) -> PathBuf {
    server.data_dir().join("workspaces").join(sid)
}

/// Writes a file under `root` directly (parents created); a `rel` ending in `/` makes
/// a directory.
pub fn plant(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = root.join(rel);
    if rel.ends_with('/') {
        std::fs::create_dir_all(p).unwrap();
        return;
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Sends `body` as JSON with the token; the status and JSON answer.
pub async fn send_json(
    server: &Server,
    method: Method,
    url: &str,
    token: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let rb = server.request(method, url, Some(token)).json(body);
    json_of(rb.send().await.unwrap()).await
}

// ---------------------------------------------------------------------------
// Base64 (the API's `encoding: "base64"`).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard-alphabet base64 with padding, to send binary content.
pub fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard-alphabet base64, padding optional; `None` for anything else.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[test]
fn base64_helpers_round_trip() {
    assert_eq!(b64_encode(b""), "");
    assert_eq!(b64_encode(b"f"), "Zg==");
    assert_eq!(b64_encode(b"fo"), "Zm8=");
    assert_eq!(b64_encode(b"foo"), "Zm9v");
    assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    for n in 0..all.len() {
        assert_eq!(b64_decode(&b64_encode(&all[..n])).unwrap(), &all[..n]);
    }
}

/// One Server-Sent Event as received.
#[derive(Debug)]
pub struct Event {
    pub id: Option<String>,
    pub name: String,
    pub data: Value,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

/// The events of a `text/event-stream` answer, read as they come.
pub struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl Events {
    pub fn of(response: Response) -> Events {
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "not an event stream"
        );
        // Neither caches nor buffering proxies may hold events back.
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        Events {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or `None` when the stream
    /// ended; panics if none comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        use futures_util::StreamExt;
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).unwrap();
                let (mut id, mut name, mut data) = (None, String::new(), Vec::new());
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                    }
                }
                if name.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data.join("\n")).unwrap();
                let at = std::time::SystemTime::now();
                return Some(Event { id, name, data, at });
            }
            let piece = tokio::time::timeout_at(until, self.body.next())
                .await
                .expect("no event in time");
            match piece {
                Some(bytes) => self.buffer.extend_from_slice(&bytes.unwrap()),
                None => return None,
            }
        }
    }

    /// Every event until the stream ends (within `within` in all).
    pub async fn all(&mut self, within: Duration) -> Vec<Event> {
        let until = tokio::time::Instant::now() + within;
        let mut events = Vec::new();
        while let Some(event) = self
            .next(until.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            events.push(event);
        }
        events
    }
}

/// The token `[metrics]` takes in tests that scrape.
pub const METRICS_TOKEN: &str = "metrics-token";

/// The value of the series `series` (name and labels, as exposed) in a scrape.
pub fn metric_value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

pub async fn scrape_metrics(server: &Server) -> String {
    let response = server
        .request(Method::GET, "/metrics", Some(METRICS_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}
