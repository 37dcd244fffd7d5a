//! `POST …/environments/default/shell`: commands run sandboxed in the session's
//! workspace, with a timeout that ends everything they started, and capped output.

use crate::common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn shell(server: &Server, sid: &str, body: Value) -> (reqwest::StatusCode, Value) {
    server.post(&shell_path(sid), ACME, body).await
}

#[tokio::test]
async fn exit_code_stdout_stderr_and_cwd_are_reported() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, body) = shell(
        &server,
        &sid,
        json!({"command": "echo out; echo err >&2; exit 3"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"object": "session.environment.shell_result", "exit_code": 3, "stdout": "out\n",
               "stderr": "err\n", "stdout_truncated": false, "stderr_truncated": false,
               "timed_out": false, "cwd": ""})
    );
    let (status, body) = shell(
        &server,
        &sid,
        json!({"command": "mkdir -p a/b && echo x > a/b/f"}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["exit_code"].clone()),
        (200, json!(0))
    );
    let (_, body) = shell(
        &server,
        &sid,
        json!({"command": "cat f; echo \"$GREETING\"", "cwd": "a/b", "env": {"GREETING": "hi"}}),
    )
    .await;
    assert_eq!(body["stdout"], "x\nhi\n");
    assert_eq!(body["cwd"], "a/b");
    // The file the shell wrote is what the filesystem API reads.
    let (_, file) = server
        .get(
            &format!("/v1/sessions/{sid}/resources/environments/default/filesystem/a/b/f"),
            ACME,
        )
        .await;
    assert_eq!(file["content"], "x\n");
}

#[tokio::test]
async fn invalid_utf8_output_is_replaced() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (_, body) = shell(&server, &sid, json!({"command": "printf 'a\\377b'"})).await;
    assert_eq!(body["stdout"], "a\u{FFFD}b");
}

#[tokio::test]
async fn a_timeout_kills_everything_the_command_started_within_a_second() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let started = Instant::now();
    // A duration unique to this test, to find the sleeps among the host's processes.
    let seconds = format!("100.{}", std::process::id());
    let (status, body) = shell(
        &server,
        &sid,
        json!({"command": format!("sleep {seconds} & (setsid sleep {seconds} &); echo before; sleep {seconds}"), "timeout": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(body["timed_out"], true);
    assert_eq!(body["exit_code"], Value::Null);
    assert_eq!(body["stdout"], "before\n", "output so far is kept");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        host_pids(&["sleep", &seconds]),
        Vec::<u32>::new(),
        "every sleep must be dead, the one in a session of its own too"
    );
}

#[tokio::test]
async fn output_over_the_cap_is_truncated_and_flagged() {
    let server = Server::with_config("[limits]\nshell_output_bytes = 1000\n").await;
    let sid = server.session(ACME).await;
    let (_, body) = shell(
        &server,
        &sid,
        json!({"command": "head -c 5000 /dev/zero | tr '\\0' a; echo e >&2"}),
    )
    .await;
    assert_eq!(body["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(body["stdout_truncated"], true);
    assert_eq!(body["stderr"], "e\n");
    assert_eq!(body["stderr_truncated"], false);
    assert_eq!(body["exit_code"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_one_second_shells_run_in_parallel() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let started = Instant::now();
    let runs = (0..8).map(|i| {
        let (server, sid) = (&server, &sid);
        async move {
            shell(
                server,
                sid,
                json!({"command": format!("sleep 1; echo {i}")}),
            )
            .await
        }
    });
    for (i, (status, body)) in futures_util::future::join_all(runs)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["stdout"], format!("{i}\n"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_shell_longer_than_the_component_deadline_is_not_cut_short() {
    let server = Server::with_config("[limits]\ncomponent_timeout_ms = 500\n").await;
    let sid = server.session(ACME).await;
    let (status, body) = shell(&server, &sid, json!({"command": "sleep 1.5; echo ok"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], "ok\n");
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for bad in [
        json!({}),
        json!({"command": "  "}),
        json!({"command": 5}),
        json!({"command": "true", "timeout": 0}),
        json!({"command": "true", "timeout": 3601}),
        json!({"command": "true", "timeout": "5"}),
        json!({"command": "true", "env": {"A": 1}}),
        json!({"command": "true", "env": {"1A": "x"}}),
        json!({"command": "true", "cwd": 7}),
        json!({"command": "true", "extra": 1}),
        // No NUL byte can reach a process (found by fuzzing: once a 500).
        json!({"command": "echo a\u{0}b"}),
        json!({"command": "true", "env": {"A": "x\u{0}y"}}),
    ] {
        let got = shell(&server, &sid, bad.clone()).await;
        assert_error(&got, 400, "invalid_input");
    }
    for cwd in ["../x", "a\u{0}b"] {
        let got = shell(&server, &sid, json!({"command": "true", "cwd": cwd})).await;
        assert_error(&got, 400, "invalid_path");
    }
    assert_error(
        &shell(&server, &sid, json!({"command": "true", "cwd": "nope"})).await,
        404,
        "path_not_found",
    );
    let link = workspace(&server, &sid).join("out");
    std::os::unix::fs::symlink("/tmp", link).unwrap();
    assert_error(
        &shell(&server, &sid, json!({"command": "true", "cwd": "out"})).await,
        403,
        "path_forbidden",
    );
    let other = server.session(GLOBEX).await;
    assert_error(
        &shell(&server, &other, json!({"command": "true"})).await,
        404,
        "not_found",
    );
    let got = server
        .post(
            &format!("/v1/sessions/{sid}/resources/environments/nope/shell"),
            ACME,
            json!({"command": "true"}),
        )
        .await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn the_host_caps_what_a_component_asks_for_a_command_at_max_command_timeout_ms() {
    let server = Server::with_config("[limits]\nmax_command_timeout_ms = 1000\n").await;
    let sid = server.session(ACME).await;
    let started = Instant::now();
    let (status, body) = shell(&server, &sid, json!({"command": "sleep 5", "timeout": 30})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timed_out"], true, "{body}");
    assert_eq!(body["exit_code"], Value::Null, "{body}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "ran {took:?}");
}

#[tokio::test]
async fn another_tenants_session_is_not_found_before_an_oversized_body_is_read() {
    let server = Server::start().await;
    let theirs = server.session(GLOBEX).await;
    let huge = json!({"command": "x".repeat(2 * 1024 * 1024)});
    let got = shell(&server, &theirs, huge.clone()).await;
    assert_error(&got, 404, "not_found");
    let launch = format!("/v1/sessions/{theirs}/resources/terminals");
    let got = server.post(&launch, ACME, huge).await;
    assert_error(&got, 404, "not_found");
}
