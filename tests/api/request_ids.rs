//! Request ids: a client's `X-Request-Id` (or one the server makes) comes back on
//! every answer, in error bodies, and in the server's log lines of that request,
//! as text or as JSON lines (`log_format`).

use crate::admin::{ADMIN, FILES, admin_server, slot_path};
use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A request with `id` as its `X-Request-Id`: the answer's id, status and body.
async fn with_id(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    id: Option<&str>,
) -> (String, StatusCode, Value) {
    let mut request = server.request(method, path, token);
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    let response = request.send().await.unwrap();
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = json_of(response).await;
    (echoed, status, body)
}

#[tokio::test]
async fn a_clients_request_id_is_echoed_on_answers_and_in_error_bodies() {
    let server = Server::start().await;
    let (id, status, _) = with_id(
        &server,
        Method::GET,
        "/v1/sessions",
        Some(ACME),
        Some("trace-1.a_B"),
    )
    .await;
    assert_eq!((id.as_str(), status), ("trace-1.a_B", StatusCode::OK));
    for (path, token, code) in [
        (
            format!("/v1/sessions/{UNKNOWN_SESSION}"),
            Some(ACME),
            "not_found",
        ),
        ("/v1/sessions".to_owned(), None, "unauthorized"),
        ("/nowhere".to_owned(), None, "not_found"),
    ] {
        let (id, _, body) = with_id(&server, Method::GET, &path, token, Some("trace-2")).await;
        assert_eq!(id, "trace-2");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["request_id"], "trace-2", "{body}");
    }
}

#[tokio::test]
async fn without_a_usable_request_id_the_server_makes_a_new_one_per_request() {
    let server = Server::start().await;
    let mut seen = Vec::new();
    for sent in [None, Some("has space"), Some(&*"x".repeat(129)), Some("")] {
        let (id, _, body) = with_id(&server, Method::GET, "/v1/nope", Some(ACME), sent).await;
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(body["error"]["request_id"], id.as_str(), "{body}");
        assert!(!seen.contains(&id), "{id} twice");
        seen.push(id);
    }
}

/// Swaps the files slot with request id `id`, which must succeed.
async fn swap_with_id(server: &Server, id: &str) {
    let response = server
        .request(Method::PUT, &slot_path("files"), Some(ADMIN))
        .header("x-request-id", id)
        .body(FILES.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_log_lines_of_a_request_carry_its_id() {
    let server = admin_server("").await;
    swap_with_id(&server, "swap-7").await;
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("slot swapped"))
        .unwrap_or_else(|| panic!("no swap logged: {log}"));
    assert!(line.contains("id=swap-7"), "{line}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_requests_id() {
    let config = format!("log_format = \"json\"\n[admin]\ntokens = [{ADMIN:?}]\n");
    let server = Server::with_config(&config).await;
    swap_with_id(&server, "swap-8").await;
    let log = server.stderr();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let swap = lines
        .iter()
        .find(|l| l["fields"]["message"] == "slot swapped")
        .unwrap_or_else(|| panic!("no swap logged: {log}"));
    assert_eq!(swap["span"]["id"], "swap-8", "{swap}");
    assert_eq!(swap["fields"]["slot"], "files", "{swap}");
}
