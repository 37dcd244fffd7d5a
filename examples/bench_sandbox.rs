//! The sandbox's overhead against a real release `reshost`: two servers run side by
//! side, one with `[sandbox] mode = "enforce"` (every command re-executed as
//! `reshost sandbox-exec` under namespaces, Landlock and a cgroup of its own), one
//! with `mode = "off"` (unconfined), and the same requests go to both in
//! alternating rounds, so the machine's noise weighs on both alike:
//!
//! 1. `shell` running `true`: p50 and p90 of the POST, client side;
//! 2. terminal launch: `POST …/terminals` of a `bash` terminal with a new
//!    `session_key` each time (so a new process), timed until its answer; each
//!    terminal is deleted afterwards, untimed;
//! 3. terminal ready: the launch of an interactive `bash -i` terminal (a new
//!    `session_key` each time), then an attach on its WebSocket, timed from just
//!    before the POST until bash's prompt (`$ ` or `# `) arrives in a binary
//!    frame: unlike 2, this includes what runs after the launch's answer, i.e.
//!    the sandbox's set-up (namespaces, mounts, Landlock, its forks) and bash's
//!    start; each terminal is deleted afterwards, untimed;
//! 4. for scale, `bash -c true` spawned and waited for natively by this program.
//!
//! `cargo build --release -p reshost && cargo run --release -p reshost --example bench_sandbox`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark stops at its first failure"
)]

#[path = "support.rs"]
#[allow(dead_code)] // shared by the benchmarks; each uses part of it
mod support;

use futures_util::StreamExt;
use reqwest::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Server, TOKEN, percentile, start};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

const SHELL_WARM_UP: usize = 20;
const SHELL_CALLS: usize = 300;
const LAUNCH_WARM_UP: usize = 5;
const LAUNCHES: usize = 100;
const READY_WARM_UP: usize = 5;
const READIES: usize = 60;
/// How long a prompt may take before the sample counts as failed.
const WITHIN: Duration = Duration::from_secs(10);
const MODES: [&str; 2] = ["enforce", "off"];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A server in `mode`, and its one session, which declares two `bash` terminals:
/// `shell`, and `interactive` (`-i`, so it draws a prompt).
async fn server(dir: &std::path::Path, mode: &str, client: &Client) -> (Server, String) {
    let dir = dir.join(mode);
    std::fs::create_dir_all(&dir).unwrap();
    let (server, _) = start(&dir, &format!("[sandbox]\nmode = \"{mode}\"\n"));
    let body = json!({"agent": {"terminals": {
        "shell": {"command": "bash", "args": ["--norc", "--noprofile"]},
        "interactive": {"command": "bash", "args": ["--norc", "--noprofile", "-i"]},
    }}});
    let request = client
        .post(format!("{}/v1/sessions", server.base))
        .json(&body);
    let sid = support::json(request).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (server, sid)
}

/// One request with the bench token, timed until its whole answer: the time and
/// the JSON answer, or why it failed.
async fn timed(request: reqwest::RequestBuilder) -> Result<(Duration, Value), String> {
    let started = Instant::now();
    let response = request
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match status.is_success() {
        true => Ok((elapsed, body)),
        false => Err(format!("{status}: {body}")),
    }
}

/// Samples of one mode, and the failures seen (the first one kept to show).
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    failures: usize,
    first_failure: Option<String>,
}

impl Samples {
    fn fail(&mut self, why: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(why);
    }

    fn p(&mut self, q: f64) -> Option<Duration> {
        (!self.times.is_empty()).then(|| percentile(&mut self.times, q))
    }
}

/// `shell true` once: its time, checked to exit 0.
async fn shell(client: &Client, server: &Server, sid: &str) -> Result<Duration, String> {
    let url = format!(
        "{}/v1/sessions/{sid}/resources/environments/default/shell",
        server.base
    );
    let body = json!({"command": "true", "timeout": 10});
    let (elapsed, answer) = timed(client.post(url).json(&body)).await?;
    match answer["exit_code"] == 0 {
        true => Ok(elapsed),
        false => Err(format!("not exit 0: {answer}")),
    }
}

/// Launches the terminal with `key`: its time, checked to run; then deletes it.
async fn launch(
    client: &Client,
    server: &Server,
    sid: &str,
    key: &str,
) -> Result<Duration, String> {
    let url = format!("{}/v1/sessions/{sid}/resources/terminals", server.base);
    let body = json!({"terminal": "shell", "session_key": key});
    let (elapsed, answer) = timed(client.post(&url).json(&body)).await?;
    let tid = answer["id"].as_str().ok_or(format!("no id: {answer}"))?;
    let deleted = timed(client.delete(format!("{url}/{tid}"))).await;
    if answer["metadata"]["running"] != true {
        return Err(format!("not running: {answer}"));
    }
    deleted.map_err(|e| format!("DELETE {tid}: {e}"))?;
    Ok(elapsed)
}

/// Launches the `interactive` terminal with `key` and attaches to it: the time
/// from before the POST until bash's prompt; then deletes it.
async fn ready(client: &Client, server: &Server, sid: &str, key: &str) -> Result<Duration, String> {
    let url = format!("{}/v1/sessions/{sid}/resources/terminals", server.base);
    let body = json!({"terminal": "interactive", "session_key": key});
    let started = Instant::now();
    let (_, answer) = timed(client.post(&url).json(&body)).await?;
    let tid = answer["id"].as_str().ok_or(format!("no id: {answer}"))?;
    let prompt = timeout(WITHIN, prompt(&format!("{url}/{tid}/attach")))
        .await
        .unwrap_or_else(|_| Err(format!("no prompt within {} s", WITHIN.as_secs())));
    let elapsed = started.elapsed();
    let deleted = timed(client.delete(format!("{url}/{tid}"))).await;
    prompt?;
    deleted.map_err(|e| format!("DELETE {tid}: {e}"))?;
    Ok(elapsed)
}

/// Attaches at `url` (http) with the bench token and reads binary frames until
/// what they brought holds bash's prompt (`$ `, or `# ` as root).
async fn prompt(url: &str) -> Result<(), String> {
    let mut request = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .map_err(|e| format!("attach: {e}"))?;
    let mut seen = Vec::new();
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => seen.extend_from_slice(&bytes),
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed without a close frame".into()),
        }
        if seen.windows(2).any(|w| w == b"$ " || w == b"# ") {
            return Ok(());
        }
    }
}

/// Prints one measure's two modes and their difference.
fn report(what: &str, samples: &mut [Samples; 2]) {
    println!("{what}:");
    let mut p = Vec::new();
    for (mode, s) in MODES.iter().zip(samples.iter_mut()) {
        let (p50, p90) = (s.p(0.5), s.p(0.9));
        match (p50, p90) {
            (Some(p50), Some(p90)) => println!(
                "  {mode:<7} p50 {:7.2} ms   p90 {:7.2} ms   ({} samples)",
                ms(p50),
                ms(p90),
                s.times.len()
            ),
            _ => println!("  {mode:<7} no samples"),
        }
        if let Some(why) = &s.first_failure {
            println!("  {mode:<7} {} FAILED, the first: {why}", s.failures);
        }
        p.push(p50.zip(p90));
    }
    if let [Some((e50, e90)), Some((o50, o90))] = p[..] {
        println!(
            "  sandbox p50 {:+7.2} ms   p90 {:+7.2} ms   (enforce - off)",
            ms(e50) - ms(o50),
            ms(e90) - ms(o90)
        );
    }
}

/// `warm_up` + `n` rounds of `measure`, each round asking both servers, the
/// one asked first alternating, so the machine's noise weighs on both alike.
async fn interleaved(
    servers: &[(Server, String)],
    warm_up: usize,
    n: usize,
    measure: impl AsyncFn(&Server, &str, usize) -> Result<Duration, String>,
) -> [Samples; 2] {
    let mut samples: [Samples; 2] = Default::default();
    for round in 0..warm_up + n {
        for i in [round % 2, 1 - round % 2] {
            let (server, sid) = &servers[i];
            match measure(server, sid, round).await {
                Ok(t) if round >= warm_up => samples[i].times.push(t),
                Ok(_) => {}
                Err(e) => samples[i].fail(e),
            }
        }
    }
    samples
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new();
    let mut servers = Vec::new();
    for mode in MODES {
        servers.push(server(dir.path(), mode, &client).await);
    }
    println!(
        "{} CPUs; both servers, their commands and this client share them",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut samples = interleaved(
        &servers,
        SHELL_WARM_UP,
        SHELL_CALLS,
        async |server, sid, _| shell(&client, server, sid).await,
    )
    .await;
    report(
        &format!("shell `true`, {SHELL_WARM_UP} warm-up calls each first"),
        &mut samples,
    );
    let mut samples = interleaved(
        &servers,
        LAUNCH_WARM_UP,
        LAUNCHES,
        async |server, sid, round| launch(&client, server, sid, &format!("k{round}")).await,
    )
    .await;
    report(
        &format!("terminal launch (bash), {LAUNCH_WARM_UP} warm-up launches each first"),
        &mut samples,
    );
    let mut samples = interleaved(
        &servers,
        READY_WARM_UP,
        READIES,
        async |server, sid, round| ready(&client, server, sid, &format!("r{round}")).await,
    )
    .await;
    report(
        &format!(
            "terminal ready (bash -i, launch + attach until its prompt), {READY_WARM_UP} warm-up launches each first"
        ),
        &mut samples,
    );

    let mut native = Vec::with_capacity(SHELL_CALLS);
    for _ in 0..SHELL_CALLS {
        let started = Instant::now();
        let status = std::process::Command::new("bash")
            .args(["-c", "true"])
            .status()
            .unwrap();
        assert!(status.success());
        native.push(started.elapsed());
    }
    println!(
        "native `bash -c true` spawn + wait ({SHELL_CALLS} runs): p50 {:.2} ms, p90 {:.2} ms",
        ms(percentile(&mut native, 0.5)),
        ms(percentile(&mut native, 0.9))
    );
}
