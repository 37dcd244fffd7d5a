//! Terminals: `…/resources/terminals` (launch, get, list, close, transfer) and the
//! `…/terminals/{tid}/attach` WebSocket, with real `bash` on real PTYs over real
//! sockets.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

// ---------------------------------------------------------------------------
// Helpers (local to this file).

/// How long to wait for output that should come.
const WITHIN: Duration = Duration::from_secs(5);

/// The session body every test uses: `shell` (bash without rc files, cwd override
/// allowed, 64 KiB scrollback) and `fixed` (no cwd override).
fn agent() -> Value {
    json!({"agent": {"terminals": {
        "shell": {"command": "bash", "args": ["--norc", "--noprofile", "-i"],
                  "allow_cwd_override": true, "scrollback_bytes": 65536},
        "fixed": {"command": "bash"},
    }}})
}

/// A new session of the token's tenant declaring the `agent()` terminals.
pub(crate) async fn session(server: &Server, token: &str) -> String {
    let (status, body) = server.post("/v1/sessions", token, agent()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

pub(crate) fn terminals(sid: &str) -> String {
    format!("/v1/sessions/{sid}/resources/terminals")
}

pub(crate) fn terminal(sid: &str, tid: &str) -> String {
    format!("{}/{tid}", terminals(sid))
}

async fn launch(server: &Server, token: &str, sid: &str, body: Value) -> (StatusCode, Value) {
    server.post(&terminals(sid), token, body).await
}

/// Launches `shell` with `key` in an ACME session (it must be new); returns its id
/// and pid.
pub(crate) async fn launch_shell(server: &Server, sid: &str, key: &str) -> (String, u32) {
    launch_as(server, ACME, sid, key).await
}

pub(crate) async fn launch_as(server: &Server, token: &str, sid: &str, key: &str) -> (String, u32) {
    let (status, body) = launch(
        server,
        token,
        sid,
        json!({"terminal": "shell", "session_key": key}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["running"], true, "{body}");
    (body["id"].as_str().unwrap().to_owned(), pid_of(&body))
}

#[track_caller]
fn pid_of(resource: &Value) -> u32 {
    let pid = resource["metadata"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer pid: {resource}"));
    assert!(pid > 1, "{resource}");
    pid as u32
}

/// `GET …/terminals/{tid}` as ACME, which must succeed.
pub(crate) async fn get_terminal(server: &Server, sid: &str, tid: &str) -> Value {
    let (status, body) = server.get(&terminal(sid, tid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The ids listed by `GET …/terminals` (shape asserted).
async fn listed(server: &Server, token: &str, sid: &str) -> Vec<String> {
    let (status, body) = server.get(&terminals(sid), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_list(&body)
}

/// A marker unique in this test run, as `(typed, printed)`: the command line holds
/// it split by `''`, so only the command's output contains it whole, never the
/// terminal's echo of what was typed.
pub(crate) fn marker(tag: &str) -> (String, String) {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let (head, tail) = (
        format!("{tag}-{}", std::process::id()),
        format!("{n}x{nanos}"),
    );
    (format!("{head}''{tail}"), format!("{head}{tail}"))
}

/// A `sleep` duration of `whole` seconds and a fraction unique in this test
/// run, so the process can be found on the host: inside its sandbox it has a
/// PID of another namespace.
pub(crate) fn unique_seconds(whole: u32) -> String {
    let (_, printed) = marker("s");
    let digits: String = printed.chars().filter(char::is_ascii_digit).collect();
    format!("{whole}.{digits}")
}

/// The host pid of the process with command line `argv`, once it has started
/// (up to 3 s: the shell reports a job before the job's `exec`).
async fn started(argv: &[&str]) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(&pid) = host_pids(argv).first() {
            return pid;
        }
        assert!(Instant::now() < deadline, "{argv:?} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

/// Gone, or a zombie (dead, merely not reaped: PID 1 here may not reap orphans).
fn dead(pid: u32) -> bool {
    matches!(process_state(pid), None | Some('Z' | 'X'))
}

/// Waits (up to 3 s) until `pid` is dead.
async fn await_dead(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !dead(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still alive: state {:?}",
            process_state(pid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The number printed between `prefix` and `suffix` (digits only) in `text`.
fn number_between(text: &str, prefix: &str, suffix: &str) -> Option<u32> {
    text.match_indices(prefix).find_map(|(at, _)| {
        let rest = &text[at + prefix.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && rest[digits..].starts_with(suffix))
            .then(|| rest[..digits].parse().ok())
            .flatten()
    })
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What arrived on an attached socket, in order.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Output(usize),
    Event(Value),
    Close(u16),
}

/// One attached WebSocket client and everything it has received so far.
pub(crate) struct Attached {
    ws: Ws,
    /// All binary frames' bytes, concatenated.
    output: Vec<u8>,
    /// Each binary frame on its own.
    frames: Vec<Vec<u8>>,
    log: Vec<Got>,
    /// The socket has ended (closed or failed).
    ended: bool,
}

fn ws_url(server: &Server, path: &str) -> String {
    format!("{}{path}", server.base.replacen("http://", "ws://", 1))
}

/// Opens the attach socket at `path` (with its query) with the token, if any, as a
/// bearer header.
async fn connect(server: &Server, path: &str, token: Option<&str>) -> Result<Ws, WsError> {
    let mut request = ws_url(server, path).into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(response.status().as_u16(), 101);
    Ok(ws)
}

/// The HTTP status that refused an attach (panics if the upgrade succeeded).
async fn refused(server: &Server, path: &str, token: Option<&str>) -> u16 {
    match connect(server, path, token).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("attach {path} failed without an HTTP answer: {e}"),
        Ok(_) => panic!("attach {path} was upgraded"),
    }
}

/// Attaches to ACME's terminal `tid` of `sid`; `query` is `""` or `"?…"`.
pub(crate) async fn attach(server: &Server, sid: &str, tid: &str, query: &str) -> Attached {
    let path = format!("{}/attach{query}", terminal(sid, tid));
    Attached::new(connect(server, &path, Some(ACME)).await.unwrap())
}

/// Attaches and waits for the shell's prompt (so typed input reaches readline).
pub(crate) async fn attach_shell(server: &Server, sid: &str, tid: &str) -> Attached {
    let mut client = attach(server, sid, tid, "").await;
    client.wait_prompt().await;
    client
}

impl Attached {
    fn new(ws: Ws) -> Attached {
        Attached {
            ws,
            output: Vec::new(),
            frames: Vec::new(),
            log: Vec::new(),
            ended: false,
        }
    }

    pub(crate) fn text(&self) -> String {
        let all = String::from_utf8_lossy(&self.output);
        let chars: Vec<char> = all.chars().collect();
        let from = chars.len().saturating_sub(3000);
        chars[from..].iter().collect()
    }

    fn saw(&self, needle: &str) -> bool {
        contains(&self.output, needle.as_bytes())
    }

    fn events(&self) -> Vec<Value> {
        self.log
            .iter()
            .filter_map(|g| match g {
                Got::Event(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    fn close_code(&self) -> Option<u16> {
        self.log.iter().find_map(|g| match g {
            Got::Close(code) => Some(*code),
            _ => None,
        })
    }

    /// Reads one message (until `deadline`); false when none came or the socket ended.
    async fn pump(&mut self, deadline: Instant) -> bool {
        if self.ended {
            return false;
        }
        match tokio::time::timeout_at(deadline, self.ws.next()).await {
            Err(_) => false,
            Ok(None) | Ok(Some(Err(_))) => {
                self.ended = true;
                false
            }
            Ok(Some(Ok(message))) => {
                match message {
                    Message::Binary(bytes) => {
                        self.log.push(Got::Output(bytes.len()));
                        self.output.extend_from_slice(&bytes);
                        self.frames.push(bytes.to_vec());
                    }
                    Message::Text(text) => {
                        let value = serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                            panic!("a text frame that is not JSON ({e}): {:?}", text.as_str())
                        });
                        self.log.push(Got::Event(value));
                    }
                    Message::Close(frame) => {
                        self.log
                            .push(Got::Close(frame.map_or(1005, |f| u16::from(f.code))));
                    }
                    _ => {} // Pings (answered by the library) and pongs.
                }
                true
            }
        }
    }

    /// Reads until `done` holds on what was received; panics with the output so far
    /// after `within` or if the socket ends first.
    pub(crate) async fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&Attached) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !done(self) {
            if !self.pump(deadline).await && !done(self) {
                panic!(
                    "{} waiting for {what}; events {:?}; output so far:\n{:?}",
                    if self.ended {
                        "the socket ended"
                    } else {
                        "timed out"
                    },
                    self.log
                        .iter()
                        .filter(|g| !matches!(g, Got::Output(_)))
                        .collect::<Vec<_>>(),
                    self.text()
                );
            }
        }
    }

    /// Waits for bash's prompt (`$ `, or `# ` as root).
    async fn wait_prompt(&mut self) {
        self.wait_until("the prompt", WITHIN, |c| c.saw("$ ") || c.saw("# "))
            .await;
    }

    pub(crate) async fn wait_output(&mut self, needle: &str) {
        self.wait_output_within(needle, WITHIN).await;
    }

    /// Reads until the output contains `needle` (searching only what is new, so a
    /// flood of output costs linear time).
    pub(crate) async fn wait_output_within(&mut self, needle: &str, within: Duration) {
        let what = format!("output {needle:?}");
        let mut from = 0;
        self.wait_until(&what, within, |c| {
            let found = contains(&c.output[from..], needle.as_bytes());
            from = c.output.len().saturating_sub(needle.len());
            found
        })
        .await;
    }

    /// Reads until the server closes the socket; returns the close code.
    pub(crate) async fn wait_closed(&mut self) -> u16 {
        self.wait_until("the close frame", WITHIN, |c| c.close_code().is_some())
            .await;
        self.close_code().unwrap()
    }

    /// Reads whatever arrives during `period`.
    async fn drain_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline && self.pump(deadline).await {}
    }

    /// Sends `text` as input (a binary frame).
    pub(crate) async fn input(&mut self, text: &str) {
        self.ws
            .send(Message::binary(text.as_bytes().to_vec()))
            .await
            .unwrap();
    }

    async fn resize(&mut self, cols: u16, rows: u16) {
        let command = json!({"type": "resize", "cols": cols, "rows": rows}).to_string();
        self.ws.send(Message::text(command)).await.unwrap();
    }

    /// Types `echo <marker>` and waits until the command has printed the marker;
    /// returns the marker.
    pub(crate) async fn echo(&mut self, tag: &str) -> String {
        let (typed, printed) = marker(tag);
        self.input(&format!("echo {typed}\r")).await;
        self.wait_output(&printed).await;
        printed
    }
}

// ---------------------------------------------------------------------------
// Launching

#[tokio::test]
async fn launching_an_undeclared_terminal_is_invalid_input_naming_the_declared_ones() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let got = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "python", "session_key": "main"}),
    )
    .await;
    assert_error(&got, 400, "invalid_input");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("python"), "{message}");
    assert!(
        message.contains("shell") && message.contains("fixed"),
        "{message}"
    );
    // A session that declares no terminals at all can launch none.
    let bare = server.session(ACME).await;
    let got = launch(&server, ACME, &bare, json!({"terminal": "shell"})).await;
    assert_error(&got, 400, "invalid_input");
    assert_eq!(listed(&server, ACME, &sid).await, Vec::<String>::new());
    assert_eq!(listed(&server, ACME, &bare).await, Vec::<String>::new());
}

#[tokio::test]
async fn launching_a_declared_terminal_is_201_with_the_running_resource() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (status, body) = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main", "cols": 90, "rows": 20}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pid = pid_of(&body);
    let created_at = body["metadata"]["created_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("no created_at: {body}"));
    assert!(
        (before - 1..=before + 5).contains(&created_at),
        "created_at {created_at}, now {before}"
    );
    assert_eq!(
        body,
        json!({"id": "terminal_shell_main", "object": "session.resource", "type": "terminal",
               "session_id": sid, "name": "shell", "environment": "default",
               "metadata": {"terminal_name": "shell", "session_key": "main", "cols": 90,
                            "rows": 20, "created_at": created_at, "running": true,
                            "pid": pid, "exit_code": null}})
    );
    assert!(!dead(pid), "the terminal's process {pid} is not running");
}

#[tokio::test]
async fn launching_the_same_terminal_and_key_again_is_200_with_the_same_terminal() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let first = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main"}),
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let again = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main"}),
    )
    .await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);
    assert_eq!(again.1, first.1, "the running terminal, not a new one");
    // Another key, or another terminal with the same key, is another terminal.
    let other = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "other"}),
    )
    .await;
    assert_eq!(other.0, StatusCode::CREATED, "{}", other.1);
    assert_eq!(other.1["id"], "terminal_shell_other");
    assert_ne!(pid_of(&other.1), pid_of(&first.1));
    let fixed = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "fixed", "session_key": "main"}),
    )
    .await;
    assert_eq!(fixed.0, StatusCode::CREATED, "{}", fixed.1);
    assert_eq!(fixed.1["id"], "terminal_fixed_main");
    let mut ids = listed(&server, ACME, &sid).await;
    ids.sort();
    assert_eq!(
        ids,
        [
            "terminal_fixed_main",
            "terminal_shell_main",
            "terminal_shell_other"
        ]
    );
}

#[tokio::test]
async fn session_key_defaults_to_default_and_must_be_short_and_plain() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (status, body) = launch(&server, ACME, &sid, json!({"terminal": "shell"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "terminal_shell_default");
    assert_eq!(body["metadata"]["session_key"], "default");
    assert_eq!(body["metadata"]["cols"], 80, "default size: {body}");
    assert_eq!(body["metadata"]["rows"], 24, "default size: {body}");
    let longest = "k".repeat(64);
    let (status, body) = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": format!("A.b-{}", &longest[4..])}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "a 64-character key: {body}");
    for bad in [
        json!(""),
        json!("k".repeat(65)),
        json!("has space"),
        json!("slash/key"),
        json!("ünï"),
        json!(7),
    ] {
        let got = launch(
            &server,
            ACME,
            &sid,
            json!({"terminal": "shell", "session_key": bad}),
        )
        .await;
        assert_error(&got, 400, "invalid_input");
    }
    assert_eq!(listed(&server, ACME, &sid).await.len(), 2);
}

#[tokio::test]
async fn launch_bodies_with_unknown_fields_or_bad_values_are_invalid_input() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    for body in [
        json!({"terminal": "shell", "session_key": "main", "command": "sh"}),
        json!({"terminal": "shell", "colour": "red"}),
        json!({"session_key": "main"}),
        json!({"terminal": 3}),
        json!({"terminal": "shell", "cols": 0}),
        json!({"terminal": "shell", "rows": 1001}),
        json!({"terminal": "shell", "cols": "80"}),
        json!({"terminal": "shell", "cwd": 5}),
        json!(["shell"]),
    ] {
        let got = launch(&server, ACME, &sid, body.clone()).await;
        assert_eq!(got.0.as_u16(), 400, "{body} → {}", got.1);
        assert_error(&got, 400, "invalid_input");
    }
    let raw = server
        .request(reqwest::Method::POST, &terminals(&sid), Some(ACME))
        .header("content-type", "application/json")
        .body("{\"terminal\": ")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(raw).await, 400, "invalid_input");
    assert_eq!(listed(&server, ACME, &sid).await, Vec::<String>::new());
}

#[tokio::test]
async fn cwd_is_only_for_specs_that_allow_it_and_only_inside_the_workspace() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let ws = workspace(&server, &sid);
    std::fs::create_dir_all(ws.join("sub/deeper")).unwrap();
    std::fs::write(ws.join("file.txt"), "not a directory").unwrap();
    std::os::unix::fs::symlink("/etc", ws.join("out")).unwrap();

    let shell = |key: &str, cwd: &str| json!({"terminal": "shell", "session_key": key, "cwd": cwd});
    // Not allowed by the spec, even inside the workspace.
    let got = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "fixed", "cwd": "sub"}),
    )
    .await;
    assert_error(&got, 400, "invalid_input");
    // Outside the workspace: by `..`, absolutely, through a symlink.
    for cwd in ["../..", "..", "/etc", "/", "sub/../../..", "out"] {
        let got = launch(&server, ACME, &sid, shell("esc", cwd)).await;
        assert_error(&got, 403, "path_forbidden");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains(server.data_dir().to_str().unwrap()),
            "the message shows a host path: {message}"
        );
    }
    let got = launch(&server, ACME, &sid, shell("missing", "no/such/dir")).await;
    assert_error(&got, 404, "path_not_found");
    let got = launch(&server, ACME, &sid, shell("file", "file.txt")).await;
    assert_eq!(got.0.as_u16(), 400, "a file is no cwd: {}", got.1);
    assert_eq!(listed(&server, ACME, &sid).await, Vec::<String>::new());

    // Inside: the shell starts there.
    let (status, body) = launch(&server, ACME, &sid, shell("sub", "sub/deeper")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tid = body["id"].as_str().unwrap();
    let mut client = attach_shell(&server, &sid, tid).await;
    client.input("pwd\r").await;
    client.wait_output("/sub/deeper\r\n").await;
    // HOME is the workspace.
    let (typed, printed) = marker("home");
    client
        .input(&format!("cd && echo \"$(basename \"$PWD\")\" {typed}\r"))
        .await;
    client.wait_output(&format!("{sid} {printed}")).await;
}

// ---------------------------------------------------------------------------
// Reading terminals

#[tokio::test]
async fn get_list_and_generic_resources_show_the_live_state() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (launched_status, launched) = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main"}),
    )
    .await;
    assert_eq!(launched_status, StatusCode::CREATED, "{launched}");
    let pid = pid_of(&launched);
    let tid = "terminal_shell_main";

    let one = get_terminal(&server, &sid, tid).await;
    assert_eq!(one, launched);
    assert_eq!(one["metadata"]["running"], true);
    assert_eq!(one["metadata"]["pid"], pid);
    assert_eq!(one["metadata"]["exit_code"], Value::Null);

    let (status, list) = server.get(&terminals(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(assert_list(&list), [tid]);
    assert_eq!(list["data"][0], launched);
    assert_eq!(list["has_more"], false);

    let (status, generic) = server
        .get(&format!("/v1/sessions/{sid}/resources/{tid}"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{generic}");
    assert_eq!(generic, launched);

    let (status, typed) = server
        .get(&format!("/v1/sessions/{sid}/resources?type=terminal"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{typed}");
    assert_eq!(assert_list(&typed), [tid]);
    assert_eq!(typed["data"][0], launched);

    let (status, all) = server
        .get(&format!("/v1/sessions/{sid}/resources"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let item = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == tid)
        .unwrap_or_else(|| panic!("the terminal is not among the resources: {all}"));
    assert_eq!(item, &launched);

    // The live size follows a resize.
    let mut client = attach_shell(&server, &sid, tid).await;
    client.resize(132, 43).await;
    client.echo("sized").await;
    let one = get_terminal(&server, &sid, tid).await;
    assert_eq!(
        (
            one["metadata"]["cols"].clone(),
            one["metadata"]["rows"].clone()
        ),
        (json!(132), json!(43))
    );
    let (_, list) = server.get(&terminals(&sid), ACME).await;
    assert_eq!(list["data"][0], one);
}

#[tokio::test]
async fn terminals_list_pages_like_every_list() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    for key in ["a", "b", "c"] {
        launch_shell(&server, &sid, key).await;
    }
    let (_, page) = server
        .get(&format!("{}?limit=2&order=asc", terminals(&sid)), ACME)
        .await;
    let first = assert_list(&page);
    assert_eq!(first.len(), 2, "{page}");
    assert_eq!(page["has_more"], true, "{page}");
    for item in page["data"].as_array().unwrap() {
        assert_eq!(item["metadata"]["running"], true, "{item}");
        assert!(item["metadata"]["pid"].is_u64(), "{item}");
    }
    let (_, rest) = server
        .get(
            &format!("{}?limit=2&order=asc&after={}", terminals(&sid), first[1]),
            ACME,
        )
        .await;
    let second = assert_list(&rest);
    assert_eq!(second.len(), 1, "{rest}");
    assert_eq!(rest["has_more"], false, "{rest}");
    let mut all = [first, second].concat();
    all.sort();
    assert_eq!(
        all,
        ["terminal_shell_a", "terminal_shell_b", "terminal_shell_c"]
    );
    let got = server
        .get(&format!("{}?limit=0", terminals(&sid)), ACME)
        .await;
    assert_error(&got, 400, "invalid_input");
    let got = server
        .get(
            &format!("/v1/sessions/{sid}/resources?type=terminals"),
            ACME,
        )
        .await;
    assert_error(&got, 400, "invalid_input");
}

#[tokio::test]
async fn unknown_terminals_and_sessions_are_not_found() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    launch_shell(&server, &sid, "main").await;
    for got in [
        server
            .get(&terminal(&sid, "terminal_shell_nope"), ACME)
            .await,
        server
            .get(
                &format!("/v1/sessions/{sid}/resources/terminal_shell_nope"),
                ACME,
            )
            .await,
        server
            .delete(&terminal(&sid, "terminal_shell_nope"), ACME)
            .await,
        server
            .post(
                &format!("{}/transfer", terminal(&sid, "terminal_shell_nope")),
                ACME,
                json!({"target_session_id": session(&server, ACME).await}),
            )
            .await,
        server.get(&terminals(UNKNOWN_SESSION), ACME).await,
        server
            .get(&terminal(UNKNOWN_SESSION, "terminal_shell_main"), ACME)
            .await,
        launch(&server, ACME, UNKNOWN_SESSION, json!({"terminal": "shell"})).await,
    ] {
        assert_error(&got, 404, "not_found");
    }
}

#[tokio::test]
async fn another_tenant_can_neither_see_nor_touch_a_terminal() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let theirs = session(&server, GLOBEX).await;
    for got in [
        server.get(&terminals(&sid), GLOBEX).await,
        server.get(&terminal(&sid, &tid), GLOBEX).await,
        server
            .get(&format!("/v1/sessions/{sid}/resources/{tid}"), GLOBEX)
            .await,
        server.delete(&terminal(&sid, &tid), GLOBEX).await,
        launch(
            &server,
            GLOBEX,
            &sid,
            json!({"terminal": "shell", "session_key": "main"}),
        )
        .await,
        server
            .post(
                &format!("{}/transfer", terminal(&sid, &tid)),
                GLOBEX,
                json!({"target_session_id": theirs}),
            )
            .await,
    ] {
        assert_error(&got, 404, "not_found");
    }
    // Attaching with another tenant's token: refused before the upgrade, or closed
    // as unknown, but never any output.
    let path = format!("{}/attach", terminal(&sid, &tid));
    match connect(&server, &path, Some(GLOBEX)).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 404),
        Err(e) => panic!("attach failed without an HTTP answer: {e}"),
        Ok(ws) => {
            let mut client = Attached::new(ws);
            assert_eq!(client.wait_closed().await, 4404);
            assert!(client.output.is_empty(), "{:?}", client.text());
        }
    }
    assert_eq!(listed(&server, GLOBEX, &theirs).await, Vec::<String>::new());
    let one = get_terminal(&server, &sid, &tid).await;
    assert_eq!(
        (one["metadata"]["running"].clone(), pid_of(&one)),
        (json!(true), pid)
    );
    assert!(!dead(pid));
}

// ---------------------------------------------------------------------------
// The same terminal id in two sessions

#[tokio::test]
async fn the_same_terminal_and_key_in_two_sessions_are_two_terminals() {
    let server = Server::start().await;
    let one = session(&server, ACME).await;
    let two = session(&server, ACME).await;
    let (tid, first) = launch_shell(&server, &one, "main").await;
    let mut client = attach_shell(&server, &one, &tid).await;
    let (tid2, second) = launch_shell(&server, &two, "main").await;
    assert_eq!(tid2, tid);
    assert_ne!(first, second);
    // Launching in session two must leave session one's terminal alone.
    let got = get_terminal(&server, &one, &tid).await;
    assert_eq!(
        (
            got["metadata"]["running"].clone(),
            got["metadata"]["pid"].clone()
        ),
        (json!(true), json!(first)),
        "session one's terminal after session two launched its own: {got}"
    );
    assert!(!dead(first), "session one's shell {first} was killed");
    client.echo("still-one").await;
    let got = get_terminal(&server, &two, &tid).await;
    assert_eq!(got["metadata"]["pid"], second, "{got}");
}

#[tokio::test]
async fn another_tenant_launching_the_same_terminal_and_key_does_not_touch_ours() {
    let server = Server::start().await;
    let ours = session(&server, ACME).await;
    let theirs = session(&server, GLOBEX).await;
    let (tid, pid) = launch_shell(&server, &ours, "main").await;
    let mut client = attach_shell(&server, &ours, &tid).await;
    let (their_tid, their_pid) = launch_as(&server, GLOBEX, &theirs, "main").await;
    assert_eq!(their_tid, tid);
    assert_ne!(their_pid, pid);
    let got = get_terminal(&server, &ours, &tid).await;
    assert_eq!(
        (
            got["metadata"]["running"].clone(),
            got["metadata"]["pid"].clone()
        ),
        (json!(true), json!(pid)),
        "our terminal after another tenant launched one of the same name and key: {got}"
    );
    assert!(
        !dead(pid),
        "our shell {pid} was killed by another tenant's launch"
    );
    client.echo("still-ours").await;
    // And closing theirs leaves ours running too.
    let (status, body) = server.delete(&terminal(&theirs, &tid), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    await_dead(their_pid, "their shell").await;
    assert!(
        !dead(pid),
        "our shell {pid} was killed by another tenant's close"
    );
}

// ---------------------------------------------------------------------------
// Closing

#[tokio::test]
async fn closing_a_terminal_kills_its_processes_and_forgets_it() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let seconds = unique_seconds(1000);
    client
        .input(&format!("sleep {seconds} & echo bg-$!-gb\r"))
        .await;
    client
        .wait_until("the background pid", WITHIN, |c| {
            number_between(&String::from_utf8_lossy(&c.output), "bg-", "-gb").is_some()
        })
        .await;
    let sleeper = started(&["sleep", &seconds]).await;
    assert!(
        !dead(sleeper),
        "the background sleep {sleeper} is not running"
    );
    assert_ne!(sleeper, pid);
    let mut watcher = attach(&server, &sid, &tid, "?read_only=true").await;

    let (status, body) = server.delete(&terminal(&sid, &tid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"id": tid, "object": "session.resource.deleted", "deleted": true})
    );
    await_dead(pid, "the shell").await;
    await_dead(sleeper, "the background sleep").await;
    assert_error(
        &server.get(&terminal(&sid, &tid), ACME).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/v1/sessions/{sid}/resources/{tid}"), ACME)
            .await,
        404,
        "not_found",
    );
    assert_eq!(listed(&server, ACME, &sid).await, Vec::<String>::new());
    assert_error(
        &server.delete(&terminal(&sid, &tid), ACME).await,
        404,
        "not_found",
    );
    // Attached clients are told the terminal is gone.
    assert_eq!(client.wait_closed().await, 4404);
    assert_eq!(watcher.wait_closed().await, 4404);
    // And a new attach finds nothing.
    let mut late = attach(&server, &sid, &tid, "").await;
    assert_eq!(late.wait_closed().await, 4404);
    assert!(late.output.is_empty(), "{:?}", late.text());
}

#[tokio::test]
async fn deleting_the_session_kills_its_terminals() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let keep = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let (_, other) = launch_shell(&server, &sid, "other").await;
    let (_, kept) = launch_shell(&server, &keep, "kept").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let seconds = unique_seconds(1000);
    client
        .input(&format!("sleep {seconds} & echo bg-$!-gb\r"))
        .await;
    client
        .wait_until("the background pid", WITHIN, |c| {
            number_between(&String::from_utf8_lossy(&c.output), "bg-", "-gb").is_some()
        })
        .await;
    let sleeper = started(&["sleep", &seconds]).await;

    let (status, body) = server.delete(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], true, "{body}");
    await_dead(pid, "the shell").await;
    await_dead(other, "the other shell").await;
    await_dead(sleeper, "the background sleep").await;
    assert_eq!(client.wait_closed().await, 4404);
    assert!(!dead(kept), "another session's terminal was killed");
    assert_eq!(
        get_terminal(&server, &keep, "terminal_shell_kept").await["metadata"]["running"],
        true
    );
}

#[tokio::test]
async fn a_stopping_server_kills_its_terminals() {
    let mut server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let seconds = unique_seconds(1000);
    client
        .input(&format!("sleep {seconds} & echo bg-$!-gb\r"))
        .await;
    client
        .wait_until("the background pid", WITHIN, |c| {
            number_between(&String::from_utf8_lossy(&c.output), "bg-", "-gb").is_some()
        })
        .await;
    let sleeper = started(&["sleep", &seconds]).await;
    drop(client);
    assert!(
        server.terminate(),
        "reshost did not exit cleanly: {}",
        server.stderr()
    );
    await_dead(pid, "the shell").await;
    await_dead(sleeper, "the background sleep").await;
    // After a restart the terminal is still listed, but not running.
    server.spawn();
    let got = get_terminal(&server, &sid, &tid).await;
    assert_eq!(got["metadata"]["running"], false, "{got}");
    assert_eq!(got["metadata"]["pid"], Value::Null, "{got}");
    // Launching it again starts a new process.
    let (status, body) = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["running"], true, "{body}");
}

// ---------------------------------------------------------------------------
// Transfer

#[tokio::test]
async fn transfer_moves_the_running_terminal_and_its_attached_clients_to_the_target() {
    let server = Server::start().await;
    let from = session(&server, ACME).await;
    let to = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &from, "main").await;
    let mut client = attach_shell(&server, &from, &tid).await;
    let before = client.echo("before").await;

    let (status, body) = server
        .post(
            &format!("{}/transfer", terminal(&from, &tid)),
            ACME,
            json!({"target_session_id": to}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], tid.as_str(), "{body}");
    assert_eq!(body["object"], "session.resource", "{body}");
    assert_eq!(body["type"], "terminal", "{body}");
    assert_eq!(body["session_id"], to.as_str(), "{body}");
    assert_eq!(body["metadata"]["running"], true, "{body}");
    assert_eq!(body["metadata"]["pid"], pid, "{body}");

    assert_eq!(listed(&server, ACME, &to).await, [tid.as_str()]);
    assert_eq!(listed(&server, ACME, &from).await, Vec::<String>::new());
    assert_error(
        &server.get(&terminal(&from, &tid), ACME).await,
        404,
        "not_found",
    );
    let got = get_terminal(&server, &to, &tid).await;
    assert_eq!(got, body);
    assert!(!dead(pid));

    // The client attached before the transfer is still attached, and still types.
    client.echo("after").await;
    // New clients attach through the target; through the source the terminal is gone.
    let mut fresh = attach(&server, &to, &tid, "").await;
    fresh.wait_output(&before).await;
    let mut stale = attach(&server, &from, &tid, "").await;
    assert_eq!(stale.wait_closed().await, 4404);
    assert!(stale.output.is_empty(), "{:?}", stale.text());

    // The source session's deletion no longer concerns it; the target's does.
    let (status, body) = server.delete(&format!("/v1/sessions/{from}"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    client.echo("source-gone").await;
    assert!(
        !dead(pid),
        "deleting the source session killed the transferred terminal"
    );
    let (status, body) = server.delete(&format!("/v1/sessions/{to}"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    await_dead(pid, "the transferred shell").await;
}

#[tokio::test]
async fn transfer_to_another_tenants_or_an_unknown_session_is_not_found() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let theirs = session(&server, GLOBEX).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let url = format!("{}/transfer", terminal(&sid, &tid));
    for target in [theirs.as_str(), UNKNOWN_SESSION, "not-a-session"] {
        let got = server
            .post(&url, ACME, json!({"target_session_id": target}))
            .await;
        assert_error(&got, 404, "not_found");
    }
    for body in [
        json!({}),
        json!({"target_session_id": 5}),
        json!({"target_session_id": sid, "x": 1}),
    ] {
        let got = server.post(&url, ACME, body).await;
        assert_error(&got, 400, "invalid_input");
    }
    assert_eq!(listed(&server, GLOBEX, &theirs).await, Vec::<String>::new());
    let got = get_terminal(&server, &sid, &tid).await;
    assert_eq!(got["session_id"], sid.as_str());
    assert_eq!(
        (got["metadata"]["running"].clone(), pid_of(&got)),
        (json!(true), pid)
    );
}

#[tokio::test]
async fn transfer_to_a_session_that_has_that_terminal_id_is_a_conflict() {
    let server = Server::start().await;
    let from = session(&server, ACME).await;
    let to = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &from, "main").await;
    let (_, target_pid) = launch_shell(&server, &to, "main").await;
    let got = server
        .post(
            &format!("{}/transfer", terminal(&from, &tid)),
            ACME,
            json!({"target_session_id": to}),
        )
        .await;
    assert_error(&got, 409, "conflict");
    assert_eq!(listed(&server, ACME, &from).await, [tid.as_str()]);
    assert_eq!(listed(&server, ACME, &to).await, [tid.as_str()]);
    let target = get_terminal(&server, &to, &tid).await;
    assert_eq!(target["session_id"], to.as_str());
    assert_eq!(
        (target["metadata"]["running"].clone(), pid_of(&target)),
        (json!(true), target_pid)
    );
    assert_eq!(
        get_terminal(&server, &from, &tid).await["session_id"],
        from.as_str()
    );
}

// ---------------------------------------------------------------------------
// Attach

#[tokio::test]
async fn typed_input_runs_and_its_output_comes_back() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let (typed, printed) = marker("hello");
    client.input(&format!("echo {typed}\r")).await;
    // The terminal echoes what was typed, then the command prints the marker.
    client.wait_output(&format!("echo {typed}")).await;
    client.wait_output(&format!("{printed}\r\n")).await;
    // Input split over many frames is one command line.
    let (typed, printed) = marker("split");
    for piece in format!("echo {typed}\r").as_bytes().chunks(3) {
        client.input(std::str::from_utf8(piece).unwrap()).await;
    }
    client.wait_output(&printed).await;
    // Unknown text frames are ignored; the socket keeps working.
    client
        .ws
        .send(Message::text("{\"type\": \"dance\"}"))
        .await
        .unwrap();
    client.ws.send(Message::text("not json")).await.unwrap();
    client.echo("still").await;
    assert!(client.events().is_empty(), "{:?}", client.events());
}

#[tokio::test]
async fn resize_changes_what_stty_size_reports() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (status, body) = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main", "cols": 90, "rows": 20}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tid = body["id"].as_str().unwrap();
    let mut client = attach_shell(&server, &sid, tid).await;
    client.input("stty size\r").await;
    client.wait_output("20 90\r\n").await;
    client.resize(100, 30).await;
    client.input("stty size\r").await;
    client.wait_output("30 100\r\n").await;
    let got = get_terminal(&server, &sid, tid).await;
    assert_eq!(
        (
            got["metadata"]["cols"].clone(),
            got["metadata"]["rows"].clone()
        ),
        (json!(100), json!(30))
    );
    // Out-of-range sizes are ignored.
    client.resize(0, 30).await;
    let bad = json!({"type": "resize", "cols": 5000, "rows": 10}).to_string();
    client.ws.send(Message::text(bad)).await.unwrap();
    client.input("stty size\r").await;
    client
        .wait_until("a second 30 100", WITHIN, |c| {
            String::from_utf8_lossy(&c.output)
                .matches("30 100\r\n")
                .count()
                == 2
        })
        .await;
}

#[tokio::test]
async fn a_reattaching_client_gets_the_scrollback_first() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let printed = client.echo("scroll").await;
    client.ws.close(None).await.unwrap();
    drop(client);

    let mut again = attach(&server, &sid, &tid, "").await;
    again.wait_output(&printed).await;
    // Everything so far was replayed before any live output: the shell is idle.
    assert!(again.events().is_empty());
    // The terminal survived the disconnect and still takes input.
    again.echo("again").await;
}

#[tokio::test]
async fn the_scrollback_keeps_only_the_last_scrollback_bytes() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let (typed, printed) = marker("tail");
    // ~190 KB of numbered lines, well past the 64 KiB scrollback.
    client.input(&format!("seq 1 30000; echo {typed}\r")).await;
    client
        .wait_output_within(&printed, Duration::from_secs(8))
        .await;
    assert!(client.output.len() > 150_000, "{}", client.output.len());
    drop(client);

    let mut again = attach(&server, &sid, &tid, "").await;
    again.wait_output(&printed).await;
    again.drain_for(Duration::from_millis(200)).await;
    assert!(
        again.output.len() <= 65536,
        "replayed {} bytes of a 65536-byte scrollback",
        again.output.len()
    );
    assert!(
        again.output.len() > 60_000,
        "replayed only {} bytes",
        again.output.len()
    );
    assert!(again.saw("\r\n30000\r\n"));
    assert!(
        !again.saw("\r\n1\r\n2\r\n3\r\n"),
        "the oldest output was kept"
    );
}

#[tokio::test]
async fn a_read_only_client_sees_output_but_its_input_is_dropped() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut writer = attach_shell(&server, &sid, &tid).await;
    let mut watcher = attach(&server, &sid, &tid, "?read_only=true").await;
    watcher.wait_prompt().await;

    let (ro_typed, ro_printed) = marker("readonly");
    watcher.input(&format!("echo {ro_typed}\r")).await;
    watcher.resize(33, 11).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let printed = writer.echo("writer").await;
    watcher.wait_output(&printed).await;
    for client in [&writer, &watcher] {
        assert!(
            !client.saw(&ro_printed),
            "the read-only input ran: {:?}",
            client.text()
        );
        assert!(
            !client.saw(&ro_typed),
            "the read-only input was typed: {:?}",
            client.text()
        );
    }
    let got = get_terminal(&server, &sid, &tid).await;
    assert_eq!(
        got["metadata"]["cols"], 80,
        "a read-only client resized: {got}"
    );
    let bad = format!("{}/attach?read_only=maybe", terminal(&sid, &tid));
    assert_eq!(refused(&server, &bad, Some(ACME)).await, 400);
}

#[tokio::test]
async fn every_attached_client_sees_all_output() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut one = attach_shell(&server, &sid, &tid).await;
    let mut two = attach_shell(&server, &sid, &tid).await;
    let mut three = attach(&server, &sid, &tid, "?read_only=true").await;
    let first = one.echo("from-one").await;
    two.wait_output(&first).await;
    three.wait_output(&first).await;
    let second = two.echo("from-two").await;
    one.wait_output(&second).await;
    three.wait_output(&second).await;
    // A client leaving does not disturb the others.
    drop(two);
    let third = one.echo("after-leave").await;
    three.wait_output(&third).await;
}

#[tokio::test]
async fn exit_sends_the_exit_event_then_closes_with_4404() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let mut watcher = attach(&server, &sid, &tid, "?read_only=true").await;
    let last = client.echo("last-words").await;
    client.input("exit 3\r").await;
    for c in [&mut client, &mut watcher] {
        assert_eq!(c.wait_closed().await, 4404);
        assert_eq!(c.events(), [json!({"type": "exit", "exit_code": 3})]);
        let at = c
            .log
            .iter()
            .position(|g| matches!(g, Got::Event(_)))
            .unwrap();
        assert_eq!(
            c.log[at + 1..],
            [Got::Close(4404)],
            "after the exit event: {:?}",
            c.log
        );
        assert!(c.saw(&last));
    }
    await_dead(pid, "the exited shell").await;
    let got = get_terminal(&server, &sid, &tid).await;
    assert_eq!(got["metadata"]["running"], false, "{got}");
    assert_eq!(got["metadata"]["exit_code"], 3, "{got}");
    assert_eq!(
        listed(&server, ACME, &sid).await,
        [tid.as_str()],
        "an exited terminal stays listed"
    );

    // Attaching to the exited terminal: its scrollback, the exit event, 4404.
    let mut late = attach(&server, &sid, &tid, "").await;
    assert_eq!(late.wait_closed().await, 4404);
    assert!(late.saw(&last), "no scrollback: {:?}", late.text());
    assert!(matches!(late.log[0], Got::Output(_)), "{:?}", late.log);
    let n = late.log.len();
    assert_eq!(
        late.log[n - 2..],
        [
            Got::Event(json!({"type": "exit", "exit_code": 3})),
            Got::Close(4404)
        ],
        "{:?}",
        late.log
    );
    assert!(
        late.log[..n - 2]
            .iter()
            .all(|g| matches!(g, Got::Output(_))),
        "{:?}",
        late.log
    );

    // Launching it again starts a new process.
    let (status, body) = launch(
        &server,
        ACME,
        &sid,
        json!({"terminal": "shell", "session_key": "main"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["running"], true, "{body}");
    assert_eq!(body["metadata"]["exit_code"], Value::Null, "{body}");
    assert_ne!(pid_of(&body), pid);
    // The exited terminal could still be deleted; now the new one is.
    let (status, body) = server.delete(&terminal(&sid, &tid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_shell_that_exits_leaving_a_background_job_still_ends_and_the_job_dies() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, pid) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    // The job holds the PTY open: the terminal must not wait for it.
    let (typed, printed) = marker("job");
    let seconds = unique_seconds(1000);
    client
        .input(&format!("sleep {seconds} & echo {typed}=$!\r"))
        .await;
    client.wait_output(&format!("{printed}=")).await;
    let job = started(&["sleep", &seconds]).await;
    client.input("exit 3\r").await;
    assert_eq!(client.wait_closed().await, 4404);
    assert_eq!(client.events(), [json!({"type": "exit", "exit_code": 3})]);
    await_dead(pid, "the exited shell").await;
    await_dead(job, "the background job").await;
}

#[tokio::test]
async fn a_killed_process_reports_128_plus_the_signal() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    client.input("kill -TERM $$; kill -KILL $$\r").await;
    assert_eq!(client.wait_closed().await, 4404);
    let events = client.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let code = events[0]["exit_code"].as_i64().unwrap();
    // An interactive bash ignores SIGTERM, so SIGKILL ends it.
    assert_eq!(code, 128 + 9, "{events:?}");
    let got = get_terminal(&server, &sid, &tid).await;
    assert_eq!(got["metadata"]["exit_code"], code, "{got}");
}

#[tokio::test]
async fn attaching_to_an_unknown_terminal_is_closed_with_4404() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let mut client = attach(&server, &sid, "terminal_shell_nope", "").await;
    assert_eq!(client.wait_closed().await, 4404);
    assert!(
        client.output.is_empty() && client.events().is_empty(),
        "{:?}",
        client.log
    );
}

#[tokio::test]
async fn attach_needs_a_valid_token_in_the_header_or_the_query() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let path = format!("{}/attach", terminal(&sid, &tid));
    assert_eq!(refused(&server, &path, None).await, 401);
    assert_eq!(refused(&server, &path, Some("wrong-token")).await, 401);
    assert_eq!(
        refused(&server, &format!("{path}?token=wrong-token"), None).await,
        401
    );
    assert_eq!(refused(&server, &format!("{path}?token="), None).await, 401);

    let ws = connect(&server, &format!("{path}?token={ACME}"), None)
        .await
        .unwrap();
    let mut client = Attached::new(ws);
    client.wait_prompt().await;
    client.echo("by-query").await;
    let ws = connect(
        &server,
        &format!("{path}?read_only=true&token={ACME}"),
        None,
    )
    .await
    .unwrap();
    let mut watcher = Attached::new(ws);
    let printed = client.echo("watched").await;
    watcher.wait_output(&printed).await;
}

#[tokio::test]
async fn output_that_splits_a_utf8_character_arrives_whole() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    let (typed, printed) = marker("utf8");
    client
        .input(&format!(
            "printf '\\xe2\\x82'; sleep 0.2; printf '\\xac\\n'; \
             printf '\\xf0\\x9f'; sleep 0.2; printf '\\x98\\x80\\n'; echo {typed}\r"
        ))
        .await;
    client.wait_output(&printed).await;
    assert!(client.saw("€\r\n"), "{:?}", client.text());
    assert!(client.saw("😀\r\n"), "{:?}", client.text());
    for (i, frame) in client.frames.iter().enumerate() {
        assert!(
            std::str::from_utf8(frame).is_ok(),
            "frame {i} is not valid UTF-8: {frame:?}"
        );
    }
    // A replay of the scrollback holds them whole too.
    let mut again = attach(&server, &sid, &tid, "").await;
    again.wait_output(&printed).await;
    assert!(
        again.saw("€\r\n") && again.saw("😀\r\n"),
        "{:?}",
        again.text()
    );
    for frame in &again.frames {
        assert!(std::str::from_utf8(frame).is_ok(), "{frame:?}");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_with_1008_without_stalling_the_others() {
    let server = Server::with_config("[limits]\nterminal_client_buffer_bytes = 1048576\n").await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let mut fast = attach_shell(&server, &sid, &tid).await;
    let mut slow = attach(&server, &sid, &tid, "?read_only=true").await;
    slow.wait_prompt().await;
    // 10 MiB in 64 KiB bursts (a pace any reading client keeps up with): far more
    // than the socket buffers and the 1 MiB allowance; `slow` reads nothing.
    let (typed, printed) = marker("flood");
    fast.input(&format!(
        "for i in $(seq 160); do head -c 65536 /dev/zero | tr '\\0' a; sleep 0.005; done; \
         echo; echo {typed}\r"
    ))
    .await;
    fast.wait_output_within(&printed, Duration::from_secs(8))
        .await;
    assert!(fast.output.len() > 10 << 20, "{}", fast.output.len());
    fast.echo("after-flood").await;
    assert_eq!(fast.close_code(), None);
    // Now `slow` reads: what was queued for it, then the 1008.
    slow.wait_until("the close frame", Duration::from_secs(5), |c| {
        c.close_code().is_some()
    })
    .await;
    assert_eq!(slow.close_code(), Some(1008), "{:?}", slow.events());
    assert!(
        !slow.saw(&printed),
        "slow got it all: {}",
        slow.output.len()
    );
}

const FAST_PINGS: &str = "[limits]\nterminal_ping_interval_ms = 100\n";

#[tokio::test]
async fn an_idle_attached_client_is_pinged_every_ping_interval() {
    let server = Server::with_config(FAST_PINGS).await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let path = format!("{}/attach", terminal(&sid, &tid));
    let mut ws = connect(&server, &path, Some(ACME)).await.unwrap();
    let (mut pings, deadline) = (0, Instant::now() + Duration::from_millis(1050));
    // The library answers each ping with a pong as it reads, so the socket stays up.
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, ws.next()).await {
        if matches!(message.unwrap(), Message::Ping(_)) {
            pings += 1;
        }
    }
    assert!((5..=12).contains(&pings), "{pings} pings in 1 s at 100 ms");
    ws.send(Message::binary(b"echo still-here-$((6*7))\r".to_vec()))
        .await
        .unwrap();
    let deadline = Instant::now() + WITHIN;
    let mut seen = Vec::new();
    while !contains(&seen, b"still-here-42") {
        let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await else {
            panic!(
                "the pinged socket went quiet: {:?}",
                String::from_utf8_lossy(&seen)
            );
        };
        if let Message::Binary(bytes) = message {
            seen.extend_from_slice(&bytes);
        }
    }
}

#[tokio::test]
async fn a_client_that_answers_no_pings_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::with_config(FAST_PINGS).await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    // A bare socket that completes the handshake, then only reads (never pongs).
    let authority = server.base.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&authority).await.unwrap();
    let request = format!(
        "GET {}/attach HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {ACME}\r\n\r\n",
        terminal(&sid, &tid)
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(WITHIN, tcp.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("still connected after {WITHIN:?} without a single pong"),
        }
    }
    assert!(
        received.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_millis(200) && lasted < Duration::from_secs(2),
        "dropped after {lasted:?} with pings every 100 ms"
    );
}

#[tokio::test]
async fn concurrent_launches_of_one_terminal_start_one_process() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let body = json!({"terminal": "shell", "session_key": "race"});
    let launches =
        futures_util::future::join_all((0..4).map(|_| launch(&server, ACME, &sid, body.clone())))
            .await;
    let mut pids = Vec::new();
    for (status, body) in &launches {
        assert!(
            [StatusCode::OK, StatusCode::CREATED].contains(status),
            "{status} {body}"
        );
        assert_eq!(body["id"], "terminal_shell_race", "{body}");
        pids.push(pid_of(body));
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "one process for all launches: {pids:?}");
    let got = get_terminal(&server, &sid, "terminal_shell_race").await;
    assert_eq!(got["metadata"]["running"], true, "{got}");
    assert_eq!(pid_of(&got), pids[0]);
}

#[tokio::test]
async fn the_host_caps_the_scrollback_and_screen_a_hostile_component_asks_for() {
    let config = format!(
        "[limits]\nmax_scrollback_bytes = 65536\n[components]\nterminals = {:?}\n",
        reshost_test_artifacts::HOSTILE_TERMINALS.path
    );
    let server = Server::with_config(&config).await;
    let sid = server.session(ACME).await;
    // 300,000 bytes of output, kept running: more than the 64 KiB allowed.
    let command = "head -c 300000 /dev/zero | tr '\\0' x; echo; echo END; sleep 30";
    let (status, body) = launch(&server, ACME, &sid, json!({"command": command})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["cols"], 1000, "{body}");
    assert_eq!(body["metadata"]["rows"], 1, "{body}");
    let mut client = attach(&server, &sid, "hostile", "").await;
    client
        .wait_until("the end of the output", Duration::from_secs(10), |c| {
            c.saw("END")
        })
        .await;
    // What an attach replays is at most the capped scrollback (plus what came
    // live after the replay, which is only the tail here).
    let mut late = Attached::new(
        connect(
            &server,
            &format!("{}/attach", terminal(&sid, "hostile")),
            Some(ACME),
        )
        .await
        .unwrap(),
    );
    late.wait_until("the replay", Duration::from_secs(10), |c| c.saw("END"))
        .await;
    assert!(
        late.output.len() <= 65536,
        "replayed {} bytes",
        late.output.len()
    );
    assert!(
        late.output.len() >= 60000,
        "replayed {} bytes",
        late.output.len()
    );
}

#[tokio::test]
async fn an_attach_without_a_well_formed_websocket_handshake_is_refused_before_any_upgrade() {
    let server = Server::start().await;
    let sid = session(&server, ACME).await;
    let path = format!("{}/attach", terminal(&sid, "any"));
    let full = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    // Each header missing in turn, then an old protocol version.
    for (i, missing) in full.iter().enumerate() {
        let mut request = server.request(Method::GET, &path, Some(ACME));
        for (j, (name, value)) in full.iter().enumerate() {
            if i != j {
                request = request.header(*name, *value);
            }
        }
        let response = request.send().await.unwrap();
        let got = json_of(response).await;
        assert_error(&got, 400, "invalid_input");
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("WebSocket"),
            "{missing:?}: {}",
            got.1
        );
    }
    let mut request = server.request(Method::GET, &path, Some(ACME));
    for (name, value) in &full[..3] {
        request = request.header(*name, *value);
    }
    let response = request
        .header("sec-websocket-version", "8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    assert_error(&json_of(response).await, 400, "invalid_input");
}
