//! `GET …/environments/default/events`: the workspace's file events as
//! Server-Sent Events, whoever made the change, filtered by globs, resumable
//! with `Last-Event-ID`, and `reset` when resuming is no longer possible.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(10);

fn events_path(sid: &str, query: &str) -> String {
    format!("{}/events{query}", env_url(sid))
}

async fn follow(server: &Server, sid: &str, query: &str, last: Option<&str>) -> Events {
    let mut request = server.request(reqwest::Method::GET, &events_path(sid, query), Some(ACME));
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Events::of(response)
}

/// The next `n` events as `(name, data)`, with the id of the last.
async fn take(events: &mut Events, n: usize) -> (Vec<(String, Value)>, String) {
    let mut got = Vec::new();
    let mut last = String::new();
    for _ in 0..n {
        let event = events.next(WITHIN).await;
        let event = event.unwrap_or_else(|| panic!("the stream ended after {got:?}"));
        last = event.id.clone().expect("an event without an id");
        got.push((event.name, event.data));
    }
    (got, last)
}

fn told(name: &str, path: &str) -> (String, Value) {
    (name.to_owned(), json!({"path": path}))
}

async fn write(server: &Server, sid: &str, path: &str, content: &str) {
    let response = server
        .request(reqwest::Method::PUT, &fs_url(sid, path), Some(ACME))
        .json(&json!({"content": content}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

async fn run(server: &Server, sid: &str, command: &str) {
    let (status, body) = server
        .post(&shell_path(sid), ACME, json!({"command": command}))
        .await;
    assert_eq!(
        (status, &body["exit_code"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );
}

#[tokio::test]
async fn writes_by_the_api_and_by_a_shell_command_arrive_as_they_happen() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut events = follow(&server, &sid, "", None).await;
    // The API writes atomically (a temporary file renamed into place).
    write(&server, &sid, "notes.txt", "one").await;
    run(
        &server,
        &sid,
        "echo x > b.txt; echo y >> b.txt; mv b.txt c.txt; rm notes.txt",
    )
    .await;
    let (got, _) = take(&mut events, 6).await;
    assert_eq!(
        got,
        [
            told("modified", "notes.txt"),
            told("created", "b.txt"),
            told("modified", "b.txt"),
            told("modified", "b.txt"),
            ("renamed".into(), json!({"path": "c.txt", "from": "b.txt"})),
            told("deleted", "notes.txt"),
        ]
    );
}

/// Waits until the watcher has handled every change made so far (`changes`
/// answers only then).
async fn settled(server: &Server, sid: &str) {
    let (status, _) = server.get(&format!("{}/changes", env_url(sid)), ACME).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn what_a_new_directory_holds_before_it_is_watched_is_told_once() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut events = follow(&server, &sid, "", None).await;
    // Made faster than the watcher can add a watch for each new directory.
    run(&server, &sid, "mkdir -p d/e/f && touch d/e/f/g").await;
    let (mut got, _) = take(&mut events, 4).await;
    got.sort_by(|a, b| a.1["path"].as_str().cmp(&b.1["path"].as_str()));
    let made = ["d", "d/e", "d/e/f", "d/e/f/g"].map(|p| told("created", p));
    assert_eq!(got, made);
    settled(&server, &sid).await;
    run(&server, &sid, "rm -r d; mkdir last").await;
    let (got, _) = take(&mut events, 5).await;
    let gone = ["d/e/f/g", "d/e/f", "d/e", "d"].map(|p| told("deleted", p));
    assert_eq!(got[..4], gone);
    // Nothing was told twice: the next event is the next change.
    assert_eq!(got[4], told("created", "last"));
}

#[tokio::test]
async fn a_client_that_reconnects_with_its_last_event_id_misses_nothing_and_repeats_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut events = follow(&server, &sid, "", None).await;
    run(&server, &sid, "mkdir one two three").await;
    let (first, last) = take(&mut events, 2).await;
    assert_eq!(first, [told("created", "one"), told("created", "two")]);
    drop(events);
    // Changed while nobody follows.
    run(&server, &sid, "mkdir four; rmdir one").await;
    let mut events = follow(&server, &sid, "", Some(&last)).await;
    let (rest, _) = take(&mut events, 3).await;
    assert_eq!(
        rest,
        [
            told("created", "three"),
            told("created", "four"),
            told("deleted", "one")
        ]
    );
    // Then live.
    run(&server, &sid, "mkdir five").await;
    let (live, _) = take(&mut events, 1).await;
    assert_eq!(live, [told("created", "five")]);
    drop(events);
    // A kept id given as a parameter resumes the same way.
    let query = format!("?last_event_id={}", pct(&last, false));
    let mut events = follow(&server, &sid, &query, None).await;
    let (again, _) = take(&mut events, 4).await;
    assert_eq!(again[0], told("created", "three"));
    assert_eq!(again[3], told("created", "five"));
}

#[tokio::test]
async fn resuming_past_what_the_ring_holds_or_across_a_restart_is_a_reset() {
    let mut server = Server::with_config("[limits]\nfile_event_ring = 4\n").await;
    let sid = server.session(ACME).await;
    let mut events = follow(&server, &sid, "", None).await;
    run(&server, &sid, "mkdir a").await;
    let (_, after_a) = take(&mut events, 1).await;
    run(&server, &sid, "mkdir b c d e f").await;
    take(&mut events, 5).await;
    drop(events);
    let mut events = follow(&server, &sid, "", Some(&after_a)).await;
    let reset = events.next(WITHIN).await.unwrap();
    assert_eq!(
        (reset.name.as_str(), &reset.data),
        ("reset", &json!({"reason": "expired"}))
    );
    // Resuming after the reset's id loses nothing from there on.
    run(&server, &sid, "mkdir g").await;
    let (next, _) = take(&mut events, 1).await;
    assert_eq!(next, [told("created", "g")]);
    drop(events);
    let resumed = reset.id.unwrap();
    server.kill();
    server.spawn();
    let mut events = follow(&server, &sid, "", Some(&resumed)).await;
    let reset = events.next(WITHIN).await.unwrap();
    assert_eq!(
        (reset.name.as_str(), &reset.data),
        ("reset", &json!({"reason": "restarted"}))
    );
    for garbage in ["nonsense", "", "1.2.3"] {
        let mut events = follow(&server, &sid, "", Some(garbage)).await;
        let reset = events.next(WITHIN).await.unwrap();
        assert_eq!(reset.name, "reset", "{garbage:?}");
    }
}

#[tokio::test]
async fn include_and_exclude_globs_choose_the_paths_followed() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    run(&server, &sid, "mkdir src").await;
    settled(&server, &sid).await;
    let mut events = follow(&server, &sid, "?include=src/**&exclude=**/*.log", None).await;
    run(
        &server,
        &sid,
        "touch top.txt src/a.rs src/b.log; mv top.txt src/top.txt; mv src/a.rs a.rs",
    )
    .await;
    let (got, _) = take(&mut events, 3).await;
    assert_eq!(
        got,
        [
            told("created", "src/a.rs"),
            (
                "renamed".into(),
                json!({"path": "src/top.txt", "from": "top.txt"})
            ),
            (
                "renamed".into(),
                json!({"path": "a.rs", "from": "src/a.rs"})
            ),
        ]
    );
}

#[tokio::test]
async fn deleting_the_session_ends_its_event_streams() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut events = follow(&server, &sid, "", None).await;
    let (status, _) = server.delete(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(status, StatusCode::OK);
    assert!(events.all(WITHIN).await.is_empty());
}

#[tokio::test]
async fn bad_event_requests_are_refused_with_the_error_body() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for query in ["?include=[", "?exclude=a{b"] {
        let got = server.get(&events_path(&sid, query), ACME).await;
        assert_error(&got, 400, "invalid_input");
    }
    let got = server
        .get(
            &format!("/v1/sessions/{sid}/resources/environments/other/events"),
            ACME,
        )
        .await;
    assert_error(&got, 404, "not_found");
    assert_error(
        &server.get(&events_path(UNKNOWN_SESSION, ""), ACME).await,
        404,
        "not_found",
    );
    assert_error(
        &server.get(&events_path(&sid, ""), GLOBEX).await,
        404,
        "not_found",
    );
    let response = server
        .request(reqwest::Method::POST, &events_path(&sid, ""), Some(ACME))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
