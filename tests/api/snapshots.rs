//! Snapshots (`…/environments/{env}/snapshots`): taken, compared with each other
//! and with the workspace in the shapes of `changes` and `diff`, restored
//! exactly (bytes, modes, symlinks, directories) and atomically as far as the
//! API sees, also across a restart and a `kill -9`; sessions start from them;
//! another tenant never reaches them.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

fn snapshots(sid: &str) -> String {
    format!("{}/snapshots", env_url(sid))
}

fn snapshot(sid: &str, id: &str) -> String {
    format!("{}/{id}", snapshots(sid))
}

/// Takes a snapshot named `name`; its JSON.
async fn take(server: &Server, sid: &str, name: Option<&str>) -> Value {
    let (status, body) = server
        .post(&snapshots(sid), ACME, json!({ "name": name }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["object"], "snapshot");
    assert!(body["id"].as_str().unwrap().starts_with("snap_"), "{body}");
    body
}

async fn restore(server: &Server, sid: &str, id: &str) -> Value {
    let path = format!("{}/restore", snapshot(sid, id));
    let (status, body) = json_of(
        server
            .request(Method::POST, &path, Some(ACME))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// What a tree holds, for exact comparison: per path, its kind, permission
/// bits, and its bytes (a symlink: its target).
fn tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(
                    rel,
                    ('l', 0, target.to_string_lossy().into_owned().into_bytes()),
                );
            } else if meta.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                walk(root, &path, out);
            } else {
                out.insert(rel, ('f', mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with a bit of everything a snapshot holds.
fn furnish(root: &Path) {
    plant(root, "README.md", "hello\n");
    plant(root, "src/main.rs", "fn main() {}\n");
    plant(root, "src/deep/er/leaf.txt", "leaf\n");
    plant(root, "bin/tool", [0u8, 159, 146, 150, 255]);
    plant(root, "empty/", "");
    plant(root, ".git/HEAD", "ref: refs/heads/main\n");
    chmod(&root.join("bin/tool"), 0o755);
    chmod(&root.join("README.md"), 0o600);
    chmod(&root.join("src/deep"), 0o700);
    symlink("src/main.rs", root.join("main-link")).unwrap();
    symlink("/etc/hostname", root.join("outside-link")).unwrap();
}

/// Changes of every kind: edits, deletions, new directories, a symlink moved,
/// a file become a directory and back, modes.
fn upset(root: &Path) {
    std::fs::write(root.join("src/main.rs"), "fn main() { changed() }\n").unwrap();
    std::fs::remove_dir_all(root.join("src/deep")).unwrap();
    std::fs::remove_file(root.join("bin/tool")).unwrap();
    std::fs::create_dir(root.join("bin/tool")).unwrap();
    plant(root, "bin/tool/inside", "x");
    std::fs::remove_dir(root.join("empty")).unwrap();
    plant(root, "empty", "now a file");
    plant(root, "new/dir/file.txt", "new\n");
    std::fs::remove_file(root.join("main-link")).unwrap();
    symlink("README.md", root.join("main-link")).unwrap();
    chmod(&root.join("README.md"), 0o644);
    plant(root, ".git/ORIG_HEAD", "abc\n");
}

#[tokio::test]
async fn a_restore_after_every_kind_of_change_gives_back_exactly_the_snapshot() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    furnish(&root);
    let before = tree(&root);
    let taken = take(&server, &sid, Some("furnished")).await;
    assert_eq!(taken["name"], "furnished");
    assert_eq!(taken["files"], 7, "{taken}");
    upset(&root);
    assert_ne!(tree(&root), before);
    let restored = restore(&server, &sid, taken["id"].as_str().unwrap()).await;
    assert_eq!(restored["object"], "snapshot.restored");
    assert_eq!(tree(&root), before);
    // Nothing left to do: a second restore changes nothing.
    let again = restore(&server, &sid, taken["id"].as_str().unwrap()).await;
    assert_eq!(
        (
            &again["written"],
            &again["removed"],
            &again["directories_made"],
            &again["modes_set"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(0)),
        "{again}"
    );
    // The session's changes stay relative to its start.
    let (_, changes) = server
        .get(&format!("{}/changes", env_url(&sid)), ACME)
        .await;
    let paths: Vec<&str> = changes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"README.md") && paths.contains(&"src/deep/er/leaf.txt"),
        "{changes}"
    );
}

/// Changes a restore that looks only at touched paths must still find: in
/// tool directories (not watched), in a directory renamed and then written in,
/// a swap file, a directory's mode.
fn stir(root: &Path, round: usize) {
    plant(root, "src/main.rs", format!("round {round}\n"));
    plant(root, "node_modules/pkg/index.js", format!("round {round}"));
    plant(root, "web/node_modules/x/y.js", "y");
    plant(root, ".git/objects/ab", "object");
    std::fs::rename(root.join("src/deep"), root.join("src/moved")).unwrap();
    plant(root, "src/moved/er/leaf.txt", "written after the move");
    plant(root, "README.md~", "swap");
    chmod(&root.join("src"), 0o700);
}

/// Appends to the file at `path`: through a hard link, to the file it shares.
fn append(path: &Path, bytes: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes.as_bytes()).unwrap();
}

#[tokio::test]
async fn restores_after_a_snapshot_compare_only_what_was_touched_and_give_back_exactly_the_snapshot()
 {
    let metrics = format!("[metrics]\ntokens = [{METRICS_TOKEN:?}]\n");
    let server = Server::with_config(&metrics).await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    furnish(&root);
    plant(&root, "node_modules/pkg/index.js", "original");
    let before = tree(&root);
    let id = take(&server, &sid, None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for round in 0..4 {
        match round % 2 {
            0 => upset(&root),
            _ => stir(&root, round),
        }
        restore(&server, &sid, &id).await;
        assert_eq!(tree(&root), before, "round {round}");
    }
    let scrape = scrape_metrics(&server).await;
    let counted = (
        restores(&scrape, "touched"),
        restores(&scrape, "everything"),
    );
    assert_eq!(counted, (4.0, 0.0), "{scrape}");
}

#[tokio::test]
async fn a_file_changed_through_a_hard_link_is_restored_wherever_the_link_was() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    furnish(&root);
    let before = tree(&root);
    let id = take(&server, &sid, None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A link in a watched directory, written through and removed.
    std::fs::hard_link(root.join("src/main.rs"), root.join("src/alias")).unwrap();
    append(&root.join("src/alias"), "through a link, gone");
    std::fs::remove_file(root.join("src/alias")).unwrap();
    restore(&server, &sid, &id).await;
    assert_eq!(tree(&root), before, "a link removed");
    // A link kept beside the file.
    std::fs::hard_link(root.join("src/main.rs"), root.join("alias.rs")).unwrap();
    append(&root.join("alias.rs"), "through a link, kept");
    restore(&server, &sid, &id).await;
    assert_eq!(tree(&root), before, "a link kept");
    // A link in a tool directory, where nothing is watched.
    plant(&root, ".git/refs/keep", "");
    std::fs::hard_link(root.join("README.md"), root.join(".git/refs/alias")).unwrap();
    append(&root.join(".git/refs/alias"), "through a link in .git");
    restore(&server, &sid, &id).await;
    assert_eq!(tree(&root), before, "a link in a tool directory");
}

#[tokio::test]
async fn each_content_is_stored_once_and_an_unchanged_workspace_adds_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    plant(&root, "a.txt", "same bytes");
    plant(&root, "b.txt", "same bytes");
    plant(&root, "c.txt", "other");
    let first = take(&server, &sid, None).await;
    assert_eq!(
        (&first["files"], &first["bytes"], &first["new_bytes"]),
        (&json!(3), &json!(25), &json!(15)),
        "{first}"
    );
    assert_eq!(first["name"], Value::Null);
    let second = take(&server, &sid, None).await;
    assert_eq!(
        (&second["bytes"], &second["new_bytes"]),
        (&json!(25), &json!(0))
    );
    plant(&root, "d.txt", "fresh!");
    let third = take(&server, &sid, None).await;
    assert_eq!(third["new_bytes"], 6);
    // Listed newest first; each one as it was taken.
    let (_, list) = server.get(&snapshots(&sid), ACME).await;
    let ids = assert_list(&list);
    assert_eq!(
        ids,
        [&third["id"], &second["id"], &first["id"]].map(|v| v.as_str().unwrap().to_owned())
    );
    let (_, got) = server
        .get(&snapshot(&sid, first["id"].as_str().unwrap()), ACME)
        .await;
    assert_eq!(got, first);
    let (_, page) = server
        .get(&format!("{}?limit=1&order=asc", snapshots(&sid)), ACME)
        .await;
    assert_eq!(assert_list(&page), [first["id"].as_str().unwrap()]);
    assert_eq!(page["has_more"], true);
}

#[tokio::test]
async fn comparisons_have_the_shapes_of_changes_and_diff() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    // A snapshot of the empty start is the baseline: both compare alike.
    let start = take(&server, &sid, None).await;
    let start = start["id"].as_str().unwrap();
    plant(&root, "notes.md", "one\ntwo\n");
    plant(&root, "bin.dat", [0u8, 255, 1]);
    let (_, changes) = server
        .get(&format!("{}/changes", env_url(&sid)), ACME)
        .await;
    let (status, since) = server
        .get(&format!("{}/changes", snapshot(&sid, start)), ACME)
        .await;
    assert_eq!(status, StatusCode::OK, "{since}");
    assert_eq!(since, changes);
    for file in ["notes.md", "bin.dat"] {
        for query in ["", "?format=unified"] {
            let plain = format!("{}/diff/{file}{query}", env_url(&sid));
            let of_snapshot = format!("{}/diff/{file}{query}", snapshot(&sid, start));
            assert_eq!(
                server.get(&of_snapshot, ACME).await,
                server.get(&plain, ACME).await
            );
        }
    }
    // Between two snapshots, whatever the workspace became since.
    let later = take(&server, &sid, None).await;
    let later = later["id"].as_str().unwrap();
    std::fs::remove_file(root.join("notes.md")).unwrap();
    let between = format!("{}/changes?to={later}", snapshot(&sid, start));
    let (_, listed) = server.get(&between, ACME).await;
    assert_eq!(listed, changes);
    let (_, now) = server
        .get(
            &format!("{}/changes?to=current", snapshot(&sid, later)),
            ACME,
        )
        .await;
    assert_eq!(
        now["data"],
        json!([{"path": "notes.md", "status": "deleted", "bytes": null, "modified_at": null}])
    );
    let diff = format!(
        "{}/diff/notes.md?to={later}&format=unified",
        snapshot(&sid, start)
    );
    let (status, body) = server.get(&diff, ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "created");
    assert_eq!(
        body["unified"],
        "--- /dev/null\n+++ b/notes.md\n@@ -0,0 +1,2 @@\n+one\n+two\n"
    );
    let unchanged = format!("{}/diff/bin.dat", snapshot(&sid, later));
    assert_error(&server.get(&unchanged, ACME).await, 404, "not_found");
}

#[tokio::test]
async fn a_restart_between_snapshot_and_restore_loses_nothing() {
    let metrics = format!("[metrics]\ntokens = [{METRICS_TOKEN:?}]\n");
    let mut server = Server::with_config(&metrics).await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    furnish(&root);
    let before = tree(&root);
    let taken = take(&server, &sid, None).await;
    assert!(server.terminate());
    server.spawn();
    upset(&root);
    restore(&server, &sid, taken["id"].as_str().unwrap()).await;
    assert_eq!(tree(&root), before);
    // What was touched while it was down is unknown: the whole tree was compared.
    let scrape = scrape_metrics(&server).await;
    assert_eq!(restores(&scrape, "everything"), 1.0, "{scrape}");
    assert_eq!(restores(&scrape, "touched"), 0.0, "{scrape}");
}

/// How many restores compared `compared` (`touched` or `everything`).
fn restores(scrape: &str, compared: &str) -> f64 {
    let series = format!("reshost_snapshot_restores_total{{compared=\"{compared}\"}}");
    metric_value(scrape, &series)
}

#[tokio::test]
async fn a_restore_cut_short_by_kill_9_leaves_the_old_tree_or_the_snapshot() {
    let mut server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    // Enough to write that a restore takes a while.
    for n in 0..300 {
        plant(
            &root,
            &format!("files/{n:03}.bin"),
            vec![(n % 251) as u8; 64 * 1024],
        );
    }
    let snapshot_tree = tree(&root);
    let taken = take(&server, &sid, None).await;
    let id = taken["id"].as_str().unwrap().to_owned();
    for delay_ms in [0u64, 5, 20, 60] {
        for n in 0..300 {
            plant(
                &root,
                &format!("files/{n:03}.bin"),
                vec![7u8; 64 * 1024 + n],
            );
        }
        let old_tree = tree(&root);
        let path = format!("{}/restore", snapshot(&sid, &id));
        let request = server.request(Method::POST, &path, Some(ACME)).send();
        let cut = async {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        };
        tokio::select! {
            _ = request => {}
            () = cut => {}
        }
        server.kill();
        server.spawn();
        let now = tree(&root);
        assert!(
            now == snapshot_tree || now == old_tree,
            "half restored after a cut at {delay_ms} ms"
        );
        // The server serves the workspace as it is.
        let (status, _) = server
            .get(&format!("{}/changes", env_url(&sid)), ACME)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // However the cuts fell, a restore completes afterwards.
    restore(&server, &sid, &id).await;
    assert_eq!(tree(&root), snapshot_tree);
}

#[tokio::test]
async fn a_session_can_start_from_a_snapshot_of_the_same_tenant_only() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    furnish(&root);
    let before = tree(&root);
    let taken = take(&server, &sid, None).await;
    let id = taken["id"].as_str().unwrap();
    upset(&root);
    let from = json!({"from_snapshot": {"session_id": sid, "snapshot_id": id}});
    let (status, new) = server.post("/v1/sessions", ACME, from.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    let copy = new["id"].as_str().unwrap();
    assert_eq!(tree(&workspace(&server, copy)), before);
    // Its baseline is the snapshot: nothing has changed in it yet.
    let (_, changes) = server
        .get(&format!("{}/changes", env_url(copy)), ACME)
        .await;
    assert_eq!(changes["data"], json!([]));
    // Another tenant cannot start from it, nor name an unknown one.
    assert_error(
        &server.post("/v1/sessions", GLOBEX, from).await,
        404,
        "not_found",
    );
    let unknown = json!({"from_snapshot": {"session_id": sid, "snapshot_id": "snap_0123456789abcdef0123456789abcdef"}});
    assert_error(
        &server.post("/v1/sessions", ACME, unknown).await,
        404,
        "not_found",
    );
    for bad in [
        json!({"from_snapshot": "snap"}),
        json!({"from_snapshot": {"session_id": sid}}),
        json!({"from_snapshot": {"session_id": sid, "snapshot_id": 7}}),
        json!({"from_snapshot": {"session_id": sid, "snapshot_id": id, "x": 1}}),
        json!({"from_snapshot": {"session_id": sid, "snapshot_id": id}, "environment": {"template": "t"}}),
    ] {
        assert_error(
            &server.post("/v1/sessions", ACME, bad).await,
            400,
            "invalid_input",
        );
    }
}

#[tokio::test]
async fn deleting_snapshots_and_sessions_frees_what_only_they_held() {
    let server = Server::with_config("[admin]\ntokens = [\"admin-token\"]\n").await;
    let usage = async || {
        let (_, body) = server
            .get("/admin/v1/tenants/acme/usage", "admin-token")
            .await;
        body["snapshot_bytes"]["used"].as_u64().unwrap()
    };
    let sid = server.session(ACME).await;
    plant(&workspace(&server, &sid), "big.bin", vec![1u8; 10_000]);
    let first = take(&server, &sid, None).await;
    assert_eq!(usage().await, 10_000);
    let id = first["id"].as_str().unwrap();
    let (status, body) = server.delete(&snapshot(&sid, id), ACME).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"id": id, "object": "snapshot.deleted", "deleted": true})
    );
    assert_error(
        &server.get(&snapshot(&sid, id), ACME).await,
        404,
        "not_found",
    );
    assert_eq!(usage().await, 0);
    // Its content went with it: stored again by the next one.
    assert_eq!(take(&server, &sid, None).await["new_bytes"], 10_000);
    assert_eq!(
        server.delete(&format!("/v1/sessions/{sid}"), ACME).await.0,
        StatusCode::OK
    );
    assert_eq!(usage().await, 0);
}

#[tokio::test]
async fn the_snapshots_quota_counts_snapshots_kept_over_all_sessions() {
    let server = Server::with_config("[tenant_limits]\nsnapshots = 2\n").await;
    let (one, two) = (server.session(ACME).await, server.session(ACME).await);
    let first = take(&server, &one, None).await;
    take(&server, &two, None).await;
    let refused = server.post(&snapshots(&one), ACME, json!({})).await;
    assert_error(&refused, 429, "quota_exceeded");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("snapshots")
    );
    // Another tenant is not held to acme's count.
    let theirs = server.session(GLOBEX).await;
    let (status, _) = server.post(&snapshots(&theirs), GLOBEX, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    server
        .delete(&snapshot(&one, first["id"].as_str().unwrap()), ACME)
        .await;
    take(&server, &one, None).await;
}

#[tokio::test]
async fn the_snapshot_bytes_quota_refuses_a_snapshot_and_keeps_nothing() {
    let server = Server::with_config("[tenant_limits]\nsnapshot_bytes = 1000\n").await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    plant(&root, "small", vec![1u8; 600]);
    take(&server, &sid, None).await;
    plant(&root, "more", vec![2u8; 600]);
    let refused = server.post(&snapshots(&sid), ACME, json!({})).await;
    assert_error(&refused, 507, "insufficient_storage");
    let (_, list) = server.get(&snapshots(&sid), ACME).await;
    assert_eq!(assert_list(&list).len(), 1);
}

#[tokio::test]
async fn other_tenants_and_unknown_snapshots_are_not_found() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    plant(&workspace(&server, &sid), "secret.txt", "acme's\n");
    let taken = take(&server, &sid, None).await;
    let id = taken["id"].as_str().unwrap();
    let theirs = server.session(GLOBEX).await;
    let unknown = "snap_0123456789abcdef0123456789abcdef";
    for (owner, token, snap) in [
        (&sid, GLOBEX, id),
        (&theirs, GLOBEX, id),
        (&sid, ACME, unknown),
    ] {
        for suffix in ["", "/changes", "/diff/secret.txt"] {
            let path = format!("{}{suffix}", snapshot(owner, snap));
            assert_error(&server.get(&path, token).await, 404, "not_found");
        }
        let path = format!("{}/restore", snapshot(owner, snap));
        assert_error(
            &server.post(&path, token, json!({})).await,
            404,
            "not_found",
        );
        assert_error(
            &server.delete(&snapshot(owner, snap), token).await,
            404,
            "not_found",
        );
    }
    assert_error(
        &server.post(&snapshots(&sid), GLOBEX, json!({})).await,
        404,
        "not_found",
    );
    assert_error(
        &server.get(&snapshots(&sid), GLOBEX).await,
        404,
        "not_found",
    );
    let other_env = format!("/v1/sessions/{sid}/resources/environments/other/snapshots/{id}");
    assert_error(&server.get(&other_env, ACME).await, 404, "not_found");
    let to_unknown = format!("{}/changes?to={unknown}", snapshot(&sid, id));
    assert_error(&server.get(&to_unknown, ACME).await, 404, "not_found");
    // Untouched.
    let (_, got) = server.get(&snapshot(&sid, id), ACME).await;
    assert_eq!(got, taken);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    for body in [
        json!({"name": "x".repeat(257)}),
        json!({"name": 7}),
        json!({"label": "x"}),
        json!([]),
    ] {
        assert_error(
            &server.post(&snapshots(&sid), ACME, body).await,
            400,
            "invalid_input",
        );
    }
    let raw = server
        .request(Method::POST, &snapshots(&sid), Some(ACME))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_error(&json_of(raw).await, 400, "invalid_input");
    let (_, list) = server.get(&snapshots(&sid), ACME).await;
    assert!(assert_list(&list).is_empty());
    // An empty body is an empty object.
    let empty = server
        .request(Method::POST, &snapshots(&sid), Some(ACME))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::CREATED);
    let (_, list) = server.get(&snapshots(&sid), ACME).await;
    let id = assert_list(&list).remove(0);
    for path in ["../../etc/passwd", "/etc/passwd", "a/../../b"] {
        let diff = format!("{}/diff/{}", snapshot(&sid, &id), pct(path, true));
        let got = server.get(&diff, ACME).await;
        assert!(got.0.is_client_error(), "{path}: {got:?}");
    }
    assert_error(
        &server
            .get(&format!("{}?after=snap_nope", snapshots(&sid)), ACME)
            .await,
        400,
        "invalid_input",
    );
}
