//! What changed in the default environment this session:
//! `GET /v1/sessions/{sid}/resources/environments/default/changes` (every file whose
//! content differs from the session's starting state, however it was changed) and
//! `GET …/diff/{path}` (that file's before and after, optionally as a unified diff).

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers (local to this file).

fn changes_url(sid: &str) -> String {
    format!("{}/changes", env_url(sid))
}

fn diff_url(sid: &str, path: &str) -> String {
    format!("{}/diff/{}", env_url(sid), pct(path, true))
}

/// The bytes of a base64 side of a diff.
#[track_caller]
fn b64_side(body: &Value, side: &str) -> Vec<u8> {
    let s = body[side]
        .as_str()
        .unwrap_or_else(|| panic!("{side} is not a string: {body}"));
    b64_decode(s).unwrap_or_else(|| panic!("{side} is not base64: {body}"))
}

/// A template directory holding `files` (`rel` ending in `/`: an empty directory).
fn template_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        plant(dir.path(), rel, content);
    }
    dir
}

/// A server with `template` configured as `starter`, and an ACME session made from
/// it. The template directory is handed back so it outlives the test's use of it.
/// A server whose template `starter` is `template`.
async fn template_server(template: &Path) -> Server {
    Server::with_config(&format!("[templates]\nstarter = {template:?}\n")).await
}

/// `POST /v1/sessions` from the template `starter`, as acme.
fn from_starter(server: &Server) -> reqwest::RequestBuilder {
    server
        .request(Method::POST, "/v1/sessions", Some(ACME))
        .json(&json!({"environment": {"template": "starter"}}))
}

async fn serve_template(template: tempfile::TempDir) -> (Server, String, tempfile::TempDir) {
    let server = template_server(template.path()).await;
    let (status, body) = json_of(from_starter(&server).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sid = body["id"].as_str().unwrap().to_owned();
    (server, sid, template)
}

async fn from_template(files: &[(&str, &str)]) -> (Server, String, tempfile::TempDir) {
    serve_template(template_dir(files)).await
}

/// `PUT` a UTF-8 file through the API, asserting success.
async fn write(server: &Server, sid: &str, path: &str, content: &str) {
    let (status, body) = send_json(
        server,
        Method::PUT,
        &fs_url(sid, path),
        ACME,
        &json!({"content": content}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "PUT {path}: {body}");
}

/// `PUT` raw bytes (base64) through the API, asserting success.
async fn write_bytes(server: &Server, sid: &str, path: &str, bytes: &[u8]) {
    let (status, body) = send_json(
        server,
        Method::PUT,
        &fs_url(sid, path),
        ACME,
        &json!({"content": b64_encode(bytes), "encoding": "base64"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "PUT {path}: {body}");
}

/// `PATCH` an edit through the API, asserting success.
async fn edit(server: &Server, sid: &str, path: &str, old: &str, new: &str) {
    let (status, body) = send_json(
        server,
        Method::PATCH,
        &fs_url(sid, path),
        ACME,
        &json!({"old_text": old, "new_text": new}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "PATCH {path}: {body}");
}

/// `DELETE` through the API (`?recursive=true` when `recursive`), asserting success.
async fn remove(server: &Server, sid: &str, path: &str, recursive: bool) {
    let mut url = fs_url(sid, path);
    if recursive {
        url.push_str("?recursive=true");
    }
    let (status, body) = server.delete(&url, ACME).await;
    assert_eq!(status, StatusCode::OK, "DELETE {path}: {body}");
    assert_eq!(body["deleted"], true, "{body}");
}

/// Runs `command` in the environment; it must exit 0.
async fn sh(server: &Server, sid: &str, command: &str) -> Value {
    let (status, body) = server
        .post(&shell_path(sid), ACME, json!({"command": command}))
        .await;
    assert_eq!(status, StatusCode::OK, "{command}: {body}");
    assert_eq!(body["exit_code"], 0, "{command}: {body}");
    body
}

/// Asserts the whole contract of a `changes` body: `object`, `has_more: false`, items
/// of exactly `path`/`status`/`bytes`/`modified_at` (`bytes`/`modified_at` null exactly
/// when deleted), paths unique and ascending in byte order.
#[track_caller]
fn assert_changes_shape(body: &Value) {
    assert_eq!(body["object"], "list", "{body}");
    assert_eq!(body["has_more"], false, "{body}");
    let data = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"));
    for item in data {
        let obj = item
            .as_object()
            .unwrap_or_else(|| panic!("item is not an object: {body}"));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["bytes", "modified_at", "path", "status"], "{item}");
        assert!(item["path"].is_string(), "{item}");
        match item["status"].as_str() {
            Some("deleted") => {
                assert!(item["bytes"].is_null(), "{item}");
                assert!(item["modified_at"].is_null(), "{item}");
            }
            Some("created" | "modified") => {
                assert!(item["bytes"].is_u64(), "{item}");
                assert!(item["modified_at"].is_i64(), "{item}");
            }
            _ => panic!("bad status: {item}"),
        }
    }
    let paths: Vec<&str> = data.iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert!(
        paths.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
        "paths not unique and sorted in byte order: {paths:?}"
    );
}

/// The `changes` items, shape asserted.
async fn change_list(server: &Server, sid: &str) -> Vec<Value> {
    let (status, body) = server.get(&changes_url(sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_changes_shape(&body);
    body["data"].as_array().unwrap().clone()
}

/// The `changes` as `(path, status)`, in the listed order.
async fn changes(server: &Server, sid: &str) -> Vec<(String, String)> {
    change_list(server, sid)
        .await
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

#[track_caller]
fn item<'a>(list: &'a [Value], path: &str) -> &'a Value {
    list.iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("{path} not listed: {list:?}"))
}

/// Asserts that `path` is listed with `status` and with the `bytes` and `modified_at`
/// of the file on disk now.
#[track_caller]
fn assert_current(list: &[Value], ws: &Path, path: &str, status: &str) {
    let i = item(list, path);
    assert_eq!(i["status"], status, "{i}");
    let meta = std::fs::symlink_metadata(ws.join(path)).unwrap();
    assert_eq!(i["bytes"].as_u64(), Some(meta.len()), "{i}");
    let at = i["modified_at"].as_i64().unwrap();
    assert!(
        (at - mtime_secs(&meta)).abs() <= 1,
        "modified_at is not the file's mtime {}: {i}",
        mtime_secs(&meta)
    );
}

#[track_caller]
fn assert_deleted(list: &[Value], path: &str) {
    assert_eq!(
        item(list, path),
        &json!({"path": path, "status": "deleted", "bytes": null, "modified_at": null})
    );
}

/// Polls `changes` every 50 ms until it equals `want`; panics after `within`.
async fn await_changes(server: &Server, sid: &str, want: &[(&str, &str)], within: Duration) {
    let want = pairs(want);
    let deadline = Instant::now() + within;
    loop {
        let got = changes(server, sid).await;
        if got == want {
            return;
        }
        if Instant::now() >= deadline {
            panic!("after {within:?} the changes are {got:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 5 s) until `done` holds on disk.
async fn await_disk(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "never happened on disk: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn diff(server: &Server, sid: &str, path: &str) -> Value {
    let (status, body) = server.get(&diff_url(sid, path), ACME).await;
    assert_eq!(status, StatusCode::OK, "diff {path}: {body}");
    body
}

/// `?format=unified`: the body, checked to be the plain diff plus `unified`, and the
/// unified text.
async fn unified(server: &Server, sid: &str, path: &str) -> (Value, String) {
    let plain = diff(server, sid, path).await;
    let url = format!("{}?format=unified", diff_url(sid, path));
    let (status, body) = server.get(&url, ACME).await;
    assert_eq!(status, StatusCode::OK, "unified diff {path}: {body}");
    let mut rest = body.clone();
    let text = rest
        .as_object_mut()
        .unwrap()
        .remove("unified")
        .unwrap_or_else(|| panic!("no unified key: {body}"));
    assert_eq!(rest, plain, "format=unified only adds `unified`");
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("unified is not a string: {body}"))
        .to_owned();
    (body, text)
}

/// Asserts the header lines `minus` then `plus` directly followed by a hunk header,
/// and that each of `lines` is a line of the diff.
#[track_caller]
fn assert_unified(text: &str, minus: &str, plus: &str, lines: &[&str]) {
    let all: Vec<&str> = text.lines().collect();
    let at = all
        .iter()
        .position(|l| *l == minus)
        .unwrap_or_else(|| panic!("no {minus:?} line in:\n{text}"));
    assert_eq!(all.get(at + 1), Some(&plus), "headers in:\n{text}");
    assert!(
        all.get(at + 2).is_some_and(|l| l.starts_with("@@ -")),
        "no hunk after the headers in:\n{text}"
    );
    for line in lines {
        assert!(all.contains(line), "no {line:?} line in:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// changes: what is listed

#[tokio::test]
async fn a_fresh_empty_session_lists_no_changes() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let (status, body) = server.get(&changes_url(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "list", "data": [], "has_more": false})
    );
}

#[tokio::test]
async fn a_session_from_a_template_starts_with_no_changes() {
    let template = template_dir(&[
        ("README.md", "# starter\n"),
        ("src/main.py", "print('hi')\n"),
        ("a/b/c/deep.txt", "deep\n"),
        ("empty/", ""),
    ]);
    std::fs::write(template.path().join("blob.bin"), [0u8, 159, 146, 150]).unwrap();
    let (server, sid, _template) = serve_template(template).await;
    let ws = workspace(&server, &sid);
    assert_eq!(std::fs::read(ws.join("README.md")).unwrap(), b"# starter\n");

    let (status, body) = server.get(&changes_url(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "list", "data": [], "has_more": false})
    );
    assert_error(
        &server.get(&diff_url(&sid, "README.md"), ACME).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn api_writes_edits_and_deletes_are_listed_as_created_modified_and_deleted() {
    let (server, sid, _template) = from_template(&[
        ("keep.txt", "keep\n"),
        ("src/app.py", "x = 1\n"),
        ("old.txt", "old\n"),
        ("twice.txt", "twice\n"),
    ])
    .await;
    let ws = workspace(&server, &sid);

    write(&server, &sid, "new/hello.txt", "hello\n").await;
    edit(&server, &sid, "src/app.py", "x = 1", "x = 42").await;
    remove(&server, &sid, "old.txt", false).await;
    // Created then edited is still created; modified then deleted is deleted.
    write(&server, &sid, "draft.md", "a\n").await;
    edit(&server, &sid, "draft.md", "a", "abc").await;
    write(&server, &sid, "twice.txt", "changed\n").await;
    remove(&server, &sid, "twice.txt", false).await;

    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[
            ("draft.md", "created"),
            ("new/hello.txt", "created"),
            ("old.txt", "deleted"),
            ("src/app.py", "modified"),
            ("twice.txt", "deleted"),
        ])
    );
    let list = change_list(&server, &sid).await;
    assert_current(&list, &ws, "new/hello.txt", "created");
    assert_eq!(item(&list, "new/hello.txt")["bytes"], 6);
    assert_current(&list, &ws, "src/app.py", "modified");
    assert_eq!(item(&list, "src/app.py")["bytes"], 7);
    assert_current(&list, &ws, "draft.md", "created");
    assert_eq!(item(&list, "draft.md")["bytes"], 4);
    assert_deleted(&list, "old.txt");
    assert_deleted(&list, "twice.txt");
}

#[tokio::test]
async fn shell_creations_modifications_and_deletions_are_listed() {
    let (server, sid, _template) = from_template(&[
        ("keep.txt", "keep\n"),
        ("mod.txt", "before\n"),
        ("lib/del.txt", "delete me\n"),
    ])
    .await;
    let ws = workspace(&server, &sid);

    sh(
        &server,
        &sid,
        "echo new > new.txt && echo changed >> mod.txt && rm lib/del.txt && cat keep.txt >/dev/null",
    )
    .await;

    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[
            ("lib/del.txt", "deleted"),
            ("mod.txt", "modified"),
            ("new.txt", "created"),
        ])
    );
    let list = change_list(&server, &sid).await;
    assert_current(&list, &ws, "new.txt", "created");
    assert_eq!(item(&list, "new.txt")["bytes"], 4);
    assert_current(&list, &ws, "mod.txt", "modified");
    assert_eq!(item(&list, "mod.txt")["bytes"], 15);
    assert_deleted(&list, "lib/del.txt");
}

#[tokio::test]
async fn api_changes_that_are_undone_are_not_listed() {
    let (server, sid, _template) = from_template(&[
        ("base.txt", "v1\n"),
        ("edited.txt", "alpha beta\n"),
        ("gone.txt", "back again\n"),
        ("same.txt", "same\n"),
    ])
    .await;

    // Created then deleted.
    write(&server, &sid, "tmp/scratch.txt", "scratch\n").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("tmp/scratch.txt", "created")])
    );
    remove(&server, &sid, "tmp/scratch.txt", false).await;
    // Modified then restored, by write and by edit.
    write(&server, &sid, "base.txt", "v2\n").await;
    edit(&server, &sid, "edited.txt", "beta", "gamma").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("base.txt", "modified"), ("edited.txt", "modified")])
    );
    write(&server, &sid, "base.txt", "v1\n").await;
    edit(&server, &sid, "edited.txt", "gamma", "beta").await;
    // Deleted then re-created with the same content.
    remove(&server, &sid, "gone.txt", false).await;
    write(&server, &sid, "gone.txt", "back again\n").await;
    // Rewritten with identical content.
    write(&server, &sid, "same.txt", "same\n").await;

    let (status, body) = server.get(&changes_url(&sid), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"object": "list", "data": [], "has_more": false})
    );
}

#[tokio::test]
async fn shell_changes_that_are_undone_are_not_listed() {
    let (server, sid, _template) =
        from_template(&[("f.txt", "v1\n"), ("touched.txt", "t\n")]).await;

    sh(&server, &sid, "echo t > tmp.txt && echo v2 > f.txt").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("f.txt", "modified"), ("tmp.txt", "created")])
    );
    sh(&server, &sid, "rm tmp.txt && printf 'v1\\n' > f.txt").await;
    assert_eq!(changes(&server, &sid).await, pairs(&[]));

    // Within one command; and a new mtime with the same content is no change.
    sh(
        &server,
        &sid,
        "echo x > once.txt; rm once.txt; echo v3 > f.txt; echo v1 > f.txt; sleep 1.1; touch touched.txt",
    )
    .await;
    assert_eq!(changes(&server, &sid).await, pairs(&[]));
}

#[tokio::test]
async fn changes_are_sorted_by_path_in_byte_order() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    write(&server, &sid, "b.txt", "b\n").await;
    write(&server, &sid, "a/z.txt", "z\n").await;
    write(&server, &sid, "é.txt", "e\n").await;
    sh(
        &server,
        &sid,
        "mkdir -p a/b && echo > a.txt && echo > A.txt && echo > _x && echo > a-b.txt \
         && echo > a/b/c.txt && echo > Z.txt",
    )
    .await;

    let got: Vec<String> = changes(&server, &sid)
        .await
        .into_iter()
        .map(|(path, status)| {
            assert_eq!(status, "created", "{path}");
            path
        })
        .collect();
    assert_eq!(
        got,
        [
            "A.txt",
            "Z.txt",
            "_x",
            "a-b.txt",
            "a.txt",
            "a/b/c.txt",
            "a/z.txt",
            "b.txt",
            "é.txt"
        ]
    );
}

#[tokio::test]
async fn directories_are_never_listed_but_files_and_symlinks_are() {
    let (server, sid, _template) = from_template(&[("k.txt", "k\n"), ("keep/", "")]).await;
    sh(
        &server,
        &sid,
        "rm -rf keep && mkdir -p empty/deeper && mkdir full && echo x > full/f.txt \
         && ln -s full/f.txt link",
    )
    .await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("full/f.txt", "created"), ("link", "created")])
    );
}

#[tokio::test]
async fn diff_of_a_symlink_shows_its_target_when_it_stays_inside() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    sh(
        &server,
        &sid,
        "mkdir -p d/e && echo x > d/f.txt && ln -s f.txt d/same && ln -s ../d/f.txt d/e/up \
         && ln -s ../../.. d/e/out",
    )
    .await;
    let same = diff(&server, &sid, "d/same").await;
    assert_eq!(
        (same["before"].clone(), same["after"].clone()),
        (Value::Null, json!("f.txt"))
    );
    assert_eq!(diff(&server, &sid, "d/e/up").await["after"], "../d/f.txt");
    // A target climbing above the root would reveal what lies outside.
    let url = format!("{}/diff/d/e/out", env_url(&sid));
    assert_error(&server.get(&url, ACME).await, 403, "path_forbidden");
}

/// Asserts that reading `path` and diffing it (plain and unified) are each refused
/// with `status` and `code`.
async fn assert_read_and_diff_refused(
    server: &Server,
    sid: &str,
    path: &str,
    status: u16,
    code: &str,
) {
    for (what, url) in [
        ("read", fs_url(sid, path)),
        ("diff", diff_url(sid, path)),
        (
            "unified diff",
            format!("{}?format=unified", diff_url(sid, path)),
        ),
    ] {
        let got = server.get(&url, ACME).await;
        assert_eq!(
            (got.0.as_u16(), &got.1["error"]["code"]),
            (status, &json!(code)),
            "{what} of {path}: {}",
            got.1
        );
        assert!(got.1["error"]["message"].is_string(), "{}", got.1);
    }
}

#[tokio::test]
async fn diff_of_a_self_referencing_symlink_is_refused_like_read() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    std::os::unix::fs::symlink("link_loop", ws.join("link_loop")).unwrap();
    // Listed: a link is a file whose content is its target.
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("link_loop", "created")])
    );
    // Every filesystem operation that follows it refuses it: a loop never resolves.
    let url = fs_url(&sid, "link_loop");
    assert_error(
        &server.get(&format!("{url}?format=raw"), ACME).await,
        400,
        "invalid_path",
    );
    for (method, body) in [
        (Method::PUT, json!({"content": "x"})),
        (Method::PATCH, json!({"old_text": "x", "new_text": "y"})),
    ] {
        assert_error(
            &send_json(&server, method, &url, ACME, &body).await,
            400,
            "invalid_path",
        );
    }
    // And so does its diff, with the same status and code as the read.
    assert_read_and_diff_refused(&server, &sid, "link_loop", 400, "invalid_path").await;
}

#[tokio::test]
async fn diff_refuses_symlink_cycles_and_links_leading_outside_as_read_does() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let links = [
        ("a", "b"),
        ("b", "a"),
        ("via_cycle", "a/x"),
        ("abs_out", "/etc/hostname"),
        ("rel_out", "../outside.txt"),
        ("out_dir", "/etc"),
        ("through_out", "out_dir/hostname"),
    ];
    for (link, target) in links {
        std::os::unix::fs::symlink(target, ws.join(link)).unwrap();
    }
    let mut listed: Vec<(&str, &str)> = links.iter().map(|(l, _)| (*l, "created")).collect();
    listed.sort();
    assert_eq!(changes(&server, &sid).await, pairs(&listed));
    for link in ["a", "b", "via_cycle"] {
        assert_read_and_diff_refused(&server, &sid, link, 400, "invalid_path").await;
    }
    for link in ["abs_out", "rel_out", "out_dir", "through_out"] {
        assert_read_and_diff_refused(&server, &sid, link, 403, "path_forbidden").await;
    }
}

#[tokio::test]
async fn ignored_directories_and_editor_swap_files_are_not_listed() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    sh(
        &server,
        &sid,
        r##"set -e
mkdir -p .git/objects node_modules/pkg src/__pycache__ .venv/bin target/debug \
         web/node_modules/lib a/b/.git a/target targets
echo x > .git/HEAD
echo x > .git/objects/ab
echo x > node_modules/pkg/index.js
echo x > src/__pycache__/m.cpython-312.pyc
echo x > .venv/bin/python
echo x > target/debug/app
echo x > web/node_modules/lib/a.js
echo x > a/b/.git/config
echo x > a/target/out.o
echo x > .main.py.swp
echo x > .main.py.swo
echo x > .main.py.swx
echo x > notes.txt~
echo x > '.#main.py'
echo x > '#main.py#'
echo x > 4913
echo x > src/.m.py.swp
echo x > src/4913
echo x > 'src/b.txt~'
echo x > src/main.py
echo x > .gitignore
echo x > targets/t.txt
echo x > web/app.js
"##,
    )
    .await;
    // Through the API too.
    write(&server, &sid, "node_modules/api.js", "x\n").await;
    write(&server, &sid, "pkg/__pycache__/api.pyc", "x\n").await;
    write(&server, &sid, "src/.api.py.swp", "x\n").await;

    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[
            (".gitignore", "created"),
            ("src/main.py", "created"),
            ("targets/t.txt", "created"),
            ("web/app.js", "created"),
        ])
    );
}

#[tokio::test]
async fn a_background_process_change_after_the_shell_returned_appears_within_a_second() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    sh(
        &server,
        &sid,
        "echo early > early.txt; (sleep 0.3; echo late > late.txt; rm early.txt) >/dev/null 2>&1 &",
    )
    .await;
    let first = changes(&server, &sid).await;
    if !ws.join("late.txt").exists() {
        // The background process had not run yet when that listing was made.
        assert_eq!(first, pairs(&[("early.txt", "created")]));
    }
    await_disk("late.txt written and early.txt removed", || {
        ws.join("late.txt").exists() && !ws.join("early.txt").exists()
    })
    .await;
    await_changes(
        &server,
        &sid,
        &[("late.txt", "created")],
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test]
async fn files_written_into_directories_made_by_the_same_command_are_listed() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    let mut command = String::from("mkdir -p d/e && echo hi > d/e/f.txt");
    for i in 0..20 {
        command.push_str(&format!(
            " && mkdir -p r{i:02}/a/b && echo {i} > r{i:02}/a/b/f.txt"
        ));
    }
    sh(&server, &sid, &command).await;

    let mut want = vec![("d/e/f.txt".to_owned(), "created".to_owned())];
    for i in 0..20 {
        want.push((format!("r{i:02}/a/b/f.txt"), "created".to_owned()));
    }
    assert_eq!(changes(&server, &sid).await, want);
    let list = change_list(&server, &sid).await;
    assert_current(&list, &ws, "d/e/f.txt", "created");
    assert_eq!(item(&list, "d/e/f.txt")["bytes"], 3);
}

#[tokio::test]
async fn renaming_a_directory_lists_old_paths_deleted_and_new_paths_created() {
    let (server, sid, _template) = from_template(&[
        ("README.md", "r\n"),
        ("src/a.py", "a\n"),
        ("src/pkg/b.py", "b\n"),
    ])
    .await;

    sh(&server, &sid, "mv src lib").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[
            ("lib/a.py", "created"),
            ("lib/pkg/b.py", "created"),
            ("src/a.py", "deleted"),
            ("src/pkg/b.py", "deleted"),
        ])
    );

    // Moving it back restores the start; a new directory renamed lists only its new paths.
    sh(&server, &sid, "mv lib src").await;
    assert_eq!(changes(&server, &sid).await, pairs(&[]));
    sh(
        &server,
        &sid,
        "mkdir tmp && echo t > tmp/t.txt && mv tmp kept",
    )
    .await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("kept/t.txt", "created")])
    );
}

#[tokio::test]
async fn a_recursive_api_delete_lists_the_starting_files_under_it_as_deleted() {
    let (server, sid, _template) = from_template(&[
        ("dir/a.txt", "a\n"),
        ("dir/sub/b.txt", "b\n"),
        ("other.txt", "o\n"),
    ])
    .await;
    write(&server, &sid, "dir/new.txt", "new\n").await;
    remove(&server, &sid, "dir", true).await;

    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("dir/a.txt", "deleted"), ("dir/sub/b.txt", "deleted")])
    );
    let list = change_list(&server, &sid).await;
    assert_deleted(&list, "dir/a.txt");
    assert_deleted(&list, "dir/sub/b.txt");
}

#[tokio::test]
async fn the_baseline_is_the_template_as_copied_not_the_live_template_directory() {
    let (server, sid, template) =
        from_template(&[("README.md", "# starter\n"), ("keep.txt", "keep\n")]).await;
    // The operator edits the template after the session was created.
    plant(template.path(), "README.md", "# changed upstream\n");
    plant(template.path(), "extra.txt", "extra\n");
    std::fs::remove_file(template.path().join("keep.txt")).unwrap();
    assert_eq!(changes(&server, &sid).await, pairs(&[]));

    write(&server, &sid, "README.md", "# mine\n").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("README.md", "modified")])
    );
    let body = diff(&server, &sid, "README.md").await;
    assert_eq!(body["before"], "# starter\n", "{body}");
    assert_eq!(body["after"], "# mine\n", "{body}");
}

// ---------------------------------------------------------------------------
// changes: across restarts

#[tokio::test]
async fn changes_survive_a_clean_restart_and_edits_made_while_down_are_found() {
    let (mut server, sid, _template) = from_template(&[
        ("keep.txt", "keep\n"),
        ("edit.txt", "edit me\n"),
        ("gone.txt", "bye\n"),
        ("flip.txt", "flip\n"),
        ("while_down.txt", "original\n"),
    ])
    .await;
    write(&server, &sid, "edit.txt", "edited\n").await;
    write(&server, &sid, "new.txt", "new\n").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("edit.txt", "modified"), ("new.txt", "created")])
    );

    assert!(server.terminate(), "unclean exit: {}", server.stderr());
    let ws = workspace(&server, &sid);
    plant(&ws, "offline.txt", "offline\n");
    std::fs::remove_file(ws.join("gone.txt")).unwrap();
    plant(&ws, "flip.txt", "flipped\n");
    plant(&ws, "flip.txt", "flip\n");
    plant(&ws, "while_down.txt", "changed offline\n");
    plant(&ws, "node_modules/x.js", "ignored\n");
    server.spawn();

    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[
            ("edit.txt", "modified"),
            ("gone.txt", "deleted"),
            ("new.txt", "created"),
            ("offline.txt", "created"),
            ("while_down.txt", "modified"),
        ])
    );
    let list = change_list(&server, &sid).await;
    assert_current(&list, &ws, "offline.txt", "created");
    assert_eq!(item(&list, "offline.txt")["bytes"], 8);
    assert_current(&list, &ws, "while_down.txt", "modified");
    assert_eq!(item(&list, "while_down.txt")["bytes"], 16);
    assert_deleted(&list, "gone.txt");
    let body = diff(&server, &sid, "edit.txt").await;
    assert_eq!(
        (&body["before"], &body["after"]),
        (&json!("edit me\n"), &json!("edited\n")),
        "{body}"
    );
    let body = diff(&server, &sid, "while_down.txt").await;
    assert_eq!(body["before"], "original\n", "{body}");

    // Tracking goes on after the restart.
    sh(&server, &sid, "echo live > live.txt && rm edit.txt").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[
            ("edit.txt", "deleted"),
            ("gone.txt", "deleted"),
            ("live.txt", "created"),
            ("new.txt", "created"),
            ("offline.txt", "created"),
            ("while_down.txt", "modified"),
        ])
    );
}

#[tokio::test]
async fn changes_survive_sigkill_and_the_baseline_is_kept() {
    let (mut server, sid, _template) =
        from_template(&[("base.txt", "before\n"), ("keep.txt", "keep\n")]).await;
    write(&server, &sid, "base.txt", "after\n").await;
    sh(&server, &sid, "echo new > new.txt").await;

    server.kill();
    server.spawn();

    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("base.txt", "modified"), ("new.txt", "created")])
    );
    let body = diff(&server, &sid, "base.txt").await;
    assert_eq!(body["before"], "before\n", "{body}");
    assert_eq!(body["after"], "after\n", "{body}");
    // Restoring after the restart compares against the original baseline.
    write(&server, &sid, "base.txt", "before\n").await;
    sh(&server, &sid, "echo z > z.txt").await;
    assert_eq!(
        changes(&server, &sid).await,
        pairs(&[("new.txt", "created"), ("z.txt", "created")])
    );
}

// ---------------------------------------------------------------------------
// diff

#[tokio::test]
async fn diff_of_a_modified_text_file_has_before_and_after_and_no_unified_key() {
    let (server, sid, _template) = from_template(&[("docs/notes.txt", "one\ntwo\nthree\n")]).await;
    edit(&server, &sid, "docs/notes.txt", "two", "2").await;
    assert_eq!(
        diff(&server, &sid, "docs/notes.txt").await,
        json!({"object": "session.environment.filesystem.file_diff", "path": "docs/notes.txt",
               "status": "modified", "before": "one\ntwo\nthree\n", "after": "one\n2\nthree\n",
               "encoding": "utf-8", "truncated": false})
    );
}

#[tokio::test]
async fn unified_diff_of_a_modified_file_has_a_and_b_headers_and_a_hunk() {
    let (server, sid, _template) = from_template(&[("docs/notes.txt", "one\ntwo\nthree\n")]).await;
    write(&server, &sid, "docs/notes.txt", "one\n2\nthree\n").await;
    let (body, text) = unified(&server, &sid, "docs/notes.txt").await;
    assert_eq!(body["before"], "one\ntwo\nthree\n", "{body}");
    assert_eq!(body["after"], "one\n2\nthree\n", "{body}");
    assert_unified(
        &text,
        "--- a/docs/notes.txt",
        "+++ b/docs/notes.txt",
        &["-two", "+2"],
    );
    let lines: Vec<&str> = text.lines().collect();
    for unchanged in ["-one", "+one", "-three", "+three"] {
        assert!(!lines.contains(&unchanged), "{unchanged:?} in:\n{text}");
    }
}

#[tokio::test]
async fn diffs_of_created_and_deleted_files_have_a_null_side_and_dev_null_headers() {
    let (server, sid, _template) = from_template(&[("gone.txt", "bye\n")]).await;
    write(&server, &sid, "new.txt", "hello\n").await;
    remove(&server, &sid, "gone.txt", false).await;

    assert_eq!(
        diff(&server, &sid, "new.txt").await,
        json!({"object": "session.environment.filesystem.file_diff", "path": "new.txt",
               "status": "created", "before": null, "after": "hello\n", "encoding": "utf-8", "truncated": false})
    );
    let (_, text) = unified(&server, &sid, "new.txt").await;
    assert_unified(&text, "--- /dev/null", "+++ b/new.txt", &["+hello"]);

    assert_eq!(
        diff(&server, &sid, "gone.txt").await,
        json!({"object": "session.environment.filesystem.file_diff", "path": "gone.txt",
               "status": "deleted", "before": "bye\n", "after": null, "encoding": "utf-8", "truncated": false})
    );
    let (_, text) = unified(&server, &sid, "gone.txt").await;
    assert_unified(&text, "--- a/gone.txt", "+++ /dev/null", &["-bye"]);
}

#[tokio::test]
async fn a_binary_side_makes_both_sides_base64() {
    let template = template_dir(&[("doc.txt", "text\n")]);
    std::fs::write(template.path().join("bin.dat"), [0u8, 1, 2, 255]).unwrap();
    std::fs::write(template.path().join("old.bin"), [0u8, 0]).unwrap();
    let (server, sid, _template) = serve_template(template).await;
    write_bytes(&server, &sid, "bin.dat", &[0, 1, 2, 3]).await;
    write_bytes(&server, &sid, "doc.txt", b"t\0x").await;
    write_bytes(&server, &sid, "new.bin", &[0xff, 0xfe]).await;
    remove(&server, &sid, "old.bin", false).await;

    let check = |body: &Value, path: &str| {
        assert_eq!(
            body["object"], "session.environment.filesystem.file_diff",
            "{body}"
        );
        assert_eq!(body["path"], path, "{body}");
        assert_eq!(body["encoding"], "base64", "{body}");
        assert_eq!(body["truncated"], false, "{body}");
    };
    let body = diff(&server, &sid, "bin.dat").await;
    check(&body, "bin.dat");
    assert_eq!(b64_side(&body, "before"), [0, 1, 2, 255], "{body}");
    assert_eq!(b64_side(&body, "after"), [0, 1, 2, 3], "{body}");
    let (_, text) = unified(&server, &sid, "bin.dat").await;
    assert_eq!(text, "Binary files a/bin.dat and b/bin.dat differ\n");

    // Text before, binary after: the text side is base64 too.
    let body = diff(&server, &sid, "doc.txt").await;
    check(&body, "doc.txt");
    assert_eq!(b64_side(&body, "before"), b"text\n", "{body}");
    assert_eq!(b64_side(&body, "after"), b"t\0x", "{body}");
    let (_, text) = unified(&server, &sid, "doc.txt").await;
    assert_eq!(text, "Binary files a/doc.txt and b/doc.txt differ\n");

    // Invalid UTF-8 without a NUL is binary; a missing side stays null.
    let body = diff(&server, &sid, "new.bin").await;
    check(&body, "new.bin");
    assert!(body["before"].is_null(), "{body}");
    assert_eq!(b64_side(&body, "after"), [0xff, 0xfe], "{body}");
    let body = diff(&server, &sid, "old.bin").await;
    check(&body, "old.bin");
    assert_eq!(b64_side(&body, "before"), [0, 0], "{body}");
    assert!(body["after"].is_null(), "{body}");
}

#[tokio::test]
async fn diff_of_a_path_not_changed_this_session_is_404() {
    let (server, sid, _template) =
        from_template(&[("keep.txt", "keep\n"), ("same.txt", "same\n")]).await;
    write(&server, &sid, "tmp.txt", "tmp\n").await;
    remove(&server, &sid, "tmp.txt", false).await;
    write(&server, &sid, "same.txt", "same\n").await;
    write(&server, &sid, "changed.txt", "c\n").await;

    for path in [
        "keep.txt",
        "same.txt",
        "never.txt",
        "tmp.txt",
        "dir/never.txt",
    ] {
        let got = server.get(&diff_url(&sid, path), ACME).await;
        assert_error(&got, 404, "not_found");
        let url = format!("{}?format=unified", diff_url(&sid, path));
        assert_error(&server.get(&url, ACME).await, 404, "not_found");
    }
    diff(&server, &sid, "changed.txt").await;
}

#[tokio::test]
async fn bad_diff_requests_are_400() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    write(&server, &sid, "a.txt", "a\n").await;

    let url = format!("{}?format=bogus", diff_url(&sid, "a.txt"));
    assert_error(&server.get(&url, ACME).await, 400, "invalid_input");
    for escape in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "a%2F..%2F..%2Fx",
    ] {
        let url = format!("{}/diff/{escape}", env_url(&sid));
        assert_error(&server.get(&url, ACME).await, 400, "invalid_path");
    }
}

#[tokio::test]
async fn changes_and_diffs_belong_to_their_session_tenant_and_environment() {
    let server = Server::start().await;
    let mine = server.session(ACME).await;
    let sibling = server.session(ACME).await;
    write(&server, &mine, "x.txt", "x\n").await;

    // Another session of the same tenant sees nothing of it.
    assert_eq!(changes(&server, &sibling).await, pairs(&[]));
    assert_error(
        &server.get(&diff_url(&sibling, "x.txt"), ACME).await,
        404,
        "not_found",
    );
    // Another tenant: the session does not exist.
    assert_error(
        &server.get(&changes_url(&mine), GLOBEX).await,
        404,
        "not_found",
    );
    assert_error(
        &server.get(&diff_url(&mine, "x.txt"), GLOBEX).await,
        404,
        "not_found",
    );
    // Unknown session and unknown environment.
    assert_error(
        &server.get(&changes_url(UNKNOWN_SESSION), ACME).await,
        404,
        "not_found",
    );
    let other_env = format!("/v1/sessions/{mine}/resources/environments/other");
    assert_error(
        &server.get(&format!("{other_env}/changes"), ACME).await,
        404,
        "not_found",
    );
    assert_error(
        &server.get(&format!("{other_env}/diff/x.txt"), ACME).await,
        404,
        "not_found",
    );
    // No token.
    let resp = server
        .request(Method::GET, &changes_url(&mine), None)
        .send()
        .await
        .unwrap();
    assert_error(&json_of(resp).await, 401, "unauthorized");
    // The owner still sees it.
    assert_eq!(
        changes(&server, &mine).await,
        pairs(&[("x.txt", "created")])
    );
}

#[tokio::test]
async fn a_change_set_of_100_000_files_is_listed_whole() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let made = "for d in $(seq 100); do mkdir d$d && (cd d$d && seq 1000 | xargs touch); done";
    let (status, body) = server
        .post(
            &shell_path(&sid),
            ACME,
            json!({"command": made, "timeout": 120}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["exit_code"]),
        (200, &json!(0)),
        "{body}"
    );
    let (status, body) = server
        .get(&format!("{}/changes", env_url(&sid)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 100_000);
    assert_eq!(
        data[0],
        json!({"path": "d1/1", "status": "created", "bytes": 0, "modified_at": data[0]["modified_at"]})
    );
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn a_template_is_copied_exactly_with_modes_links_big_files_and_odd_names_and_then_tracked() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let template = tempfile::tempdir().unwrap();
    let t = template.path();
    for d in 0..30 {
        std::fs::create_dir_all(t.join(format!("pkg/mod{d:02}"))).unwrap();
        for f in 0..5 {
            std::fs::write(
                t.join(format!("pkg/mod{d:02}/f{f}.txt")),
                format!("{d}/{f}\n"),
            )
            .unwrap();
        }
    }
    std::fs::write(t.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(t.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(t.join("secret"), "s").unwrap();
    std::fs::set_permissions(t.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(t.join("big.bin"), &big).unwrap();
    std::os::unix::fs::symlink("run.sh", t.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", t.join("outside")).unwrap();
    std::fs::write(t.join(std::ffi::OsStr::from_bytes(b"odd-\xff")), "odd").unwrap();
    std::fs::create_dir_all(t.join("node_modules/dep")).unwrap();
    std::fs::write(t.join("node_modules/dep/index.js"), "x").unwrap();
    std::fs::write(t.join(".notes.txt.swp"), "swap").unwrap();
    let (server, sid, template) = serve_template(template).await;
    let (sid, t) = (sid.as_str(), template.path());
    let ws = server.data_dir().join("workspaces").join(sid);

    // Every entry, byte for byte, mode for mode, link for link.
    fn tree(root: &std::path::Path) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_owned()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let meta = std::fs::symlink_metadata(e.path()).unwrap();
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
                let content = if meta.file_type().is_symlink() {
                    std::fs::read_link(e.path())
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                } else if meta.is_dir() {
                    todo.push(e.path());
                    Vec::new()
                } else {
                    std::fs::read(e.path()).unwrap()
                };
                let mode = if meta.file_type().is_symlink() {
                    0
                } else {
                    meta.permissions().mode() & 0o7777
                };
                out.push((rel, if meta.is_dir() { 0 } else { mode }, content));
            }
        }
        out.sort();
        out
    }
    assert_eq!(tree(&ws), tree(t));

    // The baseline is the copy: nothing changed; then changes are seen, in new
    // and old directories, the big file included.
    let changes = format!("{}/changes", env_url(sid));
    let (_, listed) = server.get(&changes, ACME).await;
    assert_eq!(listed["data"], json!([]), "{listed}");
    std::fs::write(ws.join("pkg/mod07/f3.txt"), "changed\n").unwrap();
    std::fs::write(ws.join("pkg/mod29/new.txt"), "new\n").unwrap();
    std::fs::write(ws.join("big.bin"), b"smaller").unwrap();
    std::fs::remove_file(ws.join("secret")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, listed) = server.get(&changes, ACME).await;
        let got: Vec<(String, String)> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["path"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("big.bin", "modified"),
            ("pkg/mod07/f3.txt", "modified"),
            ("pkg/mod29/new.txt", "created"),
            ("secret", "deleted"),
        ]
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
        if got == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, diff) = server
        .get(&format!("{}/diff/big.bin", env_url(sid)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
}

#[tokio::test]
async fn a_template_copies_under_a_tight_open_file_limit_and_without_descriptors_is_busy() {
    // 3,000 directories under a 512-descriptor limit: a copy that held each
    // directory open until it ended needed two descriptors per directory.
    let template = tempfile::tempdir().unwrap();
    for i in 0..3000 {
        let dir = template.path().join(format!("d{:02}/e{i}", i % 30));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f.txt"), i.to_string()).unwrap();
    }
    let server = template_server(template.path()).await;
    server.limit_open_files(512);
    let (status, body) = json_of(from_starter(&server).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sid = body["id"].as_str().unwrap();
    for i in [0, 1234, 2999] {
        let path = format!("{}/filesystem/d{:02}/e{i}/f.txt", env_url(sid), i % 30);
        let (status, read) = server.get(&path, ACME).await;
        assert_eq!(
            (status, &read["content"]),
            (StatusCode::OK, &json!(i.to_string()))
        );
    }
    let (_, listed) = server.get(&format!("{}/changes", env_url(sid)), ACME).await;
    assert_eq!(listed["data"], json!([]), "{listed}");

    // Too few descriptors to copy at all (two beyond those open): the server is
    // busy, not broken, and keeps no half-made session.
    let open = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count();
    server.limit_open_files(open as u64 + 2);
    let got = from_starter(&server).send().await.unwrap();
    assert_eq!(got.headers()["retry-after"], "1");
    let (_, refused) = json_of(got).await;
    assert_eq!(refused["error"]["code"], "server_busy", "{refused}");
    server.limit_open_files(512);
    let (_, sessions) = server.get("/v1/sessions", ACME).await;
    assert_eq!(assert_list(&sessions), [sid.to_owned()]);
}
