//! What the benchmark programs share: a release `reshost` on a free port with
//! its own data directory, and latency statistics.

use reqwest::Client;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "bench-token";

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("reshost");
    assert!(
        path.exists(),
        "build the server first: cargo build --release -p reshost"
    );
    path
}

/// Starts a server whose config is the defaults plus `extra` TOML tables.
pub fn start(dir: &Path, extra: &str) -> (Server, Duration) {
    start_with(dir, extra, &[])
}

/// As `start`, with `args` after `serve --config FILE`.
pub fn start_with(dir: &Path, extra: &str, args: &[&str]) -> (Server, Duration) {
    let config = dir.join("reshost.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{extra}\n[[tenants]]\nname = \"bench\"\ntokens = [\"{TOKEN}\"]\n",
            dir.join("data"),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config)
        .args(args)
        .env("RESHOST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    // Ready means /healthz answers.
    while !healthz_ok(&base) {}
    let ready = started.elapsed();
    std::thread::spawn(move || for _ in lines {});
    (Server { child, base }, ready)
}

/// One blocking `GET /healthz` on a fresh connection, with no client library's
/// set-up cost in the measurement.
fn healthz_ok(base: &str) -> bool {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

/// Sends `request` with the bench token and reads the JSON answer.
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    let response = request.bearer_auth(TOKEN).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

impl Server {
    /// A new session's id.
    pub async fn session(&self, client: &Client) -> String {
        let request = client
            .post(format!("{}/v1/sessions", self.base))
            .json(&serde_json::json!({}));
        json(request).await["id"].as_str().unwrap().to_owned()
    }
}

/// `n` sequential requests on one connection; each one's latency.
pub async fn timed(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&serde_json::Value>,
    n: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut rb = client.request(method.clone(), url).bearer_auth(TOKEN);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let t = Instant::now();
        let r = rb.send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await.unwrap();
        samples.push(t.elapsed());
    }
    samples
}

/// How long a native `cp -r` of `from` to `to` takes: the scale a session
/// made from the same tree is set beside.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::time::Duration {
    let t = std::time::Instant::now();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(copied.success());
    t.elapsed()
}

/// The resident memory of process `pid`, in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The same in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    rss_kib(pid) as f64 / 1024.0
}

/// Requests/s of `GET`s with the bench token over `connections` connections
/// (each its own client), connection `i` asking `urls[i % urls.len()]`.
pub async fn throughput(urls: &[String], connections: usize, for_how_long: Duration) -> f64 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + for_how_long;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let (url, done) = (urls[i % urls.len()].clone(), done.clone());
            tokio::spawn(async move {
                let client = Client::new();
                while Instant::now() < deadline {
                    let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / for_how_long.as_secs_f64()
}

/// Runs `work`, sampling the resident memory of process `pid` every 20 ms
/// meanwhile: its answer, how long it took, and the peak RSS seen (KiB).
pub async fn peak_rss<T>(
    pid: u32,
    work: impl std::future::Future<Output = T>,
) -> (T, Duration, u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watching = stop.clone();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while !watching.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let t = Instant::now();
    let answer = work.await;
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    (answer, took, watcher.join().unwrap())
}

/// Uploads `bytes` bytes (a repeated 1 MiB pattern, streamed: the client holds
/// 1 MiB) to the files URL `files` as `name`; the file object.
pub async fn upload_stream(
    client: &Client,
    files: &str,
    name: &str,
    bytes: u64,
) -> serde_json::Value {
    use futures_util::StreamExt;
    let block = std::sync::Arc::new(
        (0..1usize << 20)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let pieces = futures_util::stream::iter(0..bytes.div_ceil(1 << 20)).map(move |i| {
        let len = (bytes - (i << 20)).min(1 << 20) as usize;
        Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&block[..len]))
    });
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(pieces), bytes)
            .file_name(name.to_owned());
    let file = json(
        client
            .post(files)
            .multipart(reqwest::multipart::Form::new().part("file", part)),
    )
    .await;
    assert_eq!(file["metadata"]["bytes"], bytes, "{file}");
    file
}
