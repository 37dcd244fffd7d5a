//! Speed and memory of the foundation, against a real release `reshost`:
//!
//! 1. start to ready (`/healthz` answers) with a cold and a warm compiled cache;
//! 2. the component hop: `GET …/files/{id}` (through the files component) against
//!    `GET …/resources/{id}` (the same redb record served natively), p50 latency on
//!    one connection, and requests/s with 32 connections;
//! 3. upload and download of a 1 GiB file: MB/s and the server's resident memory.
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

use futures_util::StreamExt;
use reqwest::{Client, multipart};
use std::time::Duration;

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use reqwest::Method;
use support::{TOKEN, json, peak_rss, percentile, rss_kib, start, throughput, timed};

const GIB: u64 = 1 << 30;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let limits = format!("[limits]\nmax_upload_bytes = {}", 2 * GIB);

    // 1. Start to ready.
    let (server, cold) = start(dir.path(), &limits);
    drop(server);
    let mut warm: Vec<Duration> = (0..5).map(|_| start(dir.path(), &limits).1).collect();
    println!(
        "start to ready: cold cache {:.0} ms, warm cache p50 {:.1} ms",
        cold.as_secs_f64() * 1e3,
        percentile(&mut warm, 0.5).as_secs_f64() * 1e3
    );

    // 2. The component hop.
    let (server, _) = start(dir.path(), &limits);
    let client = Client::new();
    let sid = server.session(&client).await;
    let files = format!("{}/v1/sessions/{sid}/resources/files", server.base);
    let part = multipart::Part::bytes(vec![7u8; 1024]).file_name("one-kib.bin");
    let file = json(
        client
            .post(&files)
            .multipart(multipart::Form::new().part("file", part)),
    )
    .await;
    let fid = file["id"].as_str().unwrap();
    let through_component = format!("{files}/{fid}");
    let native = format!("{}/v1/sessions/{sid}/resources/{fid}", server.base);
    timed(&client, Method::GET, &through_component, None, 500).await; // warm-up
    timed(&client, Method::GET, &native, None, 500).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        a.extend(timed(&client, Method::GET, &through_component, None, 500).await);
        b.extend(timed(&client, Method::GET, &native, None, 500).await);
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
        let rps = throughput(&[url.to_owned()], 32, Duration::from_secs(5)).await;
        println!("GET file with 32 connections ({name}): {rps:.0} requests/s");
    }

    // 3. 1 GiB up and down.
    let pid = server.child.id();
    let idle = rss_kib(pid);
    let (big, up, up_peak) =
        peak_rss(pid, support::upload_stream(&client, &files, "big.bin", GIB)).await;
    let big_id = big["id"].as_str().unwrap();

    let before_download = rss_kib(pid);
    let download = async {
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
        received
    };
    let (received, down, down_peak) = peak_rss(pid, download).await;
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
