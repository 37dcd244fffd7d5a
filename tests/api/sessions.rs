//! Sessions, the generic resources endpoints, health, auth and the request-level
//! errors every route shares (bad JSON, oversized bodies, unknown routes, methods).

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `conv_` followed by 32 lowercase hex digits.
#[track_caller]
fn assert_session_id(id: &Value) {
    let id = id
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {id}"));
    let hex = id
        .strip_prefix("conv_")
        .unwrap_or_else(|| panic!("session id without conv_ prefix: {id}"));
    assert_eq!(hex.len(), 32, "session id: {id}");
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "session id not lowercase hex: {id}"
    );
}

fn default_environment(sid: &str) -> Value {
    json!({
        "id": "default",
        "object": "session.resource",
        "type": "environment",
        "session_id": sid,
        "name": "default",
        "metadata": {"root": "/"},
    })
}

async fn raw_post(
    server: &Server,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut rb = server.request(Method::POST, path, Some(ACME)).body(body);
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    json_of(rb.send().await.unwrap()).await
}

#[tokio::test]
async fn healthz_answers_ok_without_auth() {
    let server = Server::start().await;
    let got = json_of(
        server
            .request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK);
    assert_eq!(got.1, json!({"status": "ok"}));
}

#[tokio::test]
async fn create_session_returns_a_session_echoing_agent_and_metadata() {
    let server = Server::start().await;
    let agent = json!({"terminals": {"shell": {
        "command": "bash", "args": ["-l"], "env": {"K": "V"},
        "allow_cwd_override": true, "scrollback_bytes": 1048576,
    }}});
    let metadata = json!({"any": "json", "nested": {"n": [1, 2, 3]}, "flag": true});
    let before = now_secs();
    let (status, body) = server
        .post(
            "/v1/sessions",
            ACME,
            json!({"agent": agent, "metadata": metadata}),
        )
        .await;
    let after = now_secs();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_session_id(&body["id"]);
    assert_eq!(body["object"], "session", "{body}");
    let created_at = body["created_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("created_at not an integer: {body}"));
    assert!(
        (before - 1..=after + 1).contains(&created_at),
        "created_at {created_at} is not now ({before})"
    );
    assert_eq!(body["agent"], agent, "{body}");
    assert_eq!(body["metadata"], metadata, "{body}");

    // GET answers the same object.
    let sid = body["id"].as_str().unwrap();
    let got = server.get(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1, body);
}

#[tokio::test]
async fn create_session_accepts_an_empty_object_and_no_body_at_all() {
    let server = Server::start().await;
    let (status, empty) = server.post("/v1/sessions", ACME, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{empty}");
    assert_session_id(&empty["id"]);
    assert_eq!(empty["object"], "session");
    assert!(empty["created_at"].is_i64(), "{empty}");
    let keys = empty.as_object().unwrap();
    assert!(
        keys.contains_key("agent") && keys.contains_key("metadata"),
        "{empty}"
    );

    let (status, none) = json_of(
        server
            .request(Method::POST, "/v1/sessions", Some(ACME))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{none}");
    assert_session_id(&none["id"]);
    assert_eq!(none["object"], "session");
    assert_ne!(none["id"], empty["id"]);
    // Both fresh sessions are alike but for id and time.
    assert_eq!(none["agent"], empty["agent"]);
    assert_eq!(none["metadata"], empty["metadata"]);
}

#[tokio::test]
async fn list_sessions_is_paginated_newest_first_and_shows_only_the_tenants_own() {
    let server = Server::start().await;
    let (status, empty) = server.get("/v1/sessions", ACME).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert!(assert_list(&empty).is_empty());
    assert_eq!(empty["has_more"], false);

    let mut acme = Vec::new();
    for _ in 0..3 {
        acme.push(server.session(ACME).await);
    }
    let globex = [server.session(GLOBEX).await, server.session(GLOBEX).await];

    let (status, body) = server.get("/v1/sessions", ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let newest_first: Vec<String> = acme.iter().rev().cloned().collect();
    assert_eq!(assert_list(&body), newest_first, "{body}");
    assert_eq!(body["has_more"], false);
    for item in body["data"].as_array().unwrap() {
        assert_eq!(item["object"], "session", "{item}");
    }

    let (_, body) = server.get("/v1/sessions?order=asc", ACME).await;
    assert_eq!(assert_list(&body), acme);

    let (status, page1) = server.get("/v1/sessions?limit=2", ACME).await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    assert_eq!(assert_list(&page1), newest_first[..2]);
    assert_eq!(page1["has_more"], true);
    let after = page1["last_id"].as_str().unwrap();
    let (status, page2) = server
        .get(&format!("/v1/sessions?limit=2&after={after}"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{page2}");
    assert_eq!(assert_list(&page2), newest_first[2..]);
    assert_eq!(page2["has_more"], false);

    let (_, body) = server.get("/v1/sessions", GLOBEX).await;
    let globex_newest_first: Vec<String> = globex.iter().rev().cloned().collect();
    assert_eq!(assert_list(&body), globex_newest_first, "{body}");
}

#[tokio::test]
async fn list_sessions_rejects_bad_paging_parameters() {
    let server = Server::start().await;
    server.session(ACME).await;
    for query in ["limit=0", "limit=1001", "limit=x", "order=sideways"] {
        let got = server.get(&format!("/v1/sessions?{query}"), ACME).await;
        assert_error(&got, 400, "invalid_input");
    }
    // A cursor that is not one of this tenant's sessions.
    let other = server.session(GLOBEX).await;
    let got = server
        .get(&format!("/v1/sessions?after={other}"), ACME)
        .await;
    assert_error(&got, 400, "invalid_input");
}

#[tokio::test]
async fn delete_session_answers_deleted_then_404_and_its_files_are_gone() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;
    let keep = server.session(ACME).await;
    let (status, file) = server
        .upload(ACME, &sid, "a.bin", None, vec![7u8; 300_000])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].as_str().unwrap().to_owned();

    let got = server.delete(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(
        got.1,
        json!({"id": sid, "object": "session.deleted", "deleted": true})
    );

    assert_error(
        &server.get(&format!("/v1/sessions/{sid}"), ACME).await,
        404,
        "not_found",
    );
    assert_error(
        &server.delete(&format!("/v1/sessions/{sid}"), ACME).await,
        404,
        "not_found",
    );
    assert_error(&server.get(&files_path(&sid), ACME).await, 404, "not_found");
    assert_error(
        &server
            .get(&format!("{}/{fid}", files_path(&sid)), ACME)
            .await,
        404,
        "not_found",
    );
    let content = server
        .request(
            Method::GET,
            &format!("{}/{fid}/content", files_path(&sid)),
            Some(ACME),
        )
        .send()
        .await
        .unwrap();
    assert_error(&json_of(content).await, 404, "not_found");
    assert_error(
        &server
            .get(&format!("/v1/sessions/{sid}/resources/{fid}"), ACME)
            .await,
        404,
        "not_found",
    );

    let (_, list) = server.get("/v1/sessions", ACME).await;
    assert_eq!(assert_list(&list), vec![keep]);

    // The file's bytes are gone from the store too.
    let stats = server.stop_and_count_blobs();
    assert_eq!(
        (stats.blobs, stats.chunks, stats.pending),
        (0, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn missing_or_unknown_token_is_401() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for path in [
        "/v1/sessions".to_owned(),
        format!("/v1/sessions/{sid}"),
        format!("/v1/sessions/{sid}/resources"),
        // Even a path that does not decode is authenticated first.
        format!("/v1/sessions/{sid}/resources/environments/default/filesystem/%ff"),
    ] {
        let none = json_of(
            server
                .request(Method::GET, &path, None)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&none, 401, "unauthorized");
        assert_error(&server.get(&path, "not-a-token").await, 401, "unauthorized");
    }
    let post = json_of(
        server
            .request(Method::POST, "/v1/sessions", None)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&post, 401, "unauthorized");
    assert_error(
        &server.post("/v1/sessions", "ACME", json!({})).await,
        401,
        "unauthorized",
    );
    let basic = server
        .request(Method::GET, "/v1/sessions", None)
        .header("authorization", format!("Basic {ACME}"))
        .send()
        .await
        .unwrap();
    assert_error(&json_of(basic).await, 401, "unauthorized");
    let delete = json_of(
        server
            .request(Method::DELETE, &format!("/v1/sessions/{sid}"), None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&delete, 401, "unauthorized");
    // Nothing above touched the session.
    assert_eq!(
        server.get(&format!("/v1/sessions/{sid}"), ACME).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_tenants_session_is_404_everywhere() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, file) = server
        .upload(ACME, &sid, "a.txt", None, b"acme secret".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].as_str().unwrap();

    for path in [
        format!("/v1/sessions/{sid}"),
        format!("/v1/sessions/{sid}/resources"),
        format!("/v1/sessions/{sid}/resources/default"),
        format!("/v1/sessions/{sid}/resources/{fid}"),
        format!("/v1/sessions/{sid}/resources/environments"),
        format!("/v1/sessions/{sid}/resources/environments/default"),
        files_path(&sid),
        format!("{}/{fid}", files_path(&sid)),
        format!("{}/{fid}/content", files_path(&sid)),
    ] {
        let got = json_of(
            server
                .request(Method::GET, &path, Some(GLOBEX))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&got, 404, "not_found");
        assert!(!got.1.to_string().contains("acme"), "{path}: {}", got.1);
    }
    assert_error(
        &server
            .delete(&format!("{}/{fid}", files_path(&sid)), GLOBEX)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.delete(&format!("/v1/sessions/{sid}"), GLOBEX).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .upload(GLOBEX, &sid, "b.txt", None, b"x".to_vec())
            .await,
        404,
        "not_found",
    );

    // The owner still has everything.
    assert_eq!(
        server.get(&format!("/v1/sessions/{sid}"), ACME).await.0,
        StatusCode::OK
    );
    let (status, files) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{files}");
    assert_eq!(assert_list(&files), vec![fid.to_owned()]);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_input() {
    let server = Server::start().await;
    for body in [
        "{\"metadata\":",
        "not json",
        "{\"a\":1}}",
        "[1, 2]",
        "\"text\"",
    ] {
        let got = raw_post(&server, "/v1/sessions", Some("application/json"), body).await;
        assert_error(&got, 400, "invalid_input");
    }
    // Invalid UTF-8.
    let got = raw_post(
        &server,
        "/v1/sessions",
        Some("application/json"),
        vec![b'{', 0xff, 0xfe, b'}'],
    )
    .await;
    assert_error(&got, 400, "invalid_input");
    let (_, list) = server.get("/v1/sessions", ACME).await;
    assert!(
        assert_list(&list).is_empty(),
        "a bad request created a session: {list}"
    );
}

#[tokio::test]
async fn wrongly_typed_fields_are_400_invalid_input() {
    let server = Server::start().await;
    for body in [
        json!({"metadata": 5}),
        json!({"metadata": "x"}),
        json!({"agent": "x"}),
        json!({"agent": {"terminals": "x"}}),
        json!({"environment": {"template": 7}}),
        json!({"environment": "starter"}),
    ] {
        let got = server.post("/v1/sessions", ACME, body.clone()).await;
        assert_error(&got, 400, "invalid_input");
    }
    let (_, list) = server.get("/v1/sessions", ACME).await;
    assert!(
        assert_list(&list).is_empty(),
        "a bad request created a session: {list}"
    );
}

#[tokio::test]
async fn unknown_template_is_400() {
    let server = Server::start().await;
    let got = server
        .post(
            "/v1/sessions",
            ACME,
            json!({"environment": {"template": "python-starter"}}),
        )
        .await;
    assert_error(&got, 400, "invalid_input");
    let (_, list) = server.get("/v1/sessions", ACME).await;
    assert!(assert_list(&list).is_empty(), "{list}");
}

#[tokio::test]
async fn session_from_a_configured_template_is_created() {
    let template = tempfile::tempdir().unwrap();
    std::fs::write(template.path().join("README.md"), "# starter\n").unwrap();
    std::fs::create_dir(template.path().join("src")).unwrap();
    std::fs::write(template.path().join("src/main.py"), "print('hi')\n").unwrap();
    let server =
        Server::with_config(&format!("[templates]\nstarter = {:?}\n", template.path())).await;

    let (status, body) = server
        .post(
            "/v1/sessions",
            ACME,
            json!({"environment": {"template": "starter"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_session_id(&body["id"]);
    assert_eq!(body["object"], "session");
    let sid = body["id"].as_str().unwrap();
    let (status, env) = server
        .get(
            &format!("/v1/sessions/{sid}/resources/environments/default"),
            ACME,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{env}");
    assert_eq!(env, default_environment(sid));

    // Other names are still unknown.
    let got = server
        .post(
            "/v1/sessions",
            ACME,
            json!({"environment": {"template": "other"}}),
        )
        .await;
    assert_error(&got, 400, "invalid_input");
}

#[tokio::test]
async fn json_body_over_max_json_bytes_is_413() {
    let server = Server::with_config("[limits]\nmax_json_bytes = 1024\n").await;
    let small = json!({"metadata": {"pad": "x".repeat(500)}});
    let (status, body) = server.post("/v1/sessions", ACME, small).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let big = json!({"metadata": {"pad": "x".repeat(2000)}});
    assert_error(
        &server.post("/v1/sessions", ACME, big.clone()).await,
        413,
        "payload_too_large",
    );

    // The same body without a Content-Length (chunked).
    let bytes = serde_json::to_vec(&big).unwrap();
    let stream = futures_util::stream::iter(
        bytes
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let got = raw_post(
        &server,
        "/v1/sessions",
        Some("application/json"),
        reqwest::Body::wrap_stream(stream),
    )
    .await;
    assert_error(&got, 413, "payload_too_large");

    let (_, list) = server.get("/v1/sessions", ACME).await;
    assert_eq!(
        assert_list(&list).len(),
        1,
        "an oversized body created a session: {list}"
    );
}

#[tokio::test]
async fn unknown_route_is_404_not_found() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for path in [
        "/v1/nope".to_owned(),
        "/nope".to_owned(),
        "/v2/sessions".to_owned(),
        format!("/v1/sessions/{sid}/nope"),
        format!("/v1/sessions/{sid}/resources/files/x/y/z"),
        "/v1/sessions/conv_00000000000000000000000000000000".to_owned(),
        "/v1/sessions/not-a-session".to_owned(),
    ] {
        let got = server.get(&path, ACME).await;
        assert_error(&got, 404, "not_found");
    }
}

#[tokio::test]
async fn wrong_method_is_405_method_not_allowed() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let cases = [
        (Method::PUT, "/v1/sessions".to_owned(), "GET, POST"),
        (Method::DELETE, "/v1/sessions".to_owned(), "GET, POST"),
        (Method::PATCH, format!("/v1/sessions/{sid}"), "GET, DELETE"),
        (Method::POST, format!("/v1/sessions/{sid}"), "GET, DELETE"),
        (Method::POST, "/healthz".to_owned(), "GET, HEAD"),
        (Method::PUT, format!("/v1/sessions/{sid}/resources"), "GET"),
        (
            Method::POST,
            format!("/v1/sessions/{sid}/resources/environments"),
            "GET",
        ),
    ];
    for (method, path, allow) in cases {
        let response = server
            .request(method.clone(), &path, Some(ACME))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let got = json_of(response).await;
        assert_eq!(got.0.as_u16(), 405, "{method} {path}: {}", got.1);
        assert_error(&got, 405, "method_not_allowed");
    }
    // None of that deleted the session.
    assert_eq!(
        server.get(&format!("/v1/sessions/{sid}"), ACME).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn resources_list_holds_the_default_environment_and_the_files() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let other = server.session(ACME).await;
    let mut files = Vec::new();
    for name in ["a.txt", "b.csv"] {
        let (status, file) = server
            .upload(ACME, &sid, name, None, name.as_bytes().to_vec())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        files.push(file);
    }
    // A file of another session is not a resource of this one.
    let (status, _) = server
        .upload(ACME, &other, "c.txt", None, b"c".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = server
        .get(&format!("/v1/sessions/{sid}/resources"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_list(&body);
    assert_eq!(body["has_more"], false);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{body}");
    assert!(data.contains(&default_environment(&sid)), "{body}");
    for file in &files {
        assert!(data.contains(file), "missing {file} in {body}");
    }

    let (status, body) = server
        .get(&format!("/v1/sessions/{sid}/resources?type=file"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_list(&body);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{body}");
    for file in &files {
        assert!(data.contains(file), "missing {file} in {body}");
    }

    let (status, body) = server
        .get(
            &format!("/v1/sessions/{sid}/resources?type=environment"),
            ACME,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_list(&body);
    assert_eq!(body["data"], json!([default_environment(&sid)]));
    assert_eq!(body["has_more"], false);

    let (status, body) = server
        .get(&format!("/v1/sessions/{sid}/resources?type=terminal"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(assert_list(&body).is_empty(), "{body}");

    for bogus in ["bogus", "files"] {
        let got = server
            .get(&format!("/v1/sessions/{sid}/resources?type={bogus}"), ACME)
            .await;
        assert_error(&got, 400, "invalid_input");
    }
}

#[tokio::test]
async fn resources_list_pages_visit_every_resource_once() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for i in 0..4 {
        let (status, _) = server
            .upload(ACME, &sid, &format!("{i}.txt"), None, vec![b'x'; i])
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(a) => format!("/v1/sessions/{sid}/resources?limit=2&after={a}"),
            None => format!("/v1/sessions/{sid}/resources?limit=2"),
        };
        let (status, body) = server.get(&path, ACME).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids = assert_list(&body);
        assert!(ids.len() <= 2, "{body}");
        seen.extend(ids);
        if body["has_more"] == false {
            break;
        }
        after = Some(body["last_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "a resource was listed twice: {seen:?}");
    assert!(seen.contains(&"default".to_owned()));
}

#[tokio::test]
async fn one_resource_by_id_is_the_file_or_the_environment() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, file) = server
        .upload(ACME, &sid, "data.csv", None, b"a,b\n1,2\n".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].as_str().unwrap();

    let got = server
        .get(&format!("/v1/sessions/{sid}/resources/{fid}"), ACME)
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1, file);

    let got = server
        .get(&format!("/v1/sessions/{sid}/resources/default"), ACME)
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1, default_environment(&sid));

    for unknown in [
        "file_0123456789abcdef0123456789abcdef",
        "nope",
        "terminal_shell_main",
    ] {
        let got = server
            .get(&format!("/v1/sessions/{sid}/resources/{unknown}"), ACME)
            .await;
        assert_error(&got, 404, "not_found");
    }
}

#[tokio::test]
async fn environments_list_and_get() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, body) = server
        .get(&format!("/v1/sessions/{sid}/resources/environments"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_list(&body), vec!["default".to_owned()]);
    assert_eq!(body["data"], json!([default_environment(&sid)]));
    assert_eq!(body["has_more"], false);

    let got = server
        .get(
            &format!("/v1/sessions/{sid}/resources/environments/default"),
            ACME,
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1, default_environment(&sid));

    let got = server
        .get(
            &format!("/v1/sessions/{sid}/resources/environments/nope"),
            ACME,
        )
        .await;
    assert_error(&got, 404, "not_found");
}
