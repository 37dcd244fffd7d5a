//! Terminals against a real release `reshost` (issue 4's targets):
//!
//! 1. keystroke round trip: one printable byte sent on the attach WebSocket of a
//!    `bash` terminal, timed until bash's echo of it comes back (p50/p90/p99);
//! 2. throughput: `head -c 200M /dev/zero | base64` in an attached terminal, bytes
//!    received per second until a marker the command prints after it; beside it
//!    the same pipeline read natively from a pipe, from a PTY's master (the PTY
//!    crate the server uses) and through `script`;
//! 3. memory: the server's RSS before and after launching 200 idle `bash`
//!    terminals (10 sessions × 20 session keys), the shells' own memory beside it,
//!    then all of them deleted and checked gone.
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench_terminals`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

use futures_util::{SinkExt, StreamExt};
use reqwest::Client;
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use support::{Server, TOKEN, percentile, rss_mib, start};

const KEYSTROKES: usize = 2000;
/// Untimed keystrokes first: the first ones pay for lazy set-up on both sides.
const WARM_UP_KEYS: usize = 50;
/// Keys that appear in no escape sequence bash sends while editing a line (`h`
/// and `l` end the bracketed-paste switches around a prompt).
const KEYS: &[u8] = b"abcdefgijkmnopqrstuvwxyz";
const PIPELINE: &str = "head -c 200M /dev/zero | base64";
/// Typed split by `''` so that only the command's output holds it whole, never the
/// terminal's echo of the command line.
const MARKER: &str = "BENCH-DONE-MARK";
const MARKER_TYPED: &str = "BENCH-DONE''-MARK";
const SESSIONS: usize = 10;
const KEYS_PER_SESSION: usize = 20;
/// Output that should come, or the benchmark reports it did not.
const WITHIN: Duration = Duration::from_secs(10);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every terminal is an interactive bash without rc files, so the prompt and the
/// echo are bash's (readline's) own.
fn agent() -> Value {
    json!({"agent": {"terminals": {
        "shell": {"command": "bash", "args": ["--norc", "--noprofile", "-i"]},
    }}})
}

async fn session(server: &Server, client: &Client) -> String {
    let request = client
        .post(format!("{}/v1/sessions", server.base))
        .json(&agent());
    support::json(request).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn terminals_url(server: &Server, sid: &str) -> String {
    format!("{}/v1/sessions/{sid}/resources/terminals", server.base)
}

/// Launches `shell` with `key`: its id and pid, or why it failed.
async fn launch(
    server: &Server,
    client: &Client,
    sid: &str,
    key: &str,
) -> Result<(String, u32), String> {
    let response = client
        .post(terminals_url(server, sid))
        .bearer_auth(TOKEN)
        .json(&json!({"terminal": "shell", "session_key": key}))
        .send()
        .await
        .map_err(|e| format!("launch request failed: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() || body["metadata"]["running"] != true {
        return Err(format!("launch answered {status}: {body}"));
    }
    let pid = body["metadata"]["pid"].as_u64().ok_or("no pid")? as u32;
    Ok((body["id"].as_str().ok_or("no id")?.to_owned(), pid))
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why reading output stopped short.
#[derive(Debug)]
enum Ended {
    Closed(Option<u16>),
    Failed(String),
    TimedOut,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed(Some(1008)) => write!(f, "closed with 1008: cut off as too slow"),
            Ended::Closed(Some(code)) => write!(f, "closed with code {code}"),
            Ended::Closed(None) => write!(f, "closed without a close frame"),
            Ended::Failed(e) => write!(f, "socket failed: {e}"),
            Ended::TimedOut => write!(f, "no output for {} s", WITHIN.as_secs()),
        }
    }
}

/// An attached client.
struct Attached {
    ws: Ws,
}

impl Attached {
    /// Attaches with the bench token, TCP_NODELAY on as an interactive client
    /// (a browser) has it.
    async fn connect(server: &Server, sid: &str, tid: &str) -> Attached {
        let url =
            format!("{}/{tid}/attach", terminals_url(server, sid)).replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .unwrap();
        Attached { ws }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    /// The next binary frame of output (events and pings skipped).
    async fn output(&mut self) -> Result<bytes::Bytes, Ended> {
        loop {
            let next = tokio::time::timeout(WITHIN, self.ws.next()).await;
            match next.map_err(|_| Ended::TimedOut)? {
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Ended::Closed(frame.map(|f| f.code.into())));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Ended::Failed(e.to_string())),
                None => return Err(Ended::Closed(None)),
            }
        }
    }

    /// Reads output until `done` holds on everything read by this call.
    async fn until(&mut self, mut done: impl FnMut(&[u8]) -> bool) -> Result<Vec<u8>, Ended> {
        let mut seen = Vec::new();
        while !done(&seen) {
            seen.extend_from_slice(&self.output().await?);
        }
        Ok(seen)
    }

    /// Waits for bash's prompt (`$ `, or `# ` as root).
    async fn prompt(&mut self) -> Result<(), Ended> {
        self.until(|s| contains(s, b"$ ") || contains(s, b"# "))
            .await
            .map(drop)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Part 1: each key is timed from its send to its echo; a backspace after it
/// (untimed, its echo awaited) keeps the line empty, so readline never redraws a
/// long line.
async fn keystrokes(term: &mut Attached) -> Result<Vec<Duration>, Ended> {
    term.prompt().await?;
    let mut samples = Vec::with_capacity(KEYSTROKES);
    for i in 0..WARM_UP_KEYS + KEYSTROKES {
        let key = KEYS[i % KEYS.len()];
        let sent = Instant::now();
        term.send(&[key]).await;
        term.until(|s| s.contains(&key)).await?;
        if i >= WARM_UP_KEYS {
            samples.push(sent.elapsed());
        }
        term.send(b"\x7f").await;
        term.until(|s| s.contains(&b'\x08')).await?;
    }
    Ok(samples)
}

/// Part 2: what the throughput run saw.
struct Flood {
    bytes: u64,
    frames: u64,
    elapsed: Duration,
    /// The server's and this client's CPU time (user + system) over the run.
    server_cpu: Duration,
    client_cpu: Duration,
    /// The longest wait for a frame: a stall on either side shows here.
    longest_gap: Duration,
    ended: Option<Ended>,
}

impl Flood {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Counts the bytes received from typing the pipeline to seeing the marker,
/// reading in a tight loop (no copy of the output is kept) so as not to fall
/// behind and be cut off.
async fn flood(term: &mut Attached, server_pid: u32) -> Flood {
    if let Err(e) = term.prompt().await {
        return Flood {
            bytes: 0,
            frames: 0,
            elapsed: Duration::ZERO,
            server_cpu: Duration::ZERO,
            client_cpu: Duration::ZERO,
            longest_gap: Duration::ZERO,
            ended: Some(e),
        };
    }
    let marker = MARKER.as_bytes();
    let cpu = (cpu_time(server_pid), cpu_time(std::process::id()));
    let started = Instant::now();
    term.send(format!("{PIPELINE}; echo {MARKER_TYPED}\r").as_bytes())
        .await;
    let (mut bytes, mut frames) = (0u64, 0u64);
    let (mut last, mut longest_gap) = (Instant::now(), Duration::ZERO);
    // The end of the previous frame, so a marker split across frames is found.
    let mut tail: Vec<u8> = Vec::new();
    let ended = loop {
        let frame = match term.output().await {
            Ok(frame) => frame,
            Err(e) => break Some(e),
        };
        bytes += frame.len() as u64;
        frames += 1;
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
        // The output is all `A`s: a memchr for the marker's first byte skips it fast.
        if tail.contains(&marker[0]) || frame.contains(&marker[0]) {
            let mut window = tail.clone();
            window.extend_from_slice(&frame);
            if contains(&window, marker) {
                break None;
            }
        }
        let keep = frame.len().min(marker.len() - 1);
        tail.clear();
        tail.extend_from_slice(&frame[frame.len() - keep..]);
    };
    Flood {
        bytes,
        frames,
        elapsed: started.elapsed(),
        server_cpu: cpu_time(server_pid) - cpu.0,
        client_cpu: cpu_time(std::process::id()) - cpu.1,
        longest_gap,
        ended,
    }
}

/// Reads `from` to its end as the server's PTY reader does (64 KiB reads; EIO
/// is a PTY's end): how many bytes.
fn drain(mut from: impl Read) -> u64 {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return bytes,
            Ok(n) => bytes += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => return bytes,
            Err(e) => panic!("reading native output: {e}"),
        }
    }
}

/// Runs `program` and reads its stdout to the end in this process, as the
/// WebSocket client reads: bytes and time.
fn native(program: &str, args: &[&str]) -> (u64, Duration) {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = drain(child.stdout.take().unwrap());
    assert!(child.wait().unwrap().success(), "{program} {args:?} failed");
    (bytes, started.elapsed())
}

/// The pipeline on a PTY of the same crate the server uses, its master read
/// directly: what the PTY itself allows on this machine.
fn native_pty() -> (u64, Duration) {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let started = Instant::now();
    let pair = native_pty_system().openpty(PtySize::default()).unwrap();
    let mut command = CommandBuilder::new("sh");
    command.args(["-c", PIPELINE]);
    let mut child = pair.slave.spawn_command(command).unwrap();
    drop(pair.slave); // Else the master never reads the end.
    let bytes = drain(pair.master.try_clone_reader().unwrap());
    assert!(child.wait().unwrap().success(), "the PTY pipeline failed");
    (bytes, started.elapsed())
}

/// A field of `/proc/{pid}/status` in KiB (`VmRSS`, `Threads`…).
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Proportional set size (shared pages divided among their sharers), in MiB.
fn pss_mib(pid: u32) -> f64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kib: u64 = rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

/// User + system CPU time of `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15, i.e. 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(ticks as f64 / hz)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `Max open files` (soft) of `pid`.
fn fd_limit(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_owned()
}

/// The state letter of `/proc/{pid}/stat` (None: no such process).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Gone, or a zombie nobody reaped yet.
fn dead(pid: u32) -> bool {
    matches!(process_state(pid), None | Some('Z' | 'X'))
}

/// Part 3: what the memory run saw.
struct Memory {
    launched: usize,
    failure: Option<String>,
    launch_p50: Duration,
    before: f64,
    after: f64,
    after_delete: f64,
    shells_rss: f64,
    shells_pss: f64,
    threads: (u64, u64),
    fds: (usize, usize),
    still_alive: usize,
    delete_failures: usize,
}

async fn memory(server: &Server, client: &Client) -> Memory {
    let pid = server.child.id();
    // Warm-up: the first launch instantiates the terminals component and more.
    let sid = session(server, client).await;
    let (tid, shell) = launch(server, client, &sid, "warm-up").await.unwrap();
    delete(server, client, &sid, &tid).await.unwrap();
    while !dead(shell) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_mib(pid);
    let (threads, fds) = (status_field(pid, "Threads").unwrap_or(0), open_fds(pid));

    let mut launched = Vec::new(); // (session, terminal id, shell pid)
    let mut latencies = Vec::new();
    let mut failure = None;
    'sessions: for _ in 0..SESSIONS {
        let sid = session(server, client).await;
        for k in 0..KEYS_PER_SESSION {
            let started = Instant::now();
            match launch(server, client, &sid, &format!("key-{k}")).await {
                Ok((tid, shell)) => {
                    latencies.push(started.elapsed());
                    launched.push((sid.clone(), tid, shell));
                }
                Err(e) => {
                    failure = Some(format!("launch #{} failed: {e}", launched.len() + 1));
                    break 'sessions;
                }
            }
        }
    }
    // Idle: every shell has drawn its prompt and sleeps in a read.
    let deadline = Instant::now() + WITHIN;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while launched
        .iter()
        .any(|(_, _, p)| process_state(*p) != Some('S'))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (sid, tid, _) in &launched {
        let url = format!("{}/{tid}", terminals_url(server, sid));
        let got = support::json(client.get(url)).await;
        if got["metadata"]["running"] != true && failure.is_none() {
            failure = Some(format!("{tid} is not running: {got}"));
        }
    }
    let after = rss_mib(pid);
    let shells_rss = launched.iter().map(|(_, _, p)| rss_mib(*p)).sum();
    let shells_pss = launched.iter().map(|(_, _, p)| pss_mib(*p)).sum();
    let threads = (threads, status_field(pid, "Threads").unwrap_or(0));
    let fds = (fds, open_fds(pid));

    let mut delete_failures = 0;
    for (sid, tid, _) in &launched {
        if let Err(e) = delete(server, client, sid, tid).await {
            eprintln!("DELETE {tid}: {e}");
            delete_failures += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while launched.iter().any(|(_, _, p)| !dead(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still_alive = launched.iter().filter(|(_, _, p)| !dead(*p)).count();
    tokio::time::sleep(Duration::from_millis(500)).await;
    Memory {
        launched: launched.len(),
        failure,
        launch_p50: if latencies.is_empty() {
            Duration::ZERO
        } else {
            percentile(&mut latencies, 0.5)
        },
        before,
        after,
        after_delete: rss_mib(pid),
        shells_rss,
        shells_pss,
        threads,
        fds,
        still_alive,
        delete_failures,
    }
}

async fn delete(server: &Server, client: &Client, sid: &str, tid: &str) -> Result<(), String> {
    let url = format!("{}/{tid}", terminals_url(server, sid));
    let response = client
        .delete(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().is_success() {
        true => Ok(()),
        false => Err(format!("answered {}", response.status())),
    }
}

/// A server of its own in `dir` (so one part's allocations do not blur another's
/// memory figures).
fn server_in(dir: &Path) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    start(dir, "").0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new();
    println!(
        "{} CPUs; the server, bash and the pipeline share them with this client",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1 and 2 share a server and a session, with a terminal each.
    let server = server_in(&dir.path().join("io"));
    let sid = session(&server, &client).await;
    let (tid, _) = launch(&server, &client, &sid, "keys").await.unwrap();
    let mut term = Attached::connect(&server, &sid, &tid).await;
    let keys = keystrokes(&mut term).await;
    let (key_p50, key_p90, key_p99) = match keys {
        Ok(mut samples) => {
            let mut p = |q| ms(percentile(&mut samples, q));
            let (p50, p90, p99) = (p(0.5), p(0.9), p(0.99));
            println!(
                "keystroke round trip ({KEYSTROKES} keys): p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
                p(1.0)
            );
            (Some(p50), Some(p90), Some(p99))
        }
        Err(e) => {
            println!("keystroke round trip FAILED: {e}");
            (None, None, None)
        }
    };

    let (tid, _) = launch(&server, &client, &sid, "flood").await.unwrap();
    let mut term = Attached::connect(&server, &sid, &tid).await;
    let served = flood(&mut term, server.child.id()).await;
    match &served.ended {
        None => println!(
            "throughput `{PIPELINE}` attached: {:.1} MB in {:.2} s = {:.1} MB/s ({} frames, {:.1} KiB each; CPU: server {:.0}%, this client {:.0}% of one core; longest wait for a frame {:.1} ms)",
            served.bytes as f64 / 1e6,
            served.elapsed.as_secs_f64(),
            served.mb_per_s(),
            served.frames,
            served.bytes as f64 / served.frames.max(1) as f64 / 1024.0,
            100.0 * served.server_cpu.as_secs_f64() / served.elapsed.as_secs_f64(),
            100.0 * served.client_cpu.as_secs_f64() / served.elapsed.as_secs_f64(),
            ms(served.longest_gap)
        ),
        Some(e) => println!(
            "throughput FAILED after {:.1} MB in {:.2} s: {e} (longest wait for a frame before: {:.1} ms)",
            served.bytes as f64 / 1e6,
            served.elapsed.as_secs_f64(),
            ms(served.longest_gap)
        ),
    }
    drop(term);
    drop(server);

    let (pipe_bytes, pipe_time) = native("sh", &["-c", PIPELINE]);
    let pipe = pipe_bytes as f64 / 1e6 / pipe_time.as_secs_f64();
    println!(
        "throughput native, read from a pipe: {:.1} MB in {:.2} s = {pipe:.1} MB/s",
        pipe_bytes as f64 / 1e6,
        pipe_time.as_secs_f64()
    );
    let (pty_bytes, pty_time) = native_pty();
    let pty = pty_bytes as f64 / 1e6 / pty_time.as_secs_f64();
    println!(
        "throughput native through a PTY, master read directly: {:.1} MB in {:.2} s = {pty:.1} MB/s",
        pty_bytes as f64 / 1e6,
        pty_time.as_secs_f64()
    );
    let (script_bytes, script_time) = native("script", &["-qc", PIPELINE, "/dev/null"]);
    let script = script_bytes as f64 / 1e6 / script_time.as_secs_f64();
    println!(
        "throughput native through `script -qc`: {:.1} MB in {:.2} s = {script:.1} MB/s",
        script_bytes as f64 / 1e6,
        script_time.as_secs_f64()
    );

    let server = server_in(&dir.path().join("memory"));
    let mem = memory(&server, &client).await;
    let total = SESSIONS * KEYS_PER_SESSION;
    println!(
        "memory: {} of {total} terminals launched (launch p50 {:.1} ms); server RSS {:.1} MiB before, {:.1} MiB with them, {:.1} MiB after deleting them",
        mem.launched,
        ms(mem.launch_p50),
        mem.before,
        mem.after,
        mem.after_delete
    );
    println!(
        "  server threads {} -> {}, open fds {} -> {} (limit {}); the shells: RSS {:.1} MiB summed, PSS {:.1} MiB",
        mem.threads.0,
        mem.threads.1,
        mem.fds.0,
        mem.fds.1,
        fd_limit(server.child.id()),
        mem.shells_rss,
        mem.shells_pss
    );
    if let Some(failure) = &mem.failure {
        println!("  FAILED: {failure}");
    }
    println!(
        "  deleted: {} DELETE failures, {} shells still alive after 5 s",
        mem.delete_failures, mem.still_alive
    );
    drop(server);

    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let or_failed =
        |v: Option<f64>, unit: &str| v.map_or("failed".into(), |v| format!("{v:.3} {unit}"));
    let delta = mem.after - mem.before;
    let memory_ok = mem.failure.is_none() && mem.launched == total && delta < 100.0;
    let rows = [
        (
            "keystroke round trip p50".to_owned(),
            or_failed(key_p50, "ms"),
            "< 2 ms",
            verdict(key_p50.is_some_and(|p| p < 2.0)),
        ),
        (
            "keystroke round trip p90".to_owned(),
            or_failed(key_p90, "ms"),
            "-",
            "",
        ),
        (
            "keystroke round trip p99".to_owned(),
            or_failed(key_p99, "ms"),
            "-",
            "",
        ),
        (
            "throughput, attached".to_owned(),
            match &served.ended {
                None => format!("{:.1} MB/s", served.mb_per_s()),
                Some(Ended::Closed(Some(1008))) => {
                    format!("cut off (1008) at {:.0} MB", served.bytes as f64 / 1e6)
                }
                Some(_) => "failed (see above)".to_owned(),
            },
            ">= 100 MB/s",
            verdict(served.ended.is_none() && served.mb_per_s() >= 100.0),
        ),
        (
            "throughput, native pipe".to_owned(),
            format!("{pipe:.1} MB/s"),
            "-",
            "",
        ),
        (
            "throughput, native PTY".to_owned(),
            format!("{pty:.1} MB/s"),
            "-",
            "",
        ),
        (
            "throughput, native `script`".to_owned(),
            format!("{script:.1} MB/s"),
            "-",
            "",
        ),
        (
            format!("server RSS for {total} terminals"),
            format!("+{delta:.1} MiB ({} launched)", mem.launched),
            "< 100 MiB",
            verdict(memory_ok),
        ),
        (
            "their shells' RSS (PSS)".to_owned(),
            format!("{:.1} ({:.1}) MiB", mem.shells_rss, mem.shells_pss),
            "-",
            "",
        ),
        (
            "all gone after DELETE".to_owned(),
            format!("{} alive", mem.still_alive),
            "0 alive",
            verdict(mem.still_alive == 0 && mem.delete_failures == 0),
        ),
    ];
    println!(
        "\n{:<34} {:<30} {:<12} verdict",
        "measure", "measured", "target"
    );
    for (what, value, target, verdict) in rows {
        println!("{what:<34} {value:<30} {target:<12} {verdict}");
    }
}
