//! `GET …/environments/default/search`: files whose relative path contains `q`
//! (case-insensitively), filtered by include/exclude globs, sorted by path.

use crate::common::*;
use serde_json::{Value, json};

async fn searched(server: &Server, sid: &str, query: &str) -> (reqwest::StatusCode, Value) {
    let path = format!("{}/search?{query}", env_url(sid));
    server.get(&path, ACME).await
}

fn paths(body: &Value) -> Vec<&str> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect()
}

/// A session whose workspace holds a small tree.
async fn tree(server: &Server) -> String {
    let sid = server.session(ACME).await;
    let root = workspace(server, &sid);
    for dir in ["src/a", "node_modules/x", "docs", "empty.d/Main"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in [
        "src/Main.py",
        "src/a/util.py",
        "src/a/util.rs",
        "node_modules/x/main.js",
        "docs/main.md",
        "README",
    ] {
        std::fs::write(root.join(file), b"x").unwrap();
    }
    sid
}

#[tokio::test]
async fn matches_are_files_whose_path_contains_q_in_any_case_sorted_by_path() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (status, body) = searched(&server, &sid, "q=MAIN").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        paths(&body),
        ["docs/main.md", "node_modules/x/main.js", "src/Main.py"]
    );
    assert_eq!(body["object"], "list");
    assert_eq!(body["has_more"], false);
    assert_eq!(body["truncated"], false);
    assert_eq!(body["first_id"], "docs/main.md");
    assert_eq!(body["last_id"], "src/Main.py");
    let first = &body["data"][0];
    assert_eq!(first["object"], "session.environment.filesystem.entry");
    assert_eq!(first["type"], "file");
    assert_eq!(first["bytes"], 1);
}

#[tokio::test]
async fn include_and_exclude_globs_filter_and_braces_do_not_split() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (_, body) = searched(
        &server,
        &sid,
        "q=u&include=src/**/*.%7Bpy,rs%7D&exclude=**/*.rs",
    )
    .await;
    assert_eq!(paths(&body), ["src/a/util.py"]);
    let (_, body) = searched(&server, &sid, "q=.&include=*.md,*.js").await;
    assert_eq!(paths(&body), ["docs/main.md", "node_modules/x/main.js"]);
    let (_, body) = searched(&server, &sid, "q=a&path=src").await;
    assert_eq!(
        paths(&body),
        ["src/Main.py", "src/a/util.py", "src/a/util.rs"]
    );
}

#[tokio::test]
async fn limit_bounds_the_page_and_flags_more() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (_, body) = searched(&server, &sid, "q=a&limit=2").await;
    assert_eq!(paths(&body), ["README", "docs/main.md"]);
    assert_eq!(body["has_more"], true);
    for bad in ["q=a&limit=0", "q=a&limit=501", "q=a&limit=x"] {
        assert_error(&searched(&server, &sid, bad).await, 400, "invalid_input");
    }
}

#[tokio::test]
async fn blank_q_bad_globs_and_bad_scopes_are_refused() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    for bad in ["", "q=", "q=%20%09", "q=a&include=%5B", "q=a&path=README"] {
        assert_error(&searched(&server, &sid, bad).await, 400, "invalid_input");
    }
    assert_error(
        &searched(&server, &sid, "q=a&path=../x").await,
        400,
        "invalid_path",
    );
    assert_error(
        &searched(&server, &sid, "q=a&path=nope").await,
        404,
        "path_not_found",
    );
    let root = workspace(&server, &sid);
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    assert_error(
        &searched(&server, &sid, "q=passwd&path=etc").await,
        403,
        "path_forbidden",
    );
    // A symlinked directory is not walked: nothing outside is revealed.
    let (_, body) = searched(&server, &sid, "q=passwd").await;
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn a_scope_through_a_link_inside_reports_paths_under_the_link() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let root = workspace(&server, &sid);
    std::os::unix::fs::symlink("src/a", root.join("lib")).unwrap();
    let (status, body) = searched(&server, &sid, "q=lib/util&path=lib").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(paths(&body), ["lib/util.py", "lib/util.rs"]);
}
