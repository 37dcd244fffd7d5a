//! Speed of the environment endpoints against a real release `reshost`:
//! small PUT/GET/PATCH and `shell true` latency; then, on a session made from a
//! template of 100,000 files in 5,000 directories: its creation (baseline
//! included), server memory, `changes` after 100 modifications, and search and
//! directory listing side by side with the same work done natively (a Rust walk
//! of the same directory), grep beside ripgrep (`rg`, when installed) on the same
//! tree, and a small PUT there under a workspace quota (the tenant's workspace
//! bytes are checked at each API write).
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench_env`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use reqwest::{Client, Method};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{percentile, start, timed};

/// A workspace quota far above what the benchmark writes: checked, never hit.
const QUOTA: &str = "[tenant_limits]\nworkspace_bytes = 100000000000\n";

const DIRS: usize = 5_000;
const FILES_PER_DIR: usize = 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn p50(
    client: &Client,
    method: Method,
    url: &str,
    body: Option<Value>,
    n: usize,
) -> Duration {
    percentile(&mut timed(client, method, url, body.as_ref(), n).await, 0.5)
}

fn generate(root: &Path) {
    for d in 0..DIRS {
        let dir = root.join(format!("pkg{:02}/mod{d:04}", d % 50));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            let ext = ["py", "rs", "txt", "md"][f % 4];
            std::fs::write(dir.join(format!("file{f:02}.{ext}")), b"x").unwrap();
        }
    }
}

/// The search's work done natively: walk, match the path, stat the matches.
fn native_search(root: &Path, needle: &str, ext: &str) -> usize {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for item in std::fs::read_dir(&dir).unwrap().flatten() {
            let kind = item.file_type().unwrap();
            let path = item.path();
            if kind.is_dir() {
                dirs.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_lowercase();
                if rel.contains(needle) && rel.ends_with(ext) {
                    found.push((rel, item.metadata().unwrap().len()));
                }
            }
        }
    }
    found.sort();
    found.len()
}

/// The p50 of `rg` run `n` times over `root` with `args` (line and column
/// numbers, its output read through a pipe as a client would), and the lines it
/// printed; None when `rg` cannot be run.
fn rg(root: &Path, args: &[&str], n: usize) -> Option<(Duration, usize)> {
    let mut samples = Vec::new();
    let mut lines = 0;
    for _ in 0..n {
        let t = Instant::now();
        let out = std::process::Command::new("rg")
            .args(["--line-number", "--column", "--no-heading", "--color=never"])
            .args(args)
            .arg(root)
            .output()
            .ok()?;
        samples.push(t.elapsed());
        lines = out
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
    }
    Some((percentile(&mut samples, 0.5), lines))
}

fn native_list(dir: &Path) -> usize {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name(), e.metadata().unwrap().len()))
        .collect();
    entries.sort();
    entries.len()
}

/// Rewrites 100 files of the tree: half keep their size (so only their content
/// tells), half grow.
fn modify_100(root: &Path, round: usize) {
    for i in 0..100 {
        let d = (i * 37 + round * 11) % DIRS;
        let f = (i + round) % FILES_PER_DIR;
        let ext = ["py", "rs", "txt", "md"][f % 4];
        let path = root.join(format!("pkg{:02}/mod{d:04}/file{f:02}.{ext}", d % 50));
        let content: &[u8] = if i % 2 == 0 { b"y" } else { b"grown" };
        std::fs::write(path, content).unwrap();
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    let t = Instant::now();
    generate(&template);
    println!(
        "generated a template of {} files in {DIRS} directories in {:.1} s",
        DIRS * FILES_PER_DIR,
        t.elapsed().as_secs_f64()
    );
    let config = format!("[templates]\nbig = {template:?}\n{QUOTA}");
    let (server, _) = start(dir.path(), &config);
    let client = Client::new();
    let sid = server.session(&client).await;
    let env = format!(
        "{}/v1/sessions/{sid}/resources/environments/default",
        server.base
    );
    let file = format!("{env}/filesystem/notes/small.txt");

    let put = p50(
        &client,
        Method::PUT,
        &file,
        Some(json!({"content": format!("counter=0\n{}", "hello world\n".repeat(8))})),
        300,
    )
    .await;
    let get = p50(&client, Method::GET, &file, None, 300).await;
    let mut patch_samples = Vec::new();
    for i in 0..300 {
        let (old, new) = (format!("counter={i}\n"), format!("counter={}\n", i + 1));
        let body = json!({"old_text": old, "new_text": new});
        patch_samples.extend(timed(&client, Method::PATCH, &file, Some(&body), 1).await);
    }
    let patch = percentile(&mut patch_samples, 0.5);
    let shell = p50(
        &client,
        Method::POST,
        &format!("{env}/shell"),
        Some(json!({"command": "true"})),
        200,
    )
    .await;
    println!(
        "p50 (client side, loopback): PUT {:.2} ms, GET {:.2} ms, PATCH {:.2} ms, shell true {:.2} ms",
        ms(put),
        ms(get),
        ms(patch),
        ms(shell)
    );

    let idle = support::rss_mib(server.child.id());
    // Each session is made right after the same copy done natively, for scale: this
    // machine's file creation speed varies several-fold from minute to minute.
    let mut sid = String::new();
    for round in 0..2 {
        let native =
            support::copy_tree(&template, &dir.path().join(format!("native-copy-{round}")));
        let t = Instant::now();
        let request = client
            .post(format!("{}/v1/sessions", server.base))
            .json(&json!({"environment": {"template": "big"}}));
        sid = support::json(request).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        println!(
            "session from the 100,000-file template, baseline included{}: {:.2} s; native cp -r just before: {:.2} s",
            if round == 0 { "" } else { " (contents shared)" },
            t.elapsed().as_secs_f64(),
            native.as_secs_f64()
        );
    }
    let env = format!(
        "{}/v1/sessions/{sid}/resources/environments/default",
        server.base
    );
    let root = dir.path().join("data/workspaces").join(&sid);

    let changes = format!("{env}/changes");
    let mut after_100 = Vec::new();
    for round in 0..20 {
        modify_100(&root, round);
        after_100.extend(timed(&client, Method::GET, &changes, None, 1).await);
    }
    let listed = support::json(client.get(&changes)).await["data"]
        .as_array()
        .unwrap()
        .len();
    let unchanged = p50(&client, Method::GET, &changes, None, 50).await;
    println!(
        "changes p50: after 100 modifications {:.2} ms, with nothing new {:.2} ms ({listed} files listed)",
        ms(percentile(&mut after_100, 0.5)),
        ms(unchanged)
    );
    println!(
        "server RSS: {idle:.0} MiB idle, {:.0} MiB with two watched 100,000-file environments",
        support::rss_mib(server.child.id())
    );

    let search = format!("{env}/search?q=file07&include=**/*.rs&limit=500");
    let served = p50(&client, Method::GET, &search, None, 10).await;
    let mut native = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        native_search(&root, "file07", ".rs");
        native.push(t.elapsed());
    }
    let native = percentile(&mut native, 0.5);
    println!(
        "search over 100,000 files p50: served {:.1} ms, native walk {:.1} ms (ratio {:.1}x)",
        ms(served),
        ms(native),
        served.as_secs_f64() / native.as_secs_f64()
    );

    for (what, query, rg_args) in [
        ("literal", "pattern=grown&limit=1000", &["grown"][..]),
        (
            "regex",
            "pattern=gr%5Bo%5Dwn%7Cy%24&regex=true&limit=1000",
            &["gr[o]wn|y$"][..],
        ),
    ] {
        let grep = format!("{env}/grep?{query}");
        let found = support::json(client.get(&grep)).await["data"]
            .as_array()
            .unwrap()
            .len();
        let served = p50(&client, Method::GET, &grep, None, 10).await;
        match rg(&root, rg_args, 10) {
            Some((rg, lines)) => println!(
                "grep ({what}) over 100,000 files p50: served {:.1} ms ({found} lines), rg {:.1} ms ({lines} lines) (ratio {:.2}x)",
                ms(served),
                ms(rg),
                served.as_secs_f64() / rg.as_secs_f64()
            ),
            None => println!(
                "grep ({what}) over 100,000 files p50: served {:.1} ms ({found} lines); rg is not installed, no comparison (apt-get install ripgrep)",
                ms(served)
            ),
        }
    }

    let listing = format!("{env}/filesystem/pkg07?limit=100");
    let served = p50(&client, Method::GET, &listing, None, 50).await;
    let mut native = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        native_list(&root.join("pkg07"));
        native.push(t.elapsed());
    }
    let native = percentile(&mut native, 0.5);
    println!(
        "listing a 100-entry directory p50: served {:.2} ms, native {:.2} ms (ratio {:.1}x)",
        ms(served),
        ms(native),
        served.as_secs_f64() / native.as_secs_f64()
    );

    let quota_put = p50(
        &client,
        Method::PUT,
        &format!("{env}/filesystem/notes/quota.txt"),
        Some(json!({"content": "hello world\n"})),
        50,
    )
    .await;
    println!(
        "PUT p50 in the 100,000-file session under a workspace quota: {:.2} ms",
        ms(quota_put)
    );

    // A restart: the first `changes` watches the tree again and compares all of it
    // with the baseline (which also finds what changed while the server was down).
    drop(server);
    modify_100(&root, 99);
    let (server, _) = start(dir.path(), &config);
    let changes = changes.replace(&base_of(&changes), &server.base);
    let t = Instant::now();
    let relisted = support::json(client.get(&changes)).await["data"]
        .as_array()
        .unwrap()
        .len();
    println!(
        "first changes after a restart (whole-tree comparison): {:.0} ms ({relisted} files listed)",
        ms(t.elapsed())
    );
}

/// `http://host:port` of a URL.
fn base_of(url: &str) -> String {
    let rest = url.trim_start_matches("http://");
    format!("http://{}", &rest[..rest.find('/').unwrap()])
}
