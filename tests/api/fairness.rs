//! One tenant cannot starve another: while a noisy tenant floods the server with
//! long shell commands and looping requests, a quiet tenant's reads and writes all
//! succeed. (`examples/bench_fairness.rs` measures the quiet tenant's latency.)

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_noisy_tenant_flooding_the_server_makes_no_request_of_a_quiet_one_fail() {
    // A small instance pool, as where the flood once denied the quiet tenant.
    let server = Arc::new(Server::with_config("[limits]\nmax_instances = 8\n").await);
    let (noisy, quiet) = (server.session(ACME).await, server.session(GLOBEX).await);
    let (status, file) = server
        .upload(GLOBEX, &quiet, "data.bin", None, vec![7u8; 1024])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let content = format!(
        "{}/{}/content",
        files_path(&quiet),
        file["id"].as_str().unwrap()
    );

    // The flood: 200 commands of 5 s at once (what the shell quota admits runs,
    // the rest is refused with 429) and 32 connections looping requests.
    let stop = Arc::new(AtomicBool::new(false));
    let shells: Vec<_> = (0..200)
        .map(|_| spawn_shell(&server, ACME, &noisy, "sleep 5"))
        .collect();
    let loops: Vec<_> = (0..32)
        .map(|_| {
            let (server, stop, path) = (server.clone(), stop.clone(), files_path(&noisy));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    server.get(&path, ACME).await;
                }
            })
        })
        .collect();

    // Meanwhile the quiet tenant reads a 1 KiB file and writes small files.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (done, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(4);
    let mut i = 0;
    while Instant::now() < until {
        let read = server
            .request(Method::GET, &content, Some(GLOBEX))
            .send()
            .await
            .unwrap();
        let read_ok = read.status() == StatusCode::OK && read.bytes().await.unwrap().len() == 1024;
        let (status, body) = send_json(
            &server,
            Method::PUT,
            &fs_url(&quiet, &format!("notes/{}.txt", i % 10)),
            GLOBEX,
            &json!({"content": format!("note {i}")}),
        )
        .await;
        for ok in [
            read_ok,
            status == StatusCode::OK || status == StatusCode::CREATED,
        ] {
            done.fetch_add(1, Ordering::Relaxed);
            if !ok {
                failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("quiet tenant request failed: {status} {body}");
            }
        }
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    // The flood is held back by the default shell quota (64 at once: 429) and,
    // on a slow machine, by admission (its requests wait for turns while the
    // quiet tenant is served: 503); never by anything else.
    let mut ran = 0;
    for shell in shells {
        match shell.await.unwrap().0 {
            StatusCode::OK => ran += 1,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("a noisy command answered {other}"),
        }
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        done.load(Ordering::Relaxed) >= 10,
        "only {done:?} quiet requests"
    );
    assert!(ran <= 64, "{ran} ran at once");
}

/// A server with one work turn whose `files` slot is the `faulty` component:
/// `GET …/files/spin` holds the turn for the slot's 1.5 s deadline.
fn one_turn(limits: &str) -> String {
    format!(
        "[limits]\nwork_turns = 1\n{limits}\n[slots.files]\ntimeout_ms = 1500\n\
         [components]\nfiles = {:?}\n",
        reshost_test_artifacts::FAULTY.path
    )
}

#[tokio::test]
async fn a_freed_work_turn_goes_to_the_tenant_waiting_not_to_the_floods_next_request() {
    let server = Arc::new(Server::with_config(&one_turn("admission_wait_ms = 20000")).await);
    let (noisy, quiet) = (server.session(ACME).await, server.session(GLOBEX).await);
    let spin = format!("{}/spin", files_path(&noisy));
    // Three spins queue for the one turn: 4.5 s of work, first come first served.
    let mut spins = Vec::new();
    for _ in 0..3 {
        spins.push(spawn_get(&server, ACME, spin.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let (status, body) = server.get(&files_path(&quiet), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let waited = started.elapsed();
    // Behind the spin that holds the turn, not behind the two queued after it.
    assert!(waited < Duration::from_millis(2500), "waited {waited:?}");
    for spin in spins {
        assert_error(&spin.await.unwrap(), 503, "component_timeout");
    }
}

#[tokio::test]
async fn a_request_that_gets_no_work_turn_in_time_is_503_server_busy_and_the_server_recovers() {
    let config = one_turn("admission_wait_ms = 300\nbusy_retry_after_s = 3");
    let server = Arc::new(Server::with_config(&config).await);
    let (noisy, quiet) = (server.session(ACME).await, server.session(GLOBEX).await);
    let spin = spawn_get(&server, ACME, format!("{}/spin", files_path(&noisy)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let response = server
        .request(Method::GET, &files_path(&quiet), Some(GLOBEX))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "3");
    assert_error(&json_of(response).await, 503, "server_busy");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_error(&spin.await.unwrap(), 503, "component_timeout");
    let (status, body) = server.get(&files_path(&quiet), GLOBEX).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
