//! Admission: when every component instance is in use, a request waits a bounded
//! time in a bounded queue, then gets `503 server_busy` with `Retry-After` (never
//! a policy's `403` or a component's `500`), and the server recovers by itself.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The config of a server with two instances, whose `files` slot is the `faulty`
/// component: `GET …/files/spin` runs in wasm until the slot's 2 s deadline,
/// holding its instance all along. The work turns are more than the pool, so
/// that what runs out is the pool.
fn tiny_pool(limits: &str) -> String {
    format!(
        "[limits]\nmax_instances = 2\nwork_turns = 8\n{limits}\n[slots.files]\ntimeout_ms = 2000\n\
         [components]\nfiles = {:?}\n",
        reshost_test_artifacts::FAULTY.path
    )
}

/// Starts `n` requests that each hold an instance for the files slot's deadline.
fn hold_instances(
    server: &Arc<Server>,
    sid: &str,
    n: usize,
) -> Vec<JoinHandle<(StatusCode, Value)>> {
    (0..n)
        .map(|_| spawn_get(server, ACME, format!("{}/spin", files_path(sid))))
        .collect()
}

/// A `GET` of the session's environments: its status, `Retry-After`, body and time.
async fn list_environments(
    server: &Server,
    sid: &str,
    token: &str,
) -> (StatusCode, Option<String>, Value, Duration) {
    let started = Instant::now();
    let response = server
        .request(
            Method::GET,
            &format!("/v1/sessions/{sid}/resources/environments"),
            Some(token),
        )
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(response).await;
    (status, retry_after, body, started.elapsed())
}

/// The holders ran until their deadline (which is no capacity problem).
async fn assert_all_ran(holders: Vec<JoinHandle<(StatusCode, Value)>>) {
    for holder in holders {
        let got = holder.await.unwrap();
        assert_error(&got, 503, "component_timeout");
    }
}

#[tokio::test]
async fn an_exhausted_instance_pool_answers_503_server_busy_with_retry_after_and_recovers() {
    let config = tiny_pool("admission_wait_ms = 300\nbusy_retry_after_s = 2");
    let server = Arc::new(Server::with_config(&config).await);
    let (sid, other) = (server.session(ACME).await, server.session(GLOBEX).await);
    let holders = hold_instances(&server, &sid, 2);
    // Once both hold their instance, a request waits, then is refused.
    let deadline = Instant::now() + Duration::from_secs(2);
    let (status, retry_after, body, waited) = loop {
        let got = list_environments(&server, &sid, ACME).await;
        if got.0 != StatusCode::OK || Instant::now() > deadline {
            break got;
        }
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert!(
        waited >= Duration::from_millis(300),
        "answered after {waited:?}"
    );
    // Capacity is everyone's: another tenant is told the same, not denied.
    let (status, retry_after, body, _) = list_environments(&server, &other, GLOBEX).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"));

    // A terminal attach is told before the upgrade, not closed as a policy refusal.
    let attach = server
        .request(
            Method::GET,
            &format!("/v1/sessions/{sid}/resources/terminals/any/attach"),
            Some(ACME),
        )
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(attach.headers()["retry-after"], "2");
    assert_error(&json_of(attach).await, 503, "server_busy");

    assert_all_ran(holders).await;
    let (status, retry_after, body, _) = list_environments(&server, &sid, ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn requests_beyond_the_admission_queue_are_refused_at_once() {
    let config = tiny_pool("admission_wait_ms = 4000\nadmission_queue = 1");
    let server = Arc::new(Server::with_config(&config).await);
    let sid = server.session(ACME).await;
    let holders = hold_instances(&server, &sid, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let (server, sid) = (server.clone(), sid.clone());
            tokio::spawn(async move { list_environments(&server, &sid, ACME).await })
        })
        .collect();
    let mut refused_at_once = 0;
    for request in waiting {
        let (status, _, body, took) = request.await.unwrap();
        // The one in the queue gets an instance when a holder's deadline passes;
        // the others are refused without waiting.
        assert!(
            status == StatusCode::OK || body["error"]["code"] == "server_busy",
            "{status} {body}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE && took < Duration::from_millis(500) {
            refused_at_once += 1;
        }
    }
    assert_eq!(refused_at_once, 2);
    assert_all_ran(holders).await;
}

#[tokio::test]
async fn long_shell_commands_hold_no_instance_while_they_run() {
    let config = "[limits]\nmax_instances = 2\nadmission_wait_ms = 300\n";
    let server = Arc::new(Server::with_config(config).await);
    let sid = server.session(ACME).await;
    // Three times as many commands as instances, all running at once.
    let shells: Vec<_> = (0..6)
        .map(|_| spawn_shell(&server, ACME, &sid, "sleep 2; echo done"))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    for _ in 0..3 {
        let (status, _, body, _) = list_environments(&server, &sid, ACME).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for shell in shells {
        let (status, body) = shell.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["exit_code"].clone(), body["stdout"].clone()),
            (json!(0), json!("done\n"))
        );
    }
}
