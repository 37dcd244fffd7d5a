//! Speed and memory of the foundation, against a real release `reshost`:
//!
//! 1. start to ready (`/healthz` answers) with a cold and a warm compiled cache;
//! 2. the component hop: `GET …/files/{id}` (through the files component) against
//!    `GET …/resources/{id}` (the same redb record served natively), p50 latency on
//!    one connection, and requests/s with 32 connections;
//! 3. upload and download of a 1 GiB file: MB/s and the server's resident memory.
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench`

use futures_util::StreamExt;
use reqwest::{Client, multipart};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";
const GIB: u64 = 1 << 30;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("reshost");
    assert!(
        path.exists(),
        "build the server first: cargo build --release -p reshost"
    );
    path
}

fn start(dir: &Path) -> (Server, Duration) {
    let config = dir.join("reshost.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[limits]\nmax_upload_bytes = {}\n[[tenants]]\nname = \"bench\"\ntokens = [\"{TOKEN}\"]\n",
            dir.join("data"),
            2 * GIB
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config)
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the server's RSS until stopped; returns the peak in KiB.
fn watch_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

async fn latency(client: &Client, url: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        out.push(t.elapsed());
    }
    out
}

async fn throughput(url: &str, connections: usize, for_how_long: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + for_how_long;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (url, done) = (url.to_owned(), done.clone());
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

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();

    // 1. Start to ready.
    let (server, cold) = start(dir.path());
    drop(server);
    let mut warm: Vec<Duration> = (0..5).map(|_| start(dir.path()).1).collect();
    println!(
        "start to ready: cold cache {:.0} ms, warm cache p50 {:.1} ms",
        cold.as_secs_f64() * 1e3,
        percentile(&mut warm, 0.5).as_secs_f64() * 1e3
    );

    // 2. The component hop.
    let (server, _) = start(dir.path());
    let client = Client::new();
    let session: serde_json::Value = client
        .post(format!("{}/v1/sessions", server.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["id"].as_str().unwrap();
    let files = format!("{}/v1/sessions/{sid}/resources/files", server.base);
    let part = multipart::Part::bytes(vec![7u8; 1024]).file_name("one-kib.bin");
    let file: serde_json::Value = client
        .post(&files)
        .bearer_auth(TOKEN)
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fid = file["id"].as_str().unwrap();
    let through_component = format!("{files}/{fid}");
    let native = format!("{}/v1/sessions/{sid}/resources/{fid}", server.base);
    latency(&client, &through_component, 500).await; // warm-up
    latency(&client, &native, 500).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        a.extend(latency(&client, &through_component, 500).await);
        b.extend(latency(&client, &native, 500).await);
    }
    let (pa, pb) = (percentile(&mut a, 0.5), percentile(&mut b, 0.5));
    println!(
        "GET file p50: through the component {:.1} µs, native {:.1} µs, hop {:.1} µs (p99 {:.1} / {:.1} µs)",
        pa.as_secs_f64() * 1e6,
        pb.as_secs_f64() * 1e6,
        (pa.as_secs_f64() - pb.as_secs_f64()) * 1e6,
        percentile(&mut a, 0.99).as_secs_f64() * 1e6,
        percentile(&mut b, 0.99).as_secs_f64() * 1e6,
    );
    for (name, url) in [("component", &through_component), ("native", &native)] {
        let rps = throughput(url, 32, Duration::from_secs(5)).await;
        println!("GET file with 32 connections ({name}): {rps:.0} requests/s");
    }

    // 3. 1 GiB up and down.
    let pid = server.child.id();
    let idle = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_rss(pid, stop.clone());
    let block = Arc::new(
        (0..1 << 20)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let pieces = futures_util::stream::iter(0..1024)
        .map(move |_| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&block)));
    let part = multipart::Part::stream_with_length(reqwest::Body::wrap_stream(pieces), GIB)
        .file_name("big.bin");
    let t = Instant::now();
    let big: serde_json::Value = client
        .post(&files)
        .bearer_auth(TOKEN)
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let up = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let up_peak = watcher.join().unwrap();
    assert_eq!(big["metadata"]["bytes"], GIB, "{big}");
    let big_id = big["id"].as_str().unwrap();

    let before_download = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_rss(pid, stop.clone());
    let t = Instant::now();
    let response = client
        .get(format!("{files}/{big_id}/content"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut received = 0u64;
    while let Some(piece) = body.next().await {
        received += piece.unwrap().len() as u64;
    }
    let down = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let down_peak = watcher.join().unwrap();
    assert_eq!(received, GIB);
    let mbps = |d: Duration| GIB as f64 / 1e6 / d.as_secs_f64();
    println!(
        "1 GiB upload: {:.0} MB/s, server RSS {} MiB idle → {} MiB peak (+{} MiB)",
        mbps(up),
        idle / 1024,
        up_peak / 1024,
        up_peak.saturating_sub(idle) / 1024
    );
    println!(
        "1 GiB download: {:.0} MB/s, server RSS {} MiB before → {} MiB peak (+{} MiB; +{} MiB over idle)",
        mbps(down),
        before_download / 1024,
        down_peak / 1024,
        down_peak.saturating_sub(before_download) / 1024,
        down_peak.saturating_sub(idle) / 1024
    );
}
