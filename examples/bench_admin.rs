//! Speed of the operator features, in release:
//!
//! 1. what a policy check costs a request: `policy::check` run in-process against
//!    the embedded allow-all policy and against the `policy-rules` example with a
//!    real `policy_config` (p50/p99 per check);
//! 2. hot swaps on a real server: 20 swaps of the `files` slot with the compiled
//!    cache warm (time per `PUT /admin/v1/slots/files`, client side, upload of the
//!    wasm included), while 4 clients keep requesting `GET …/environments/default`
//!    through the `environments` slot: their p50/p99 without and with swaps.
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench_admin`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

use reqwest::Client;
use reshost::testing::InProcess;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use support::{TOKEN, percentile, start};

const ADMIN: &str = "bench-admin";
const FILES: &[u8] = reshost::testing::SlotName::Files.embedded().1;
const NO_EXECUTABLES: &[u8] = reshost_test_artifacts::FILES_NO_EXECUTABLES.wasm;
const RULES: &str = reshost_test_artifacts::POLICY_RULES.path;

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// An in-process server with two tenants: `plain` (the default policy) and
/// `rules` (the `policy-rules` example).
async fn in_process(dir: &std::path::Path) -> InProcess {
    let config: reshost::config::Config = toml::from_str(&format!(
        "data_dir = {:?}\n\
         [sandbox]\nmode = \"off\"\n\
         [[tenants]]\nname = \"plain\"\ntokens = [\"p\"]\n\
         [[tenants]]\nname = \"rules\"\ntokens = [\"r\"]\npolicy = {RULES:?}\n\
         policy_config = {{ shell_allow = [\"ls\", \"cat\", \"git\"], deny_paths = [\"**/.env\", \"secrets/**\"] }}\n",
        dir.join("data")
    ))
    .unwrap();
    InProcess::start(config).await.unwrap()
}

async fn policy_cost(host: &InProcess, tenant: &str) -> (Duration, Duration) {
    let check = async || {
        host.check_read(tenant, "conv_x", "src/main.rs")
            .await
            .unwrap()
    };
    for _ in 0..2000 {
        check().await;
    }
    let mut samples = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let t = Instant::now();
        check().await;
        samples.push(t.elapsed());
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// Requests `url` from 4 clients until `stop`; every latency.
async fn load(url: String, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let client = Client::new();
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                    samples.push(t.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn swap(client: &Client, base: &str, wasm: &[u8]) -> Duration {
    let t = Instant::now();
    let r = client
        .put(format!("{base}/admin/v1/slots/files"))
        .bearer_auth(ADMIN)
        .body(wasm.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "swap: {}", r.status());
    r.bytes().await.unwrap();
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();

    // 1. The policy check, in-process.
    let host = in_process(dir.path()).await;
    for (tenant, what) in [
        ("plain", "allow-all (embedded)"),
        ("rules", "policy-rules example"),
    ] {
        let (p50, p99) = policy_cost(&host, tenant).await;
        println!(
            "policy check, {what}: p50 {:.1} µs, p99 {:.1} µs",
            us(p50),
            us(p99)
        );
    }
    drop(host);

    // 2. Swaps under load, on a real server.
    let server_dir = tempfile::tempdir().unwrap();
    let (server, _) = start(
        server_dir.path(),
        &format!("[admin]\ntokens = [\"{ADMIN}\"]\n"),
    );
    let client = Client::new();
    let sid = server.session(&client).await;
    let url = format!(
        "{}/v1/sessions/{sid}/resources/environments/default",
        server.base
    );
    let (files, other) = (FILES.to_vec(), NO_EXECUTABLES.to_vec());
    // Warm the compiled cache for both.
    swap(&client, &server.base, &other).await;
    swap(&client, &server.base, &files).await;

    let stop = Arc::new(AtomicBool::new(false));
    let quiet = tokio::spawn(load(url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut quiet = quiet.await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn(load(url, stop.clone()));
    let mut swaps = Vec::new();
    for i in 0..20 {
        let wasm = if i % 2 == 0 { &other } else { &files };
        swaps.push(swap(&client, &server.base, wasm).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut busy = busy.await.unwrap();

    println!(
        "swap (cache warm, {} KiB uploaded each): p50 {:.1} ms, max {:.1} ms",
        other.len().max(files.len()) / 1024,
        ms(percentile(&mut swaps, 0.5)),
        ms(percentile(&mut swaps, 1.0))
    );
    println!(
        "GET environment ({} requests quiet, {} during swaps): p50 {:.0} / {:.0} µs, p99 {:.2} / {:.2} ms, max {:.2} / {:.2} ms",
        quiet.len(),
        busy.len(),
        us(percentile(&mut quiet, 0.5)),
        us(percentile(&mut busy, 0.5)),
        ms(percentile(&mut quiet, 0.99)),
        ms(percentile(&mut busy, 0.99)),
        ms(percentile(&mut quiet, 1.0)),
        ms(percentile(&mut busy, 1.0)),
    );
}
