//! A misbehaving component (panics, endless loops, unbounded allocation) costs only
//! its own request: the host answers it with the API's error and keeps serving.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The `files` handler built from `components/faulty` by `host/build.rs`.
const FAULTY: &str = reshost_test_artifacts::FAULTY.path;

async fn faulty_server() -> Server {
    Server::with_config(&format!(
        "[limits]\ncomponent_timeout_ms = 1000\ncomponent_memory_bytes = 33554432\n\
         [components]\nfiles = {FAULTY:?}\n"
    ))
    .await
}

/// `GET …/files/{id}` with its status, body and how long it took.
async fn get_file(server: &Server, sid: &str, id: &str) -> ((StatusCode, Value), Duration) {
    let started = Instant::now();
    let got = server.get(&format!("{}/{id}", files_path(sid)), ACME).await;
    (got, started.elapsed())
}

/// A component error's message says what happened without host internals.
#[track_caller]
fn assert_clean_message(body: &Value) {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for leak in [FAULTY, "/work/", "panicked at", "wasm backtrace", ".rs:"] {
        assert!(!message.contains(leak), "message leaks {leak:?}: {message}");
    }
}

#[tokio::test]
async fn panicking_component_is_500_component_error() {
    let server = faulty_server().await;
    let sid = server.session(ACME).await;
    let (got, _) = get_file(&server, &sid, "panic").await;
    assert_error(&got, 500, "component_error");
    assert_clean_message(&got.1);
    // The same component answers the next request normally.
    let (got, _) = get_file(&server, &sid, "other").await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn spinning_component_is_503_component_timeout_at_its_deadline() {
    let server = faulty_server().await;
    let sid = server.session(ACME).await;
    let (got, elapsed) = get_file(&server, &sid, "spin").await;
    assert_error(&got, 503, "component_timeout");
    assert_clean_message(&got.1);
    assert!(
        elapsed < Duration::from_secs(3),
        "took {elapsed:?} for a 1 s deadline"
    );
    assert!(
        elapsed >= Duration::from_millis(500),
        "gave up after {elapsed:?}, before the 1 s deadline"
    );
    let (got, _) = get_file(&server, &sid, "other").await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn memory_hog_is_500_component_error_quickly() {
    let server = faulty_server().await;
    let sid = server.session(ACME).await;
    let (got, elapsed) = get_file(&server, &sid, "hog").await;
    assert_error(&got, 500, "component_error");
    assert_clean_message(&got.1);
    // Refused at the memory cap (500, not the deadline's 503): ~25 ms on an idle
    // machine; the bound leaves room for a loaded one running every test at once.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let (got, _) = get_file(&server, &sid, "other").await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn every_route_into_a_panicking_component_is_500_and_nothing_is_stored() {
    let server = faulty_server().await;
    let sid = server.session(ACME).await;
    let content = server
        .request(
            Method::GET,
            &format!("{}/panic/content", files_path(&sid)),
            Some(ACME),
        )
        .send()
        .await
        .unwrap();
    assert_error(&json_of(content).await, 500, "component_error");
    assert_error(
        &server
            .delete(&format!("{}/panic", files_path(&sid)), ACME)
            .await,
        500,
        "component_error",
    );
    // `create` panics too: the upload fails and nothing is listed.
    let got = server
        .upload(ACME, &sid, "x.bin", None, vec![1u8; 100_000])
        .await;
    assert_error(&got, 500, "component_error");
    let (status, list) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"], serde_json::json!([]));
    let other = server.session(ACME).await;
    let (got, _) = get_file(&server, &other, "nothing").await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn failed_upload_into_a_panicking_component_leaves_no_bytes() {
    let mut server = faulty_server().await;
    let sid = server.session(ACME).await;
    for _ in 0..3 {
        let got = server
            .upload(ACME, &sid, "x.bin", None, vec![9u8; 2 << 20])
            .await;
        assert_error(&got, 500, "component_error");
    }
    let stats = server.stop_and_count_blobs();
    assert_eq!(
        (stats.blobs, stats.chunks, stats.pending),
        (0, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthy_routes_keep_serving_while_faulty_calls_are_in_flight() {
    let server = std::sync::Arc::new(faulty_server().await);
    let sid = server.session(ACME).await;

    let mut faults = Vec::new();
    for what in ["spin", "spin", "hog", "panic"] {
        let (server, sid) = (server.clone(), sid.clone());
        faults.push(tokio::spawn(async move {
            (what, get_file(&server, &sid, what).await)
        }));
    }
    // Let them get going.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let mut healthy = Vec::new();
    for i in 0..50 {
        let (server, sid) = (server.clone(), sid.clone());
        healthy.push(tokio::spawn(async move {
            let path = match i % 3 {
                0 => "/v1/sessions".to_owned(),
                1 => format!("/v1/sessions/{sid}/resources/environments"),
                _ => files_path(&sid),
            };
            (path.clone(), server.get(&path, ACME).await)
        }));
    }
    for task in healthy {
        let (path, (status, body)) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        assert_eq!(body["object"], "list", "GET {path}: {body}");
    }
    let healthy_took = started.elapsed();

    for task in faults {
        let (what, (got, elapsed)) = task.await.unwrap();
        match what {
            "spin" => assert_error(&got, 503, "component_timeout"),
            _ => assert_error(&got, 500, "component_error"),
        }
        assert!(elapsed < Duration::from_secs(3), "{what} took {elapsed:?}");
    }
    assert!(
        healthy_took < Duration::from_secs(3),
        "50 healthy requests took {healthy_took:?} beside the faulty ones"
    );

    // And afterwards everything works as before.
    let (status, body) = server
        .post(
            "/v1/sessions",
            ACME,
            serde_json::json!({"metadata": {"after": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (got, _) = get_file(&server, &sid, "other").await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_serves_normally_after_many_faults() {
    let server = std::sync::Arc::new(faulty_server().await);
    let sid = server.session(ACME).await;
    // More faults than worker threads, all at once, twice over.
    for _ in 0..2 {
        let mut tasks = Vec::new();
        for what in [
            "spin", "hog", "panic", "spin", "hog", "panic", "spin", "hog",
        ] {
            let (server, sid) = (server.clone(), sid.clone());
            tasks.push(tokio::spawn(async move {
                (what, get_file(&server, &sid, what).await.0)
            }));
        }
        for task in tasks {
            let (what, got) = task.await.unwrap();
            match what {
                "spin" => assert_error(&got, 503, "component_timeout"),
                _ => assert_error(&got, 500, "component_error"),
            }
        }
    }
    let health = json_of(
        server
            .request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(health.0, StatusCode::OK);
    let sid2 = server.session(ACME).await;
    for path in [
        "/v1/sessions".to_owned(),
        format!("/v1/sessions/{sid2}/resources"),
        format!("/v1/sessions/{sid2}/resources/environments/default"),
        files_path(&sid2),
    ] {
        let (status, body) = server.get(&path, ACME).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    }
    let (got, elapsed) = get_file(&server, &sid2, "missing").await;
    assert_error(&got, 404, "not_found");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}
