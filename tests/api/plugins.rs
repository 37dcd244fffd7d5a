//! The example plugins in `examples/`, deployed the ways an operator would: tenant
//! policies set through the admin API at runtime or named in the config file
//! (`policy-read-only`, `policy-rules`, `policy-uploads`, the trapping
//! `rules-policy`), and the `files-no-executables` handler. A tenant's policy
//! never touches another tenant's requests.

use crate::admin::*;
use crate::common::*;
use reqwest::{Method, StatusCode, multipart};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

const POLICY_READ_ONLY: &[u8] = reshost_test_artifacts::POLICY_READ_ONLY.wasm;
const POLICY_UPLOADS: &[u8] = reshost_test_artifacts::POLICY_UPLOADS.wasm;

// ---------------------------------------------------------------------------
// Helpers.

fn env_path(sid: &str, rest: &str) -> String {
    format!("{}/{rest}", env_url(sid))
}

fn fs_path(sid: &str, path: &str) -> String {
    env_path(sid, &format!("filesystem/{path}"))
}

fn terminal_path(sid: &str, tid: &str) -> String {
    format!("/v1/sessions/{sid}/resources/terminals/{tid}")
}

async fn write(
    server: &Server,
    token: &str,
    sid: &str,
    path: &str,
    content: &str,
) -> (StatusCode, Value) {
    send(
        server
            .request(Method::PUT, &fs_path(sid, path), Some(token))
            .json(&json!({"content": content})),
    )
    .await
}

async fn edit(server: &Server, token: &str, sid: &str, path: &str) -> (StatusCode, Value) {
    send(
        server
            .request(Method::PATCH, &fs_path(sid, path), Some(token))
            .json(&json!({"old_text": "a", "new_text": "b", "replace_all": true})),
    )
    .await
}

async fn shell(server: &Server, token: &str, sid: &str, command: &str) -> (StatusCode, Value) {
    server
        .post(&env_path(sid, "shell"), token, json!({"command": command}))
        .await
}

/// A write that must succeed.
async fn written(server: &Server, token: &str, sid: &str, path: &str, content: &str) {
    let (status, body) = write(server, token, sid, path, content).await;
    assert_eq!(status, StatusCode::OK, "write {path}: {body}");
}

/// A file of the session's workspace, read from the disk (not through the API).
fn on_disk(server: &Server, sid: &str, path: &str) -> Option<String> {
    std::fs::read_to_string(workspace(server, sid).join(path)).ok()
}

/// Asserts a policy's denial: `403 forbidden` with every fragment in the message.
#[track_caller]
fn assert_denied(got: &(StatusCode, Value), fragments: &[&str]) {
    assert_error(got, 403, "forbidden");
    let message = got.1["error"]["message"].as_str().unwrap();
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "message {message:?} lacks {fragment:?}"
        );
    }
}

/// A client that never reuses a connection: a denied upload is answered before
/// its body is read, and the server may then drop the connection without saying
/// so (`a_denied_upload_closes_the_connection_or_keeps_it_usable`); this keeps
/// that from failing the request after it.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Uploads `bytes` with the part's declared type (`None`: no type at all), on a
/// connection of its own.
async fn upload_typed(
    server: &Server,
    token: &str,
    sid: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let mut part = multipart::Part::bytes(bytes).file_name("up.bin");
    if let Some(ct) = content_type {
        part = part.mime_str(ct).unwrap();
    }
    send(
        unpooled()
            .post(server.url(&files_path(sid)))
            .bearer_auth(token)
            .multipart(multipart::Form::new().part("file", part)),
    )
    .await
}

/// The ids of a session's files.
async fn file_ids(server: &Server, token: &str, sid: &str) -> Vec<String> {
    let (status, list) = server
        .get(&format!("{}?limit=100", files_path(sid)), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_list(&list)
}

/// The HTTP status of a WebSocket attach (101 when upgraded).
fn attach_request(
    server: &Server,
    token: &str,
    sid: &str,
    tid: &str,
    query: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!(
        "{}{}/attach{query}",
        server.base.replacen("http://", "ws://", 1),
        terminal_path(sid, tid)
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    request
}

/// The close code and reason of an attach that is upgraded and then closed
/// before any output (a policy's refusal); panics on anything else first.
async fn attach_closed(
    server: &Server,
    token: &str,
    sid: &str,
    tid: &str,
    query: &str,
) -> (u16, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, response) =
        tokio_tungstenite::connect_async(attach_request(server, token, sid, tid, query))
            .await
            .unwrap();
    assert_eq!(response.status().as_u16(), 101);
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("the socket answered")
        .expect("a frame")
        .unwrap();
    match first {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame first, got {other:?}"),
    }
}

async fn attach_status(server: &Server, token: &str, sid: &str, tid: &str, query: &str) -> u16 {
    let request = attach_request(server, token, sid, tid, query);
    match tokio_tungstenite::connect_async(request).await {
        Ok((_ws, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            if let Some(body) = response.body() {
                let body: Value = serde_json::from_slice(body).unwrap();
                assert!(body["error"]["code"].is_string(), "{body}");
                if response.status() == 403 {
                    assert_eq!(body["error"]["code"], "forbidden", "{body}");
                }
            }
            response.status().as_u16()
        }
        Err(e) => panic!("attach failed without an HTTP answer: {e}"),
    }
}

// ---------------------------------------------------------------------------
// policy-read-only.

#[tokio::test]
async fn read_only_policy_set_at_runtime_allows_reads_and_denies_every_change_for_that_tenant_only()
{
    let server = admin_server("").await;
    // What acme will read is made before the policy is set (it cannot make it after).
    let agent = json!({"agent": {"terminals": {"sleeper": {"command": "sleep", "args": ["60"]}}}});
    let (status, session) = server.post("/v1/sessions", ACME, agent).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let sid = session["id"].as_str().unwrap().to_owned();
    let target = server.session(ACME).await;
    written(&server, ACME, &sid, "src/main.py", "print('a')\n").await;
    let (status, file) = server
        .upload(ACME, &sid, "a.txt", Some("text/plain"), b"a file".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].as_str().unwrap().to_owned();
    let (status, terminal) = server
        .post(
            &format!("/v1/sessions/{sid}/resources/terminals"),
            ACME,
            json!({"terminal": "sleeper", "session_key": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{terminal}");
    let tid = terminal["id"].as_str().unwrap().to_owned();
    let snapshots = env_path(&sid, "snapshots");
    let (status, snapshot) = server.post(&snapshots, ACME, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{snapshot}");
    let snap = format!("{snapshots}/{}", snapshot["id"].as_str().unwrap());

    let view = policy_set(&server, "acme", Some(POLICY_READ_ONLY), None).await;
    assert_eq!(view["component"]["source"], "admin", "{view}");
    assert_eq!(view["policy_config"], json!({}), "{view}");

    // Reads.
    for path in [
        "/v1/sessions".to_owned(),
        format!("/v1/sessions/{sid}"),
        format!("/v1/sessions/{sid}/resources"),
        format!("/v1/sessions/{sid}/resources/{fid}"),
        files_path(&sid),
        format!("{}/{fid}", files_path(&sid)),
        format!("/v1/sessions/{sid}/resources/environments"),
        format!("/v1/sessions/{sid}/resources/environments/default"),
        fs_path(&sid, "src/main.py"),
        fs_path(&sid, "src"),
        env_path(&sid, "search?q=main"),
        env_path(&sid, "changes"),
        env_path(&sid, "diff/src/main.py"),
        format!("/v1/sessions/{sid}/resources/terminals"),
        terminal_path(&sid, &tid),
        snapshots.clone(),
        snap.clone(),
        format!("{snap}/changes"),
    ] {
        let (status, body) = server.get(&path, ACME).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    }
    let response = server
        .request(
            Method::GET,
            &format!("{}/{fid}/content", files_path(&sid)),
            Some(ACME),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await.unwrap()[..], b"a file");
    assert_eq!(
        attach_status(&server, ACME, &sid, &tid, "?read_only=true").await,
        101,
        "watching is a read"
    );

    // Changes: each denied with the policy's reason naming the operation.
    let denied = [
        (
            "sessions.create",
            server.post("/v1/sessions", ACME, json!({})).await,
        ),
        (
            "sessions.delete",
            server.delete(&format!("/v1/sessions/{sid}"), ACME).await,
        ),
        (
            "files.upload",
            upload_typed(&server, ACME, &sid, Some("text/plain"), b"b".to_vec()).await,
        ),
        (
            "files.delete",
            server
                .delete(&format!("{}/{fid}", files_path(&sid)), ACME)
                .await,
        ),
        (
            "environments.write",
            write(&server, ACME, &sid, "src/main.py", "print('b')\n").await,
        ),
        (
            "environments.write",
            write(&server, ACME, &sid, "new.txt", "new").await,
        ),
        (
            "environments.edit",
            edit(&server, ACME, &sid, "src/main.py").await,
        ),
        (
            "environments.delete",
            server.delete(&fs_path(&sid, "src/main.py"), ACME).await,
        ),
        (
            "environments.shell",
            shell(&server, ACME, &sid, "echo hi > shell.txt").await,
        ),
        (
            "environments.snapshots.create",
            server.post(&snapshots, ACME, json!({})).await,
        ),
        (
            "environments.snapshots.restore",
            server
                .post(&format!("{snap}/restore"), ACME, json!({}))
                .await,
        ),
        (
            "environments.snapshots.delete",
            server.delete(&snap, ACME).await,
        ),
        (
            "terminals.launch",
            server
                .post(
                    &format!("/v1/sessions/{sid}/resources/terminals"),
                    ACME,
                    json!({"terminal": "sleeper", "session_key": "other"}),
                )
                .await,
        ),
        (
            "terminals.close",
            server.delete(&terminal_path(&sid, &tid), ACME).await,
        ),
        (
            "terminals.transfer",
            server
                .post(
                    &format!("{}/transfer", terminal_path(&sid, &tid)),
                    ACME,
                    json!({"target_session_id": target}),
                )
                .await,
        ),
    ];
    for (operation, got) in &denied {
        assert_denied(got, &["tenant acme is read-only", operation]);
    }
    // An interactive attach (terminals.attach) is a change: the policy's refusal
    // comes on the socket, close 1008 with its reason.
    for query in ["", "?read_only=false"] {
        let (code, reason) = attach_closed(&server, ACME, &sid, &tid, query).await;
        assert_eq!(code, 1008, "{reason}");
        assert!(
            reason.contains("tenant acme is read-only") && reason.contains("terminals.attach"),
            "{reason}"
        );
    }

    // Nothing changed.
    assert_eq!(
        on_disk(&server, &sid, "src/main.py").as_deref(),
        Some("print('a')\n")
    );
    assert_eq!(on_disk(&server, &sid, "new.txt"), None);
    assert_eq!(on_disk(&server, &sid, "shell.txt"), None);
    assert_eq!(file_ids(&server, ACME, &sid).await, [fid.as_str()]);
    let (status, sessions) = server.get("/v1/sessions", ACME).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assert_list(&sessions).len(), 2, "{sessions}");
    let (status, body) = server.get(&terminal_path(&sid, &tid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"]["running"], true, "{body}");
    let (status, body) = server
        .get(&format!("/v1/sessions/{target}/resources/terminals"), ACME)
        .await;
    assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!([])));

    // globex has no policy of its own: everything is allowed.
    let gsid = server.session(GLOBEX).await;
    written(&server, GLOBEX, &gsid, "src/main.py", "a = 1\n").await;
    let (status, body) = edit(&server, GLOBEX, &gsid, "src/main.py").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = shell(&server, GLOBEX, &gsid, "echo hi").await;
    assert_eq!(
        (status, &body["stdout"]),
        (StatusCode::OK, &json!("hi\n")),
        "{body}"
    );
    let (status, body) = server
        .upload(GLOBEX, &gsid, "g.txt", Some("text/plain"), b"g".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.delete(&fs_path(&gsid, "src/main.py"), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.delete(&format!("/v1/sessions/{gsid}"), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        policy_view(&server, "globex").await["component"],
        Value::Null
    );

    // The operator lifts it: acme's own policy becomes allow-all, and the
    // terminal can be closed.
    policy_set(&server, "acme", Some(POLICY_ALLOW), None).await;
    let (status, body) = server.delete(&terminal_path(&sid, &tid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------
// policy-rules.

fn rules() -> Value {
    json!({"shell_allow": ["ls", "cat", "echo"], "deny_paths": ["**/.env", "secrets/**"]})
}

/// A server where acme runs `policy-rules` with `rules()`, set through the admin
/// API, over a session prepared before: returns it and acme's session.
async fn rules_server() -> (Server, String) {
    let server = admin_server("").await;
    let sid = server.session(ACME).await;
    for (path, content) in [
        (".env", "TOKEN=root\n"),
        ("sub/.env", "TOKEN=sub\n"),
        ("a/b/c/.env", "TOKEN=deep\n"),
        ("secrets/key", "key\n"),
        ("src/main.py", "print('main')\n"),
        ("victim", "still here\n"),
    ] {
        written(&server, ACME, &sid, path, content).await;
    }
    let view = policy_set(&server, "acme", Some(POLICY_RULES), Some(&rules())).await;
    assert_eq!(view["component"]["source"], "admin", "{view}");
    (server, sid)
}

#[tokio::test]
async fn policy_rules_run_only_allowed_programs_and_refuse_substitutions() {
    let (server, sid) = rules_server().await;
    for command in [
        "echo hi",
        "ls",
        "cat src/main.py",
        "echo a | cat",
        "echo a && echo b || echo c; ls",
        "GREETING=hi echo x",
        "/bin/echo path",
    ] {
        let (status, body) = shell(&server, ACME, &sid, command).await;
        assert_eq!(status, StatusCode::OK, "{command}: {body}");
        assert_eq!(body["exit_code"], 0, "{command}: {body}");
    }
    let (_, body) = shell(&server, ACME, &sid, "echo hi").await;
    assert_eq!(body["stdout"], "hi\n", "{body}");

    for (command, reason) in [
        ("rm -rf victim", "rm is not an allowed program"),
        ("echo ok; rm victim", "rm is not an allowed program"),
        ("echo ok && rm victim", "rm is not an allowed program"),
        ("echo ok || rm victim", "rm is not an allowed program"),
        ("echo ok | sh", "sh is not an allowed program"),
        ("echo ok & rm victim", "rm is not an allowed program"),
        ("echo ok\nrm victim", "rm is not an allowed program"),
        ("/bin/rm victim", "rm is not an allowed program"),
        ("X=1 rm victim", "rm is not an allowed program"),
        ("echo $(rm victim)", "command substitution"),
        ("echo `rm victim`", "command substitution"),
        ("cat <(rm victim)", "command substitution"),
    ] {
        let got = shell(&server, ACME, &sid, command).await;
        assert_denied(&got, &[reason]);
    }
    assert_denied(
        &shell(&server, ACME, &sid, "python3 -c 1").await,
        &["allowed: ls, cat, echo"],
    );
    // A background process is held to the same rule.
    let processes = format!("/v1/sessions/{sid}/resources/environments/default/processes");
    let started = server
        .post(&processes, ACME, json!({"command": "rm victim"}))
        .await;
    assert_denied(&started, &["rm is not an allowed program"]);
    let started = server
        .post(&processes, ACME, json!({"command": "cat"}))
        .await;
    assert_eq!(started.0, StatusCode::CREATED, "{started:?}");
    assert_eq!(
        on_disk(&server, &sid, "victim").as_deref(),
        Some("still here\n")
    );

    // globex is unaffected.
    let gsid = server.session(GLOBEX).await;
    let (status, body) = shell(
        &server,
        GLOBEX,
        &gsid,
        "touch x && rm -f x; echo $(echo ok)",
    )
    .await;
    assert_eq!(
        (status, &body["stdout"]),
        (StatusCode::OK, &json!("ok\n")),
        "{body}"
    );
}

#[tokio::test]
async fn policy_rules_deny_protected_paths_however_they_are_spelled() {
    let (server, sid) = rules_server().await;
    let (status, snapshot) = server
        .post(&env_path(&sid, "snapshots"), ACME, json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{snapshot}");
    let snapshot = snapshot["id"].as_str().unwrap().to_owned();
    for path in [
        ".env",
        "sub/.env",
        "a/b/c/.env",
        "secrets/key",
        "secrets/new",
        "secrets//key",
        // One segment holding `src/../.env` (a client would resolve a literal
        // `src/../.env` in the URL itself).
        "src%2F..%2F.env",
        "src%2F.%2F..%2Fsecrets%2Fkey",
    ] {
        let read = server.get(&fs_path(&sid, path), ACME).await;
        assert_denied(&read, &["is a protected path"]);
        let wrote = write(&server, ACME, &sid, path, "stolen").await;
        assert_denied(&wrote, &["is a protected path"]);
        assert_denied(
            &edit(&server, ACME, &sid, path).await,
            &["is a protected path"],
        );
        let deleted = server.delete(&fs_path(&sid, path), ACME).await;
        assert_denied(&deleted, &["is a protected path"]);
        let diff = server
            .get(&env_path(&sid, &format!("diff/{path}")), ACME)
            .await;
        assert_denied(&diff, &["is a protected path"]);
        let since = env_path(&sid, &format!("snapshots/{snapshot}/diff/{path}"));
        assert_denied(&server.get(&since, ACME).await, &["is a protected path"]);
    }
    let got = server.get(&fs_path(&sid, "src%2F..%2F.env"), ACME).await;
    assert_denied(&got, &[".env is a protected path"]);
    // Nothing was read out, written or removed.
    assert_eq!(
        on_disk(&server, &sid, ".env").as_deref(),
        Some("TOKEN=root\n")
    );
    assert_eq!(
        on_disk(&server, &sid, "secrets/key").as_deref(),
        Some("key\n")
    );
    assert_eq!(on_disk(&server, &sid, "secrets/new"), None);

    // Paths the patterns do not name are served.
    for path in [
        "src/main.py",
        "victim",
        ".envrc",
        "env",
        "secrets.txt",
        "sub/x.env",
    ] {
        let (status, body) = write(&server, ACME, &sid, path, "a").await;
        assert_eq!(status, StatusCode::OK, "write {path}: {body}");
        let (status, body) = server.get(&fs_path(&sid, path), ACME).await;
        assert_eq!(status, StatusCode::OK, "read {path}: {body}");
        assert_eq!(body["content"], "a", "{body}");
    }
    let (status, body) = edit(&server, ACME, &sid, "src/main.py").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.get(&env_path(&sid, "diff/src/main.py"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // `{a,b}` alternatives, with a new policy_config alone.
    let config = json!({"deny_paths": ["**/*.{key,pem}"]});
    policy_set(&server, "acme", None, Some(&config)).await;
    for path in ["server.pem", "certs/server.key", "a/b/c.pem"] {
        let got = write(&server, ACME, &sid, path, "k").await;
        assert_denied(&got, &[path, "is a protected path"]);
    }
    for path in ["server.crt", "certs/pem", ".env", "secrets/key"] {
        let (status, body) = write(&server, ACME, &sid, path, "k").await;
        assert_eq!(status, StatusCode::OK, "write {path}: {body}");
    }

    // globex is unaffected.
    let gsid = server.session(GLOBEX).await;
    written(&server, GLOBEX, &gsid, ".env", "mine").await;
    written(&server, GLOBEX, &gsid, "secrets/key", "mine").await;
    let (status, body) = server.get(&fs_path(&gsid, "secrets/key"), GLOBEX).await;
    assert_eq!(
        (status, &body["content"]),
        (StatusCode::OK, &json!("mine")),
        "{body}"
    );
    let (status, body) = server.delete(&fs_path(&gsid, ".env"), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn policy_rules_refuse_deleting_or_searching_a_directory_holding_protected_paths() {
    let (server, sid) = rules_server().await;
    let got = server
        .delete(&fs_path(&sid, "secrets?recursive=true"), ACME)
        .await;
    assert_denied(&got, &["secrets", "protected path", "(secrets/**)"]);
    let got = server.delete(&fs_path(&sid, "secrets"), ACME).await;
    assert_denied(&got, &["secrets", "protected path"]);
    assert_eq!(
        on_disk(&server, &sid, "secrets/key").as_deref(),
        Some("key\n")
    );

    // A search of the root reaches every protected path, however the root is named
    // (no `path` at all: `policy_rules_refuse_a_search_without_a_path`).
    for query in ["q=key&path=", "q=key&path=/", "q=key&path=."] {
        let got = server
            .get(&env_path(&sid, &format!("search?{query}")), ACME)
            .await;
        assert_denied(&got, &["/ holds protected paths"]);
    }
    let got = server
        .get(&env_path(&sid, "search?q=key&path=secrets"), ACME)
        .await;
    assert_denied(&got, &["secrets", "protected path"]);
    // A directory no pattern reaches into may be searched and deleted.
    let (status, body) = server
        .get(&env_path(&sid, "search?q=main&path=src"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["path"], "src/main.py", "{body}");
    let (status, body) = server
        .delete(&fs_path(&sid, "src?recursive=true"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // globex searches its root.
    let gsid = server.session(GLOBEX).await;
    written(&server, GLOBEX, &gsid, "secrets/key", "k").await;
    let (status, body) = server.get(&env_path(&gsid, "search?q=key"), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["path"], "secrets/key", "{body}");
}

/// A search without `path` searches the root, which holds every protected path:
/// it must be refused like `path=` is, not list (and so reveal) `secrets/key`.
#[tokio::test]
async fn policy_rules_refuse_a_search_without_a_path() {
    let (server, sid) = rules_server().await;
    let got = server.get(&env_path(&sid, "search?q=key"), ACME).await;
    assert_denied(&got, &["/ holds protected paths"]);
}

#[tokio::test]
async fn policy_rules_refuse_a_grep_reaching_protected_paths_and_allow_one_that_does_not() {
    let (server, sid) = rules_server().await;
    for query in ["pattern=key", "pattern=key&path=."] {
        let got = server
            .get(&env_path(&sid, &format!("grep?{query}")), ACME)
            .await;
        assert_denied(&got, &["/ holds protected paths"]);
    }
    let got = server
        .get(&env_path(&sid, "grep?pattern=key&path=secrets"), ACME)
        .await;
    assert_denied(&got, &["secrets", "protected path"]);
    let (status, body) = server
        .get(&env_path(&sid, "grep?pattern=main&path=src"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["text"], "print('main')", "{body}");
}

#[tokio::test]
async fn policy_rules_with_an_unreadable_config_deny_everything() {
    let server = admin_server("").await;
    let sid = server.session(ACME).await;
    for config in [
        json!({"shell_allow": "ls"}),
        json!({"deny": ["files.upload"]}),
        json!({"deny_paths": "secrets/**"}),
    ] {
        policy_set(&server, "acme", Some(POLICY_RULES), Some(&config)).await;
        let invalid = ["the tenant's policy_config is invalid"];
        assert_denied(&server.get("/v1/sessions", ACME).await, &invalid);
        assert_denied(&shell(&server, ACME, &sid, "echo").await, &invalid);
        assert_denied(&server.get(&fs_path(&sid, "x"), ACME).await, &invalid);
    }
    let (status, body) = server.get("/v1/sessions", GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------------------
// policy-uploads.

#[tokio::test]
async fn policy_uploads_limit_the_declared_size_and_content_type() {
    let server = admin_server("").await;
    let config = json!({"max_bytes": 1000, "content_types": ["image/*", "text/plain"]});
    policy_set(&server, "acme", Some(POLICY_UPLOADS), Some(&config)).await;
    let sid = server.session(ACME).await;
    let small = || vec![b'a'; 100];

    let mut stored = Vec::new();
    for content_type in [
        "text/plain",
        "text/plain; charset=utf-8",
        "TEXT/Plain",
        "image/PNG",
        "image/svg+xml",
    ] {
        let (status, file) = upload_typed(&server, ACME, &sid, Some(content_type), small()).await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {file}");
        stored.push(file["id"].as_str().unwrap().to_owned());
    }

    let got = upload_typed(&server, ACME, &sid, Some("text/plain"), vec![b'a'; 2000]).await;
    assert_denied(&got, &["uploads are limited to 1000 bytes"]);
    for content_type in [
        "application/x-msdownload",
        "text/html",
        "application/octet-stream",
    ] {
        let got = upload_typed(&server, ACME, &sid, Some(content_type), small()).await;
        assert_denied(
            &got,
            &[
                content_type,
                "uploads are not allowed",
                "image/*, text/plain",
            ],
        );
    }
    let got = upload_typed(&server, ACME, &sid, None, small()).await;
    assert_denied(&got, &["must declare its content type"]);
    // A chunked upload declares no size.
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(b"abc".to_vec())]);
    let part = multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("chunked.txt")
        .mime_str("text/plain")
        .unwrap();
    let got = send(
        unpooled()
            .post(server.url(&files_path(&sid)))
            .bearer_auth(ACME)
            .multipart(multipart::Form::new().part("file", part)),
    )
    .await;
    assert_denied(&got, &["must declare their size"]);
    // Denied uploads stored nothing.
    let mut listed = file_ids(&server, ACME, &sid).await;
    listed.reverse();
    assert_eq!(listed, stored);

    // Other operations are not this policy's business.
    let (status, body) = shell(&server, ACME, &sid, "echo ok").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .delete(&format!("{}/{}", files_path(&sid), stored[0]), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // globex is unaffected.
    let gsid = server.session(GLOBEX).await;
    let (status, body) = upload_typed(
        &server,
        GLOBEX,
        &gsid,
        Some("application/x-msdownload"),
        vec![b'a'; 2000],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A denied upload is answered before its body is read. The connection must then
/// either be told `Connection: close` or stay usable (the body drained), as the
/// host does for an upload over `max_upload_bytes`; dropping it silently fails
/// the client's next request on it.
#[tokio::test]
async fn a_denied_upload_closes_the_connection_or_keeps_it_usable() {
    let server = admin_server("").await;
    let config = json!({"content_types": ["text/plain"]});
    policy_set(&server, "acme", Some(POLICY_UPLOADS), Some(&config)).await;
    let sid = server.session(ACME).await;
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();
    let path = files_path(&sid);
    let next = raw_request("GET", "/v1/sessions", &addr, Some(ACME), "", b"");
    let bytes = vec![b'a'; 300_000];
    // The control: an allowed upload is read whole; the connection stays usable.
    let (form_type, form) = one_part_form("file", "a.txt", "text/plain", &bytes);
    let request = raw_request("POST", &path, &addr, Some(ACME), &form_type, &form);
    refusal_then_next(&addr, &request, 201, &next)
        .await
        .unwrap();

    let (form_type, form) = one_part_form("file", "a.exe", "application/x-msdownload", &bytes);
    let request = raw_request("POST", &path, &addr, Some(ACME), &form_type, &form);
    if let Err(failure) = refusal_then_next(&addr, &request, 403, &next).await {
        panic!("a denied upload: {failure}");
    }
}

// ---------------------------------------------------------------------------
// A policy that fails, and changing policies at runtime.

#[tokio::test]
async fn a_trapping_policy_set_at_runtime_fails_closed_for_that_tenant_only() {
    let server = admin_server("").await;
    let gsid = server.session(GLOBEX).await;
    let (status, body) = server.get(&files_path(&gsid), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let config = json!({"panic": ["files.list"]});
    policy_set(&server, "globex", Some(RULES_POLICY), Some(&config)).await;
    for _ in 0..3 {
        let got = server.get(&files_path(&gsid), GLOBEX).await;
        assert_denied(&got, &["the policy failed"]);
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(!message.contains("panicked"), "{message}");
        assert!(!message.contains("rules-policy told"), "{message}");
    }
    // Only that operation fails; the rest of globex's requests are served.
    let (status, body) = server.get("/v1/sessions", GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .upload(GLOBEX, &gsid, "g.txt", None, b"g".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // acme is unaffected.
    let sid = server.session(ACME).await;
    let (status, body) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A new policy_config alone: the component stays, the trap is gone, a denial
    // takes its place.
    let config = json!({"deny": ["files.upload"], "reason": "uploads are closed"});
    let view = policy_set(&server, "globex", None, Some(&config)).await;
    assert_eq!(
        view["component"]["sha256"],
        sha256_hex(RULES_POLICY),
        "{view}"
    );
    let (status, body) = server.get(&files_path(&gsid), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    let got = upload_typed(&server, GLOBEX, &gsid, None, b"h".to_vec()).await;
    assert_denied(&got, &["uploads are closed", "files.upload", "globex"]);
    assert_eq!(policy_view(&server, "globex").await, view);
    // A new component alone keeps the policy_config.
    let view = policy_set(&server, "globex", Some(POLICY_READ_ONLY), None).await;
    assert_eq!(view["policy_config"], config, "{view}");
}

#[tokio::test]
async fn an_admin_set_tenant_policy_survives_a_restart() {
    let mut server = admin_server("").await;
    let sid = server.session(ACME).await;
    let config = json!({"max_bytes": 10});
    let view = policy_set(&server, "acme", Some(POLICY_UPLOADS), Some(&config)).await;
    assert!(server.terminate(), "unclean exit: {}", server.stderr());
    server.spawn();
    assert_eq!(policy_view(&server, "acme").await, view);
    let got = upload_typed(&server, ACME, &sid, Some("text/plain"), vec![b'a'; 100]).await;
    assert_denied(&got, &["uploads are limited to 10 bytes"]);
    let gsid = server.session(GLOBEX).await;
    let (status, body) =
        upload_typed(&server, GLOBEX, &gsid, Some("text/plain"), vec![b'a'; 100]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

// ---------------------------------------------------------------------------
// From the config file.

#[tokio::test]
async fn a_tenant_policy_from_the_config_file_works_end_to_end_and_shows_in_the_admin_api() {
    let path = reshost_test_artifacts::POLICY_RULES.path;
    let server = admin_server(&format!(
        "[[tenants]]\nname = \"initech\"\ntokens = [\"initech-token\"]\npolicy = {path:?}\n\
         policy_config = {{ shell_allow = [\"echo\"], deny_paths = [\"secrets/**\"] }}\n"
    ))
    .await;
    const INITECH: &str = "initech-token";
    let view = policy_view(&server, "initech").await;
    assert_eq!(view["object"], "tenant.policy", "{view}");
    assert_eq!(view["tenant"], "initech", "{view}");
    let component = &view["component"];
    assert_eq!(
        component["sha256"],
        sha256_hex(&std::fs::read(path).unwrap()),
        "{view}"
    );
    assert_eq!(component["source"], path, "{view}");
    assert_eq!(component["world"], "policy", "{view}");
    assert_eq!(component["version"], "0.1.0", "{view}");
    assert_eq!(
        view["policy_config"],
        json!({"shell_allow": ["echo"], "deny_paths": ["secrets/**"]}),
        "{view}"
    );
    assert_eq!(
        policy_view(&server, "acme").await,
        json!({"object": "tenant.policy", "tenant": "acme", "component": null, "policy_config": {}})
    );

    let sid = server.session(INITECH).await;
    let (status, body) = shell(&server, INITECH, &sid, "echo ok").await;
    assert_eq!(
        (status, &body["stdout"]),
        (StatusCode::OK, &json!("ok\n")),
        "{body}"
    );
    assert_denied(
        &shell(&server, INITECH, &sid, "ls").await,
        &["ls is not an allowed program (allowed: echo)"],
    );
    written(&server, INITECH, &sid, "notes.txt", "n").await;
    assert_denied(
        &write(&server, INITECH, &sid, "secrets/a", "s").await,
        &["secrets/a is a protected path"],
    );
    // The other tenants keep the default policy.
    let asid = server.session(ACME).await;
    let (status, body) = shell(&server, ACME, &asid, "ls").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    written(&server, ACME, &asid, "secrets/a", "s").await;
}

// ---------------------------------------------------------------------------
// files-no-executables.

#[tokio::test]
async fn files_no_executables_refuses_every_executable_whatever_its_name_and_type() {
    let server = Server::with_config(&format!(
        "[components]\nfiles = {:?}\n",
        reshost_test_artifacts::FILES_NO_EXECUTABLES.path
    ))
    .await;
    let sid = server.session(ACME).await;
    for (bytes, kind) in [
        (ELF.to_vec(), "an ELF executable"),
        (b"MZ\x90\0\x03\0\0\0".to_vec(), "a Windows executable"),
        (b"MZ".to_vec(), "a Windows executable"),
        (
            b"\xfe\xed\xfa\xce\0\0\0\x0c".to_vec(),
            "a Mach-O executable",
        ),
        (
            b"\xfe\xed\xfa\xcf\0\0\0\x0c".to_vec(),
            "a Mach-O executable",
        ),
        (
            b"\xce\xfa\xed\xfe\x0c\0\0\0".to_vec(),
            "a Mach-O executable",
        ),
        (
            b"\xcf\xfa\xed\xfe\x0c\0\0\x01".to_vec(),
            "a Mach-O executable",
        ),
        (b"#!/bin/sh\nrm -rf /\n".to_vec(), "a script with a #! line"),
        (
            {
                let mut big = ELF.to_vec();
                big.resize(100_000, 0);
                big
            },
            "an ELF executable",
        ),
    ] {
        for (name, content_type) in [("notes.txt", Some("text/plain")), ("photo.png", None)] {
            let got = server
                .upload(ACME, &sid, name, content_type, bytes.clone())
                .await;
            assert_error(&got, 415, "unsupported_media_type");
            let message = got.1["error"]["message"].as_str().unwrap();
            assert!(message.contains(kind), "{message}");
        }
    }
    assert_eq!(file_ids(&server, ACME, &sid).await, Vec::<String>::new());

    let accepted: [(&str, &[u8]); 5] = [
        ("readme.md", b"# not a shebang\n"),
        ("empty.txt", b""),
        ("setup.exe", b"plain text called setup.exe"),
        (
            "late.bin",
            b"\0\x7fELF: the signature only counts at the start",
        ),
        ("M.txt", b"M"),
    ];
    for (name, bytes) in accepted {
        let (status, file) = server.upload(ACME, &sid, name, None, bytes.to_vec()).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {file}");
        assert!(screened(&file), "{file}");
        assert_eq!(file["metadata"]["bytes"], bytes.len(), "{file}");
        assert_eq!(file["metadata"]["sha256"], sha256_hex(bytes), "{file}");
        let response = server
            .request(
                Method::GET,
                &format!(
                    "{}/{}/content",
                    files_path(&sid),
                    file["id"].as_str().unwrap()
                ),
                Some(ACME),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&response.bytes().await.unwrap()[..], bytes);
    }
    assert_eq!(file_ids(&server, ACME, &sid).await.len(), accepted.len());
}

#[tokio::test]
async fn a_stored_component_that_no_longer_fits_the_host_gives_way_to_the_configs_at_start() {
    // What an upgrade meets: the data dir binds `environments` to a component
    // made for an older contract (here one of another world altogether).
    let mut server = admin_server("").await;
    let embedded = bound_sha(&server, "environments").await;
    server.kill();
    let stale = reshost_test_artifacts::FAULTY.wasm;
    reshost::testing::bind_stored(
        &server.data_dir(),
        reshost::testing::SlotName::Environments,
        stale,
    )
    .unwrap();
    server.spawn();
    let view = slot_view(&server, "environments").await;
    assert_eq!(view["component"]["sha256"], embedded, "{view}");
    assert_eq!(
        view["component"]["source"], "embedded:environments",
        "{view}"
    );
    let sid = server.session(ACME).await;
    let (status, body) = shell(&server, ACME, &sid, "echo served").await;
    assert_eq!(
        (status, &body["stdout"]),
        (StatusCode::OK, &json!("served\n")),
        "{body}"
    );
    assert!(server.stderr().contains("does not fit this host"));
}
