//! Tenant quotas (`[tenant_limits]`, `[[tenants]] limits`): one request over a
//! concurrency, rate or count quota is `429 quota_exceeded` naming it, with
//! `Retry-After`; over the storage quota `507 insufficient_storage`; under them,
//! requests succeed; one tenant's use never counts against another's.

use crate::common::*;
use crate::terminals::{launch_as, session as terminal_session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const SMALL: &str = "small-token";

/// A tenant `small` with its own `limits` (TOML inline table), beside acme and globex.
fn small(limits: &str) -> String {
    format!("[[tenants]]\nname = \"small\"\ntokens = [\"{SMALL}\"]\nlimits = {limits}\n")
}

/// Asserts a `429 quota_exceeded` that names `quota` and says when to retry.
async fn assert_over(response: reqwest::Response, quota: &str) {
    let retry_after = response.headers().get("retry-after").cloned();
    let got = json_of(response).await;
    assert_error(&got, 429, "quota_exceeded");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(quota), "{message}");
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(seconds >= 1, "Retry-After {seconds}");
}

async fn create_session(server: &Server, token: &str) -> reqwest::Response {
    server
        .request(Method::POST, "/v1/sessions", Some(token))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_session_over_the_sessions_quota_is_refused_until_one_is_deleted() {
    let server = Server::with_config(&small("{ sessions = 1 }")).await;
    let first = server.session(SMALL).await;
    assert_over(create_session(&server, SMALL).await, "sessions").await;
    // Others' quotas are their own.
    server.session(ACME).await;
    server.session(ACME).await;
    let (status, body) = server.delete(&format!("/v1/sessions/{first}"), SMALL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.session(SMALL).await;
}

#[tokio::test]
async fn shell_commands_over_the_quota_are_refused_while_others_tenants_run_theirs() {
    let server = Arc::new(Server::with_config("[tenant_limits]\nshell_commands = 1\n").await);
    let (sid, other) = (server.session(ACME).await, server.session(GLOBEX).await);
    let long = spawn_shell(&server, ACME, &sid, "sleep 2");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let over = server
        .request(Method::POST, &shell_path(&sid), Some(ACME))
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    assert_over(over, "shell_commands").await;
    let (status, body) = server
        .post(&shell_path(&other), GLOBEX, json!({"command": "echo mine"}))
        .await;
    assert_eq!(
        (status, body["stdout"].clone()),
        (StatusCode::OK, json!("mine\n")),
        "{body}"
    );
    let (status, body) = long.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(&shell_path(&sid), ACME, json!({"command": "true"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn requests_over_the_rate_are_refused_with_when_to_retry() {
    let server =
        Server::with_config(&small("{ requests_per_second = 1, request_burst = 2 }")).await;
    let sid = server.session(SMALL).await; // the first of the burst
    let (status, body) = server.get(&format!("/v1/sessions/{sid}"), SMALL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let over = server
        .request(Method::GET, &format!("/v1/sessions/{sid}"), Some(SMALL))
        .send()
        .await
        .unwrap();
    assert_over(over, "requests_per_second").await;
    // Another tenant is not slowed down.
    for _ in 0..5 {
        let (status, body) = server.get("/v1/sessions", ACME).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The bucket refills at the rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = server.get(&format!("/v1/sessions/{sid}"), SMALL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn requests_over_the_in_flight_quota_are_refused() {
    let server = Arc::new(Server::with_config(&small("{ requests_in_flight = 1 }")).await);
    let sid = server.session(SMALL).await;
    let long = spawn_shell(&server, SMALL, &sid, "sleep 1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let over = server
        .request(Method::GET, "/v1/sessions", Some(SMALL))
        .send()
        .await
        .unwrap();
    assert_over(over, "requests_in_flight").await;
    let (status, body) = server.get("/v1/sessions", ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = long.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.get("/v1/sessions", SMALL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_terminal_over_the_terminals_quota_is_refused() {
    let server = Server::with_config("[tenant_limits]\nterminals = 1\n").await;
    let (sid, other) = (
        terminal_session(&server, ACME).await,
        terminal_session(&server, GLOBEX).await,
    );
    launch_as(&server, ACME, &sid, "one").await;
    let over = server
        .request(
            Method::POST,
            &format!("/v1/sessions/{sid}/resources/terminals"),
            Some(ACME),
        )
        .json(&json!({"terminal": "shell", "session_key": "two"}))
        .send()
        .await
        .unwrap();
    assert_over(over, "terminals").await;
    launch_as(&server, GLOBEX, &other, "one").await;
}

#[tokio::test]
async fn usage_shows_each_quota_beside_what_the_tenant_uses() {
    let config = format!(
        "[admin]\ntokens = [\"admin-token\"]\n{}",
        small("{ sessions = 5, shell_commands = 2, upload_bytes = 4096 }")
    );
    let server = Server::with_config(&config).await;
    let sid = server.session(SMALL).await;
    server.session(SMALL).await;
    let (status, body) = server
        .upload(SMALL, &sid, "a.bin", None, vec![1; 1000])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, usage) = server
        .get("/admin/v1/tenants/small/usage", "admin-token")
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["object"], "tenant.usage", "{usage}");
    assert_eq!(usage["tenant"], "small", "{usage}");
    assert_eq!(usage["sessions"], json!({"used": 2, "limit": 5}), "{usage}");
    assert_eq!(
        usage["shell_commands"],
        json!({"used": 0, "limit": 2}),
        "{usage}"
    );
    assert_eq!(usage["terminals"]["used"], 0, "{usage}");
    assert_eq!(
        usage["upload_bytes"],
        json!({"used": 1000, "limit": 4096}),
        "{usage}"
    );
    assert_eq!(usage["requests_in_flight"]["limit"], 256, "{usage}");
    // Another tenant's figures are its own.
    let (status, usage) = server
        .get("/admin/v1/tenants/acme/usage", "admin-token")
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(
        usage["sessions"],
        json!({"used": 0, "limit": 10000}),
        "{usage}"
    );
    // Unknown tenants, tenant tokens and other methods are refused.
    let got = server
        .get("/admin/v1/tenants/nobody/usage", "admin-token")
        .await;
    assert_error(&got, 404, "not_found");
    let got = server.get("/admin/v1/tenants/small/usage", SMALL).await;
    assert_error(&got, 401, "unauthorized");
    let got: (StatusCode, Value) = json_of(
        server
            .request(
                Method::DELETE,
                "/admin/v1/tenants/small/usage",
                Some("admin-token"),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 405, "method_not_allowed");
}

#[tokio::test]
async fn an_upload_over_the_storage_quota_is_refused_with_507_and_leaves_nothing() {
    let server = Server::with_config(&small("{ upload_bytes = 3000 }")).await;
    let sid = server.session(SMALL).await;
    let (status, first) = server
        .upload(SMALL, &sid, "a.bin", None, vec![1; 2000])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let got = server
        .upload(SMALL, &sid, "b.bin", None, vec![2; 2000])
        .await;
    assert_error(&got, 507, "insufficient_storage");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload_bytes"),
        "{}",
        got.1
    );
    // Nothing of the refused upload is kept: one file, and its bytes are all counted.
    let (_, list) = server.get(&files_path(&sid), SMALL).await;
    assert_eq!(assert_list(&list).len(), 1, "{list}");
    let (status, body) = server
        .upload(SMALL, &sid, "c.bin", None, vec![3; 900])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Another tenant's uploads are its own.
    let theirs = server.session(ACME).await;
    let (status, body) = server
        .upload(ACME, &theirs, "big.bin", None, vec![4; 8000])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Deleting a file makes room again.
    let id = first["id"].as_str().unwrap();
    let (status, body) = server
        .delete(&format!("{}/{id}", files_path(&sid)), SMALL)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .upload(SMALL, &sid, "d.bin", None, vec![5; 2000])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn what_shells_write_counts_from_the_next_walk_and_what_deletes_free_counts_at_once() {
    let config = format!(
        "[limits]\nworkspace_usage_refresh_ms = 100\n{}",
        small("{ workspace_bytes = 3000 }")
    );
    let server = Server::with_config(&config).await;
    let sid = server.session(SMALL).await;
    let (status, body) = put(&server, &sid, "a.txt", 1000).await;
    assert!(status.is_success(), "{status} {body}");
    // A shell writes 1,500 bytes, unchecked: 2,500 in all.
    let shell = json!({"command": "head -c 1500 /dev/zero > s.bin"});
    let (status, body) = send_json(&server, Method::POST, &shell_path(&sid), SMALL, &shell).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A write once the figure is old starts a walk, which then sees them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = put(&server, &sid, "b.txt", 10).await;
    assert!(status.is_success(), "{status} {body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = put(&server, &sid, "c.txt", 1000).await;
    assert_error(&got, 507, "insufficient_storage");
    // Deleting the shell's file makes room for the same write at once.
    let (status, body) = server.delete(&fs_url(&sid, "s.bin"), SMALL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(&server, &sid, "c.txt", 1000).await;
    assert!(status.is_success(), "{status} {body}");
}

/// `PUT`s a file of `bytes` bytes as the `small` tenant.
async fn put(server: &Server, sid: &str, path: &str, bytes: usize) -> (StatusCode, Value) {
    let body = json!({"content": "x".repeat(bytes)});
    send_json(server, Method::PUT, &fs_url(sid, path), SMALL, &body).await
}

#[tokio::test]
async fn a_write_over_the_workspace_quota_is_refused_with_507_and_changes_nothing() {
    let config = format!(
        "[admin]\ntokens = [\"admin-token\"]\n{}",
        small("{ workspace_bytes = 3000 }")
    );
    let server = Server::with_config(&config).await;
    let sid = server.session(SMALL).await;
    let (status, body) = put(&server, &sid, "a.txt", 2000).await;
    assert!(status.is_success(), "{status} {body}");
    let got = put(&server, &sid, "b.txt", 2000).await;
    assert_error(&got, 507, "insufficient_storage");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workspace_bytes"),
        "{}",
        got.1
    );
    let got = server.get(&fs_url(&sid, "b.txt"), SMALL).await;
    assert_error(&got, 404, "path_not_found");
    let (status, body) = put(&server, &sid, "c.txt", 500).await;
    assert!(status.is_success(), "{status} {body}");
    // Another tenant's workspaces are its own.
    let theirs = server.session(ACME).await;
    let body = json!({"content": "y".repeat(5000)});
    let (status, got) = send_json(
        &server,
        Method::PUT,
        &fs_url(&theirs, "big.txt"),
        ACME,
        &body,
    )
    .await;
    assert!(status.is_success(), "{status} {got}");
    let (status, usage) = server
        .get("/admin/v1/tenants/small/usage", "admin-token")
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(
        usage["workspace_bytes"],
        json!({"used": 2500, "limit": 3000}),
        "{usage}"
    );
}
