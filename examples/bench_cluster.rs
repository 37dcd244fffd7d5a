//! What a runner holds and what the proxy costs, for `docs/scale-out.md`:
//! three release runners and HAProxy (`reshost cluster proxy-config`) on
//! loopback, all on this machine's cores.
//!
//! 1. creating 900 sessions through the proxy, 8 at a time: sessions/s and the
//!    split over the runners;
//! 2. `GET /v1/sessions/{id}`: p50/p99 on one connection, direct to its runner
//!    and through the proxy (the hop), and requests/s with 32 connections;
//! 3. the first page of the listing (20 and 1,000 sessions): one runner alone
//!    against the three merged;
//! 4. each runner's resident memory with ~300 idle sessions, against an idle
//!    runner: the memory an idle session costs;
//! 5. a runner restarted on its data (a rolling update): stop to ready again.
//!
//! `apt-get install haproxy && cargo build --release -p reshost --bins --examples && cargo run --release -p reshost --example bench_cluster`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use reqwest::{Client, Method};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{TOKEN, percentile, rss_mib, start, start_with, throughput, timed};

const RUNNERS: [&str; 3] = ["r0", "r1", "r2"];

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let root = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = RUNNERS.iter().map(|_| free_port()).collect();
    let table: String = RUNNERS
        .iter()
        .zip(&ports)
        .map(|(r, p)| format!("{r} = \"http://127.0.0.1:{p}\"\n"))
        .collect();
    let extra = format!("[cluster.runners]\n{table}");
    let start_runner = |i: usize| {
        let dir = root.path().join(RUNNERS[i]);
        std::fs::create_dir_all(&dir).unwrap();
        let listen = format!("127.0.0.1:{}", ports[i]);
        start_with(&dir, &extra, &["--listen", &listen, "--runner", RUNNERS[i]])
    };
    let mut runners: Vec<_> = (0..RUNNERS.len()).map(|i| start_runner(i).0).collect();
    let idle_dir = root.path().join("idle");
    std::fs::create_dir_all(&idle_dir).unwrap();
    let (idle, _) = start(&idle_dir, "");
    let proxy_port = free_port();
    let made = Command::new(support::binary())
        .args(["cluster", "proxy-config", "--config"])
        .arg(root.path().join("r0/reshost.toml"))
        .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
        .output()
        .unwrap();
    assert!(made.status.success());
    let cfg = root.path().join("haproxy.cfg");
    std::fs::write(&cfg, made.stdout).unwrap();
    let haproxy = std::env::var("RESHOST_HAPROXY").unwrap_or_else(|_| "/usr/sbin/haproxy".into());
    let _proxy = Proxy(
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .expect("HAProxy (apt-get install haproxy, or set RESHOST_HAPROXY)"),
    );
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let client = Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    while client.get(format!("{proxy}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // first health checks
    let idle_before: Vec<f64> = runners.iter().map(|r| rss_mib(r.child.id())).collect();

    // 1. Creation through the proxy.
    let t = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..(900 / 8) + 1 {
        let batch = (0..8).map(|_| {
            let client = client.clone();
            let url = format!("{proxy}/v1/sessions");
            async move {
                let r = client
                    .post(url)
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({}))
                    .send()
                    .await
                    .unwrap();
                let v: serde_json::Value = r.json().await.unwrap();
                v["id"].as_str().unwrap().to_owned()
            }
        });
        ids.extend(futures_util::future::join_all(batch).await);
    }
    let took = t.elapsed();
    let tag = |name: &str| {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(name.as_bytes())[..4])
    };
    let split: Vec<usize> = RUNNERS
        .iter()
        .map(|r| ids.iter().filter(|id| id[17..25] == tag(r)).count())
        .collect();
    println!(
        "1. {} sessions through the proxy, 8 at a time: {:.0} sessions/s; split {:?}",
        ids.len(),
        ids.len() as f64 / took.as_secs_f64(),
        split
    );

    // 2. One session's GET, direct and through the proxy.
    let sid = &ids[0];
    let owner = RUNNERS.iter().position(|r| sid[17..25] == tag(r)).unwrap();
    let direct = format!("{}/v1/sessions/{sid}", runners[owner].base);
    let proxied = format!("{proxy}/v1/sessions/{sid}");
    let one = Client::new();
    timed(&one, Method::GET, &direct, None, 200).await;
    let mut d = timed(&one, Method::GET, &direct, None, 2000).await;
    let mut p = timed(&one, Method::GET, &proxied, None, 2000).await;
    println!(
        "2. GET session, one connection: direct p50 {:.3} ms p99 {:.3}; through the proxy p50 {:.3} ms p99 {:.3}",
        ms(percentile(&mut d, 0.5)),
        ms(percentile(&mut d, 0.99)),
        ms(percentile(&mut p, 0.5)),
        ms(percentile(&mut p, 0.99))
    );
    let direct_rps = throughput(&[direct], 32, Duration::from_secs(5)).await;
    let spread: Vec<String> = ids
        .iter()
        .take(30)
        .map(|id| format!("{proxy}/v1/sessions/{id}"))
        .collect();
    let proxy_rps = throughput(&spread, 32, Duration::from_secs(5)).await;
    println!(
        "   32 connections: one runner direct {direct_rps:.0} req/s; through the proxy to all three {proxy_rps:.0} req/s"
    );

    // 3. The listing: one runner's own part against the merged list.
    for limit in [20, 1000] {
        let mut alone = timed(
            &one,
            Method::GET,
            &format!("{}/v1/runner/sessions?limit={limit}", runners[0].base),
            None,
            100,
        )
        .await;
        let mut merged = timed(
            &one,
            Method::GET,
            &format!("{proxy}/v1/sessions?limit={limit}"),
            None,
            100,
        )
        .await;
        println!(
            "3. listing, limit {limit}: one runner's part p50 {:.2} ms; merged from three through the proxy p50 {:.2} ms",
            ms(percentile(&mut alone, 0.5)),
            ms(percentile(&mut merged, 0.5))
        );
    }

    // 4. Memory.
    for (i, r) in runners.iter().enumerate() {
        let now = rss_mib(r.child.id());
        println!(
            "4. {}: RSS {:.1} MiB with {} sessions (idle before: {:.1} MiB): {:.1} KiB per idle session",
            RUNNERS[i],
            now,
            split[i],
            idle_before[i],
            (now - idle_before[i]) * 1024.0 / split[i] as f64
        );
    }
    println!(
        "   a runner alone, never used: {:.1} MiB",
        rss_mib(idle.child.id())
    );

    // 5. A restart on the same data.
    let last = RUNNERS.len() - 1;
    let stopped = Instant::now();
    unsafe { libc::kill(runners[last].child.id() as i32, libc::SIGTERM) };
    runners[last].child.wait().unwrap();
    let stop = stopped.elapsed();
    let (runner, ready) = start_runner(last);
    runners[last] = runner;
    println!(
        "5. {} with {} sessions: SIGTERM to exit {:.0} ms, start to ready {:.0} ms",
        RUNNERS[last],
        split[last],
        ms(stop),
        ms(ready)
    );
}
