//! `POST …/shell` streamed (`"stream": true` or `Accept: text/event-stream`):
//! output events as the command prints, then the answer as an `exit` event; a
//! client that goes away leaves the command running unless it asked otherwise.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};

const EVENTS_WITHIN: Duration = Duration::from_secs(30);

async fn streamed(server: &Server, sid: &str, body: Value) -> Events {
    let response = server
        .request(reqwest::Method::POST, &shell_path(sid), Some(ACME))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Events::of(response)
}

/// The lines of the workspace file `name` (none when it does not exist).
fn lines(server: &Server, sid: &str, name: &str) -> usize {
    std::fs::read_to_string(workspace(server, sid).join(name)).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn output_arrives_as_it_is_printed_and_the_exit_event_is_the_plain_answer() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    // Each line is the moment it was printed, in nanoseconds since the epoch.
    let command = "for i in 1 2 3 4; do sleep 0.5; date +%s%N; done; echo oops >&2; exit 7";
    let mut events = streamed(&server, &sid, json!({"command": command, "stream": true})).await;
    let all = events.all(EVENTS_WITHIN).await;
    let (output, last) = all.split_at(all.len() - 1);
    let mut printed = Vec::new();
    for event in output.iter().filter(|e| e.name == "stdout") {
        let text = event.data["text"].as_str().unwrap();
        for line in text.lines() {
            let at = UNIX_EPOCH + Duration::from_nanos(line.parse().unwrap());
            let late = event.at.duration_since(at).unwrap_or_default();
            assert!(
                late < Duration::from_millis(200),
                "{line} came {late:?} late"
            );
            printed.push(line.to_owned());
        }
    }
    assert_eq!(printed.len(), 4, "{all:?}");
    let stderr: Vec<_> = output.iter().filter(|e| e.name == "stderr").collect();
    assert_eq!(stderr.len(), 1, "{all:?}");
    assert_eq!(stderr[0].data, json!({"text": "oops\n"}));
    assert_eq!(last[0].name, "exit");
    let mut stdout = printed.join("\n");
    stdout.push('\n');
    assert_eq!(
        last[0].data,
        json!({"object": "session.environment.shell_result", "exit_code": 7, "stdout": stdout,
               "stderr": "oops\n", "stdout_truncated": false, "stderr_truncated": false,
               "timed_out": false, "cwd": ""})
    );
}

#[tokio::test]
async fn output_that_is_not_utf8_is_sent_as_base64_and_a_cut_character_whole() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    // "é" is cut between two writes; then a byte that is never UTF-8.
    let command = r"printf '\303'; sleep 0.3; printf '\251\n'; sleep 0.3; printf '\377'";
    let mut events = streamed(&server, &sid, json!({"command": command, "stream": true})).await;
    let all = events.all(EVENTS_WITHIN).await;
    let data: Vec<_> = all
        .iter()
        .filter(|e| e.name == "stdout")
        .map(|e| e.data.clone())
        .collect();
    assert_eq!(data, [json!({"text": "é\n"}), json!({"base64": "/w=="})]);
    assert_eq!(all.last().unwrap().name, "exit");
}

#[tokio::test]
async fn accepting_only_event_streams_streams_and_anything_else_answers_json() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ask = |accept: &'static str| {
        server
            .request(reqwest::Method::POST, &shell_path(&sid), Some(ACME))
            .header("accept", accept)
            .json(&json!({"command": "echo hi"}))
            .send()
    };
    let mut events = Events::of(ask("text/event-stream").await.unwrap());
    let all = events.all(EVENTS_WITHIN).await;
    let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["stdout", "exit"]);
    for accept in [
        "application/json",
        "*/*",
        "text/event-stream, application/json",
    ] {
        let (status, body) = json_of(ask(accept).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{accept}");
        assert_eq!(body["stdout"], "hi\n", "{accept}");
    }
}

/// Starts a command that adds a line to `ticks` every 0.2 s for 20 s (with a
/// timeout of 3 s), reads its first event, and goes away.
async fn start_and_leave(server: &Server, sid: &str, kill_on_disconnect: bool) {
    let command = "for i in $(seq 100); do echo $i >> ticks; echo $i; sleep 0.2; done";
    let body = json!({"command": command, "stream": true, "timeout": 3,
                      "kill_on_disconnect": kill_on_disconnect});
    let mut events = streamed(server, sid, body).await;
    let first = events.next(EVENTS_WITHIN).await.unwrap();
    assert_eq!(first.name, "stdout");
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_the_command_running_until_its_timeout() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    start_and_leave(&server, &sid, false).await;
    let left = lines(&server, &sid, "ticks");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = lines(&server, &sid, "ticks");
    assert!(
        later >= left + 4,
        "stopped with its client: {left} then {later}"
    );
    // Past the 3 s timeout it is killed with everything it started.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ended = lines(&server, &sid, "ticks");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(lines(&server, &sid, "ticks"), ended, "ran past its timeout");
    assert!(ended < 20, "ran {ended} ticks in 3 s");
}

#[tokio::test]
async fn a_client_that_asked_for_kill_on_disconnect_ends_the_command_by_going_away() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    start_and_leave(&server, &sid, true).await;
    // The next output finds the client gone: the command is killed then.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = lines(&server, &sid, "ticks");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        lines(&server, &sid, "ticks"),
        after,
        "ran on without its client"
    );
    assert!(after <= 5, "{after} ticks");
}

#[tokio::test]
async fn a_silent_command_learns_its_client_left_at_the_next_keepalive() {
    let server = Server::with_config("[limits]\nevent_keepalive_ms = 200\n").await;
    let sid = server.session(ACME).await;
    let body = json!({"command": "sleep 2; touch finished", "stream": true, "timeout": 10,
                      "kill_on_disconnect": true});
    let response = server
        .request(reqwest::Method::POST, &shell_path(&sid), Some(ACME))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(!workspace(&server, &sid).join("finished").exists());
}

#[tokio::test]
async fn bad_stream_requests_are_refused_before_anything_runs_or_streams() {
    let server = Server::with_config("[tenant_limits]\nshell_commands = 1\n").await;
    let sid = server.session(ACME).await;
    let refused = async |sid: &str, token: &str, body: Value| {
        json_of(
            server
                .request(reqwest::Method::POST, &shell_path(sid), Some(token))
                .header("accept", "text/event-stream")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    for body in [
        json!({"command": "touch ran", "stream": "yes"}),
        json!({"command": "touch ran", "stream": true, "kill_on_disconnect": 1}),
        json!({"command": "touch ran", "stream": true, "cwd": "../.."}),
        json!({"command": "touch ran", "stream": true, "cwd": "missing"}),
    ] {
        let got = refused(&sid, ACME, body.clone()).await;
        assert!(got.0.is_client_error(), "{body}: {got:?}");
        assert!(got.1["error"]["code"].is_string(), "{body}: {got:?}");
    }
    assert!(!workspace(&server, &sid).join("ran").exists());
    let body = json!({"command": "touch ran", "stream": true});
    assert_error(
        &refused(UNKNOWN_SESSION, ACME, body.clone()).await,
        404,
        "not_found",
    );
    assert_error(&refused(&sid, GLOBEX, body.clone()).await, 404, "not_found");
    // One command at a time for this tenant: a second is over the quota.
    let mut first = streamed(&server, &sid, json!({"command": "sleep 1", "stream": true})).await;
    let got = refused(&sid, ACME, body).await;
    assert_error(&got, 429, "quota_exceeded");
    let last = first.all(EVENTS_WITHIN).await;
    assert_eq!(last.last().unwrap().data["exit_code"], 0);
}
