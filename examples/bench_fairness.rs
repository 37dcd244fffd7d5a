//! Fairness, on a real release `reshost`: a quiet tenant's latency alone, then
//! while a noisy tenant floods the server with 200 concurrent `sleep 5` shell
//! commands (beyond its `shell_commands` quota they are refused with 429) and 32
//! connections looping `GET …/files`. The quiet tenant reads a 1 KiB file and
//! writes small environment files; its p50/p99 are printed for both phases, with
//! its error count (the API test asserts 0 errors; this measures the latency).
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench_fairness`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use support::{TOKEN, percentile, start};

const NOISY: &str = "noisy-token";

/// The quiet tenant's requests for `how_long`: read and write latencies, errors.
async fn quiet(
    client: &Client,
    content: &str,
    write: &str,
    how_long: Duration,
) -> (Vec<Duration>, Vec<Duration>, usize) {
    let (mut reads, mut writes, mut errors) = (Vec::new(), Vec::new(), 0);
    let until = Instant::now() + how_long;
    let mut i = 0;
    while Instant::now() < until {
        let t = Instant::now();
        let r = client.get(content).bearer_auth(TOKEN).send().await.unwrap();
        let ok = r.status() == StatusCode::OK && r.bytes().await.unwrap().len() == 1024;
        reads.push(t.elapsed());
        errors += usize::from(!ok);
        let t = Instant::now();
        let r = client
            .put(format!("{write}{}.txt", i % 10))
            .bearer_auth(TOKEN)
            .json(&json!({"content": format!("note {i}")}))
            .send()
            .await
            .unwrap();
        let ok = r.status().is_success();
        r.bytes().await.unwrap();
        writes.push(t.elapsed());
        errors += usize::from(!ok);
        i += 1;
    }
    (reads, writes, errors)
}

fn report(phase: &str, (mut reads, mut writes, errors): (Vec<Duration>, Vec<Duration>, usize)) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{phase}: {} reads p50 {:.0} µs p99 {:.0} µs; {} writes p50 {:.0} µs p99 {:.0} µs; {errors} errors",
        reads.len(),
        us(percentile(&mut reads, 0.5)),
        us(percentile(&mut reads, 0.99)),
        writes.len(),
        us(percentile(&mut writes, 0.5)),
        us(percentile(&mut writes, 0.99)),
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = start(
        dir.path(),
        &format!("[[tenants]]\nname = \"noisy\"\ntokens = [\"{NOISY}\"]\n"),
    );
    let base = server.base.clone();
    let client = Client::new();
    let sid = server.session(&client).await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![7u8; 1024]).file_name("data.bin"),
    );
    let file = support::json(
        client
            .post(format!("{base}/v1/sessions/{sid}/resources/files"))
            .multipart(form),
    )
    .await;
    let content = format!(
        "{base}/v1/sessions/{sid}/resources/files/{}/content",
        file["id"].as_str().unwrap()
    );
    let write = format!("{base}/v1/sessions/{sid}/resources/environments/default/filesystem/n");
    report(
        "quiet alone ",
        quiet(&client, &content, &write, Duration::from_secs(4)).await,
    );

    let noisy_sid = {
        let r = client
            .post(format!("{base}/v1/sessions"))
            .bearer_auth(NOISY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let shell = format!("{base}/v1/sessions/{noisy_sid}/resources/environments/default/shell");
    let (ran, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let shells: Vec<_> = (0..200)
        .map(|_| {
            let (client, shell, ran, refused) =
                (Client::new(), shell.clone(), ran.clone(), refused.clone());
            tokio::spawn(async move {
                let r = client
                    .post(&shell)
                    .bearer_auth(NOISY)
                    .json(&json!({"command": "sleep 5", "timeout": 30}))
                    .send()
                    .await
                    .unwrap();
                match r.status() {
                    StatusCode::OK => ran.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let looped = Arc::new(AtomicUsize::new(0));
    let files = format!("{base}/v1/sessions/{noisy_sid}/resources/files");
    let loops: Vec<_> = (0..32)
        .map(|_| {
            let (client, files, stop, looped) =
                (Client::new(), files.clone(), stop.clone(), looped.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .request(Method::GET, &files)
                        .bearer_auth(NOISY)
                        .send()
                        .await
                        .unwrap();
                    r.bytes().await.unwrap();
                    looped.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    report(
        "quiet, flood",
        quiet(&client, &content, &write, Duration::from_secs(4)).await,
    );
    stop.store(true, Ordering::Relaxed);
    for task in loops.into_iter().chain(shells) {
        task.await.unwrap();
    }
    println!(
        "noisy: {} shell commands ran, {} refused (quota), {} looping GETs",
        ran.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        looped.load(Ordering::Relaxed)
    );
}
