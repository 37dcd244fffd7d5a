//! The host caps what a component passes to a capability, whatever it asks: a
//! hostile `environments` handler that plans 10-hour commands, runs them through
//! `exec.run`, walks and greps the whole workspace gets what the operator configured.
//! (The terminals cap is in `terminals.rs`.)

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A server whose `environments` slot is the hostile handler, with `limits`.
async fn hostile(limits: &str) -> Server {
    Server::with_config(&format!(
        "[limits]\n{limits}\n[components]\nenvironments = {:?}\n",
        reshost_test_artifacts::HOSTILE_ENVIRONMENTS.path
    ))
    .await
}

/// Runs `sleep 30` through `method` `url`; the answer and how long it took.
async fn sleep_through(
    server: &Server,
    method: Method,
    url: &str,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, body) =
        send_json(server, method, url, ACME, &json!({"command": "sleep 30"})).await;
    (status, body, started.elapsed())
}

#[tokio::test]
async fn a_planned_command_asking_for_ten_hours_is_cut_at_the_configured_maximum() {
    let server = hostile("max_command_timeout_ms = 1000").await;
    let sid = server.session(ACME).await;
    let (status, body, took) = sleep_through(&server, Method::POST, &shell_path(&sid)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timed_out"], true, "{body}");
    assert_eq!(body["exit_code"], Value::Null, "{body}");
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn an_exec_run_asking_for_ten_hours_is_cut_at_the_configured_maximum() {
    let server = hostile("max_command_timeout_ms = 1000").await;
    let sid = server.session(ACME).await;
    let (status, body, took) = sleep_through(&server, Method::PUT, &fs_url(&sid, "x")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timed_out"], true, "{body}");
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Under the maximum a command runs to its end.
    let (status, body) = send_json(
        &server,
        Method::PUT,
        &fs_url(&sid, "x"),
        ACME,
        &json!({"command": "echo done"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["timed_out"], false, "{body}");
    assert_eq!(body["stdout"], "done\n", "{body}");
}

#[tokio::test]
async fn a_find_asking_to_walk_everything_stops_at_the_configured_maximum() {
    let server = hostile("max_find_visited = 20").await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    let search = format!("{}/search", env_url(&sid));
    for i in 0..10 {
        plant(&root, &format!("f{i}.txt"), "x");
    }
    let (status, body) = server.get(&search, ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"files": 10, "truncated": false}));
    for i in 10..50 {
        plant(&root, &format!("f{i}.txt"), "x");
    }
    let (status, body) = server.get(&search, ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["truncated"], true, "{body}");
    assert!(body["files"].as_u64().unwrap() <= 20, "{body}");
}

#[tokio::test]
async fn an_event_filter_no_glob_engine_takes_is_the_components_failure_not_a_crash() {
    let server = hostile("").await;
    let sid = server.session(ACME).await;
    let got = server.get(&format!("{}/events", env_url(&sid)), ACME).await;
    assert_error(&got, 500, "component_error");
    // The server goes on serving.
    let (status, _) = server.get(&format!("{}/search", env_url(&sid)), ACME).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_grep_asking_for_everything_gets_the_configured_matches_bytes_context_and_line_length() {
    let server = hostile(
        "max_grep_matches = 3\nmax_grep_file_bytes = 100\nmax_grep_context = 1\nmax_grep_line_bytes = 8",
    )
    .await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    for i in 0..5 {
        plant(
            &root,
            &format!("f{i}.txt"),
            "a\nb\nhit one long line\nc\nd\n",
        );
    }
    // Sorts first, but is larger than the file limit.
    plant(&root, "big.txt", format!("hit\n{}", "x".repeat(200)));
    let (status, body) = server.get(&format!("{}/grep", env_url(&sid)), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let one = |path: &str| json!({"path": path, "text": "hit one ", "before": 1, "after": 1});
    assert_eq!(
        body,
        json!({
            "matches": [one("f0.txt"), one("f1.txt"), one("f2.txt")],
            "has_more": true,
            "truncated": false,
        })
    );
}

#[tokio::test]
async fn a_process_planned_to_run_forever_ends_at_the_configured_maximum() {
    let server = hostile("max_command_timeout_ms = 1000").await;
    let sid = server.session(ACME).await;
    let processes = format!("{}/processes", env_url(&sid));
    let (status, started) = server
        .post(&processes, ACME, json!({"command": "sleep 30"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_str().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, process) = server.get(&format!("{processes}/{id}"), ACME).await;
        if process["running"] == false {
            assert_eq!(process["timed_out"], true, "{process}");
            break;
        }
        assert!(Instant::now() < until, "still running: {process}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_component_reaches_no_snapshot_of_another_session_nor_a_path_outside() {
    let server = hostile("").await;
    let sid = server.session(ACME).await;
    let snapshots = format!("{}/snapshots", env_url(&sid));
    let (status, taken) = server.post(&snapshots, ACME, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let path = format!("{snapshots}/{}/changes", taken["id"].as_str().unwrap());
    let (status, body) = server.get(&path, ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["named"], "Ok(false)");
    assert_eq!(body["made_up"], "Ok(false)");
}
