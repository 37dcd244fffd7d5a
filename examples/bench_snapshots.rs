//! Speed of environment snapshots against a real release `reshost`, on a
//! session made from a template of 100,000 files in 5,000 directories (the
//! tree of `bench_env`): the first snapshot (every content hashed), a snapshot
//! when nothing changed since the last one, a restore after 100 files were
//! rewritten through the filesystem, a snapshot and `changes?to=current` after
//! 100 such rewrites, and a session made `from_snapshot` beside a native
//! `cp -r` of the same tree done just before, for scale; and, as the floor of
//! any full scan of the workspace, a native walk that lstats every entry.
//!
//! `cargo build --release -p reshost --bins --examples && cargo run --release -p reshost --example bench_snapshots`
//! (`TMPDIR=/dev/shm` puts the server's data and the tree in memory.)

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

const DIRS: usize = 5_000;
const FILES_PER_DIR: usize = 20;
/// Timed runs per measurement.
const RUNS: usize = 10;

/// p50 target of a snapshot when nothing changed.
const SNAPSHOT_UNCHANGED_TARGET: Duration = Duration::from_secs(1);
/// Target of a restore after 100 changed files.
const RESTORE_TARGET: Duration = Duration::from_millis(200);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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

/// Rewrites 100 distinct files of the tree through the filesystem: half keep
/// their size (so only their content tells), half grow. Each round writes
/// contents of its own (a digit, never the template's `x`, or a longer text).
fn modify_100(root: &Path, round: usize) {
    for i in 0..100 {
        let d = (i * 37 + round * 11) % DIRS;
        let f = (i + round) % FILES_PER_DIR;
        let ext = ["py", "rs", "txt", "md"][f % 4];
        let path = root.join(format!("pkg{:02}/mod{d:04}/file{f:02}.{ext}", d % 50));
        let content = match i % 2 {
            0 => vec![b'0' + (round % 10) as u8],
            _ => format!("grown in round {round}").into_bytes(),
        };
        std::fs::write(path, content).unwrap();
    }
}

/// The floor of any full scan of the workspace: a native walk that lstats every
/// entry (as a snapshot, a restore or `changes?to=current` does). Returns how
/// many entries it met.
fn native_walk(root: &Path) -> usize {
    let mut met = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for item in std::fs::read_dir(&dir).unwrap().flatten() {
            // DirEntry::metadata is an lstat relative to the open directory.
            let meta = item.metadata().unwrap();
            met += 1;
            if meta.is_dir() {
                dirs.push(item.path());
            }
        }
    }
    met
}

/// `POST …/snapshots`: its latency and the snapshot.
async fn snapshot(client: &Client, env: &str) -> (Duration, Value) {
    let t = Instant::now();
    let request = client
        .post(format!("{env}/snapshots"))
        .json(&json!({"name": "bench"}));
    let taken = support::json(request).await;
    (t.elapsed(), taken)
}

/// `POST …/snapshots/{id}/restore`: its latency and what it changed.
async fn restore(client: &Client, env: &str, id: &str) -> (Duration, Value) {
    let t = Instant::now();
    let restored = support::json(client.post(format!("{env}/snapshots/{id}/restore"))).await;
    (t.elapsed(), restored)
}

fn id(snapshot: &Value) -> String {
    snapshot["id"].as_str().unwrap().to_owned()
}

/// (p50, p95) of `samples`.
fn p50_p95(samples: &mut [Duration]) -> (Duration, Duration) {
    (percentile(samples, 0.5), percentile(samples, 0.95))
}

/// A table row: what, p50, p95 (when measured), target (when there is one).
fn row(what: &str, p50: Duration, p95: Option<Duration>, target: Option<Duration>) {
    let p95 = p95.map_or("-".to_owned(), |d| format!("{:.1}", ms(d)));
    let (target, verdict) = match target {
        Some(t) => (
            format!("<= {:.0}", ms(t)),
            if p50 <= t { "met" } else { "MISSED" },
        ),
        None => ("-".to_owned(), ""),
    };
    println!(
        "{what:<52} {:>10.1} {p95:>10} {target:>10} {verdict}",
        ms(p50)
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("working in {}", dir.path().display());
    let template = dir.path().join("template");
    let t = Instant::now();
    generate(&template);
    println!(
        "generated a template of {} files in {DIRS} directories in {:.1} s",
        DIRS * FILES_PER_DIR,
        t.elapsed().as_secs_f64()
    );
    let (server, _) = start(dir.path(), &format!("[templates]\nbig = {template:?}\n"));
    let client = Client::new();
    let t = Instant::now();
    let request = client
        .post(format!("{}/v1/sessions", server.base))
        .json(&json!({"environment": {"template": "big"}}));
    let sid = support::json(request).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    println!(
        "session from the template, baseline included: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let env = format!(
        "{}/v1/sessions/{sid}/resources/environments/default",
        server.base
    );
    let root = dir.path().join("data/workspaces").join(&sid);

    // 1. The first snapshot hashes every content; the next ones, with nothing
    // changed, only walk the tree and record it.
    let (first, base) = snapshot(&client, &env).await;
    println!(
        "first snapshot: {:.0} ms ({} files, {} bytes, {} new bytes)",
        ms(first),
        base["files"],
        base["bytes"],
        base["new_bytes"]
    );
    assert_eq!(base["files"], DIRS * FILES_PER_DIR);
    let base = id(&base);
    let mut unchanged = Vec::new();
    for _ in 0..RUNS {
        let (took, taken) = snapshot(&client, &env).await;
        assert_eq!(taken["new_bytes"], 0);
        unchanged.push(took);
    }

    // 3a. After 100 rewrites: `changes?to=current` against the latest snapshot,
    // then a snapshot (which is the next round's latest).
    let mut latest = {
        let (_, taken) = snapshot(&client, &env).await;
        id(&taken)
    };
    let (mut changes, mut changed) = (Vec::new(), Vec::new());
    for round in 0..RUNS {
        modify_100(&root, round);
        let url = format!("{env}/snapshots/{latest}/changes?to=current&limit=1000");
        let t = Instant::now();
        let listed = support::json(client.get(&url)).await;
        changes.push(t.elapsed());
        assert_eq!(listed["data"].as_array().unwrap().len(), 100, "{listed}");
        let (took, taken) = snapshot(&client, &env).await;
        changed.push(took);
        latest = id(&taken);
    }

    // 2. Restores of the first snapshot, each after 100 rewrites (the first
    // restore, untimed, undoes the rewrites above).
    let (undo, undone) = restore(&client, &env, &base).await;
    println!(
        "restore undoing {} rewritten files: {:.0} ms ({undone})",
        RUNS * 100,
        ms(undo)
    );
    let mut restores = Vec::new();
    for round in 0..RUNS {
        modify_100(&root, 100 + round);
        let (took, restored) = restore(&client, &env, &base).await;
        assert_eq!(restored["written"], 100, "{restored}");
        assert_eq!(restored["removed"], 0, "{restored}");
        restores.push(took);
    }

    // 3b. Sessions made from the snapshot, each right after the same copy done
    // natively: this machine's file creation speed varies from minute to minute.
    let mut from_snapshot = Vec::new();
    for round in 0..2 {
        let native =
            support::copy_tree(&template, &dir.path().join(format!("native-copy-{round}")));
        let t = Instant::now();
        let request = client
            .post(format!("{}/v1/sessions", server.base))
            .json(&json!({"from_snapshot": {"session_id": sid, "snapshot_id": base}}));
        support::json(request).await;
        let served = t.elapsed();
        println!(
            "session from the 100,000-file snapshot, baseline included: {:.2} s; native cp -r just before: {:.2} s",
            served.as_secs_f64(),
            native.as_secs_f64()
        );
        from_snapshot.push((served, native));
    }

    let mut walks = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(native_walk(&root), DIRS * FILES_PER_DIR + DIRS + 50);
        walks.push(t.elapsed());
    }

    // Deleting a snapshot of 100,000 entries (its contents stay: others hold them).
    let delete = format!("{env}/snapshots/{latest}");
    let deleted = timed(&client, Method::DELETE, &delete, None, 1).await[0];

    println!();
    println!(
        "{:<52} {:>10} {:>10} {:>10}",
        "100,000 files, client side (ms)", "p50", "p95", "target"
    );
    row("first snapshot (every content hashed)", first, None, None);
    let (p50, p95) = p50_p95(&mut unchanged);
    row(
        "snapshot, nothing changed since the last",
        p50,
        Some(p95),
        Some(SNAPSHOT_UNCHANGED_TARGET),
    );
    let (p50, p95) = p50_p95(&mut restores);
    row(
        "restore after 100 changed files",
        p50,
        Some(p95),
        Some(RESTORE_TARGET),
    );
    let (p50, p95) = p50_p95(&mut changed);
    row("snapshot after 100 changed files", p50, Some(p95), None);
    let (p50, p95) = p50_p95(&mut changes);
    row(
        "changes?to=current after 100 changed files",
        p50,
        Some(p95),
        None,
    );
    for (n, (served, native)) in from_snapshot.iter().enumerate() {
        row(
            &format!("session from_snapshot, run {} (baseline included)", n + 1),
            *served,
            None,
            None,
        );
        row(
            &format!("  native cp -r just before, run {}", n + 1),
            *native,
            None,
            None,
        );
    }
    row("delete a snapshot", deleted, None, None);
    let (p50, p95) = p50_p95(&mut walks);
    row(
        "for scale: native walk + lstat of every entry",
        p50,
        Some(p95),
        None,
    );
}
