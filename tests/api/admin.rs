//! The operators' API, `/admin/v1`: who may use it, the slots' views, swapping a
//! slot's component (and the components refused for it), rollback, per-slot limits,
//! tenant policies' admin errors, what survives a restart, SIGHUP, and swapping
//! while requests are in flight.

use crate::common::*;
use reqwest::{Client, Method, RequestBuilder, StatusCode, multipart};
use reshost::testing::SlotName;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers, shared with `plugins.rs`.

/// The admin token of every server here.
pub const ADMIN: &str = "admin-token";

/// The defaults, as the server embeds them (its library is linked into this test
/// binary by the same build, so a concurrent rebuild cannot skew a sha256), and
/// the test and example components.
pub const FILES: &[u8] = SlotName::Files.embedded().1;
pub const ENVIRONMENTS: &[u8] = SlotName::Environments.embedded().1;
pub const TERMINALS: &[u8] = SlotName::Terminals.embedded().1;
pub const POLICY_ALLOW: &[u8] = SlotName::Policy.embedded().1;
pub const NO_EXECUTABLES: &[u8] = reshost_test_artifacts::FILES_NO_EXECUTABLES.wasm;
pub const TRAP_ON_START: &[u8] = reshost_test_artifacts::TRAP_ON_START.wasm;
pub const RULES_POLICY: &[u8] = reshost_test_artifacts::RULES_POLICY.wasm;
pub const POLICY_RULES: &[u8] = reshost_test_artifacts::POLICY_RULES.wasm;

/// The start of an ELF executable.
pub const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";

/// A test server with the admin API on (`extra`: more tables of config).
pub async fn admin_server(extra: &str) -> Server {
    Server::with_config(&format!("[admin]\ntokens = [{ADMIN:?}]\n{extra}")).await
}

/// Something requests can be sent to: common's `Server` or this file's `Host`.
pub trait Api {
    fn call(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder;
}

impl Api for Server {
    fn call(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        self.request(method, path, token)
    }
}

pub async fn send(rb: RequestBuilder) -> (StatusCode, Value) {
    json_of(rb.send().await.unwrap()).await
}

pub fn slot_path(slot: &str) -> String {
    format!("/admin/v1/slots/{slot}")
}

pub fn policy_path(tenant: &str) -> String {
    format!("/admin/v1/tenants/{tenant}/policy")
}

/// `GET /admin/v1/slots/{slot}`, which must succeed.
pub async fn slot_view(api: &impl Api, slot: &str) -> Value {
    let (status, body) = send(api.call(Method::GET, &slot_path(slot), Some(ADMIN))).await;
    assert_eq!(status, StatusCode::OK, "GET slot {slot}: {body}");
    assert_eq!(body["object"], "slot", "{body}");
    assert_eq!(body["slot"], slot, "{body}");
    body
}

/// The sha256 of the component bound to `slot`.
pub async fn bound_sha(api: &impl Api, slot: &str) -> String {
    slot_view(api, slot).await["component"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `PUT /admin/v1/slots/{slot}` with `wasm` as the body.
pub async fn swap(api: &impl Api, slot: &str, wasm: &[u8]) -> (StatusCode, Value) {
    send(
        api.call(Method::PUT, &slot_path(slot), Some(ADMIN))
            .body(wasm.to_vec()),
    )
    .await
}

/// A swap that must succeed; returns the new view.
pub async fn swapped(api: &impl Api, slot: &str, wasm: &[u8]) -> Value {
    let (status, view) = swap(api, slot, wasm).await;
    assert_eq!(status, StatusCode::OK, "swap of {slot}: {view}");
    assert_eq!(view["component"]["sha256"], sha256_hex(wasm), "{view}");
    view
}

pub async fn rollback(api: &impl Api, slot: &str) -> (StatusCode, Value) {
    send(api.call(
        Method::POST,
        &format!("{}/rollback", slot_path(slot)),
        Some(ADMIN),
    ))
    .await
}

pub async fn set_limits(api: &impl Api, slot: &str, body: Value) -> (StatusCode, Value) {
    send(
        api.call(
            Method::PUT,
            &format!("{}/limits", slot_path(slot)),
            Some(ADMIN),
        )
        .json(&body),
    )
    .await
}

/// `PUT /admin/v1/tenants/{tenant}/policy` with the given parts.
pub async fn set_policy(
    api: &impl Api,
    tenant: &str,
    wasm: Option<&[u8]>,
    config: Option<&Value>,
) -> (StatusCode, Value) {
    let mut form = multipart::Form::new();
    if let Some(wasm) = wasm {
        let part = multipart::Part::bytes(wasm.to_vec())
            .file_name("policy.wasm")
            .mime_str("application/wasm")
            .unwrap();
        form = form.part("component", part);
    }
    if let Some(config) = config {
        form = form.text("policy_config", config.to_string());
    }
    send(
        api.call(Method::PUT, &policy_path(tenant), Some(ADMIN))
            .multipart(form),
    )
    .await
}

/// A tenant policy change that must succeed; returns the tenant's view.
pub async fn policy_set(
    api: &impl Api,
    tenant: &str,
    wasm: Option<&[u8]>,
    config: Option<&Value>,
) -> Value {
    let (status, view) = set_policy(api, tenant, wasm, config).await;
    assert_eq!(status, StatusCode::OK, "policy of {tenant}: {view}");
    assert_eq!(view["object"], "tenant.policy", "{view}");
    assert_eq!(view["tenant"], tenant, "{view}");
    if let Some(wasm) = wasm {
        assert_eq!(view["component"]["sha256"], sha256_hex(wasm), "{view}");
        assert_eq!(view["component"]["world"], "policy", "{view}");
    }
    if let Some(config) = config {
        assert_eq!(&view["policy_config"], config, "{view}");
    }
    view
}

pub async fn policy_view(api: &impl Api, tenant: &str) -> Value {
    let (status, view) = send(api.call(Method::GET, &policy_path(tenant), Some(ADMIN))).await;
    assert_eq!(status, StatusCode::OK, "GET policy of {tenant}: {view}");
    view
}

/// A new session of the token's tenant.
pub async fn new_session(api: &impl Api, token: &str) -> String {
    let (status, body) = send(
        api.call(Method::POST, "/v1/sessions", Some(token))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Uploads `bytes` as the `file` part, typed `text/plain`.
pub async fn upload_text(
    api: &impl Api,
    token: &str,
    sid: &str,
    name: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let part = multipart::Part::bytes(bytes.to_vec())
        .file_name(name.to_owned())
        .mime_str("text/plain")
        .unwrap();
    send(
        api.call(Method::POST, &files_path(sid), Some(token))
            .multipart(multipart::Form::new().part("file", part)),
    )
    .await
}

/// Whether an upload answer says the `files-no-executables` handler stored it
/// (panics on a `screened` marker of any other value).
#[track_caller]
pub fn screened(file: &Value) -> bool {
    match file["metadata"].get("screened") {
        None => false,
        Some(v) if v == "no-executables" => true,
        Some(other) => panic!("unexpected screened marker {other}: {file}"),
    }
}

/// Uploads a text file and an ELF executable; asserts both are answered as the
/// `files` slot's handler should: the default (both stored, no marker) or
/// `files-no-executables` (text marked, ELF refused with 415).
async fn assert_files_handler(api: &impl Api, sid: &str, no_executables: bool) {
    let (status, file) = upload_text(api, ACME, sid, "notes.txt", b"just text").await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(screened(&file), no_executables, "{file}");
    let got = upload_text(api, ACME, sid, "notes.txt", ELF).await;
    if no_executables {
        assert_error(&got, 415, "unsupported_media_type");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("ELF"), "{message}");
    } else {
        assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
        assert!(!screened(&got.1), "{}", got.1);
    }
}

/// A `reshost serve` whose config file the test rewrites: between runs (common's
/// `Server` writes its own config at each start) or before a SIGHUP.
pub struct Host {
    child: Option<Child>,
    base: String,
    pub dir: tempfile::TempDir,
    http: Client,
}

impl Api for Host {
    fn call(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }
}

impl Host {
    pub fn new() -> Host {
        Host {
            child: None,
            base: String::new(),
            dir: tempfile::tempdir().unwrap(),
            http: Client::new(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("reshost.toml")
    }

    /// Writes the config file (atomically: a SIGHUP never reads half of it): the
    /// usual top-level keys, the admin token, `extra`, the two tenants.
    pub fn write_config(&self, extra: &str) {
        let config = format!(
            "{}[admin]\ntokens = [{ADMIN:?}]\n{extra}\n{TENANTS}",
            config_preamble(self.dir.path())
        );
        let tmp = self.dir.path().join("reshost.toml.new");
        std::fs::write(&tmp, config).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    /// Everything the server logged (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Starts the server on the config file as it is; waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_reshost"))
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env("RESHOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        self.base = listening_address(stdout, || self.log());
    }

    /// SIGTERM; the server must exit cleanly.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "unclean exit {status}: {}", self.log());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("reshost did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP: the server reads its config file again.
    pub fn hup(&self) {
        let pid = self.child.as_ref().expect("running").id();
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls the slot's bound sha256 until it is `sha` (panics after 10 s).
async fn wait_for_sha(api: &impl Api, slot: &str, sha: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if bound_sha(api, slot).await == sha {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot {slot} never became {sha}; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 5 s) until the log holds `needle` more than `before` times.
async fn wait_for_log(host: &Host, needle: &str, before: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if host.log().matches(needle).count() > before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The limits of a slot the config says nothing about.
fn default_limits() -> Value {
    json!({"memory_bytes": 67108864, "timeout_ms": 10000})
}

// ---------------------------------------------------------------------------
// Who may use it.

#[tokio::test]
async fn admin_api_does_not_exist_without_admin_tokens() {
    let server = Server::start().await;
    for token in [None, Some(ACME), Some(ADMIN)] {
        for (method, path) in [
            (Method::GET, "/admin/v1/slots"),
            (Method::GET, "/admin/v1/slots/files"),
            (Method::PUT, "/admin/v1/slots/files"),
            (Method::POST, "/admin/v1/slots/files/rollback"),
            (Method::GET, "/admin/v1/tenants/acme/policy"),
        ] {
            let got = send(server.request(method.clone(), path, token)).await;
            assert_error(&got, 404, "not_found");
        }
    }
}

#[tokio::test]
async fn admin_api_is_401_for_tenant_tokens_missing_tokens_and_wrong_tokens() {
    let server = admin_server("").await;
    let before = slot_view(&server, "files").await;
    for token in [
        None,
        Some(ACME),
        Some(GLOBEX),
        Some("admin-token-nope"),
        Some(""),
    ] {
        for path in [
            "/admin/v1/slots",
            "/admin/v1/slots/files",
            "/admin/v1/nothing",
        ] {
            let got = send(server.request(Method::GET, path, token)).await;
            assert_error(&got, 401, "unauthorized");
        }
        // Nothing is changed by a refused token, even with a valid body.
        // (Small bodies here: a large one refused unread is a test of its own,
        // `a_request_refused_before_its_body_is_read_closes_the_connection_or_keeps_it_usable`.)
        let got = send(
            server
                .request(Method::PUT, "/admin/v1/slots/policy", token)
                .body(b"\0asm\x0d\0\x01\0".to_vec()),
        )
        .await;
        assert_error(&got, 401, "unauthorized");
        let got = send(server.request(Method::POST, "/admin/v1/slots/files/rollback", token)).await;
        assert_error(&got, 401, "unauthorized");
        let got = send(
            server
                .request(Method::PUT, "/admin/v1/slots/files/limits", token)
                .json(&json!({"memory_bytes": 1 << 20, "timeout_ms": 5})),
        )
        .await;
        assert_error(&got, 401, "unauthorized");
        let form = multipart::Form::new().text("policy_config", "{}");
        let got = send(
            server
                .request(Method::PUT, &policy_path("acme"), token)
                .multipart(form),
        )
        .await;
        assert_error(&got, 401, "unauthorized");
    }
    // A non-bearer scheme carrying the right token is not accepted either.
    let got = send(
        server
            .request(Method::GET, "/admin/v1/slots", None)
            .basic_auth(ADMIN, None::<&str>),
    )
    .await;
    assert_error(&got, 401, "unauthorized");
    assert_eq!(slot_view(&server, "files").await, before);
    assert_eq!(bound_sha(&server, "policy").await, sha256_hex(POLICY_ALLOW));
    // The admin token is nobody's tenant token.
    for path in [
        "/v1/sessions",
        "/v1/sessions/conv_00000000000000000000000000000000",
    ] {
        let got = send(server.request(Method::GET, path, Some(ADMIN))).await;
        assert_error(&got, 401, "unauthorized");
    }
    let got = send(
        server
            .request(Method::POST, "/v1/sessions", Some(ADMIN))
            .json(&json!({})),
    )
    .await;
    assert_error(&got, 401, "unauthorized");
}

// ---------------------------------------------------------------------------
// Views.

#[tokio::test]
async fn slots_list_shows_the_embedded_components_with_sha256_world_version_and_default_limits() {
    let server = admin_server("").await;
    let (status, list) = send(server.request(Method::GET, "/admin/v1/slots", Some(ADMIN))).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["object"], "list", "{list}");
    let data = list["data"].as_array().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expected = [
        ("files", FILES, "embedded:files"),
        ("environments", ENVIRONMENTS, "embedded:environments"),
        ("terminals", TERMINALS, "embedded:terminals"),
        ("policy", POLICY_ALLOW, "embedded:policy-allow"),
    ];
    assert_eq!(data.len(), expected.len(), "{list}");
    for (view, (slot, wasm, source)) in data.iter().zip(expected) {
        assert_eq!(view["object"], "slot", "{view}");
        assert_eq!(view["slot"], slot, "{view}");
        let component = &view["component"];
        let sha = component["sha256"].as_str().unwrap();
        assert_eq!(sha.len(), 64, "{view}");
        assert!(
            sha.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(sha, sha256_hex(wasm), "{slot}: {view}");
        assert_eq!(component["bytes"], wasm.len(), "{view}");
        assert_eq!(component["source"], source, "{view}");
        assert_eq!(component["world"], slot, "{view}");
        assert_eq!(component["version"], "0.1.0", "{view}");
        let loaded_at = component["loaded_at"].as_u64().unwrap();
        assert!(loaded_at <= now && loaded_at + 600 > now, "{view}");
        assert_eq!(view["previous"], json!([]), "{view}");
        assert_eq!(view["limits"], default_limits(), "{view}");
        // The one-slot route answers the same.
        assert_eq!(&slot_view(&server, slot).await, view);
    }
}

#[tokio::test]
async fn per_slot_limits_from_the_config_show_in_the_slot_views() {
    let server = admin_server(
        "[limits]\ncomponent_timeout_ms = 4000\ncomponent_memory_bytes = 50331648\n\
         [slots.files]\nmemory_bytes = 33554432\ntimeout_ms = 2500\n\
         [slots.policy]\ntimeout_ms = 500\n",
    )
    .await;
    let expected = [
        (
            "files",
            json!({"memory_bytes": 33554432, "timeout_ms": 2500}),
        ),
        (
            "environments",
            json!({"memory_bytes": 50331648, "timeout_ms": 4000}),
        ),
        (
            "terminals",
            json!({"memory_bytes": 50331648, "timeout_ms": 4000}),
        ),
        (
            "policy",
            json!({"memory_bytes": 50331648, "timeout_ms": 500}),
        ),
    ];
    for (slot, limits) in expected {
        assert_eq!(slot_view(&server, slot).await["limits"], limits, "{slot}");
    }
    // And the slots serve under them.
    let sid = server.session(ACME).await;
    assert_files_handler(&server, &sid, false).await;
}

#[tokio::test]
async fn unknown_slots_and_routes_are_404_and_wrong_methods_are_405() {
    let server = admin_server("").await;
    for (method, path) in [
        (Method::GET, "/admin/v1/slots/nope"),
        (Method::PUT, "/admin/v1/slots/nope"),
        (Method::POST, "/admin/v1/slots/nope/rollback"),
        (Method::PUT, "/admin/v1/slots/nope/limits"),
        (Method::GET, "/admin/v1/slots/files/nope"),
        (Method::GET, "/admin/v1/nope"),
        (Method::GET, "/admin/v2/slots"),
    ] {
        let got = send(
            server
                .request(method.clone(), path, Some(ADMIN))
                .body(b"\0asm".to_vec()),
        )
        .await;
        assert_error(&got, 404, "not_found");
    }
    let got = send(server.request(Method::GET, "/admin/v1/slots/nope", Some(ADMIN))).await;
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nope") && message.contains("files"),
        "{message}"
    );
    for (method, path, allow) in [
        (Method::POST, "/admin/v1/slots", "GET"),
        (Method::DELETE, "/admin/v1/slots/files", "GET, PUT"),
        (Method::GET, "/admin/v1/slots/files/rollback", "POST"),
        (Method::GET, "/admin/v1/slots/files/limits", "PUT"),
        (Method::POST, "/admin/v1/tenants/acme/policy", "GET, PUT"),
    ] {
        let response = server
            .request(method.clone(), path, Some(ADMIN))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        assert_error(&json_of(response).await, 405, "method_not_allowed");
    }
    assert_eq!(bound_sha(&server, "files").await, sha256_hex(FILES));
}

// ---------------------------------------------------------------------------
// Swap and rollback.

#[tokio::test]
async fn swapping_files_to_no_executables_screens_uploads_and_rollback_restores_the_default() {
    let server = admin_server("").await;
    let sid = server.session(ACME).await;
    let (status, before) = upload_text(&server, ACME, &sid, "before.txt", b"before").await;
    assert_eq!(status, StatusCode::CREATED, "{before}");
    assert!(!screened(&before));
    let embedded = slot_view(&server, "files").await["component"].clone();

    let view = swapped(&server, "files", NO_EXECUTABLES).await;
    assert_eq!(view["object"], "slot", "{view}");
    assert_eq!(view["slot"], "files", "{view}");
    assert_eq!(view["component"]["bytes"], NO_EXECUTABLES.len(), "{view}");
    assert_eq!(view["component"]["source"], "admin", "{view}");
    assert_eq!(view["component"]["world"], "files", "{view}");
    assert_eq!(view["component"]["version"], "0.1.0", "{view}");
    assert_eq!(view["limits"], default_limits(), "{view}");
    let previous = view["previous"].as_array().unwrap();
    assert_eq!(previous.len(), 1, "{view}");
    assert_eq!(previous[0]["sha256"], embedded["sha256"], "{view}");
    assert_eq!(previous[0]["source"], "embedded:files", "{view}");
    assert_eq!(previous[0]["loaded_at"], embedded["loaded_at"], "{view}");
    assert_eq!(slot_view(&server, "files").await, view);

    // New uploads are the new handler's; files stored earlier are untouched.
    assert_files_handler(&server, &sid, true).await;
    let (status, got) = server
        .get(
            &format!("{}/{}", files_path(&sid), before["id"].as_str().unwrap()),
            ACME,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, before);
    let (status, list) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = assert_list(&list);
    assert_eq!(listed.len(), 2, "the refused ELF stored nothing: {list}");
    assert!(
        screened(&list["data"][0]) && !screened(&list["data"][1]),
        "{list}"
    );

    let (status, view) = rollback(&server, "files").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["component"]["sha256"], embedded["sha256"], "{view}");
    assert_eq!(view["component"]["source"], "embedded:files", "{view}");
    assert_eq!(view["previous"], json!([]), "{view}");
    assert_files_handler(&server, &sid, false).await;

    let got = rollback(&server, "files").await;
    assert_error(&got, 409, "conflict");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("files"), "{message}");
    assert_eq!(bound_sha(&server, "files").await, sha256_hex(FILES));
    // Another slot never swapped has nothing to go back to either.
    assert_error(&rollback(&server, "policy").await, 409, "conflict");
}

#[tokio::test]
async fn swapping_the_same_component_twice_keeps_both_in_the_history_and_rollback_walks_back() {
    let server = admin_server("").await;
    swapped(&server, "files", NO_EXECUTABLES).await;
    swapped(&server, "files", FILES).await;
    let view = swapped(&server, "files", NO_EXECUTABLES).await;
    let previous: Vec<&str> = view["previous"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(previous, ["embedded:files", "admin", "admin"], "{view}");
    let sid = server.session(ACME).await;
    for (sha, no_executables) in [(FILES, false), (NO_EXECUTABLES, true), (FILES, false)] {
        let (status, view) = rollback(&server, "files").await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["component"]["sha256"], sha256_hex(sha), "{view}");
        assert_files_handler(&server, &sid, no_executables).await;
    }
    assert_error(&rollback(&server, "files").await, 409, "conflict");
}

/// Asserts a refused swap: the status and code, a message containing `why`.
#[track_caller]
fn assert_refused(got: &(StatusCode, Value), status: u16, code: &str, why: &str) {
    assert_error(got, status, code);
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(why), "message {message:?} lacks {why:?}");
    for leak in ["/work/", ".rs:", "panicked at", "\n"] {
        assert!(!message.contains(leak), "message leaks {leak:?}: {message}");
    }
}

#[tokio::test]
async fn refused_components_leave_every_slot_as_it_was_and_serving() {
    let server = admin_server("").await;
    let sid = server.session(ACME).await;
    let before: Vec<Value> = {
        let mut views = Vec::new();
        for slot in ["files", "environments", "terminals", "policy"] {
            views.push(slot_view(&server, slot).await);
        }
        views
    };
    // A core module: valid wasm, but not a component.
    let core_module = b"\0asm\x01\0\0\0".as_slice();
    let cases: [(&str, &[u8], &str); 9] = [
        (
            "files",
            b"this is not wasm at all",
            "not a valid WebAssembly component",
        ),
        ("files", b"", "not a valid WebAssembly component"),
        ("files", core_module, "not a valid WebAssembly component"),
        (
            "files",
            &NO_EXECUTABLES[..NO_EXECUTABLES.len() / 2],
            "not a valid WebAssembly component",
        ),
        ("files", POLICY_ALLOW, "does not implement the files world"),
        (
            "environments",
            FILES,
            "does not implement the environments world",
        ),
        (
            "terminals",
            TRAP_ON_START,
            "does not implement the terminals world",
        ),
        ("policy", FILES, "does not implement the policy world"),
        ("policy", TRAP_ON_START, "failed when first instantiated"),
    ];
    for (slot, wasm, why) in cases {
        let got = swap(&server, slot, wasm).await;
        assert_refused(&got, 400, "invalid_input", why);
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("the component was refused"),
            "{}",
            got.1
        );
    }
    for (slot, view) in ["files", "environments", "terminals", "policy"]
        .into_iter()
        .zip(&before)
    {
        assert_eq!(&slot_view(&server, slot).await, view, "{slot} changed");
    }
    // The old components keep serving: files, environments, the policy.
    assert_files_handler(&server, &sid, false).await;
    let (status, body) = server
        .post(&shell_path(&sid), ACME, json!({"command": "echo still"}))
        .await;
    assert_eq!(
        (status, &body["stdout"]),
        (StatusCode::OK, &json!("still\n")),
        "{body}"
    );
    let (status, body) = server.get("/v1/sessions", ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Nothing was added that rollback could return to.
    assert_error(&rollback(&server, "policy").await, 409, "conflict");
    assert_error(&rollback(&server, "files").await, 409, "conflict");
}

#[tokio::test]
async fn a_refused_swap_after_a_good_one_keeps_the_good_one() {
    let server = admin_server("").await;
    let sid = server.session(ACME).await;
    let good = swapped(&server, "files", NO_EXECUTABLES).await;
    assert_refused(
        &swap(&server, "files", TRAP_ON_START).await,
        400,
        "invalid_input",
        "does not implement the files world",
    );
    assert_refused(
        &swap(&server, "files", b"\0asm garbage").await,
        400,
        "invalid_input",
        "not a valid WebAssembly component",
    );
    assert_eq!(slot_view(&server, "files").await, good);
    assert_files_handler(&server, &sid, true).await;
    // Rollback still goes to what was bound before the good swap.
    let (status, view) = rollback(&server, "files").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["component"]["sha256"], sha256_hex(FILES), "{view}");
}

#[tokio::test]
async fn a_component_over_max_component_bytes_is_413_and_changes_nothing() {
    let server = admin_server("[limits]\nmax_component_bytes = 100000\n").await;
    assert!(NO_EXECUTABLES.len() > 100000 && POLICY_RULES.len() > 100000);
    let sid = server.session(ACME).await;
    let before = slot_view(&server, "files").await;
    let got = swap(&server, "files", NO_EXECUTABLES).await;
    assert_refused(&got, 413, "payload_too_large", "100000");
    assert_eq!(slot_view(&server, "files").await, before);
    assert_files_handler(&server, &sid, false).await;
    // A tenant policy's component part is held to the same limit.
    let got = set_policy(&server, "acme", Some(POLICY_RULES), None).await;
    assert_refused(&got, 413, "payload_too_large", "100000");
    assert_eq!(policy_view(&server, "acme").await["component"], Value::Null);
    // One under the limit is fine.
    assert!(RULES_POLICY.len() < 100000);
    swapped(&server, "policy", RULES_POLICY).await;
    let (status, body) = server.get("/v1/sessions", ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------
// Restarts and SIGHUP.

#[tokio::test]
async fn an_admin_swap_and_limits_survive_a_restart_with_the_same_config() {
    let mut server = admin_server("").await;
    let sid = server.session(ACME).await;
    swapped(&server, "files", NO_EXECUTABLES).await;
    let limits = json!({"memory_bytes": 33554432, "timeout_ms": 7000});
    let (status, _) = set_limits(&server, "environments", limits.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let files = slot_view(&server, "files").await;
    let environments = slot_view(&server, "environments").await;

    assert!(server.terminate(), "unclean exit: {}", server.stderr());
    server.spawn();

    assert_eq!(slot_view(&server, "files").await, files);
    assert_eq!(slot_view(&server, "environments").await, environments);
    assert_eq!(environments["limits"], limits);
    assert_files_handler(&server, &sid, true).await;
    // The history came through too.
    let (status, view) = rollback(&server, "files").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["component"]["source"], "embedded:files", "{view}");
    assert_files_handler(&server, &sid, false).await;
    // And the rollback is what the next start binds.
    assert!(server.terminate(), "unclean exit: {}", server.stderr());
    server.spawn();
    assert_eq!(bound_sha(&server, "files").await, sha256_hex(FILES));
    assert_files_handler(&server, &sid, false).await;
}

#[tokio::test]
async fn a_components_path_changed_in_the_config_between_runs_wins_at_start() {
    let faulty = reshost_test_artifacts::FAULTY.path;
    let faulty_sha = sha256_hex(&std::fs::read(faulty).unwrap());
    let mut host = Host::new();
    host.write_config("");
    host.start();
    let sid = new_session(&host, ACME).await;
    swapped(&host, "files", NO_EXECUTABLES).await;
    host.stop();

    // The config now names another files component: it is bound, not the swap.
    host.write_config(&format!("[components]\nfiles = {faulty:?}\n"));
    host.start();
    let view = slot_view(&host, "files").await;
    assert_eq!(view["component"]["sha256"], faulty_sha, "{view}");
    assert_eq!(view["component"]["source"], faulty, "{view}");
    let previous = view["previous"].as_array().unwrap();
    assert_eq!(
        previous.last().unwrap()["sha256"],
        sha256_hex(NO_EXECUTABLES),
        "{view}"
    );
    // `faulty` panics in `create`.
    let got = upload_text(&host, ACME, &sid, "a.txt", b"hello").await;
    assert_error(&got, 500, "component_error");

    // The operator takes over again; with the config unchanged since it was last
    // applied, the next start keeps the operator's choice.
    let (status, view) = rollback(&host, "files").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["component"]["sha256"], sha256_hex(NO_EXECUTABLES));
    host.stop();
    host.start();
    assert_eq!(bound_sha(&host, "files").await, sha256_hex(NO_EXECUTABLES));
    assert_files_handler(&host, &sid, true).await;

    // Back to no `[components]`: changed again, so the embedded default is bound.
    host.stop();
    host.write_config("");
    host.start();
    let view = slot_view(&host, "files").await;
    assert_eq!(view["component"]["sha256"], sha256_hex(FILES), "{view}");
    assert_eq!(view["component"]["source"], "embedded:files", "{view}");
    assert_files_handler(&host, &sid, false).await;
}

#[tokio::test]
async fn sighup_applies_a_changed_component_path_and_refuses_bad_ones_leaving_the_slot() {
    let no_executables = reshost_test_artifacts::FILES_NO_EXECUTABLES.path;
    let no_executables_sha = sha256_hex(&std::fs::read(no_executables).unwrap());
    let mut host = Host::new();
    host.write_config("");
    host.start();
    let sid = new_session(&host, ACME).await;
    // An operator's swap of a slot the config file never changes.
    swapped(&host, "policy", RULES_POLICY).await;

    host.write_config(&format!("[components]\nfiles = {no_executables:?}\n"));
    host.hup();
    wait_for_sha(&host, "files", &no_executables_sha, || host.log()).await;
    let applied = slot_view(&host, "files").await;
    assert_eq!(applied["component"]["source"], no_executables, "{applied}");
    assert_eq!(
        applied["previous"][0]["source"], "embedded:files",
        "{applied}"
    );
    assert_files_handler(&host, &sid, true).await;

    // Bad components: refused, one SIGHUP at a time (each read before the next).
    let garbage = host.dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    let policy_allow = host.dir.path().join("policy-allow.wasm");
    std::fs::write(&policy_allow, POLICY_ALLOW).unwrap();
    let bad_configs = [
        format!("[components]\nfiles = {garbage:?}\n"),
        format!("[components]\nfiles = {policy_allow:?}\n"),
        format!(
            "[components]\nfiles = {no_executables:?}\npolicy = {:?}\n",
            reshost_test_artifacts::TRAP_ON_START.path
        ),
        // Not even a valid config: no such file.
        "[components]\nfiles = \"/nonexistent/reshost/files.wasm\"\n".to_owned(),
    ];
    for config in &bad_configs {
        let before = host.log().matches("refused").count();
        host.write_config(config);
        host.hup();
        assert!(
            wait_for_log(&host, "refused", before).await,
            "no refusal logged for:\n{config}\nlog:\n{}",
            host.log()
        );
        assert_eq!(slot_view(&host, "files").await, applied, "after:\n{config}");
        assert_eq!(
            bound_sha(&host, "policy").await,
            sha256_hex(RULES_POLICY),
            "after:\n{config}"
        );
        assert_files_handler(&host, &sid, true).await;
        let (status, body) = send(host.call(Method::GET, "/v1/sessions", Some(ACME))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The handler still works after the refusals; the unchanged `files` entry and
    // the operator's policy are left alone by a change elsewhere.
    host.write_config(&format!(
        "[components]\nfiles = {no_executables:?}\n[slots.environments]\ntimeout_ms = 7000\n"
    ));
    host.hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slot_view(&host, "environments").await["limits"]["timeout_ms"] != 7000 {
        assert!(Instant::now() < deadline, "never applied: {}", host.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(slot_view(&host, "files").await, applied);
    assert_eq!(bound_sha(&host, "policy").await, sha256_hex(RULES_POLICY));
}

// ---------------------------------------------------------------------------
// Limits.

#[tokio::test]
async fn slot_limits_out_of_range_or_misshapen_are_400_and_good_ones_are_shown_and_persist() {
    let mut server = admin_server("").await;
    let max = 67108864u64;
    for body in [
        json!({"memory_bytes": 65535, "timeout_ms": 1000}),
        json!({"memory_bytes": max + 1, "timeout_ms": 1000}),
        json!({"memory_bytes": 0, "timeout_ms": 1000}),
        json!({"memory_bytes": 1 << 20, "timeout_ms": 0}),
        json!({"memory_bytes": 1 << 20, "timeout_ms": 3_600_001}),
        json!({"memory_bytes": 1 << 20, "timeout_ms": -1}),
        json!({"memory_bytes": "1048576", "timeout_ms": 1000}),
        json!({"memory_bytes": 1 << 20}),
        json!({"timeout_ms": 1000}),
        json!({"memory_bytes": 1 << 20, "timeout_ms": 1000, "cpu": 1}),
        json!({}),
        json!(null),
        json!(1048576),
    ] {
        let got = set_limits(&server, "files", body.clone()).await;
        assert_error(&got, 400, "invalid_input");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("memory_bytes") || message.contains("timeout_ms"),
            "{body}: {message}"
        );
    }
    let got = send(
        server
            .request(Method::PUT, "/admin/v1/slots/files/limits", Some(ADMIN))
            .body("{not json"),
    )
    .await;
    assert_error(&got, 400, "invalid_input");
    assert_error(
        &set_limits(
            &server,
            "nope",
            json!({"memory_bytes": 1 << 20, "timeout_ms": 1}),
        )
        .await,
        404,
        "not_found",
    );
    assert_eq!(
        slot_view(&server, "files").await["limits"],
        default_limits()
    );

    // The extremes are accepted where the component can still start under them
    // (65536 bytes cannot hold it: see `slot_limits_the_bound_component_cannot_run_under_...`).
    for limits in [
        json!({"memory_bytes": 1 << 20, "timeout_ms": 3_600_000}),
        json!({"memory_bytes": max, "timeout_ms": 50}),
    ] {
        let (status, view) = set_limits(&server, "terminals", limits.clone()).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["limits"], limits, "{view}");
    }
    // (Back to sane ones: see `slot_limits_the_bound_component_cannot_run_under_...`.)
    let (status, view) = set_limits(&server, "terminals", default_limits()).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let limits = json!({"memory_bytes": 33554432, "timeout_ms": 4321});
    let (status, view) = set_limits(&server, "files", limits.clone()).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["object"], "slot", "{view}");
    assert_eq!(view["limits"], limits, "{view}");
    assert_eq!(view["component"]["sha256"], sha256_hex(FILES), "{view}");
    assert_eq!(slot_view(&server, "files").await["limits"], limits);
    let sid = server.session(ACME).await;
    assert_files_handler(&server, &sid, false).await;
    // A swap keeps the slot's limits.
    let view = swapped(&server, "files", NO_EXECUTABLES).await;
    assert_eq!(view["limits"], limits, "{view}");

    assert!(server.terminate(), "unclean exit: {}", server.stderr());
    server.spawn();
    assert_eq!(slot_view(&server, "files").await["limits"], limits);
    assert_eq!(
        slot_view(&server, "environments").await["limits"],
        default_limits()
    );
    assert_files_handler(&server, &sid, true).await;
}

/// 64 KiB of linear memory is within the accepted range, but no Rust component
/// instantiates in it. Either the limits are refused up front (as a component
/// is, by test-instantiating it under them) and the slot keeps serving, or they
/// are taken — and then the server must still start with them stored.
#[tokio::test]
async fn slot_limits_the_bound_component_cannot_run_under_are_refused_or_survive_a_restart() {
    let mut server = admin_server("").await;
    let sid = server.session(ACME).await;
    let tiny = json!({"memory_bytes": 65536, "timeout_ms": 10000});
    let got = set_limits(&server, "files", tiny.clone()).await;
    if got.0 == StatusCode::OK {
        assert_eq!(got.1["limits"], tiny, "{}", got.1);
        assert!(server.terminate(), "unclean exit: {}", server.stderr());
        server.spawn(); // panics if reshost refuses to start
        assert_eq!(slot_view(&server, "files").await["limits"], tiny);
        let (status, body) = server.get("/v1/sessions", ACME).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    } else {
        assert_error(&got, 400, "invalid_input");
        assert_eq!(
            slot_view(&server, "files").await["limits"],
            default_limits()
        );
        assert_files_handler(&server, &sid, false).await;
    }
}

/// The body is an object: serde's derived `Deserialize` would also take the two
/// numbers as an array, which is not the documented shape.
#[tokio::test]
async fn slot_limits_given_as_a_json_array_are_400_and_change_nothing() {
    let server = admin_server("").await;
    let got = set_limits(&server, "files", json!([1048576, 1000])).await;
    assert_error(&got, 400, "invalid_input");
    assert_eq!(
        slot_view(&server, "files").await["limits"],
        default_limits()
    );
}

#[tokio::test]
async fn a_slot_timeout_set_at_runtime_bounds_its_calls_from_then_on() {
    let server = admin_server(&format!(
        "[components]\nfiles = {:?}\n",
        reshost_test_artifacts::FAULTY.path
    ))
    .await;
    let sid = server.session(ACME).await;
    let (status, view) = set_limits(
        &server,
        "files",
        json!({"memory_bytes": 33554432, "timeout_ms": 400}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let started = Instant::now();
    let got = server
        .get(&format!("{}/spin", files_path(&sid)), ACME)
        .await;
    let elapsed = started.elapsed();
    assert_error(&got, 503, "component_timeout");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(3000),
        "a 400 ms deadline took {elapsed:?}"
    );
    // Other slots keep their own (default) deadline: the policy still answers.
    let got = server
        .get(&format!("{}/other", files_path(&sid)), ACME)
        .await;
    assert_error(&got, 404, "not_found");
}

// ---------------------------------------------------------------------------
// Tenant policies: the admin API's answers (the plugins themselves: plugins.rs).

#[tokio::test]
async fn tenant_policy_view_and_its_refusals_leave_the_policy_as_it_was() {
    let server = admin_server("").await;
    let empty = json!({"object": "tenant.policy", "tenant": "acme", "component": null,
                       "policy_config": {}});
    assert_eq!(policy_view(&server, "acme").await, empty);

    let got = send(server.request(Method::GET, &policy_path("nobody"), Some(ADMIN))).await;
    assert_error(&got, 404, "not_found");
    let got = set_policy(&server, "nobody", None, Some(&json!({}))).await;
    assert_error(&got, 404, "not_found");

    // Neither part, not multipart, an unknown part, bad JSON, a non-object.
    let got = set_policy(&server, "acme", None, None).await;
    assert_error(&got, 400, "invalid_input");
    let got = send(
        server
            .request(Method::PUT, &policy_path("acme"), Some(ADMIN))
            .json(&json!({"policy_config": {}})),
    )
    .await;
    assert_refused(&got, 400, "invalid_input", "multipart/form-data");
    let got = send(
        server
            .request(Method::PUT, &policy_path("acme"), Some(ADMIN))
            .multipart(multipart::Form::new().text("config", "{}")),
    )
    .await;
    assert_refused(&got, 400, "invalid_input", "unknown part");
    for (config, why) in [
        ("{not json", "policy_config is not JSON"),
        ("[1, 2]", "policy_config must be a JSON object"),
        ("\"deny\"", "policy_config must be a JSON object"),
    ] {
        let form = multipart::Form::new().text("policy_config", config);
        let got = send(
            server
                .request(Method::PUT, &policy_path("acme"), Some(ADMIN))
                .multipart(form),
        )
        .await;
        assert_refused(&got, 400, "invalid_input", why);
    }
    // Components that are not policies, or fail.
    for (wasm, why) in [
        (b"garbage".as_slice(), "not a valid WebAssembly component"),
        (FILES, "does not implement the policy world"),
        (TRAP_ON_START, "failed when first instantiated"),
    ] {
        let got = set_policy(&server, "acme", Some(wasm), Some(&json!({"deny": ["x"]}))).await;
        assert_refused(&got, 400, "invalid_input", why);
    }
    // Nothing changed: acme still has the default policy and may do anything.
    assert_eq!(policy_view(&server, "acme").await, empty);
    let sid = server.session(ACME).await;
    assert_files_handler(&server, &sid, false).await;
}

/// One raw HTTP/1.1 exchange on `stream`: writes `request` while reading the
/// answer (a server may answer before it reads the body). Returns how the write
/// went and the answer's status, lower-cased head and body.
pub async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
) -> (std::io::Result<()>, std::io::Result<(u16, String, Vec<u8>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rd, mut wr) = stream.split();
    let write = async {
        wr.write_all(request).await?;
        wr.flush().await
    };
    let read = async {
        let closed = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = rd.read(&mut chunk).await?;
            if n == 0 {
                return Err(closed());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + length {
            let n = rd.read(&mut chunk).await?;
            if n == 0 {
                return Err(closed());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, head, buf[head_end..head_end + length].to_vec()))
    };
    let within = Duration::from_secs(10);
    tokio::time::timeout(within, async { tokio::join!(write, read) })
        .await
        .expect("the exchange took over 10 s")
}

/// An HTTP/1.1 request with `body` (`content_type` empty: no body headers).
pub fn raw_request(
    method: &str,
    path: &str,
    addr: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if !content_type.is_empty() {
        request.push_str(&format!(
            "content-type: {content_type}\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    request
}

/// A `multipart/form-data` body of one part: its content type and bytes.
pub fn one_part_form(
    name: &str,
    filename: &str,
    part_type: &str,
    bytes: &[u8],
) -> (String, Vec<u8>) {
    let boundary = "XyZzY0123456789";
    let mut form = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
         content-type: {part_type}\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(bytes);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), form)
}

/// Sends `request` on a new connection to `addr` and expects `expected`; then,
/// unless that answer said `Connection: close`, sends `next` on the same
/// connection and expects `200`. `Err` says what went wrong.
pub async fn refusal_then_next(
    addr: &str,
    request: &[u8],
    expected: u16,
    next: &[u8],
) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (wrote, answer) = exchange(&mut stream, request).await;
    let (status, head, _) = answer.map_err(|e| format!("no answer: {e}"))?;
    if status != expected {
        return Err(format!("answered {status}, not {expected}: {head}"));
    }
    if head.contains("connection: close") {
        return Ok(());
    }
    let (_, again) = exchange(&mut stream, next).await;
    match (wrote, again) {
        (Ok(()), Ok((200, _, _))) => Ok(()),
        (wrote, again) => Err(format!(
            "{expected} without `Connection: close`: body write {wrote:?}, next request on \
             the connection {:?}",
            again.map(|(status, _, _)| status)
        )),
    }
}

/// A request refused before its body is read (unknown tenant or slot, bad token)
/// leaves the connection in one of two clean states: the server read (drained)
/// the body and serves the next request on it, or it says `Connection: close`.
/// Closing it silently breaks a client's next pooled request ("broken pipe").
#[tokio::test]
async fn a_request_refused_before_its_body_is_read_closes_the_connection_or_keeps_it_usable() {
    let server = admin_server("").await;
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();
    let (form_type, form) = one_part_form("component", "p.wasm", "application/wasm", RULES_POLICY);
    // (path, token, content type, body, expected status)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a [u8], u16);
    let cases: [Case; 5] = [
        // The control: a refusal after the body was read keeps the connection.
        (
            "/admin/v1/slots/files",
            Some(ADMIN),
            "application/wasm",
            b"garbage",
            400,
        ),
        (
            "/admin/v1/tenants/nobody/policy",
            Some(ADMIN),
            &form_type,
            &form,
            404,
        ),
        (
            "/admin/v1/slots/nope",
            Some(ADMIN),
            "application/wasm",
            NO_EXECUTABLES,
            404,
        ),
        (
            "/admin/v1/slots/files",
            Some(ACME),
            "application/wasm",
            NO_EXECUTABLES,
            401,
        ),
        (
            "/admin/v1/slots/files",
            None,
            "application/wasm",
            NO_EXECUTABLES,
            401,
        ),
    ];
    let mut failures = Vec::new();
    for (path, token, content_type, body, expected) in cases {
        let request = raw_request("PUT", path, &addr, token, content_type, body);
        let next = raw_request("GET", "/admin/v1/slots/files", &addr, Some(ADMIN), "", b"");
        if let Err(failure) = refusal_then_next(&addr, &request, expected, &next).await {
            failures.push(format!("PUT {path}: {failure}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(bound_sha(&server, "files").await, sha256_hex(FILES));
}

// ---------------------------------------------------------------------------
// Swapping under load.

#[derive(Default, Debug)]
struct Counts {
    screened: usize,
    plain: usize,
    gets: usize,
    lists: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn hot_swapping_files_under_load_fails_no_request_and_each_upload_is_wholly_one_handlers() {
    let server = Arc::new(admin_server("").await);
    // Compile both once before the clock starts (the cache makes later swaps quick).
    swapped(&*server, "files", NO_EXECUTABLES).await;
    swapped(&*server, "files", FILES).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (server, stop) = (server.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let sid = server.session(ACME).await;
            let mut counts = Counts::default();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("c{client}-{i}.txt");
                let content = format!("client {client} upload {i}");
                let (status, file) = server
                    .upload(ACME, &sid, &name, Some("text/plain"), content.into_bytes())
                    .await;
                assert_eq!(status, StatusCode::CREATED, "upload {name}: {file}");
                if screened(&file) {
                    counts.screened += 1;
                } else {
                    counts.plain += 1;
                }
                let id = file["id"].as_str().unwrap();
                let (status, got) = server
                    .get(&format!("{}/{id}", files_path(&sid)), ACME)
                    .await;
                assert_eq!(status, StatusCode::OK, "get {name}: {got}");
                assert_eq!(
                    got, file,
                    "the stored file differs from the upload's answer"
                );
                counts.gets += 1;
                let (status, list) = server
                    .get(&format!("{}?limit=3", files_path(&sid)), ACME)
                    .await;
                assert_eq!(status, StatusCode::OK, "list: {list}");
                assert_eq!(list["data"][0], file, "newest first: {list}");
                counts.lists += 1;
                i += 1;
            }
            counts
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let probe = server.session(GLOBEX).await;
    for n in 0..20 {
        let no_executables = n % 2 == 0;
        let wasm = if no_executables {
            NO_EXECUTABLES
        } else {
            FILES
        };
        swapped(&*server, "files", wasm).await;
        // A request sent after the swap answered is the new handler's.
        let (status, file) = upload_text(&*server, GLOBEX, &probe, "probe.txt", b"probe").await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        assert_eq!(screened(&file), no_executables, "after swap {n}: {file}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let swapping = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let mut total = Counts::default();
    for client in clients {
        let counts = client.await.unwrap();
        total.screened += counts.screened;
        total.plain += counts.plain;
        total.gets += counts.gets;
        total.lists += counts.lists;
    }
    eprintln!("20 swaps in {swapping:?} under load: {total:?}");
    assert!(
        total.screened > 0 && total.plain > 0,
        "both handlers served uploads: {total:?}"
    );
    assert_eq!(bound_sha(&*server, "files").await, sha256_hex(FILES));
}
