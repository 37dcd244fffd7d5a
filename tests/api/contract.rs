//! The published contract and the operators' view: `GET /openapi.json` is the
//! committed `docs/openapi.json`, which names exactly the router's routes and
//! gives every answer with a body a schema; `GET /metrics` counts what happened.

use crate::common::*;
use reqwest::{Method, StatusCode};
use reshost::testing::ROUTES;
use serde_json::Value;
use std::collections::BTreeSet;

fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn the_served_openapi_is_the_committed_one_without_a_token() {
    let server = Server::start().await;
    let response = server
        .request(Method::GET, "/openapi.json", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), committed());
}

/// The (method, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[test]
fn the_openapi_document_names_exactly_the_routers_routes() {
    let doc: Value = serde_json::from_str(&committed()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let documented = operations(&doc);
    // `HEAD /healthz` is `GET`'s twin, which HTTP implies.
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|(method, _, _)| *method != "HEAD")
        .map(|(method, template, _)| (method.to_string(), template.to_string()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
}

/// `#/components/…` references resolved.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference}")),
            )
        }
        None => value,
    }
}

#[test]
fn every_documented_answer_with_a_body_has_a_schema() {
    let doc: Value = serde_json::from_str(&committed()).unwrap();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                if ["101", "204", "304"].contains(&status.as_str()) {
                    continue;
                }
                let response = resolve(&doc, response);
                let content = response["content"].as_object();
                let has_schemas = content.is_some_and(|content| {
                    !content.is_empty()
                        && content.values().all(|media| media.get("schema").is_some())
                });
                if !has_schemas {
                    missing.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "answers without a schema: {missing:?}");
}

#[tokio::test]
async fn a_scrape_after_some_requests_shows_the_series_that_moved() {
    let config = format!("[metrics]\ntokens = [{METRICS_TOKEN:?}]\n");
    let server = Server::with_config(&config).await;
    let sid = server.session(ACME).await;
    let before = scrape_metrics(&server).await;
    for _ in 0..3 {
        assert_eq!(server.get("/v1/sessions", ACME).await.0, StatusCode::OK);
    }
    let (status, file) = server
        .upload(ACME, &sid, "a.bin", None, vec![1u8; 3000])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let content = format!(
        "{}/{}/content",
        files_path(&sid),
        file["id"].as_str().unwrap()
    );
    let got = server
        .request(Method::GET, &content, Some(ACME))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().len(), 3000);
    let (status, _) = server
        .get(&format!("/v1/sessions/{UNKNOWN_SESSION}"), ACME)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = scrape_metrics(&server).await;

    let moved = |series: &str| metric_value(&after, series) - metric_value(&before, series);
    let requests = |route: &str, method: &str, status: u16| {
        format!(
            "reshost_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(moved(&requests("/v1/sessions", "GET", 200)), 3.0, "{after}");
    assert_eq!(
        moved(&requests("/v1/sessions/{session_id}", "GET", 404)),
        1.0,
        "{after}"
    );
    let upload = requests("/v1/sessions/{session_id}/resources/files", "POST", 201);
    assert_eq!(moved(&upload), 1.0, "{after}");
    let latency = "reshost_http_request_duration_seconds_count{route=\"/v1/sessions\",method=\"GET\",status=\"200\"}";
    assert_eq!(moved(latency), 3.0, "{after}");
    let files_ok = "reshost_component_call_duration_seconds_count{slot=\"files\",outcome=\"ok\"}";
    assert_eq!(moved(files_ok), 2.0, "{after}");
    let policy_ok = "reshost_component_call_duration_seconds_count{slot=\"policy\",outcome=\"ok\"}";
    assert!(moved(policy_ok) >= 3.0, "{after}");
    assert_eq!(moved("reshost_uploaded_bytes_total"), 3000.0, "{after}");
    assert_eq!(moved("reshost_downloaded_bytes_total"), 3000.0, "{after}");
    assert_eq!(metric_value(&after, "reshost_sessions"), 1.0, "{after}");
    assert_eq!(
        metric_value(&after, "reshost_instances_capacity"),
        1000.0,
        "{after}"
    );
    assert!(
        metric_value(&after, "reshost_database_bytes") > 0.0,
        "{after}"
    );
    for gauge in [
        "reshost_instances_in_use",
        "reshost_terminals_running",
        "reshost_terminal_clients_attached",
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(gauge)),
            "{gauge}: {after}"
        );
    }
    assert!(after.contains("reshost_watch_overflows_total"), "{after}");
}

#[tokio::test]
async fn a_component_that_traps_or_runs_too_long_is_counted_by_outcome() {
    let config = format!(
        "[metrics]\ntokens = [{METRICS_TOKEN:?}]\n[slots.files]\ntimeout_ms = 300\n[components]\nfiles = {:?}\n",
        reshost_test_artifacts::FAULTY.path
    );
    let server = Server::with_config(&config).await;
    let sid = server.session(ACME).await;
    assert_eq!(
        server
            .get(&format!("{}/panic", files_path(&sid)), ACME)
            .await
            .0,
        500
    );
    assert_eq!(
        server
            .get(&format!("{}/spin", files_path(&sid)), ACME)
            .await
            .0,
        503
    );
    let after = scrape_metrics(&server).await;
    for outcome in ["trap", "timeout"] {
        let series = format!(
            "reshost_component_call_duration_seconds_count{{slot=\"files\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(metric_value(&after, &series), 1.0, "{outcome}: {after}");
    }
}

#[tokio::test]
async fn metrics_need_a_metrics_token_and_are_off_without_any() {
    let off = Server::start().await;
    let (status, body) = off.get("/metrics", ACME).await;
    assert_error(&(status, body), 404, "not_found");

    let config =
        format!("[metrics]\ntokens = [{METRICS_TOKEN:?}]\n[admin]\ntokens = [\"admin-token\"]\n");
    let on = Server::with_config(&config).await;
    for token in [None, Some(ACME), Some("admin-token"), Some("wrong")] {
        let response = on
            .request(Method::GET, "/metrics", token)
            .send()
            .await
            .unwrap();
        assert_error(&json_of(response).await, 401, "unauthorized");
    }
    let config = "[metrics]\nadmin_tokens = true\n[admin]\ntokens = [\"admin-token\"]\n";
    let admin = Server::with_config(config).await;
    let response = admin
        .request(Method::GET, "/metrics", Some("admin-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Waits (up to 5 s) for `series` to read `expected`.
async fn until(server: &Server, series: &str, expected: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = metric_value(&scrape_metrics(server).await, series);
        if got == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} stayed {got}, not {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_attached_clients_gauge_follows_terminal_clients() {
    use crate::terminals::{attach, launch_shell, session};
    let server = Server::with_config(&format!("[metrics]\ntokens = [{METRICS_TOKEN:?}]\n")).await;
    let sid = session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "main").await;
    let gauge = "reshost_terminal_clients_attached";
    let attached = metric_value(&scrape_metrics(&server).await, gauge);
    let client = attach(&server, &sid, &tid, "").await;
    until(&server, gauge, attached + 1.0).await;
    assert_eq!(
        metric_value(&scrape_metrics(&server).await, "reshost_terminals_running"),
        1.0
    );
    drop(client);
    until(&server, gauge, attached).await;
}

#[tokio::test]
async fn healthz_answers_get_and_head_without_a_token() {
    let server = Server::start().await;
    let (status, body) = json_of(
        server
            .request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    let head = server
        .request(Method::HEAD, "/healthz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
}
