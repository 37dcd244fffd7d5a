//! Background processes (`…/environments/{env}/processes`): they outlive the
//! request that started them, take stdin, are signalled, and their output is
//! read back by byte offset or as a resumable event stream; they end with
//! their session and the server, and a restarted server lists them as ended.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(30);

fn processes(sid: &str) -> String {
    format!("{}/processes", env_url(sid))
}

fn process(sid: &str, id: &str) -> String {
    format!("{}/{id}", processes(sid))
}

/// Starts `body` as a process of the session; its id.
async fn start(server: &Server, sid: &str, body: Value) -> String {
    let (status, process) = server.post(&processes(sid), ACME, body).await;
    assert_eq!(status, StatusCode::CREATED, "{process}");
    assert_eq!(process["object"], "process");
    let id = process["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("proc_"), "{id}");
    id
}

async fn stdin(
    server: &Server,
    sid: &str,
    id: &str,
    bytes: &[u8],
    eof: bool,
) -> (StatusCode, Value) {
    let path = format!("{}/stdin?eof={eof}", process(sid, id));
    let request = server.request(Method::POST, &path, Some(ACME));
    json_of(request.body(bytes.to_vec()).send().await.unwrap()).await
}

async fn signal(server: &Server, sid: &str, id: &str, signal: Value) -> (StatusCode, Value) {
    let path = format!("{}/signal", process(sid, id));
    server.post(&path, ACME, json!({ "signal": signal })).await
}

/// The process once it has ended (panics if it runs on past `WITHIN`).
async fn ended(server: &Server, sid: &str, id: &str) -> Value {
    let until = tokio::time::Instant::now() + WITHIN;
    loop {
        let (status, body) = server.get(&process(sid, id), ACME).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["running"] == false {
            return body;
        }
        assert!(tokio::time::Instant::now() < until, "still running: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until one process runs `argv` on the host (a sandbox takes a moment
/// to start, more on a loaded machine).
async fn until_running(argv: &[&str]) {
    let until = tokio::time::Instant::now() + WITHIN;
    while host_pids(argv).len() != 1 {
        assert!(tokio::time::Instant::now() < until, "{argv:?} never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events(server: &Server, sid: &str, id: &str, last: Option<&str>) -> Events {
    let path = format!("{}/events", process(sid, id));
    let mut request = server.request(Method::GET, &path, Some(ACME));
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Events::of(response)
}

/// The text of output events of `stream`.
fn text_of(events: &[Event], stream: &str) -> String {
    events
        .iter()
        .filter(|e| e.name == stream)
        .map(|e| e.data["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_process_outlives_its_request_takes_stdin_and_is_read_back_in_full_after_a_reconnect() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let command = "echo ready; while read line; do echo out:$line; echo err:$line >&2; done; echo bye; exit 5";
    let id = start(&server, &sid, json!({"command": command})).await;
    // The creating request is over; the process runs on and reads its stdin.
    let mut first = events(&server, &sid, &id, None).await;
    let ready = first.next(WITHIN).await.unwrap();
    assert_eq!(
        (ready.name.as_str(), &ready.data),
        ("stdout", &json!({"text": "ready\n"}))
    );
    assert_eq!(ready.id.as_deref(), Some("6.0"));
    let (status, body) = stdin(&server, &sid, &id, b"one\n", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "process.stdin", "process_id": id, "written": 4, "stdin_open": true})
    );
    let mut seen = vec![ready];
    while seen.len() < 3 {
        seen.push(first.next(WITHIN).await.unwrap());
    }
    // The client goes away; more is written meanwhile.
    drop(first);
    stdin(&server, &sid, &id, b"two\nthree\n", true).await;
    let last = seen.last().unwrap().id.clone().unwrap();
    let rest = events(&server, &sid, &id, Some(&last))
        .await
        .all(WITHIN)
        .await;
    let (output, exit) = rest.split_at(rest.len() - 1);
    seen.extend(output.iter().map(|e| Event {
        id: e.id.clone(),
        name: e.name.clone(),
        data: e.data.clone(),
        at: e.at,
    }));
    assert_eq!(
        text_of(&seen, "stdout"),
        "ready\nout:one\nout:two\nout:three\nbye\n"
    );
    assert_eq!(text_of(&seen, "stderr"), "err:one\nerr:two\nerr:three\n");
    assert!(
        seen.iter()
            .all(|e| e.name == "stdout" || e.name == "stderr"),
        "{seen:?}"
    );
    assert_eq!(exit[0].name, "exit");
    assert_eq!(exit[0].data["exit_code"], 5);
    assert_eq!(exit[0].data["running"], false);
    assert_eq!(exit[0].data["stdout_bytes"], 36);
    assert_eq!(exit[0].data["stderr_bytes"], 26);
    assert_eq!(exit[0].id.as_deref(), Some("36.26"));
    // The process object says the same.
    let done = ended(&server, &sid, &id).await;
    assert_eq!(done["exit_code"], 5);
    assert_eq!(done["timed_out"], false);
    assert_eq!(done["stdin_open"], false);
    assert!(done["ended_at"].as_i64().unwrap() >= done["started_at"].as_i64().unwrap());
    // Reading the output by offset gives the same bytes.
    let (status, out) = server
        .get(&format!("{}/output?after=6", process(&sid, &id)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out,
        json!({"object": "process.output", "process_id": id, "stream": "stdout", "after": 6,
               "start": 6, "next": 36, "lost": 0, "text": "out:one\nout:two\nout:three\nbye\n",
               "running": false, "exit_code": 5})
    );
}

#[tokio::test]
async fn a_signal_reaches_the_command_and_its_whole_process_group() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let trap = "trap 'echo caught USR1' USR1; echo ready; while true; do sleep 0.05; done";
    let id = start(&server, &sid, json!({"command": trap})).await;
    let mut stream = events(&server, &sid, &id, None).await;
    assert_eq!(
        stream.next(WITHIN).await.unwrap().data,
        json!({"text": "ready\n"})
    );
    let (status, body) = signal(&server, &sid, &id, json!("usr1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "process.signal", "process_id": id, "signal": "SIGUSR1"})
    );
    // The shell's foreground child (a `sleep`) is in its group too: when the
    // signal ends it, the shell says so on stderr before its trap runs.
    loop {
        let event = stream.next(WITHIN).await.unwrap();
        if event.name == "stdout" {
            assert_eq!(event.data, json!({"text": "caught USR1\n"}));
            break;
        }
        assert_eq!(
            event.data,
            json!({"text": "User defined signal 1\n"}),
            "{event:?}"
        );
    }
    assert_eq!(
        signal(&server, &sid, &id, json!(15)).await.0,
        StatusCode::OK
    );
    assert_eq!(ended(&server, &sid, &id).await["exit_code"], 143);

    // A shell that waits on a child: both get the signal, as with Ctrl-C.
    let id = start(&server, &sid, json!({"command": "sleep 4242; echo after"})).await;
    until_running(&["sleep", "4242"]).await;
    assert_eq!(
        signal(&server, &sid, &id, json!("SIGINT")).await.0,
        StatusCode::OK
    );
    let done = ended(&server, &sid, &id).await;
    assert_eq!(done["exit_code"], 130, "{done}");
    assert_eq!(done["stdout_bytes"], 0, "the shell went on: {done}");
    assert!(host_pids(&["sleep", "4242"]).is_empty());
}

#[tokio::test]
async fn a_signal_sent_as_the_process_starts_is_not_lost() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for _ in 0..5 {
        let id = start(&server, &sid, json!({"command": "sleep 30"})).await;
        let (status, body) = signal(&server, &sid, &id, json!("TERM")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(ended(&server, &sid, &id).await["exit_code"], 143);
    }
}

#[tokio::test]
async fn output_by_offset_pages_through_the_ring_and_counts_what_it_lost() {
    let server = Server::with_config("[limits]\nprocess_output_bytes = 1024\n").await;
    let sid = server.session(ACME).await;
    // 3000 bytes: lines of 9 digits and a newline.
    let command = "seq 100000000 100000299";
    let id = start(&server, &sid, json!({"command": command})).await;
    ended(&server, &sid, &id).await;
    let output = |query: &str| {
        let path = format!("{}/output?{query}", process(&sid, &id));
        let server = &server;
        async move { server.get(&path, ACME).await }
    };
    let all: String = (100000000..100000300).map(|n| format!("{n}\n")).collect();
    let (status, body) = output("after=0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["start"].as_u64(), body["next"].as_u64()),
        (Some(1976), Some(3000))
    );
    assert_eq!(body["lost"], 1976);
    assert_eq!(body["text"], all[1976..]);
    let (_, body) = output("after=2000&limit=10").await;
    assert_eq!(
        (body["start"].as_u64(), body["next"].as_u64()),
        (Some(2000), Some(2010))
    );
    assert_eq!(body["text"], all[2000..2010]);
    let (_, body) = output("after=3000").await;
    assert_eq!(
        (body["text"].as_str(), body["lost"].as_u64()),
        (Some(""), Some(0))
    );
    let (_, body) = output("stream=stderr").await;
    assert_eq!(
        (body["stream"].as_str(), body["next"].as_u64()),
        (Some("stderr"), Some(0))
    );
    // The event stream says what it can no longer send.
    let got = events(&server, &sid, &id, None).await.all(WITHIN).await;
    assert_eq!(got[0].name, "gap");
    assert_eq!(
        got[0].data,
        json!({"stream": "stdout", "from": 0, "to": 1976})
    );
    assert_eq!(got[0].id.as_deref(), Some("1976.0"));
    assert_eq!(text_of(&got, "stdout"), all[1976..]);
    assert_eq!(got.last().unwrap().name, "exit");
    for bad in [
        "after=3001",
        "after=-1",
        "after=x",
        "limit=0",
        "limit=1025",
        "stream=stdin",
    ] {
        assert_error(&output(bad).await, 400, "invalid_input");
    }
}

#[tokio::test]
async fn output_that_is_not_utf8_comes_as_base64_and_a_cut_character_whole() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    // "é" split over two writes, then a byte that is never UTF-8.
    let command = r"printf 'caf\303'; sleep 0.3; printf '\251\n'; sleep 0.3; printf '\377'";
    let id = start(&server, &sid, json!({"command": command})).await;
    let got = events(&server, &sid, &id, None).await.all(WITHIN).await;
    let data: Vec<&Value> = got
        .iter()
        .filter(|e| e.name == "stdout")
        .map(|e| &e.data)
        .collect();
    // Read as written (the pauses part the writes), unless the server was too
    // busy to read before the second: then the character came whole anyway.
    let split = [
        &json!({"text": "caf"}),
        &json!({"text": "é\n"}),
        &json!({"base64": "/w=="}),
    ];
    let merged = [&json!({"text": "café\n"}), &json!({"base64": "/w=="})];
    assert!(data == split || data == merged, "{got:?}");
}

#[tokio::test]
async fn a_timeout_ends_a_process_and_everything_it_started() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let command = "sleep 4343 & sleep 4344";
    let id = start(&server, &sid, json!({"command": command, "timeout": 1})).await;
    let done = ended(&server, &sid, &id).await;
    assert_eq!(
        (done["timed_out"].as_bool(), &done["exit_code"]),
        (Some(true), &Value::Null)
    );
    assert!(host_pids(&["sleep", "4343"]).is_empty());
    assert!(host_pids(&["sleep", "4344"]).is_empty());
}

#[tokio::test]
async fn delete_kills_the_process_and_forgets_it() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let id = start(&server, &sid, json!({"command": "sleep 4545 & sleep 4546"})).await;
    until_running(&["sleep", "4546"]).await;
    let (status, body) = server.delete(&process(&sid, &id), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"id": id, "object": "process.deleted", "deleted": true})
    );
    assert!(host_pids(&["sleep", "4545"]).is_empty());
    assert!(host_pids(&["sleep", "4546"]).is_empty());
    assert_error(
        &server.get(&process(&sid, &id), ACME).await,
        404,
        "not_found",
    );
    assert_error(
        &server.delete(&process(&sid, &id), ACME).await,
        404,
        "not_found",
    );
    let (_, list) = server.get(&processes(&sid), ACME).await;
    assert!(assert_list(&list).is_empty());
}

#[tokio::test]
async fn the_list_is_paginated_newest_first() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(start(&server, &sid, json!({"command": format!("exit {n}")})).await);
    }
    let (status, page) = server
        .get(&format!("{}?limit=2", processes(&sid)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(assert_list(&page), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(page["has_more"], true);
    let next = format!("{}?limit=2&after={}", processes(&sid), ids[1]);
    let (_, page) = server.get(&next, ACME).await;
    assert_eq!(assert_list(&page), [ids[0].clone()]);
    assert_eq!(page["has_more"], false);
    let (_, page) = server
        .get(&format!("{}?order=asc", processes(&sid)), ACME)
        .await;
    assert_eq!(assert_list(&page), ids);
    assert_error(
        &server
            .get(&format!("{}?after=proc_nope", processes(&sid)), ACME)
            .await,
        400,
        "invalid_input",
    );
}

#[tokio::test]
async fn a_session_delete_and_a_server_stop_end_processes_and_a_restart_lists_them_as_ended() {
    let mut server = Server::start().await;
    let doomed = server.session(ACME).await;
    start(&server, &doomed, json!({"command": "sleep 4747"})).await;
    let sid = server.session(ACME).await;
    let id = start(&server, &sid, json!({"command": "echo hi; sleep 4848"})).await;
    until_running(&["sleep", "4747"]).await;
    until_running(&["sleep", "4848"]).await;
    assert_eq!(
        server
            .delete(&format!("/v1/sessions/{doomed}"), ACME)
            .await
            .0,
        StatusCode::OK
    );
    assert!(host_pids(&["sleep", "4747"]).is_empty());
    assert!(server.terminate(), "the server did not stop");
    assert!(host_pids(&["sleep", "4848"]).is_empty());
    server.spawn();
    let (status, list) = server.get(&processes(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(assert_list(&list), std::slice::from_ref(&id));
    let shown = &list["data"][0];
    assert_eq!(shown["running"], false);
    assert_eq!(shown["exit_code"], 137, "{shown}");
    assert_eq!(shown["stdout_bytes"], 3);
    let (_, out) = server
        .get(&format!("{}/output", process(&sid, &id)), ACME)
        .await;
    assert_eq!(
        (out["lost"].as_u64(), out["text"].as_str()),
        (Some(3), Some(""))
    );
    let got = events(&server, &sid, &id, None).await.all(WITHIN).await;
    let names: Vec<&str> = got.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["gap", "exit"]);
    assert_error(
        &stdin(&server, &sid, &id, b"x", false).await,
        409,
        "conflict",
    );
    assert_error(
        &signal(&server, &sid, &id, json!("TERM")).await,
        409,
        "conflict",
    );
    // Deleting an ended process forgets its record.
    assert_eq!(
        server.delete(&process(&sid, &id), ACME).await.0,
        StatusCode::OK
    );
    let (_, list) = server.get(&processes(&sid), ACME).await;
    assert!(assert_list(&list).is_empty());
}

#[tokio::test]
async fn processes_count_against_the_shell_commands_quota() {
    let server = Server::with_config("[tenant_limits]\nshell_commands = 1\n").await;
    let sid = server.session(ACME).await;
    let id = start(&server, &sid, json!({"command": "read line"})).await;
    let refused = server
        .post(&processes(&sid), ACME, json!({"command": "true"}))
        .await;
    assert_error(&refused, 429, "quota_exceeded");
    assert_error(
        &server
            .post(&shell_path(&sid), ACME, json!({"command": "true"}))
            .await,
        429,
        "quota_exceeded",
    );
    stdin(&server, &sid, &id, b"\n", true).await;
    ended(&server, &sid, &id).await;
    start(&server, &sid, json!({"command": "true"})).await;
}

#[tokio::test]
async fn stdin_that_the_process_does_not_read_is_refused_after_the_wait() {
    let server = Server::with_config("[limits]\nstdin_wait_ms = 300\n").await;
    let sid = server.session(ACME).await;
    let id = start(&server, &sid, json!({"command": "sleep 30"})).await;
    // More than a pipe holds.
    let (status, body) = stdin(&server, &sid, &id, &vec![b'x'; 1 << 20], false).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not read its input"), "{message}");
    // Closing stdin is allowed with an empty body; then it is closed.
    assert_eq!(stdin(&server, &sid, &id, b"", true).await.0, StatusCode::OK);
    assert_error(
        &stdin(&server, &sid, &id, b"x", false).await,
        409,
        "conflict",
    );
    let (_, shown) = server.get(&process(&sid, &id), ACME).await;
    assert_eq!(shown["stdin_open"], false);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let server = Server::with_config("[limits]\nmax_write_bytes = 1024\n").await;
    let sid = server.session(ACME).await;
    let path = processes(&sid);
    for (body, code) in [
        (json!({"command": "true", "bogus": 1}), "invalid_input"),
        (json!({"command": "  "}), "invalid_input"),
        (json!({"command": 7}), "invalid_input"),
        (json!({"command": "true", "timeout": 0}), "invalid_input"),
        (json!({"command": "true", "timeout": 3601}), "invalid_input"),
        (
            json!({"command": "true", "env": {"A=B": "1"}}),
            "invalid_input",
        ),
        (json!({"command": "true", "cwd": "../.."}), "invalid_path"),
        (
            json!({"command": "true", "cwd": "missing"}),
            "path_not_found",
        ),
        (json!([]), "invalid_input"),
    ] {
        let got = server.post(&path, ACME, body.clone()).await;
        assert!(got.0.is_client_error(), "{body}: {got:?}");
        assert_eq!(got.1["error"]["code"], code, "{body}: {got:?}");
    }
    let (_, list) = server.get(&path, ACME).await;
    assert!(assert_list(&list).is_empty(), "{list}");
    let raw = server
        .request(Method::POST, &path, Some(ACME))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(raw).await, 400, "invalid_input");

    let id = start(&server, &sid, json!({"command": "cat"})).await;
    for bad in [
        json!("SIGFOO"),
        json!(0),
        json!(99),
        json!(null),
        json!({"n": 9}),
    ] {
        assert_error(&signal(&server, &sid, &id, bad).await, 400, "invalid_input");
    }
    let extra = server
        .post(
            &format!("{}/signal", process(&sid, &id)),
            ACME,
            json!({"signal": "TERM", "pid": 1}),
        )
        .await;
    assert_error(&extra, 400, "invalid_input");
    let maybe = server
        .request(
            Method::POST,
            &format!("{}/stdin?eof=maybe", process(&sid, &id)),
            Some(ACME),
        )
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(maybe).await, 400, "invalid_input");
    let (status, _) = stdin(&server, &sid, &id, &[b'x'; 2048], false).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    for last in ["nope", "1", "-1.0", "99.0", "0.99"] {
        let path = format!("{}/events", process(&sid, &id));
        let response = server
            .request(Method::GET, &path, Some(ACME))
            .header("Last-Event-ID", last)
            .send()
            .await
            .unwrap();
        assert_error(&json_of(response).await, 400, "invalid_input");
    }
    // Still running, untouched by all of it.
    let (_, shown) = server.get(&process(&sid, &id), ACME).await;
    assert_eq!(
        (shown["running"].as_bool(), shown["stdout_bytes"].as_u64()),
        (Some(true), Some(0))
    );
}

#[tokio::test]
async fn unknown_and_other_tenants_processes_are_not_found() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let id = start(&server, &sid, json!({"command": "cat"})).await;
    let theirs = server.session(GLOBEX).await;
    let suffixes = ["", "/output", "/events"];
    for suffix in suffixes {
        // Another tenant naming the session, or its own session with this id.
        for (owner, token) in [(&sid, GLOBEX), (&theirs, GLOBEX)] {
            let path = format!("{}{suffix}", process(owner, &id));
            assert_error(&server.get(&path, token).await, 404, "not_found");
        }
        let unknown = format!(
            "{}{suffix}",
            process(&sid, "proc_0123456789abcdef0123456789abcdef")
        );
        assert_error(&server.get(&unknown, ACME).await, 404, "not_found");
        let other_env =
            format!("/v1/sessions/{sid}/resources/environments/other/processes/{id}{suffix}");
        assert_error(&server.get(&other_env, ACME).await, 404, "not_found");
    }
    let globex_process = format!("{}/signal", process(&sid, &id));
    assert_error(
        &server
            .post(&globex_process, GLOBEX, json!({"signal": "KILL"}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.delete(&process(&sid, &id), GLOBEX).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .post(&processes(&sid), GLOBEX, json!({"command": "true"}))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(
                &format!("/v1/sessions/{sid}/resources/environments/other/processes"),
                ACME,
            )
            .await,
        404,
        "not_found",
    );
    // Untouched.
    let (_, shown) = server.get(&process(&sid, &id), ACME).await;
    assert_eq!(shown["running"], true);
}

#[tokio::test]
async fn past_the_history_the_oldest_ended_processes_are_forgotten() {
    let server = Server::with_config("[limits]\nprocess_history = 2\n").await;
    let sid = server.session(ACME).await;
    let running = start(&server, &sid, json!({"command": "cat"})).await;
    let mut ended_ids = Vec::new();
    for n in 0..3 {
        let id = start(&server, &sid, json!({"command": format!("exit {n}")})).await;
        ended(&server, &sid, &id).await;
        ended_ids.push(id);
    }
    // The newest start keeps 2: the running one and the newest ended one stay.
    let last = start(&server, &sid, json!({"command": "true"})).await;
    let (_, list) = server
        .get(&format!("{}?order=asc", processes(&sid)), ACME)
        .await;
    let kept = assert_list(&list);
    assert!(kept.contains(&running), "{kept:?}");
    assert!(kept.contains(&last), "{kept:?}");
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_error(
        &server.get(&process(&sid, &ended_ids[0]), ACME).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_kept_event_id_resumes_as_a_query_parameter_too() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let id = start(&server, &sid, json!({"command": "echo one; echo two >&2"})).await;
    ended(&server, &sid, &id).await;
    let all = events(&server, &sid, &id, None).await.all(WITHIN).await;
    let first = all[0].id.clone().unwrap();
    let path = format!("{}/events?last_event_id={first}", process(&sid, &id));
    let response = server
        .request(Method::GET, &path, Some(ACME))
        .send()
        .await
        .unwrap();
    let rest = Events::of(response).all(WITHIN).await;
    assert_eq!(rest.len(), all.len() - 1, "{rest:?}");
    for (got, want) in rest.iter().zip(&all[1..]) {
        assert_eq!(
            (&got.id, &got.name, &got.data),
            (&want.id, &want.name, &want.data)
        );
    }
}
