//! The files endpoints: `/v1/sessions/{sid}/resources/files[/{fid}[/content]]`.

use crate::common::*;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response, StatusCode, multipart};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

// ---------------------------------------------------------------------------
// Helpers (local to this file).

const UNKNOWN_FILE: &str = "file_00000000000000000000000000000000";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn file_path(session: &str, file: &str) -> String {
    format!("{}/{file}", files_path(session))
}

fn content_path(session: &str, file: &str) -> String {
    format!("{}/{file}/content", files_path(session))
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Random bytes with NULs, CR/LF and multipart-boundary-looking runs mixed in.
fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    let nasty = b"\0\0\r\n--\r\n\r\n--boundary--\r\n\0";
    let mut i = 0;
    while i + nasty.len() < n {
        v[i..i + nasty.len()].copy_from_slice(nasty);
        i += 4099;
    }
    v
}

/// Uploads and asserts 201; returns the file object.
async fn upload_ok(
    server: &Server,
    token: &str,
    session: &str,
    filename: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> Value {
    let (status, body) = server
        .upload(token, session, filename, content_type, bytes)
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "upload of {filename:?}: {body}"
    );
    body
}

/// Asserts the complete file object shape for a known upload.
#[track_caller]
fn assert_file_object(
    file: &Value,
    session: &str,
    filename: &str,
    bytes: &[u8],
    content_type: &str,
) {
    let id = file["id"].as_str().unwrap_or_else(|| panic!("id: {file}"));
    let hex = id
        .strip_prefix("file_")
        .unwrap_or_else(|| panic!("id prefix: {file}"));
    assert!(
        is_lower_hex(hex, 32),
        "id must be file_ + 32 lowercase hex: {file}"
    );
    assert_eq!(file["object"], "session.resource", "{file}");
    assert_eq!(file["type"], "file", "{file}");
    assert_eq!(file["session_id"], session, "{file}");
    assert_eq!(file["name"], filename, "{file}");
    assert!(
        file.get("environment").is_none(),
        "environment is for terminals only: {file}"
    );
    let m = &file["metadata"];
    assert!(m.is_object(), "{file}");
    assert_eq!(m["filename"], filename, "{file}");
    assert_eq!(m["bytes"].as_u64(), Some(bytes.len() as u64), "{file}");
    assert_eq!(m["content_type"], content_type, "{file}");
    assert_eq!(m["sha256"], sha256_hex(bytes), "{file}");
    let created = m["created_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("created_at must be integer unix seconds: {file}"));
    assert!(
        (created - now_secs()).abs() < 300,
        "created_at {created} is not now: {file}"
    );
}

#[track_caller]
fn header(headers: &HeaderMap, name: &str) -> String {
    let v = headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}: {headers:?}"));
    v.to_str()
        .unwrap_or_else(|_| panic!("header {name} is not visible ASCII: {v:?}"))
        .to_owned()
}

async fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut rb = server.request(Method::GET, path, Some(ACME));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

/// Percent-decodes an RFC 8187 `UTF-8''…` ext-value.
fn decode_ext_value(v: &str) -> String {
    let lower = v.to_ascii_lowercase();
    assert!(
        lower.starts_with("utf-8''"),
        "filename* must start with UTF-8'': {v}"
    );
    let enc = &v["utf-8''".len()..];
    let mut out = Vec::new();
    let b = enc.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 3;
        } else {
            // attr-char only: no spaces, quotes, semicolons or non-ASCII unencoded.
            assert!(
                b[i].is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b[i]),
                "filename* has an unencoded {:?}: {v}",
                b[i] as char
            );
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Splits `attachment; filename="…"; filename*=UTF-8''…` into (quoted filename raw,
/// decoded filename*), checking the overall structure.
#[track_caller]
fn parse_disposition(cd: &str) -> (String, String) {
    let rest = cd
        .strip_prefix("attachment; filename=\"")
        .unwrap_or_else(|| {
            panic!("Content-Disposition must start with attachment; filename=\": {cd}")
        });
    // Read the quoted-string up to its closing (unescaped) quote.
    let mut quoted = String::new();
    let mut chars = rest.char_indices();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, esc) = chars.next().expect("dangling backslash");
                quoted.push(esc);
            }
            '"' => {
                end = Some(i);
                break;
            }
            c => quoted.push(c),
        }
    }
    let end = end.unwrap_or_else(|| panic!("unterminated filename quoted-string: {cd}"));
    let after = &rest[end + 1..];
    let ext = after
        .strip_prefix("; filename*=")
        .unwrap_or_else(|| panic!("missing ; filename*= after the quoted filename: {cd}"));
    (quoted, decode_ext_value(ext))
}

/// The blob store's counts once the server has stopped: nothing pending is left,
/// and (blobs, chunks) are returned.
fn blob_stats_after_stop(server: &mut Server) -> (u64, u64) {
    let stats = server.stop_and_count_blobs();
    assert_eq!(stats.pending, 0, "{stats:?}");
    (stats.blobs, stats.chunks)
}

async fn list_ids(server: &Server, session: &str) -> Vec<String> {
    let (status, body) = server
        .get(&format!("{}?limit=1000", files_path(session)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Upload.

#[tokio::test]
async fn upload_returns_201_with_the_file_resource_object() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let bytes = b"a,b\n1,2\n".to_vec();
    let file = upload_ok(
        &server,
        ACME,
        &sid,
        "data.csv",
        Some("text/csv"),
        bytes.clone(),
    )
    .await;
    assert_file_object(&file, &sid, "data.csv", &bytes, "text/csv");
}

#[tokio::test]
async fn upload_content_type_is_declared_else_guessed_from_extension_else_octet_stream() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        // Declared types are kept, even when the extension says otherwise.
        ("data.csv", Some("text/plain"), "text/plain"),
        ("notes.txt", Some("image/png"), "image/png"),
        (
            "blob.zzqx",
            Some("application/x-custom"),
            "application/x-custom",
        ),
        // Absent: guessed from the extension.
        ("data.csv", None, "text/csv"),
        ("DATA.CSV", None, "text/csv"),
        ("report.json", None, "application/json"),
        ("picture.png", None, "image/png"),
        // application/octet-stream counts as absent.
        ("data.csv", Some("application/octet-stream"), "text/csv"),
        ("picture.png", Some("application/octet-stream"), "image/png"),
        // Unknown or no extension: application/octet-stream.
        ("blob.zzqx", None, "application/octet-stream"),
        (
            "blob.zzqx",
            Some("application/octet-stream"),
            "application/octet-stream",
        ),
        ("README", None, "application/octet-stream"),
    ];
    for (name, declared, expected) in cases {
        let bytes = format!("{name} {declared:?}").into_bytes();
        let file = upload_ok(&server, ACME, &sid, name, *declared, bytes.clone()).await;
        assert_eq!(
            file["metadata"]["content_type"], *expected,
            "{name} declared {declared:?}: {file}"
        );
        assert_file_object(&file, &sid, name, &bytes, expected);
        // The download serves the stored type.
        let resp = get_with(
            &server,
            &content_path(&sid, file["id"].as_str().unwrap()),
            &[],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header(resp.headers(), "content-type"),
            *expected,
            "{name} {declared:?}"
        );
    }
}

#[tokio::test]
async fn upload_takes_the_file_part_among_other_form_fields() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let form = multipart::Form::new()
        .text("purpose", "assistants")
        .part(
            "file",
            multipart::Part::bytes(b"hello".to_vec())
                .file_name("hello.txt")
                .mime_str("text/plain")
                .unwrap(),
        )
        .text("after", "ignored");
    let got = json_of(
        server
            .request(Method::POST, &files_path(&sid), Some(ACME))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    assert_file_object(&got.1, &sid, "hello.txt", b"hello", "text/plain");
    assert_eq!(
        list_ids(&server, &sid).await,
        vec![got.1["id"].as_str().unwrap().to_owned()]
    );
}

// ---------------------------------------------------------------------------
// Get, list, download, delete.

#[tokio::test]
async fn get_returns_the_same_object_as_upload_also_via_generic_resources() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let bytes = b"{\"k\": 1}".to_vec();
    let file = upload_ok(&server, ACME, &sid, "report.json", None, bytes.clone()).await;
    let fid = file["id"].as_str().unwrap();

    let (status, got) = server.get(&file_path(&sid, fid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, file);

    // "GET /v1/sessions/{sid}/resources/{resource_id} — one resource of any type (files too)".
    let (status, got) = server
        .get(&format!("/v1/sessions/{sid}/resources/{fid}"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, file);

    // And the generic list filtered to files.
    let (status, list) = server
        .get(&format!("/v1/sessions/{sid}/resources?type=file"), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["object"], "list", "{list}");
    assert_eq!(list["data"], json!([file]), "{list}");
    assert_eq!(list["first_id"], fid, "{list}");
    assert_eq!(list["last_id"], fid, "{list}");
    assert_eq!(list["has_more"], false, "{list}");
}

#[tokio::test]
async fn list_shows_files_newest_first_by_default_with_list_shape() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;

    let (status, empty) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(
        empty,
        json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
    );

    let a = upload_ok(&server, ACME, &sid, "a.txt", None, b"a".to_vec()).await;
    let b = upload_ok(&server, ACME, &sid, "b.txt", None, b"bb".to_vec()).await;
    let c = upload_ok(&server, ACME, &sid, "c.txt", None, b"ccc".to_vec()).await;

    let (status, list) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list,
        json!({"object": "list", "data": [c, b, a], "first_id": c["id"], "last_id": a["id"],
               "has_more": false})
    );

    let (status, list) = server
        .get(&format!("{}?order=asc", files_path(&sid)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"], json!([a, b, c]), "{list}");
    assert_eq!(list["first_id"], a["id"]);
    assert_eq!(list["last_id"], c["id"]);

    // Lists are per session.
    let other = server.session(ACME).await;
    let (status, list) = server.get(&files_path(&other), ACME).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"], json!([]), "{list}");
}

#[tokio::test]
async fn download_streams_bytes_with_contract_headers() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let bytes = b"id,name\n1,ada\n2,grace\n".to_vec();
    let file = upload_ok(&server, ACME, &sid, "data.csv", None, bytes.clone()).await;
    let fid = file["id"].as_str().unwrap();

    let resp = get_with(&server, &content_path(&sid, fid), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(header(&h, "content-type"), "text/csv");
    assert_eq!(header(&h, "content-length"), bytes.len().to_string());
    assert_eq!(
        header(&h, "content-disposition"),
        "attachment; filename=\"data.csv\"; filename*=UTF-8''data.csv"
    );
    assert_eq!(header(&h, "etag"), format!("\"{}\"", sha256_hex(&bytes)));
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[..]);
}

#[tokio::test]
async fn delete_answers_deleted_object_then_file_is_gone_everywhere() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let keep = upload_ok(&server, ACME, &sid, "keep.txt", None, b"keep".to_vec()).await;
    let file = upload_ok(&server, ACME, &sid, "gone.txt", None, b"gone".to_vec()).await;
    let fid = file["id"].as_str().unwrap();

    let (status, body) = server.delete(&file_path(&sid, fid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"id": fid, "object": "session.resource.deleted", "deleted": true})
    );

    assert_error(
        &server.get(&file_path(&sid, fid), ACME).await,
        404,
        "not_found",
    );
    let resp = get_with(&server, &content_path(&sid, fid), &[]).await;
    assert_error(&json_of(resp).await, 404, "not_found");
    assert_error(
        &server.delete(&file_path(&sid, fid), ACME).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/v1/sessions/{sid}/resources/{fid}"), ACME)
            .await,
        404,
        "not_found",
    );
    assert_eq!(
        list_ids(&server, &sid).await,
        vec![keep["id"].as_str().unwrap().to_owned()]
    );

    // The other file is untouched.
    let resp = get_with(
        &server,
        &content_path(&sid, keep["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"keep");
}

#[tokio::test]
async fn deleting_a_file_or_its_session_frees_its_bytes() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;
    let f = upload_ok(&server, ACME, &sid, "a.bin", None, random_bytes(600 * 1024)).await;
    let (status, body) = server
        .delete(&file_path(&sid, f["id"].as_str().unwrap()), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let sid2 = server.session(ACME).await;
    upload_ok(
        &server,
        ACME,
        &sid2,
        "b.bin",
        None,
        random_bytes(300 * 1024),
    )
    .await;
    let (status, body) = server.delete(&format!("/v1/sessions/{sid2}"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &server.get(&files_path(&sid2), ACME).await,
        404,
        "not_found",
    );

    let (blobs, chunks) = blob_stats_after_stop(&mut server);
    assert_eq!((blobs, chunks), (0, 0), "deleted files must leave no bytes");
}

// ---------------------------------------------------------------------------
// Auth and isolation.

/// Every files route for (session, file), with a body builder for the upload.
fn routes(sid: &str, fid: &str) -> Vec<(Method, String)> {
    vec![
        (Method::GET, files_path(sid)),
        (Method::POST, files_path(sid)),
        (Method::GET, file_path(sid, fid)),
        (Method::GET, content_path(sid, fid)),
        (Method::DELETE, file_path(sid, fid)),
    ]
}

fn small_form() -> multipart::Form {
    multipart::Form::new().part(
        "file",
        multipart::Part::bytes(b"intruder".to_vec()).file_name("x.txt"),
    )
}

async fn call(
    server: &Server,
    method: &Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut rb = server.request(method.clone(), path, token);
    if *method == Method::POST {
        rb = rb.multipart(small_form());
    }
    json_of(rb.send().await.unwrap()).await
}

#[tokio::test]
async fn every_files_route_is_401_without_or_with_unknown_token() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let file = upload_ok(&server, ACME, &sid, "a.txt", None, b"a".to_vec()).await;
    let fid = file["id"].as_str().unwrap();

    for (method, path) in routes(&sid, fid) {
        let got = call(&server, &method, &path, None).await;
        assert_eq!(got.0, 401, "{method} {path} without token: {}", got.1);
        assert_error(&got, 401, "unauthorized");
        let got = call(&server, &method, &path, Some("not-a-token")).await;
        assert_eq!(got.0, 401, "{method} {path} unknown token: {}", got.1);
        assert_error(&got, 401, "unauthorized");
    }
    // Nothing was uploaded or deleted.
    assert_eq!(list_ids(&server, &sid).await, vec![fid.to_owned()]);
}

#[tokio::test]
async fn another_tenants_session_is_404_on_every_files_route() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let bytes = b"acme secret".to_vec();
    let file = upload_ok(&server, ACME, &sid, "secret.txt", None, bytes.clone()).await;
    let fid = file["id"].as_str().unwrap();

    for (method, path) in routes(&sid, fid) {
        let got = call(&server, &method, &path, Some(GLOBEX)).await;
        assert_eq!(got.0, 404, "globex {method} {path}: {}", got.1);
        assert_error(&got, 404, "not_found");
        assert!(
            !got.1.to_string().contains("acme secret") && !got.1.to_string().contains("secret.txt"),
            "error leaks acme data: {}",
            got.1
        );
    }
    // Acme's file is intact and no globex file landed in the session.
    assert_eq!(list_ids(&server, &sid).await, vec![fid.to_owned()]);
    let resp = get_with(&server, &content_path(&sid, fid), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[..]);
}

#[tokio::test]
async fn another_tenants_file_id_in_own_session_is_404() {
    let server = Server::start().await;
    let acme_sid = server.session(ACME).await;
    let file = upload_ok(
        &server,
        ACME,
        &acme_sid,
        "secret.txt",
        None,
        b"acme".to_vec(),
    )
    .await;
    let fid = file["id"].as_str().unwrap();
    let globex_sid = server.session(GLOBEX).await;

    for (method, path) in [
        (Method::GET, file_path(&globex_sid, fid)),
        (Method::GET, content_path(&globex_sid, fid)),
        (Method::DELETE, file_path(&globex_sid, fid)),
        (
            Method::GET,
            format!("/v1/sessions/{globex_sid}/resources/{fid}"),
        ),
    ] {
        let got = call(&server, &method, &path, Some(GLOBEX)).await;
        assert_eq!(got.0, 404, "globex {method} {path}: {}", got.1);
        assert_error(&got, 404, "not_found");
    }
    assert_eq!(list_ids(&server, &acme_sid).await, vec![fid.to_owned()]);
}

#[tokio::test]
async fn unknown_session_and_file_ids_are_404() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let other_sid = server.session(ACME).await;
    let file = upload_ok(&server, ACME, &other_sid, "a.txt", None, b"a".to_vec()).await;
    let other_fid = file["id"].as_str().unwrap();

    for bad_sid in [UNKNOWN_SESSION, "nope"] {
        for (method, path) in routes(bad_sid, UNKNOWN_FILE) {
            let got = call(&server, &method, &path, Some(ACME)).await;
            assert_eq!(got.0, 404, "{method} {path}: {}", got.1);
            assert_error(&got, 404, "not_found");
        }
    }
    // Unknown file ids, and a file of another session of the same tenant.
    for bad_fid in [UNKNOWN_FILE, "nope", other_fid] {
        for (method, path) in [
            (Method::GET, file_path(&sid, bad_fid)),
            (Method::GET, content_path(&sid, bad_fid)),
            (Method::DELETE, file_path(&sid, bad_fid)),
        ] {
            let got = call(&server, &method, &path, Some(ACME)).await;
            assert_eq!(got.0, 404, "{method} {path}: {}", got.1);
            assert_error(&got, 404, "not_found");
        }
    }
    assert_eq!(
        list_ids(&server, &other_sid).await,
        vec![other_fid.to_owned()]
    );
}

// ---------------------------------------------------------------------------
// Bad uploads.

#[tokio::test]
async fn non_multipart_upload_is_415() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;

    let got = server
        .post(&files_path(&sid), ACME, json!({"file": "hello"}))
        .await;
    assert_error(&got, 415, "unsupported_media_type");

    let resp = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .header(CONTENT_TYPE, "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, 415, "unsupported_media_type");

    let resp = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, 415, "unsupported_media_type");

    assert!(list_ids(&server, &sid).await.is_empty());
}

#[tokio::test]
async fn multipart_without_a_file_part_is_400() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;

    let form = multipart::Form::new().text("purpose", "assistants");
    let resp = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, 400, "invalid_input");

    let form = multipart::Form::new().part(
        "upload",
        multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );
    let resp = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, 400, "invalid_input");

    assert!(list_ids(&server, &sid).await.is_empty());
}

const ONE_MIB_LIMIT: &str = "[limits]\nmax_upload_bytes = 1048576\n";

/// A multipart body with one `file` part holding `bytes`, and its boundary.
fn multipart_body(boundary: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    body
}

/// Sends an oversized upload on its own connection (so whatever happens to that
/// connection cannot affect later requests) and returns the answer.
async fn send_oversized(server: &Server, sid: &str, chunked: bool) -> (StatusCode, Value) {
    let boundary = "reshost-test-boundary-413";
    let body = multipart_body(boundary, &random_bytes(2 * 1024 * 1024));
    let body = if chunked {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
    } else {
        reqwest::Body::from(body) // Content-Length: 2 MiB + headers
    };
    let resp = reqwest::Client::new()
        .post(server.url(&files_path(sid)))
        .bearer_auth(ACME)
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("the client must receive the 413, not a broken connection: {e:?}")
        });
    json_of(resp).await
}

/// An upload over the limit, sent chunked or with its length declared, is refused
/// with `413` and leaves nothing listed and no bytes stored.
async fn oversized_upload_is_refused_and_stores_nothing(chunked: bool) {
    let mut server = Server::with_config(ONE_MIB_LIMIT).await;
    let sid = server.session(ACME).await;
    let got = send_oversized(&server, &sid, chunked).await;
    assert_error(&got, 413, "payload_too_large");
    assert!(list_ids(&server, &sid).await.is_empty());
    let (blobs, chunks) = blob_stats_after_stop(&mut server);
    assert_eq!(
        (blobs, chunks),
        (0, 0),
        "a rejected upload must leave no bytes"
    );
}

#[tokio::test]
async fn upload_over_the_limit_with_declared_length_is_413_and_stores_nothing() {
    oversized_upload_is_refused_and_stores_nothing(false).await;
}

#[tokio::test]
async fn upload_over_the_limit_chunked_is_413_and_stores_nothing() {
    oversized_upload_is_refused_and_stores_nothing(true).await;
}

#[tokio::test]
async fn oversized_upload_413_reaches_a_keep_alive_client_and_its_next_request_works() {
    // The harness's pooled client, as real clients are: the 413 must arrive (not a
    // broken pipe), and the connection it leaves must not break the next request.
    let server = Server::with_config(ONE_MIB_LIMIT).await;
    let sid = server.session(ACME).await;
    for round in 0..10 {
        let part = multipart::Part::bytes(vec![7u8; 2 * 1024 * 1024]).file_name("big.bin");
        let form = multipart::Form::new().part("file", part);
        let resp = server
            .request(Method::POST, &files_path(&sid), Some(ACME))
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: no 413 but a transport error: {e:?}"));
        assert_error(&json_of(resp).await, 413, "payload_too_large");
        let resp = server
            .request(Method::GET, &files_path(&sid), Some(ACME))
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: request after a 413 failed: {e:?}"));
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"], json!([]), "{body}");
    }
}

#[tokio::test]
async fn upload_just_under_the_limit_is_accepted() {
    let server = Server::with_config(ONE_MIB_LIMIT).await;
    let sid = server.session(ACME).await;
    let bytes = random_bytes(1024 * 1024 - 4096);
    let file = upload_ok(&server, ACME, &sid, "fits.bin", None, bytes.clone()).await;
    assert_file_object(&file, &sid, "fits.bin", &bytes, "application/octet-stream");
    // Exactly the limit, sent chunked (no Content-Length to judge by).
    let bytes = random_bytes(1024 * 1024);
    let body = multipart_body("b-exact", &bytes);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let resp = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .header(CONTENT_TYPE, "multipart/form-data; boundary=b-exact")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let (status, file) = json_of(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_file_object(&file, &sid, "big.bin", &bytes, "application/octet-stream");
    assert_eq!(list_ids(&server, &sid).await.len(), 2);
}

// ---------------------------------------------------------------------------
// List query validation.

#[tokio::test]
async fn list_rejects_unknown_cursors_and_out_of_range_limits() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let other = server.session(ACME).await;
    let a = upload_ok(&server, ACME, &sid, "a.txt", None, b"a".to_vec()).await;
    let foreign = upload_ok(&server, ACME, &other, "f.txt", None, b"f".to_vec()).await;
    let base = files_path(&sid);

    for q in [
        format!("after={UNKNOWN_FILE}"),
        format!("before={UNKNOWN_FILE}"),
        "after=nope".to_owned(),
        // A real file id, but not one of this list.
        format!("after={}", foreign["id"].as_str().unwrap()),
        "limit=0".to_owned(),
        "limit=1001".to_owned(),
        "limit=-1".to_owned(),
        "limit=ten".to_owned(),
        "order=sideways".to_owned(),
    ] {
        let got = server.get(&format!("{base}?{q}"), ACME).await;
        assert_eq!(got.0, 400, "?{q}: {}", got.1);
        assert_error(&got, 400, "invalid_input");
    }

    for q in ["limit=1000", "limit=1", "order=asc", "order=desc"] {
        let (status, body) = server.get(&format!("{base}?{q}"), ACME).await;
        assert_eq!(status, StatusCode::OK, "?{q}: {body}");
        assert_eq!(body["data"], json!([a]), "?{q}: {body}");
        assert_eq!(body["has_more"], false, "?{q}: {body}");
    }
}

// ---------------------------------------------------------------------------
// Binary safety.

#[tokio::test]
async fn one_mib_of_random_bytes_with_nuls_round_trips_identically() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let bytes = random_bytes(1024 * 1024);
    assert!(bytes.contains(&0));
    let file = upload_ok(&server, ACME, &sid, "random.bin", None, bytes.clone()).await;
    assert_file_object(
        &file,
        &sid,
        "random.bin",
        &bytes,
        "application/octet-stream",
    );

    let resp = get_with(
        &server,
        &content_path(&sid, file["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-length"),
        bytes.len().to_string()
    );
    let got = resp.bytes().await.unwrap();
    assert_eq!(got.len(), bytes.len());
    assert!(
        got.as_ref() == &bytes[..],
        "downloaded bytes differ from uploaded ones"
    );
    assert_eq!(
        sha256_hex(&got),
        file["metadata"]["sha256"].as_str().unwrap()
    );
}

#[tokio::test]
async fn empty_file_round_trips() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let file = upload_ok(&server, ACME, &sid, "empty.txt", None, Vec::new()).await;
    assert_file_object(&file, &sid, "empty.txt", b"", "text/plain");
    assert_eq!(file["metadata"]["bytes"], 0);
    assert_eq!(file["metadata"]["sha256"], EMPTY_SHA256);

    let resp = get_with(
        &server,
        &content_path(&sid, file["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(resp.headers(), "content-length"), "0");
    assert_eq!(
        header(resp.headers(), "etag"),
        format!("\"{EMPTY_SHA256}\"")
    );
    assert!(resp.bytes().await.unwrap().is_empty());

    // Nothing of an empty file can be ranged.
    for range in ["bytes=0-", "bytes=0-0", "bytes=-5"] {
        let resp = get_with(
            &server,
            &content_path(&sid, file["id"].as_str().unwrap()),
            &[("range", range)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            header(resp.headers(), "content-range"),
            "bytes */0",
            "{range}"
        );
    }
}

#[tokio::test]
async fn non_ascii_filename_round_trips_in_metadata_and_content_disposition() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let name = "résumé 数据.txt";
    let file = upload_ok(&server, ACME, &sid, name, None, b"cv".to_vec()).await;
    assert_file_object(&file, &sid, name, b"cv", "text/plain");
    let fid = file["id"].as_str().unwrap();
    let (_, got) = server.get(&file_path(&sid, fid), ACME).await;
    assert_eq!(got["name"], name);
    assert_eq!(got["metadata"]["filename"], name);

    let resp = get_with(&server, &content_path(&sid, fid), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // header() also asserts the value is visible ASCII: raw UTF-8 belongs in filename*.
    let cd = header(resp.headers(), "content-disposition");
    let (fallback, decoded) = parse_disposition(&cd);
    assert_eq!(decoded, name, "{cd}");
    assert!(fallback.is_ascii() && !fallback.is_empty(), "{cd}");
    assert!(
        cd.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%95%B0%E6%8D%AE.txt")
            || cd
                .to_ascii_lowercase()
                .contains("filename*=utf-8''r%c3%a9sum%c3%a9%20%e6%95%b0%e6%8d%ae.txt"),
        "{cd}"
    );
}

#[tokio::test]
async fn filename_with_quotes_and_semicolons_cannot_break_content_disposition() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let name = "we\"ird; name=x.txt";
    let file = upload_ok(&server, ACME, &sid, name, None, b"x".to_vec()).await;
    assert_eq!(file["name"], name, "{file}");
    let resp = get_with(
        &server,
        &content_path(&sid, file["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cd = header(resp.headers(), "content-disposition");
    let (_, decoded) = parse_disposition(&cd);
    assert_eq!(decoded, name, "{cd}");
}

// ---------------------------------------------------------------------------
// Range and conditional requests.

async fn range_fixture() -> (Server, String, String, Vec<u8>) {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    // Spans several store chunks.
    let bytes = random_bytes(600 * 1024 + 7);
    let file = upload_ok(&server, ACME, &sid, "r.bin", None, bytes.clone()).await;
    let fid = file["id"].as_str().unwrap().to_owned();
    (server, sid, fid, bytes)
}

#[track_caller]
fn assert_partial(headers: &HeaderMap, first: usize, last: usize, total: usize) {
    assert_eq!(
        header(headers, "content-range"),
        format!("bytes {first}-{last}/{total}")
    );
    assert_eq!(
        header(headers, "content-length"),
        (last - first + 1).to_string()
    );
}

#[tokio::test]
async fn range_requests_answer_206_with_the_requested_bytes() {
    let (server, sid, fid, bytes) = range_fixture().await;
    let n = bytes.len();
    let chunk = reshost::testing::CHUNK_BYTES;
    let path = content_path(&sid, &fid);
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-9".into(), 0, 9),
        ("bytes=-5".into(), n - 5, n - 1),
        ("bytes=10-".into(), 10, n - 1),
        // Across a store chunk's edge.
        (
            format!("bytes={}-{}", chunk - 4, chunk + 5),
            chunk - 4,
            chunk + 5,
        ),
        // Last byte; and an end past the size is clamped.
        (format!("bytes={}-{}", n - 1, n - 1), n - 1, n - 1),
        (format!("bytes=5-{}", n + 1000), 5, n - 1),
        // A suffix longer than the file is the whole file.
        (format!("bytes=-{}", n + 1000), 0, n - 1),
    ];
    for (range, first, last) in cases {
        let resp = get_with(&server, &path, &[("range", &range)]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let h = resp.headers().clone();
        assert_partial(&h, first, last, n);
        assert_eq!(
            header(&h, "content-type"),
            "application/octet-stream",
            "{range}"
        );
        assert_eq!(
            header(&h, "etag"),
            format!("\"{}\"", sha256_hex(&bytes)),
            "{range}"
        );
        let got = resp.bytes().await.unwrap();
        assert!(got.as_ref() == &bytes[first..=last], "{range}: wrong bytes");
    }
}

#[tokio::test]
async fn if_range_with_the_current_etag_honours_range_and_another_sends_everything() {
    let (server, sid, fid, bytes) = range_fixture().await;
    let path = content_path(&sid, &fid);
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let resp = get_with(
        &server,
        &path,
        &[("range", "bytes=0-9"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[..10]);
    let resp = get_with(
        &server,
        &path,
        &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("content-range").is_none());
    assert!(resp.bytes().await.unwrap().as_ref() == bytes.as_slice());
}

#[tokio::test]
async fn range_past_the_end_is_416_with_the_size() {
    let (server, sid, fid, bytes) = range_fixture().await;
    let n = bytes.len();
    let path = content_path(&sid, &fid);
    for range in [
        format!("bytes={n}-"),
        format!("bytes={}-{}", n + 10, n + 20),
    ] {
        let resp = get_with(&server, &path, &[("range", &range)]).await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            header(resp.headers(), "content-range"),
            format!("bytes */{n}"),
            "{range}"
        );
    }
}

#[tokio::test]
async fn if_none_match_with_the_etag_is_304_otherwise_200() {
    let (server, sid, fid, bytes) = range_fixture().await;
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let path = content_path(&sid, &fid);

    for inm in [
        etag.clone(),
        format!("\"nope\", {etag}"),
        format!("W/{etag}"),
    ] {
        let resp = get_with(&server, &path, &[("if-none-match", &inm)]).await;
        assert_eq!(
            resp.status(),
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {inm}"
        );
        assert_eq!(header(resp.headers(), "etag"), etag, "{inm}");
        assert!(
            resp.bytes().await.unwrap().is_empty(),
            "304 must have no body"
        );
    }

    let other = format!("\"{}\"", sha256_hex(b"something else"));
    let resp = get_with(&server, &path, &[("if-none-match", &other)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(resp.headers(), "etag"), etag);
    assert!(resp.bytes().await.unwrap().as_ref() == &bytes[..]);
}

// ---------------------------------------------------------------------------
// Interrupted uploads.

#[tokio::test]
async fn client_disconnecting_mid_upload_leaves_no_file_and_no_bytes() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;

    let boundary = "reshost-test-boundary-abort";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let declared = 64 * 1024 * 1024; // well under the default 512 MiB limit
    let content_length = head.len() + declared + tail.len();

    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let request = server
        .request(Method::POST, &files_path(&sid), Some(ACME))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header(CONTENT_LENGTH, content_length)
        .body(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(reader),
        ));
    let upload = tokio::spawn(async move { request.send().await });

    writer.write_all(head.as_bytes()).await.unwrap();
    let mib = random_bytes(1024 * 1024);
    for _ in 0..8 {
        writer.write_all(&mib).await.unwrap();
    }
    writer.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert!(
        !upload.is_finished(),
        "server answered before the body was complete: {:?}",
        upload.await
    );
    // While in flight, the upload is not a file yet.
    assert!(list_ids(&server, &sid).await.is_empty());

    // Disconnect: drop the request (and its connection) mid-body.
    upload.abort();
    let _ = upload.await;
    drop(writer);

    // It never appears.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(list_ids(&server, &sid).await.is_empty());
    }

    let (blobs, chunks) = blob_stats_after_stop(&mut server);
    assert_eq!(
        (blobs, chunks),
        (0, 0),
        "an aborted upload must leave no bytes"
    );
}

#[tokio::test]
async fn if_none_match_wins_over_range() {
    let (server, sid, fid, bytes) = range_fixture().await;
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let resp = get_with(
        &server,
        &content_path(&sid, &fid),
        &[("if-none-match", &etag), ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unsupported_methods_on_files_routes_are_405() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let file = upload_ok(&server, ACME, &sid, "a.txt", None, b"a".to_vec()).await;
    let fid = file["id"].as_str().unwrap();
    for (method, path) in [
        (Method::PUT, files_path(&sid)),
        (Method::DELETE, files_path(&sid)),
        (Method::POST, file_path(&sid, fid)),
        (Method::PUT, file_path(&sid, fid)),
        (Method::POST, content_path(&sid, fid)),
        (Method::DELETE, content_path(&sid, fid)),
    ] {
        let resp = server
            .request(method.clone(), &path, Some(ACME))
            .send()
            .await
            .unwrap();
        let got = json_of(resp).await;
        assert_eq!(got.0, 405, "{method} {path}: {}", got.1);
        assert_error(&got, 405, "method_not_allowed");
    }
    // The file survived all of it.
    assert_eq!(list_ids(&server, &sid).await, vec![fid.to_owned()]);
}
