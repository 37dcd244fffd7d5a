//! The fast paths, each beside what bounds it, against a real release `reshost`:
//!
//! 1. listing a directory of 1,000 entries (`limit=1000`, and the default first
//!    page) beside a native `read_dir` + `lstat` of the same directory;
//! 2. 32 connections reading one 1 KiB file, with `wrk` (Debian's package) when
//!    installed: the upload's content, its metadata, and the same file read from
//!    the environment, with the server's CPU time per request (steadier than
//!    requests/s when other work shares the cores);
//! 3. uploads and the server's memory: one 1 GiB upload, then 8 concurrent
//!    100 MiB uploads: MB/s and peak RSS growth over the idle server.
//!
//! (A session from a 100,000-file template beside `cp -r` is in `bench_env`.)
//!
//! `cargo build --release -p reshost --bins --examples && cargo run --release -p reshost --example bench_fast`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use reqwest::{Client, Method};
use std::time::{Duration, Instant};
use support::{TOKEN, json, peak_rss, percentile, rss_kib, start, timed, upload_stream};

const MIB: u64 = 1 << 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What `wrk` measured, and the server's CPU time per request: steadier than
/// requests/s on a shared machine, where wrk and other load take cores.
struct Load {
    per_second: f64,
    cpu_us_per_request: f64,
}

/// The CPU time `pid` has used (user + system), in microseconds.
fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a setting.
    ticks * 1e6 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// `wrk -t2 -c32 -d10s` on `url` with the bench token against the server
/// `pid`, or `None` without wrk.
fn wrk(url: &str, pid: u32) -> Option<Load> {
    let before = cpu_us(pid);
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(url)
        .output()
        .ok()?;
    let used = cpu_us(pid) - before;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "{text}");
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in"))
        .and_then(|(n, _)| n.parse().ok())?;
    let per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    Some(Load {
        per_second,
        cpu_us_per_request: used / requests,
    })
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let limits = format!("[limits]\nmax_upload_bytes = {}", 2 * 1024 * MIB);
    let (server, _) = start(dir.path(), &limits);
    let client = Client::new();
    let sid = server.session(&client).await;
    let session = format!("{}/v1/sessions/{sid}", server.base);
    let env = format!("{session}/resources/environments/default");

    // 1. A directory of 1,000 entries, made on disk.
    let big = dir.path().join("data/workspaces").join(&sid).join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..1000 {
        std::fs::write(big.join(format!("file-{i:04}.txt")), format!("{i}\n")).unwrap();
    }
    for (what, query) in [
        ("all 1,000 (limit=1000)", "?limit=1000"),
        ("the first page (20)", ""),
    ] {
        let url = format!("{env}/filesystem/big{query}");
        let listed = json(client.get(&url)).await;
        assert!(listed["data"].as_array().unwrap().len() >= 20);
        timed(&client, Method::GET, &url, None, 20).await;
        let mut served = timed(&client, Method::GET, &url, None, 200).await;
        println!(
            "1. listing 1,000 entries, {what}: p50 {:.2} ms, p99 {:.2} ms",
            ms(percentile(&mut served, 0.5)),
            ms(percentile(&mut served, 0.99))
        );
    }
    let mut native = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mut names: Vec<_> = std::fs::read_dir(&big)
            .unwrap()
            .flatten()
            .map(|e| (e.file_name(), e.metadata().unwrap().len()))
            .collect();
        names.sort();
        native.push(t.elapsed());
    }
    println!(
        "   native read_dir + lstat + sort: p50 {:.2} ms",
        ms(percentile(&mut native, 0.5))
    );

    // 2. Small reads, 32 connections.
    let small: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    let files = format!("{session}/resources/files");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(small.clone()).file_name("small.bin"),
    );
    let file = json(client.post(&files).multipart(form)).await;
    let fid = file["id"].as_str().unwrap();
    std::fs::write(
        dir.path()
            .join("data/workspaces")
            .join(&sid)
            .join("small.txt"),
        "x".repeat(1024),
    )
    .unwrap();
    for (what, url) in [
        ("file content", format!("{files}/{fid}/content")),
        ("file metadata", format!("{files}/{fid}")),
        ("environment read", format!("{env}/filesystem/small.txt")),
        ("session (host only)", session.clone()),
    ] {
        match wrk(&url, server.child.id()) {
            Some(load) => println!(
                "2. wrk -c32, 1 KiB {what}: {:.0} requests/s, server CPU {:.0} µs per request",
                load.per_second, load.cpu_us_per_request
            ),
            None => {
                println!("2. wrk is not installed (apt-get install wrk): no small-read figures");
                break;
            }
        }
    }

    // 3. Uploads and memory.
    let pid = server.child.id();
    let idle = rss_kib(pid);
    let (_, one, peak) = peak_rss(pid, upload_stream(&client, &files, "one.bin", 1024 * MIB)).await;
    println!(
        "3. one 1 GiB upload: {:.0} MB/s; RSS {} MiB idle, peak +{} MiB",
        (1024 * MIB) as f64 / 1e6 / one.as_secs_f64(),
        idle / 1024,
        peak.saturating_sub(idle) / 1024
    );
    let before = rss_kib(pid);
    let uploads = (0..8).map(|i| {
        let (client, files) = (client.clone(), files.clone());
        async move { upload_stream(&client, &files, &format!("part-{i}.bin"), 100 * MIB).await }
    });
    let (_, eight, peak) = peak_rss(pid, futures_util::future::join_all(uploads)).await;
    println!(
        "   8 concurrent 100 MiB uploads: {:.0} MB/s in all; RSS {} MiB before, peak +{} MiB (+{} MiB over idle)",
        (800 * MIB) as f64 / 1e6 / eight.as_secs_f64(),
        before / 1024,
        peak.saturating_sub(before) / 1024,
        peak.saturating_sub(idle) / 1024
    );
}
