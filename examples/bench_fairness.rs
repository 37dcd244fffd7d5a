//! Fairness, on a real release `reshost`: a quiet tenant's latency alone, then
//! while a noisy tenant floods the server with 200 concurrent `sleep 5` shell
//! commands (beyond its `shell_commands` quota they are refused with 429) and 32
//! connections looping `GET …/files`. The quiet tenant reads a 1 KiB file and
//! writes small environment files; its p50/p99 are printed for both phases, with
//! its error count (the API test asserts 0 errors; this measures the latency).
//! The clients stand in for clients on other machines, so that what is measured
//! is the server's sharing rather than the clients' share of the same 2 cores:
//! the noisy load generator runs under `SCHED_IDLE` (nice 19 where refused) and
//! the quiet client on a thread of its own under `SCHED_FIFO` (as it is where
//! refused), in both phases alike. It runs twice: with the data directory in the system's temp
//! directory (a disk filesystem here) and in `/dev/shm` (memory) where there is
//! one, since on a saturated 2-core machine a disk filesystem's journal thread
//! waits for a core too, and that shows in the write tail.
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

type Latencies = (Vec<Duration>, Vec<Duration>, usize);

/// The quiet tenant's requests for `how_long`, from a thread of its own so that
/// the load generator's tasks do not delay it client-side: read and write
/// latencies, errors.
fn quiet(content: &str, write: &str, how_long: Duration) -> Latencies {
    let (content, write) = (content.to_owned(), write.to_owned());
    std::thread::spawn(move || {
        client_priority();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(quiet_loop(&Client::new(), &content, &write, how_long))
    })
    .join()
    .unwrap()
}

async fn quiet_loop(client: &Client, content: &str, write: &str, how_long: Duration) -> Latencies {
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

fn report(phase: &str, (mut reads, mut writes, errors): Latencies) {
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

/// Lets the calling thread run as soon as it is ready, before any ordinary
/// thread (Linux: thread id 0 is the calling thread only); unchanged where
/// refused (it needs `CAP_SYS_NICE`).
fn client_priority() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` outlives the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
}

/// Lets the calling thread run only when nothing else would (Linux: thread id
/// 0 is the calling thread only); nice 19 where `SCHED_IDLE` is refused.
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the calls; setpriority takes no pointers.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

fn main() {
    // The noisy tenant's load generator stands in for clients on other machines:
    // its threads yield the cores to the server and to the quiet tenant's client,
    // whose latency is what is measured.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(idle_priority)
        .build()
        .unwrap();
    let memory = std::path::Path::new("/dev/shm");
    let places = [
        Some(std::env::temp_dir()),
        memory.is_dir().then(|| memory.to_owned()),
    ];
    for place in places.into_iter().flatten() {
        println!("data directory in {}:", place.display());
        runtime.block_on(run(&place));
    }
}

async fn run(place: &std::path::Path) {
    let dir = tempfile::tempdir_in(place).unwrap();
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
        tokio::task::block_in_place(|| quiet(&content, &write, Duration::from_secs(4))),
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
        tokio::task::block_in_place(|| quiet(&content, &write, Duration::from_secs(4))),
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
