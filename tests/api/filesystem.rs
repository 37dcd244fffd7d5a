//! The default environment's filesystem endpoints:
//! `GET/PUT/PATCH/DELETE /v1/sessions/{sid}/resources/environments/default/filesystem[/{path}]`
//! (browse, read incl. `?format=raw`, write, edit, delete).

use crate::common::*;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;

// ---------------------------------------------------------------------------
// Helpers (local to this file).

fn on_disk(ws: &Path, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(ws.join(rel)).ok()
}

async fn send_text(
    server: &Server,
    method: Method,
    url: &str,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let rb = server
        .request(method, url, Some(token))
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    json_of(rb.send().await.unwrap()).await
}

async fn put(server: &Server, sid: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send_json(server, Method::PUT, &fs_url(sid, path), ACME, &body).await
}

async fn patch(server: &Server, sid: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send_json(server, Method::PATCH, &fs_url(sid, path), ACME, &body).await
}

async fn read(server: &Server, sid: &str, path: &str) -> (StatusCode, Value) {
    server.get(&fs_url(sid, path), ACME).await
}

/// `?format=raw`: status, headers and the body's bytes.
async fn read_raw(server: &Server, sid: &str, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let url = format!("{}?format=raw", fs_url(sid, path));
    let resp = server
        .request(Method::GET, &url, Some(ACME))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// The raw bytes of a file through the API, asserting 200.
async fn raw_bytes(server: &Server, sid: &str, path: &str) -> Vec<u8> {
    let (status, headers, bytes) = read_raw(server, sid, path).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "raw {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        headers.contains_key(CONTENT_TYPE),
        "raw {path}: {headers:?}"
    );
    bytes
}

/// Asserts the entry object of `path` (kind `file`/`directory`/`symlink`), checking
/// `bytes` and `modified_at` against the workspace on disk.
#[track_caller]
fn assert_entry(entry: &Value, ws: &Path, path: &str, kind: &str) {
    let name = path.rsplit('/').next().unwrap();
    assert_eq!(entry["id"], path, "{entry}");
    assert_eq!(
        entry["object"], "session.environment.filesystem.entry",
        "{entry}"
    );
    assert_eq!(entry["name"], name, "{entry}");
    assert_eq!(entry["path"], path, "{entry}");
    assert_eq!(entry["type"], kind, "{entry}");
    let meta = std::fs::symlink_metadata(ws.join(path)).unwrap();
    match kind {
        "directory" => assert!(entry["bytes"].is_null(), "bytes of a directory: {entry}"),
        "file" => assert_eq!(entry["bytes"].as_u64(), Some(meta.len()), "{entry}"),
        _ => assert!(entry["bytes"].is_u64(), "bytes of a symlink: {entry}"),
    }
    let modified = entry["modified_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("modified_at must be integer unix seconds: {entry}"));
    if kind == "symlink" {
        assert!((modified - now_secs()).abs() < 300, "{entry}");
    } else {
        assert!(
            (modified - mtime_secs(&meta)).abs() <= 1,
            "modified_at is not the file's mtime {}: {entry}",
            mtime_secs(&meta)
        );
    }
}

/// Asserts the list shape (with `base`); returns the ids of `data`, in order.
#[track_caller]
fn assert_listing(body: &Value, base: &str) -> Vec<String> {
    assert_eq!(body["base"], base, "{body}");
    assert_list(body)
}

fn entry_of<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no entry {id}: {body}"))
}

/// Asserts a complete `file_content` object for a UTF-8 file read whole.
#[track_caller]
fn assert_text_content(body: &Value, path: &str, content: &str) {
    assert_eq!(
        body["object"], "session.environment.filesystem.file_content",
        "{body}"
    );
    assert_eq!(body["path"], path, "{body}");
    assert!(body["content_type"].is_string(), "{body}");
    assert_eq!(body["bytes"].as_u64(), Some(content.len() as u64), "{body}");
    assert_eq!(body["truncated"], false, "{body}");
    assert_eq!(body["encoding"], "utf-8", "{body}");
    assert_eq!(body["content"], content, "{body}");
}

/// Asserts a `file_content` object in base64; returns the decoded bytes.
#[track_caller]
fn assert_base64_content(body: &Value, path: &str) -> Vec<u8> {
    assert_eq!(
        body["object"],
        "session.environment.filesystem.file_content",
        "{}",
        short(body)
    );
    assert_eq!(body["path"], path, "{}", short(body));
    assert_eq!(body["encoding"], "base64", "{}", short(body));
    assert!(body["truncated"].is_boolean(), "{}", short(body));
    let content = body["content"]
        .as_str()
        .unwrap_or_else(|| panic!("content: {}", short(body)));
    b64_decode(content).unwrap_or_else(|| panic!("content is not base64: {}", short(body)))
}

/// A body cut to a readable size for messages.
fn short(body: &Value) -> String {
    let s = body.to_string();
    if s.len() > 600 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(600)], s.len())
    } else {
        s
    }
}

/// The decimal numbers in a message.
fn numbers_in(message: &str) -> Vec<u64> {
    message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------
// Browse

#[tokio::test]
async fn empty_root_lists_nothing_with_null_ids() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, body) = read(&server, &sid, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "list", "base": "", "data": [], "first_id": null, "last_id": null,
               "has_more": false})
    );
}

#[tokio::test]
async fn root_listing_has_the_list_shape_and_every_entry_kind() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "hello.txt", "hello world");
    plant(&ws, "src/main.py", "print('hi')");
    std::fs::create_dir(ws.join("docs")).unwrap();
    std::os::unix::fs::symlink("hello.txt", ws.join("link")).unwrap();

    let (status, body) = read(&server, &sid, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = assert_listing(&body, "");
    assert_eq!(ids, ["src", "link", "hello.txt", "docs"], "{body}");
    assert_eq!(body["has_more"], false, "{body}");
    assert_entry(entry_of(&body, "hello.txt"), &ws, "hello.txt", "file");
    assert_eq!(entry_of(&body, "hello.txt")["bytes"], 11);
    assert_entry(entry_of(&body, "src"), &ws, "src", "directory");
    assert_entry(entry_of(&body, "docs"), &ws, "docs", "directory");
    assert_entry(entry_of(&body, "link"), &ws, "link", "symlink");
    for e in body["data"].as_array().unwrap() {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "bytes",
                "id",
                "modified_at",
                "name",
                "object",
                "path",
                "type"
            ],
            "entry fields: {e}"
        );
    }
}

#[tokio::test]
async fn subdirectory_listing_has_its_base_and_full_paths() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "src/main.py", "print('hi')");
    plant(&ws, "src/lib/util.rs", "pub fn f() {}\n");
    plant(&ws, "top.txt", "not in src");

    let (status, body) = read(&server, &sid, "src").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = assert_listing(&body, "src");
    assert_eq!(ids, ["src/main.py", "src/lib"], "{body}");
    assert_entry(entry_of(&body, "src/main.py"), &ws, "src/main.py", "file");
    assert_eq!(entry_of(&body, "src/main.py")["bytes"], 11);
    assert_entry(entry_of(&body, "src/lib"), &ws, "src/lib", "directory");

    // A nested directory, and the same directory named with a trailing slash.
    let (status, body) = read(&server, &sid, "src/lib").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, "src/lib"), ["src/lib/util.rs"]);
    assert_entry(
        entry_of(&body, "src/lib/util.rs"),
        &ws,
        "src/lib/util.rs",
        "file",
    );
    let (status, body) = server
        .get(&format!("{}/src/", fs_url(&sid, "")), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, "src"), ["src/main.py", "src/lib"]);

    // An empty directory.
    std::fs::create_dir(ws.join("empty")).unwrap();
    let (status, body) = read(&server, &sid, "empty").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "list", "base": "empty", "data": [], "first_id": null,
               "last_id": null, "has_more": false})
    );

    // A directory that does not exist.
    let got = read(&server, &sid, "nope").await;
    assert_error(&got, 404, "path_not_found");
    let got = read(&server, &sid, "src/nope/deeper").await;
    assert_error(&got, 404, "path_not_found");
}

#[tokio::test]
async fn listing_orders_by_name_desc_by_default_and_asc_on_request() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    // Created in an order that is neither ascending nor descending by name.
    for name in ["m.txt", "a.txt", "z.txt", "k", "b.md"] {
        if name == "k" {
            std::fs::create_dir(ws.join(name)).unwrap();
        } else {
            plant(&ws, name, name);
        }
    }
    let (status, body) = read(&server, &sid, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        assert_listing(&body, ""),
        ["z.txt", "m.txt", "k", "b.md", "a.txt"]
    );
    for (query, expected) in [
        ("order=desc", ["z.txt", "m.txt", "k", "b.md", "a.txt"]),
        ("order=asc", ["a.txt", "b.md", "k", "m.txt", "z.txt"]),
    ] {
        let (status, body) = server
            .get(&format!("{}?{query}", fs_url(&sid, "")), ACME)
            .await;
        assert_eq!(status, StatusCode::OK, "?{query}: {body}");
        assert_eq!(assert_listing(&body, ""), expected, "?{query}");
        assert_eq!(body["has_more"], false, "?{query}: {body}");
    }
}

/// One listing page of `many`; returns ids and has_more.
async fn fs_page(server: &Server, sid: &str, query: &str) -> (Vec<String>, bool) {
    let (status, body) = server
        .get(&format!("{}?{query}", fs_url(sid, "many")), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "?{query}: {body}");
    let ids = assert_listing(&body, "many");
    (ids, body["has_more"].as_bool().unwrap())
}

#[tokio::test]
async fn listing_pagination_walks_every_entry_exactly_once() {
    const N: usize = 45;
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let mut asc: Vec<String> = Vec::new();
    for i in 0..N {
        let name = format!("f{i:02}.txt");
        plant(&ws, &format!("many/{name}"), format!("{i}"));
        asc.push(format!("many/{name}"));
    }
    let desc: Vec<String> = asc.iter().rev().cloned().collect();

    // Default limit is 20.
    let (ids, more) = fs_page(&server, &sid, "").await;
    assert_eq!(ids, desc[..20].to_vec());
    assert!(more);

    for (order, expected) in [("desc", &desc), ("asc", &asc)] {
        let mut seen: Vec<String> = Vec::new();
        let mut query = format!("limit=7&order={order}");
        let mut pages = 0;
        loop {
            let (ids, more) = fs_page(&server, &sid, &query).await;
            pages += 1;
            assert!(!ids.is_empty(), "empty page while walking: ?{query}");
            assert!(ids.len() <= 7, "?{query}: {ids:?}");
            seen.extend(ids.iter().cloned());
            assert_eq!(
                more,
                seen.len() < N,
                "has_more after {} of {N}: ?{query}",
                seen.len()
            );
            if !more {
                break;
            }
            assert!(pages < 20, "the walk does not end");
            query = format!(
                "limit=7&order={order}&after={}",
                pct(ids.last().unwrap(), false)
            );
        }
        assert_eq!(&seen, expected, "order={order}: every entry once, in order");
        assert_eq!(pages, N.div_ceil(7), "order={order}");
    }

    // `before` lists the items just before the cursor, still in the chosen order.
    let (ids, more) = fs_page(
        &server,
        &sid,
        &format!("order=asc&limit=3&before={}", pct("many/f10.txt", false)),
    )
    .await;
    assert_eq!(ids, ["many/f07.txt", "many/f08.txt", "many/f09.txt"]);
    assert!(more, "f00..f06 are further back");
    // A cursor at the end: an empty page.
    let (ids, more) = fs_page(
        &server,
        &sid,
        &format!("order=desc&after={}", pct("many/f00.txt", false)),
    )
    .await;
    assert!(ids.is_empty() && !more, "{ids:?}");
    // The biggest limit is fine.
    let (ids, more) = fs_page(&server, &sid, "limit=1000&order=asc").await;
    assert_eq!(ids, asc);
    assert!(!more);
}

#[tokio::test]
async fn a_listing_of_a_thousand_entries_is_each_entry_as_lstat_sees_it_and_leaves_out_names_that_are_not_utf8()
 {
    use std::os::unix::ffi::OsStrExt;
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let mut expected = Vec::new();
    for i in 0..997 {
        plant(&ws, &format!("big/f{i:04}.txt"), "x".repeat(i % 50));
        expected.push(format!("big/f{i:04}.txt"));
    }
    std::fs::create_dir(ws.join("big/sub")).unwrap();
    std::os::unix::fs::symlink("f0001.txt", ws.join("big/link")).unwrap();
    std::os::unix::fs::symlink("../../outside", ws.join("big/escape")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"big/not-utf8-\xff");
    std::fs::write(ws.join(odd), "hidden").unwrap();
    expected.extend(["big/escape", "big/link", "big/sub"].map(String::from));
    expected.sort();

    let (status, body) = server
        .get(
            &format!("{}?limit=1000&order=asc", fs_url(&sid, "big")),
            ACME,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, "big"), expected);
    assert_eq!(body["has_more"], false);
    for entry in body["data"].as_array().unwrap() {
        let path = entry["path"].as_str().unwrap();
        let kind = match path {
            "big/sub" => "directory",
            "big/link" | "big/escape" => "symlink",
            _ => "file",
        };
        assert_entry(entry, &ws, path, kind);
    }
    // Listed through a symlinked directory, under the name it was asked by.
    std::os::unix::fs::symlink("big", ws.join("alias")).unwrap();
    let (status, body) = server
        .get(
            &format!("{}?limit=5&order=asc", fs_url(&sid, "alias")),
            ACME,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        assert_listing(&body, "alias"),
        expected[..5]
            .iter()
            .map(|p| p.replacen("big", "alias", 1))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn listing_parameters_out_of_range_are_400_invalid_input() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "a.txt", "a");
    plant(&ws, "b.txt", "b");
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "order=sideways",
        "after=nope.txt",
    ] {
        let got = server
            .get(&format!("{}?{query}", fs_url(&sid, "")), ACME)
            .await;
        assert_error(&got, 400, "invalid_input");
    }
    let (status, body) = server
        .get(&format!("{}?limit=1", fs_url(&sid, "")), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, ""), ["b.txt"]);
    assert_eq!(body["has_more"], true);
}

// ---------------------------------------------------------------------------
// Read

#[tokio::test]
async fn text_file_content_has_the_file_content_shape() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "hello.txt", "hello world");
    plant(&ws, "dir/unicode.txt", "héllo ✓ 🎉\n\ttab\r\n");
    plant(&ws, "empty.txt", "");

    let (status, body) = read(&server, &sid, "hello.txt").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "session.environment.filesystem.file_content", "path": "hello.txt",
               "content_type": "text/plain", "bytes": 11, "truncated": false,
               "encoding": "utf-8", "content": "hello world"})
    );

    let (status, body) = read(&server, &sid, "dir/unicode.txt").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_text_content(&body, "dir/unicode.txt", "héllo ✓ 🎉\n\ttab\r\n");

    let (status, body) = read(&server, &sid, "empty.txt").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_text_content(&body, "empty.txt", "");

    // Reading leaves the file as it was.
    assert_eq!(on_disk(&ws, "hello.txt").unwrap(), b"hello world");

    let got = read(&server, &sid, "missing.txt").await;
    assert_error(&got, 404, "path_not_found");
}

#[tokio::test]
async fn binary_files_are_base64() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let with_nul = b"abc\0def\n".to_vec();
    let invalid_utf8 = vec![0xff, 0xfe, b'a', b'b', 0xc3];
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    // Valid UTF-8 up to 100 KiB, then one invalid byte: still binary.
    let mut late_invalid = "ü".repeat(50 * 1024).into_bytes();
    late_invalid.push(0x80);
    late_invalid.extend_from_slice(b"tail");
    for (name, bytes) in [
        ("nul.bin", &with_nul),
        ("invalid.txt", &invalid_utf8),
        ("all.dat", &all_bytes),
        ("late.txt", &late_invalid),
    ] {
        plant(&ws, name, bytes);
        let (status, body) = read(&server, &sid, name).await;
        assert_eq!(status, StatusCode::OK, "{name}: {}", short(&body));
        let decoded = assert_base64_content(&body, name);
        assert_eq!(
            &decoded, bytes,
            "{name}: base64 content must decode to the bytes"
        );
        assert_eq!(body["bytes"].as_u64(), Some(bytes.len() as u64), "{name}");
        assert_eq!(body["truncated"], false, "{name}");
    }

    // A NUL past the first 8 KiB of otherwise valid UTF-8 does not make it binary.
    let mut late_nul = "a".repeat(9000);
    late_nul.push('\0');
    late_nul.push_str("end");
    plant(&ws, "late_nul.txt", &late_nul);
    let (status, body) = read(&server, &sid, "late_nul.txt").await;
    assert_eq!(status, StatusCode::OK, "{}", short(&body));
    assert_eq!(
        body["encoding"],
        "utf-8",
        "only a NUL in the first 8 KiB makes a file binary: {}",
        short(&body)
    );
    assert_eq!(body["content"], late_nul.as_str());
}

#[tokio::test]
async fn read_cap_cuts_content_at_a_utf8_boundary() {
    const CAP: usize = 1048576;
    let server = Server::with_config("[limits]\nread_cap_bytes = 1048576\n").await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);

    // 3-byte characters straddling the cap: "€" starts at CAP - 2.
    let mut euro = "a".repeat(CAP - 2);
    while euro.len() < CAP * 3 / 2 {
        euro.push('€');
    }
    // A 4-byte character starting at CAP - 1.
    let mut emoji = "b".repeat(CAP - 1);
    while emoji.len() < CAP * 3 / 2 {
        emoji.push_str("🎉x");
    }
    // Multi-byte characters throughout, 2-byte ones straddling the cap.
    let mut mixed = String::new();
    while mixed.len() < CAP * 3 / 2 {
        mixed.push_str("é日🎉\t\r\n");
    }
    for (name, text) in [
        ("euro.txt", &euro),
        ("emoji.txt", &emoji),
        ("mixed.txt", &mixed),
    ] {
        plant(&ws, name, text);
        let (status, body) = read(&server, &sid, name).await;
        assert_eq!(status, StatusCode::OK, "{name}: {}", short(&body));
        assert_eq!(
            body["object"],
            "session.environment.filesystem.file_content",
            "{name}: {}",
            short(&body)
        );
        assert_eq!(body["truncated"], true, "{name}: {}", short(&body));
        assert_eq!(body["encoding"], "utf-8", "{name}: {}", short(&body));
        assert_eq!(
            body["bytes"].as_u64(),
            Some(text.len() as u64),
            "{name}: bytes is the file's size"
        );
        let content = body["content"].as_str().unwrap();
        assert!(
            content.len() <= CAP,
            "{name}: {} bytes returned, cap {CAP}",
            content.len()
        );
        assert!(
            content.len() > CAP - 4,
            "{name}: cut at {} bytes, not at the last UTF-8 boundary before {CAP}",
            content.len()
        );
        assert!(
            text.starts_with(content),
            "{name}: the content must be a prefix of the file"
        );
        // `?format=raw` is uncapped and exact.
        let raw = raw_bytes(&server, &sid, name).await;
        assert_eq!(raw.len(), text.len(), "{name}: raw is uncapped");
        assert!(raw == text.as_bytes(), "{name}: raw bytes differ");
    }
    assert_eq!(
        read(&server, &sid, "euro.txt").await.1["content"]
            .as_str()
            .unwrap()
            .len(),
        CAP - 2,
        "the largest UTF-8 boundary not past the cap"
    );

    // Exactly at the cap: nothing cut.
    let exact = "c".repeat(CAP);
    plant(&ws, "exact.txt", &exact);
    let (status, body) = read(&server, &sid, "exact.txt").await;
    assert_eq!(status, StatusCode::OK, "{}", short(&body));
    assert_eq!(body["truncated"], false, "{}", short(&body));
    assert!(body["content"] == exact.as_str(), "exact.txt content");

    // Binary content past the cap: base64 of at most CAP bytes, truncated.
    let mut bin = vec![0u8; CAP * 3 / 2];
    for (i, b) in bin.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    plant(&ws, "big.bin", &bin);
    let (status, body) = read(&server, &sid, "big.bin").await;
    assert_eq!(status, StatusCode::OK, "{}", short(&body));
    let decoded = assert_base64_content(&body, "big.bin");
    assert_eq!(body["truncated"], true, "{}", short(&body));
    assert_eq!(body["bytes"].as_u64(), Some(bin.len() as u64));
    assert!(
        decoded.len() <= CAP && decoded.len() > CAP - 4,
        "{}",
        decoded.len()
    );
    assert!(
        bin.starts_with(&decoded),
        "base64 content is a prefix of the file"
    );
    assert!(raw_bytes(&server, &sid, "big.bin").await == bin);
}

#[tokio::test]
async fn raw_format_returns_the_exact_bytes_with_a_content_type() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let bin: Vec<u8> = {
        use rand::RngCore;
        let mut v = vec![0u8; 300 * 1024 + 17];
        rand::rng().fill_bytes(&mut v);
        v
    };
    plant(&ws, "data/blob.bin", &bin);
    plant(&ws, "hello.txt", "hello world");
    plant(&ws, "crlf.txt", "a\r\nb\r\n\tc");

    let (status, headers, bytes) = read_raw(&server, &sid, "data/blob.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        bytes == bin,
        "raw bytes differ ({} vs {})",
        bytes.len(),
        bin.len()
    );
    let ct = headers.get(CONTENT_TYPE).expect("Content-Type");
    assert!(!ct.is_empty());
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        assert_eq!(len.to_str().unwrap(), bin.len().to_string());
    }

    let (status, headers, bytes) = read_raw(&server, &sid, "hello.txt").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, b"hello world");
    let ct = headers.get(CONTENT_TYPE).unwrap().to_str().unwrap();
    assert!(
        ct.starts_with("text/plain"),
        "Content-Type of hello.txt: {ct}"
    );

    assert_eq!(raw_bytes(&server, &sid, "crlf.txt").await, b"a\r\nb\r\n\tc");

    // Missing: the JSON error.
    let (status, _, bytes) = read_raw(&server, &sid, "missing.bin").await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_error(&(status, body), 404, "path_not_found");
}

// ---------------------------------------------------------------------------
// Write

#[track_caller]
fn assert_write_result(body: &Value, ws: &Path, path: &str, created: bool, written: usize) {
    assert_eq!(
        body["object"], "session.environment.filesystem.write_result",
        "{body}"
    );
    assert_eq!(body["operation"], "write", "{body}");
    assert_eq!(body["path"], path, "{body}");
    assert_eq!(body["created"], created, "{body}");
    assert_eq!(
        body["bytes_written"].as_u64(),
        Some(written as u64),
        "{body}"
    );
    assert_entry(&body["entry"], ws, path, "file");
    assert_eq!(
        body["entry"]["bytes"].as_u64(),
        Some(written as u64),
        "{body}"
    );
}

#[tokio::test]
async fn put_writes_a_file_and_reports_whether_it_was_created() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);

    let (status, body) = put(&server, &sid, "notes.txt", json!({"content": "hello"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, "notes.txt", true, 5);
    assert_eq!(on_disk(&ws, "notes.txt").unwrap(), b"hello");

    let (status, body) = put(
        &server,
        &sid,
        "notes.txt",
        json!({"content": "bye ✓", "encoding": "utf-8"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, "notes.txt", false, "bye ✓".len());
    assert_eq!(on_disk(&ws, "notes.txt").unwrap(), "bye ✓".as_bytes());

    let (status, body) = read(&server, &sid, "notes.txt").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_text_content(&body, "notes.txt", "bye ✓");

    // Shorter content replaces, never leaves a tail of the old.
    let (status, body) = put(&server, &sid, "notes.txt", json!({"content": ""})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, "notes.txt", false, 0);
    assert_eq!(on_disk(&ws, "notes.txt").unwrap(), b"");

    // Listed afterwards.
    let (_, body) = read(&server, &sid, "").await;
    assert_eq!(assert_listing(&body, ""), ["notes.txt"]);
}

#[tokio::test]
async fn put_creates_parent_directories() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let (status, body) = put(&server, &sid, "a/b/c.txt", json!({"content": "deep\n"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, "a/b/c.txt", true, 5);
    assert_eq!(on_disk(&ws, "a/b/c.txt").unwrap(), b"deep\n");
    assert!(ws.join("a/b").is_dir());

    let (status, body) = read(&server, &sid, "a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, "a"), ["a/b"]);
    assert_entry(entry_of(&body, "a/b"), &ws, "a/b", "directory");

    // A sibling in an existing parent.
    let (status, body) = put(&server, &sid, "a/b/d.txt", json!({"content": "x"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, "a/b/d.txt", true, 1);
}

#[tokio::test]
async fn put_paths_are_percent_decoded() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let path = "dir with space/naïve 文件 #1?.txt";
    let (status, body) = put(&server, &sid, path, json!({"content": "ok"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, path, true, 2);
    assert_eq!(on_disk(&ws, path).unwrap(), b"ok");
    let (status, body) = read(&server, &sid, "dir with space").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, "dir with space"), [path]);
    assert_eq!(entry_of(&body, path)["name"], "naïve 文件 #1?.txt");
    let (status, body) = read(&server, &sid, path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_text_content(&body, path, "ok");
}

#[tokio::test]
async fn put_base64_round_trips_binary_bytes() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(b"\0\0\r\n\xff\xfe");
    bytes.extend((0..5000u32).map(|i| (i * 31 % 256) as u8));

    let (status, body) = put(
        &server,
        &sid,
        "bin/blob.dat",
        json!({"content": b64_encode(&bytes), "encoding": "base64"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_write_result(&body, &ws, "bin/blob.dat", true, bytes.len());
    assert!(
        on_disk(&ws, "bin/blob.dat").unwrap() == bytes,
        "bytes on disk"
    );

    let (status, body) = read(&server, &sid, "bin/blob.dat").await;
    assert_eq!(status, StatusCode::OK, "{}", short(&body));
    assert!(assert_base64_content(&body, "bin/blob.dat") == bytes);
    assert_eq!(body["bytes"].as_u64(), Some(bytes.len() as u64));
    assert!(raw_bytes(&server, &sid, "bin/blob.dat").await == bytes);

    // base64 of text is just text.
    let (status, body) = put(
        &server,
        &sid,
        "t.txt",
        json!({"content": b64_encode("héllo".as_bytes()), "encoding": "base64"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = read(&server, &sid, "t.txt").await;
    assert_text_content(&body, "t.txt", "héllo");
}

#[tokio::test]
async fn put_with_a_malformed_body_is_400_and_writes_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let bodies = [
        json!({"content": "!!!not base64!!!", "encoding": "base64"}),
        json!({"content": "abc=def=", "encoding": "base64"}),
        json!({"content": 5}),
        json!({"content": null}),
        json!({"content": ["a"]}),
        json!({"content": "x", "encoding": "rot13"}),
        json!({"content": "x", "encoding": 8}),
        json!({}),
        json!({"encoding": "utf-8"}),
        json!("just a string"),
        json!([{"content": "x"}]),
    ];
    for body in &bodies {
        let got = put(&server, &sid, "bad.txt", body.clone()).await;
        assert_error(&got, 400, "invalid_input");
        assert!(on_disk(&ws, "bad.txt").is_none(), "written after {body}");
    }
    for text in ["{not json", "", "{\"content\": \"x\"", "\u{1}"] {
        let got = send_text(&server, Method::PUT, &fs_url(&sid, "bad.txt"), ACME, text).await;
        assert_error(&got, 400, "invalid_input");
        assert!(on_disk(&ws, "bad.txt").is_none(), "written after {text:?}");
    }
    // An existing file is left as it was.
    plant(&ws, "keep.txt", "original");
    let got = put(
        &server,
        &sid,
        "keep.txt",
        json!({"content": "%%%", "encoding": "base64"}),
    )
    .await;
    assert_error(&got, 400, "invalid_input");
    assert_eq!(on_disk(&ws, "keep.txt").unwrap(), b"original");
}

#[tokio::test]
async fn bodies_over_max_write_bytes_are_413() {
    let server = Server::with_config("[limits]\nmax_write_bytes = 65536\n").await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);

    let got = put(
        &server,
        &sid,
        "big.txt",
        json!({"content": "x".repeat(70_000)}),
    )
    .await;
    assert_error(&got, 413, "payload_too_large");
    assert!(on_disk(&ws, "big.txt").is_none(), "nothing is written");

    let got = put(
        &server,
        &sid,
        "small.txt",
        json!({"content": "y".repeat(60_000)}),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", short(&got.1));
    assert_eq!(on_disk(&ws, "small.txt").unwrap().len(), 60_000);

    plant(&ws, "edit.txt", "one two three");
    let got = patch(
        &server,
        &sid,
        "edit.txt",
        json!({"old_text": "two", "new_text": "z".repeat(70_000)}),
    )
    .await;
    assert_error(&got, 413, "payload_too_large");
    assert_eq!(on_disk(&ws, "edit.txt").unwrap(), b"one two three");
}

#[tokio::test]
async fn writes_above_the_json_limit_but_within_max_write_bytes_are_accepted() {
    // max_json_bytes defaults to 1 MiB, max_write_bytes to 16 MiB.
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let text = "0123456789abcde\n".repeat(2 * 1024 * 1024 / 16);
    let (status, body) = put(&server, &sid, "two_mib.txt", json!({"content": text})).await;
    assert_eq!(status, StatusCode::OK, "{}", short(&body));
    assert_write_result(&body, &ws, "two_mib.txt", true, text.len());
    assert!(on_disk(&ws, "two_mib.txt").unwrap() == text.as_bytes());
}

#[tokio::test]
async fn put_onto_a_directory_or_the_root_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "dir/inner.txt", "inner");
    for url in [
        fs_url(&sid, "dir"),
        fs_url(&sid, ""),
        format!("{}/", fs_url(&sid, "")),
    ] {
        let (status, body) =
            send_json(&server, Method::PUT, &url, ACME, &json!({"content": "x"})).await;
        assert!(status.is_client_error(), "PUT {url}: {status} {body}");
        assert!(body["error"]["code"].is_string(), "PUT {url}: {body}");
        assert_eq!(on_disk(&ws, "dir/inner.txt").unwrap(), b"inner");
        assert!(ws.join("dir").is_dir());
    }
    // A file used as a parent directory.
    plant(&ws, "plain.txt", "plain");
    let (status, body) = put(
        &server,
        &sid,
        "plain.txt/child.txt",
        json!({"content": "x"}),
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(on_disk(&ws, "plain.txt").unwrap(), b"plain");
}

#[tokio::test]
async fn readers_see_the_old_or_the_new_content_never_a_mix() {
    const LEN: usize = 512 * 1024;
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "atomic.txt", "A".repeat(LEN));
    let server = std::sync::Arc::new(server);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut readers = Vec::new();
    for r in 0..3 {
        let (server, sid, done) = (server.clone(), sid.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || reads < 3 {
                let bytes = if r == 0 {
                    let (status, body) = read(&server, &sid, "atomic.txt").await;
                    assert_eq!(status, StatusCode::OK, "{}", short(&body));
                    body["content"].as_str().unwrap().as_bytes().to_vec()
                } else {
                    raw_bytes(&server, &sid, "atomic.txt").await
                };
                assert_eq!(bytes.len(), LEN, "a read saw a partial file");
                assert!(
                    bytes.iter().all(|&b| b == bytes[0]),
                    "a read saw a mix of two writes"
                );
                reads += 1;
            }
            reads
        }));
    }
    for i in 0..16 {
        let fill = if i % 2 == 0 { "B" } else { "A" };
        let (status, body) = put(
            &server,
            &sid,
            "atomic.txt",
            json!({"content": fill.repeat(LEN)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["created"], false, "{body}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() >= 3);
    }
    assert_eq!(
        on_disk(&ws, "atomic.txt").unwrap(),
        "A".repeat(LEN).as_bytes()
    );
    // No temporary files are left behind next to it.
    let (_, body) = read(&server, &sid, "").await;
    assert_eq!(assert_listing(&body, ""), ["atomic.txt"], "{body}");
}

// ---------------------------------------------------------------------------
// Edit

#[track_caller]
fn assert_edit_result(body: &Value, ws: &Path, path: &str, n: u64, before: usize, after: usize) {
    assert_eq!(
        body["object"], "session.environment.filesystem.edit_result",
        "{body}"
    );
    assert_eq!(body["operation"], "edit", "{body}");
    assert_eq!(body["path"], path, "{body}");
    assert_eq!(body["replacements"].as_u64(), Some(n), "{body}");
    assert_eq!(body["bytes_before"].as_u64(), Some(before as u64), "{body}");
    assert_eq!(body["bytes_after"].as_u64(), Some(after as u64), "{body}");
    assert_entry(&body["entry"], ws, path, "file");
    assert_eq!(
        body["entry"]["bytes"].as_u64(),
        Some(after as u64),
        "{body}"
    );
}

#[tokio::test]
async fn patch_replaces_the_one_match() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let before = "fn main() {\n    println!(\"hello wörld\");\n}\n";
    plant(&ws, "src/main.rs", before);
    let (status, body) = patch(
        &server,
        &sid,
        "src/main.rs",
        json!({"old_text": "wörld", "new_text": "reshost"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = before.replace("wörld", "reshost");
    assert_edit_result(&body, &ws, "src/main.rs", 1, before.len(), after.len());
    assert_eq!(
        raw_bytes(&server, &sid, "src/main.rs").await,
        after.as_bytes()
    );

    // Deleting text (empty new_text) is an edit too; replace_all false is the default.
    let (status, body) = patch(
        &server,
        &sid,
        "src/main.rs",
        json!({"old_text": "    println!(\"hello reshost\");\n", "new_text": "",
               "replace_all": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_edit_result(&body, &ws, "src/main.rs", 1, after.len(), 14);
    assert_eq!(on_disk(&ws, "src/main.rs").unwrap(), b"fn main() {\n}\n");
}

#[tokio::test]
async fn patch_without_a_match_is_422_no_match() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "a.txt", "alpha\nbeta\n");
    for old in ["gamma", "ALPHA", "alpha\nbeta\ngamma", "beta\r\n"] {
        let got = patch(
            &server,
            &sid,
            "a.txt",
            json!({"old_text": old, "new_text": "x"}),
        )
        .await;
        assert_error(&got, 422, "no_match");
        let got = patch(
            &server,
            &sid,
            "a.txt",
            json!({"old_text": old, "new_text": "x", "replace_all": true}),
        )
        .await;
        assert_error(&got, 422, "no_match");
    }
    assert_eq!(on_disk(&ws, "a.txt").unwrap(), b"alpha\nbeta\n");
}

#[tokio::test]
async fn patch_with_two_matches_is_409_listing_their_line_numbers() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let mut lines: Vec<String> = (1..=12)
        .map(|i| format!("line {}", "x".repeat(i)))
        .collect();
    lines[2] = "let TARGET = 1;".into(); // line 3
    lines[10] = "    return TARGET;".into(); // line 11
    let text = lines.join("\n") + "\n";
    plant(&ws, "code.js", &text);
    let got = patch(
        &server,
        &sid,
        "code.js",
        json!({"old_text": "TARGET", "new_text": "value"}),
    )
    .await;
    assert_error(&got, 409, "ambiguous_match");
    let message = got.1["error"]["message"].as_str().unwrap();
    let numbers = numbers_in(message);
    assert!(
        numbers.contains(&3) && numbers.contains(&11),
        "the message must list the 1-based lines 3 and 11: {message:?}"
    );
    assert!(!numbers.contains(&10), "0-based line numbers: {message:?}");
    assert!(
        on_disk(&ws, "code.js").unwrap() == text.as_bytes(),
        "unchanged"
    );
}

#[tokio::test]
async fn patch_replace_all_replaces_every_match() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let before = "foo = 1\r\nbar = foo\r\n\tfoofoo\r\nend";
    plant(&ws, "f.txt", before);
    let (status, body) = patch(
        &server,
        &sid,
        "f.txt",
        json!({"old_text": "foo", "new_text": "quux", "replace_all": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = before.replace("foo", "quux");
    assert_edit_result(&body, &ws, "f.txt", 4, before.len(), after.len());
    assert_eq!(raw_bytes(&server, &sid, "f.txt").await, after.as_bytes());

    // replace_all with a single match is fine too.
    let (status, body) = patch(
        &server,
        &sid,
        "f.txt",
        json!({"old_text": "end", "new_text": "fin", "replace_all": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replacements"], 1, "{body}");
}

#[tokio::test]
async fn patch_with_an_invalid_body_is_400() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "a.txt", "same same\n");
    for body in [
        json!({"old_text": "", "new_text": "x"}),
        json!({"old_text": "same", "new_text": "same"}),
        json!({"old_text": "same", "new_text": "same", "replace_all": true}),
        json!({"new_text": "x"}),
        json!({"old_text": "same"}),
        json!({"old_text": 5, "new_text": "x"}),
        json!({"old_text": "same", "new_text": null}),
        json!({"old_text": "same", "new_text": "x", "replace_all": "yes"}),
        json!(["same", "x"]),
    ] {
        let got = patch(&server, &sid, "a.txt", body.clone()).await;
        assert_error(&got, 400, "invalid_input");
    }
    let got = send_text(
        &server,
        Method::PATCH,
        &fs_url(&sid, "a.txt"),
        ACME,
        "{oops",
    )
    .await;
    assert_error(&got, 400, "invalid_input");
    assert_eq!(on_disk(&ws, "a.txt").unwrap(), b"same same\n");
}

#[tokio::test]
async fn patch_preserves_crlf_tabs_and_a_missing_trailing_newline() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let before: &[u8] =
        b"first\tline\r\nsecond line\r\n\tindented TARGET here\r\n\r\n  \ttrailing spaces  \r\nlast line no newline";
    plant(&ws, "w.txt", before);

    let (status, body) = patch(
        &server,
        &sid,
        "w.txt",
        json!({"old_text": "TARGET", "new_text": "REPLACED"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let step1 = String::from_utf8(before.to_vec())
        .unwrap()
        .replace("TARGET", "REPLACED");
    assert_edit_result(&body, &ws, "w.txt", 1, before.len(), step1.len());
    assert_eq!(raw_bytes(&server, &sid, "w.txt").await, step1.as_bytes());

    // A match spanning a CRLF and a tab; the replacement brings its own.
    let (status, body) = patch(
        &server,
        &sid,
        "w.txt",
        json!({"old_text": "second line\r\n\tindented", "new_text": "2nd\r\n\t\tind"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let step2 = step1.replace("second line\r\n\tindented", "2nd\r\n\t\tind");
    assert_eq!(raw_bytes(&server, &sid, "w.txt").await, step2.as_bytes());

    // An edit at the very end keeps the file without a trailing newline.
    let (status, body) = patch(
        &server,
        &sid,
        "w.txt",
        json!({"old_text": "no newline", "new_text": "still none"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let step3 = step2.replace("no newline", "still none");
    assert!(!step3.ends_with('\n'));
    assert_eq!(raw_bytes(&server, &sid, "w.txt").await, step3.as_bytes());

    // Trailing blank lines and a final newline are kept too.
    plant(&ws, "n.txt", "a\n\tb\n\n\n");
    let (status, body) = patch(
        &server,
        &sid,
        "n.txt",
        json!({"old_text": "a", "new_text": "A"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(on_disk(&ws, "n.txt").unwrap(), b"A\n\tb\n\n\n");
}

#[tokio::test]
async fn patch_of_a_missing_file_is_404_path_not_found() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    for path in ["missing.txt", "no/such/dir/file.txt"] {
        let got = patch(
            &server,
            &sid,
            path,
            json!({"old_text": "a", "new_text": "b"}),
        )
        .await;
        assert_error(&got, 404, "path_not_found");
        assert!(on_disk(&ws, path).is_none(), "PATCH must not create {path}");
    }
}

// ---------------------------------------------------------------------------
// Delete

#[track_caller]
fn assert_delete_result(body: &Value, path: &str, kind: &str) {
    assert_eq!(
        body,
        &json!({"object": "session.environment.filesystem.delete_result",
                "operation": "delete", "path": path, "deleted": true, "type": kind}),
    );
}

#[tokio::test]
async fn delete_a_file_then_it_is_gone() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "dir/gone.txt", "bye");
    plant(&ws, "dir/stays.txt", "stay");

    let (status, body) = server.delete(&fs_url(&sid, "dir/gone.txt"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_delete_result(&body, "dir/gone.txt", "file");
    assert!(!ws.join("dir/gone.txt").exists());
    assert_eq!(on_disk(&ws, "dir/stays.txt").unwrap(), b"stay");

    assert_error(
        &read(&server, &sid, "dir/gone.txt").await,
        404,
        "path_not_found",
    );
    let got = server.delete(&fs_url(&sid, "dir/gone.txt"), ACME).await;
    assert_error(&got, 404, "path_not_found");
    let (_, body) = read(&server, &sid, "dir").await;
    assert_eq!(assert_listing(&body, "dir"), ["dir/stays.txt"]);
}

#[tokio::test]
async fn delete_of_a_non_empty_directory_needs_recursive() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "tree/a.txt", "a");
    plant(&ws, "tree/sub/b.txt", "b");
    std::fs::create_dir(ws.join("hollow")).unwrap();

    for url in [
        fs_url(&sid, "tree"),
        format!("{}?recursive=false", fs_url(&sid, "tree")),
    ] {
        let got = server.delete(&url, ACME).await;
        assert_error(&got, 409, "directory_not_empty");
        assert_eq!(on_disk(&ws, "tree/a.txt").unwrap(), b"a", "DELETE {url}");
        assert_eq!(
            on_disk(&ws, "tree/sub/b.txt").unwrap(),
            b"b",
            "DELETE {url}"
        );
    }

    let (status, body) = server
        .delete(&format!("{}?recursive=true", fs_url(&sid, "tree")), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_delete_result(&body, "tree", "directory");
    assert!(!ws.join("tree").exists());

    // An empty directory goes without recursive.
    let (status, body) = server.delete(&fs_url(&sid, "hollow"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_delete_result(&body, "hollow", "directory");
    assert!(!ws.join("hollow").exists());
    assert!(ws.is_dir(), "the workspace itself stays");
}

#[tokio::test]
async fn delete_of_a_symlink_removes_the_link_not_its_target() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "target/file.txt", "keep me");
    std::os::unix::fs::symlink("target/file.txt", ws.join("file_link")).unwrap();
    std::os::unix::fs::symlink("target", ws.join("dir_link")).unwrap();

    let (status, body) = server.delete(&fs_url(&sid, "file_link"), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_delete_result(&body, "file_link", "symlink");
    let (status, body) = server
        .delete(
            &format!("{}?recursive=true", fs_url(&sid, "dir_link")),
            ACME,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_delete_result(&body, "dir_link", "symlink");
    assert!(std::fs::symlink_metadata(ws.join("file_link")).is_err());
    assert!(std::fs::symlink_metadata(ws.join("dir_link")).is_err());
    assert_eq!(on_disk(&ws, "target/file.txt").unwrap(), b"keep me");
}

#[tokio::test]
async fn delete_of_the_root_is_400_and_changes_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "keep/me.txt", "precious");
    for url in [
        fs_url(&sid, ""),
        format!("{}/", fs_url(&sid, "")),
        format!("{}?recursive=true", fs_url(&sid, "")),
        format!("{}/?recursive=true", fs_url(&sid, "")),
    ] {
        let got = server.delete(&url, ACME).await;
        assert_eq!(got.0.as_u16(), 400, "DELETE {url}: {}", got.1);
        let code = got.1["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code == "invalid_path" || code == "invalid_input",
            "DELETE {url}: {}",
            got.1
        );
        assert!(got.1["error"]["message"].is_string(), "{}", got.1);
        assert_eq!(
            on_disk(&ws, "keep/me.txt").unwrap(),
            b"precious",
            "DELETE {url}"
        );
    }
    let (status, body) = read(&server, &sid, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(assert_listing(&body, ""), ["keep"]);
}

#[tokio::test]
async fn delete_of_an_unknown_path_is_404_path_not_found() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for path in ["nope.txt", "no/such/dir", "nope?recursive=true"] {
        let url = match path.split_once('?') {
            Some((p, q)) => format!("{}?{q}", fs_url(&sid, p)),
            None => fs_url(&sid, path),
        };
        let got = server.delete(&url, ACME).await;
        assert_error(&got, 404, "path_not_found");
    }
}

// ---------------------------------------------------------------------------
// Environment, session and auth

/// The four methods on `url`; returns (method, status, body) of each.
async fn all_methods(
    server: &Server,
    url: &str,
    token: Option<&str>,
) -> Vec<(Method, (StatusCode, Value))> {
    let mut out = Vec::new();
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let body = match method {
            Method::PUT => Some(json!({"content": "intruder"})),
            Method::PATCH => Some(json!({"old_text": "secret", "new_text": "intruder"})),
            _ => None,
        };
        let mut rb = server.request(method.clone(), url, token);
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        out.push((method, json_of(rb.send().await.unwrap()).await));
    }
    out
}

#[tokio::test]
async fn an_unknown_environment_is_404_not_found() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "secret.txt", "secret");
    for path in ["", "/secret.txt"] {
        let url = format!("/v1/sessions/{sid}/resources/environments/nope/filesystem{path}");
        for (method, got) in all_methods(&server, &url, Some(ACME)).await {
            assert_eq!(got.0.as_u16(), 404, "{method} {url}: {}", got.1);
            assert_error(&got, 404, "not_found");
        }
    }
    assert_eq!(on_disk(&ws, "secret.txt").unwrap(), b"secret");
}

#[tokio::test]
async fn another_tenants_or_an_unknown_session_is_404() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "secret.txt", "secret");
    for path in ["", "secret.txt", "new.txt"] {
        let url = fs_url(&sid, path);
        for (method, got) in all_methods(&server, &url, Some(GLOBEX)).await {
            assert_eq!(got.0.as_u16(), 404, "GLOBEX {method} {url}: {}", got.1);
            assert_error(&got, 404, "not_found");
            assert!(!got.1.to_string().contains("secret\""), "{}", got.1);
        }
        let url = fs_url(UNKNOWN_SESSION, path);
        for (method, got) in all_methods(&server, &url, Some(ACME)).await {
            assert_eq!(got.0.as_u16(), 404, "{method} {url}: {}", got.1);
            assert_error(&got, 404, "not_found");
        }
    }
    assert_eq!(on_disk(&ws, "secret.txt").unwrap(), b"secret");
    assert!(on_disk(&ws, "new.txt").is_none());
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_401() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "secret.txt", "secret");
    for path in ["", "secret.txt", "new.txt"] {
        let url = fs_url(&sid, path);
        for token in [None, Some("not-a-token")] {
            for (method, got) in all_methods(&server, &url, token).await {
                assert_eq!(got.0.as_u16(), 401, "{method} {url} {token:?}: {}", got.1);
                assert_error(&got, 401, "unauthorized");
            }
        }
    }
    assert_eq!(on_disk(&ws, "secret.txt").unwrap(), b"secret");
    assert!(on_disk(&ws, "new.txt").is_none());
}
