//! `GET …/environments/default/grep`: lines of files matching a literal or a
//! regular expression, with context, filtered by globs, ignore files and a scope;
//! binary files skipped; sorted by path and line, cut at `limit`.

use crate::common::*;
use serde_json::{Value, json};

async fn grepped(server: &Server, sid: &str, query: &str) -> (reqwest::StatusCode, Value) {
    let path = format!("{}/grep?{query}", env_url(sid));
    server.get(&path, ACME).await
}

/// (path, line, column) of each match.
fn hits(body: &Value) -> Vec<(String, u64, u64)> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().to_owned(),
                m["line"].as_u64().unwrap(),
                m["column"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn hit(path: &str, line: u64, column: u64) -> (String, u64, u64) {
    (path.to_owned(), line, column)
}

/// Matches of `hello` in any case, from the tree's default view.
fn hellos() -> Vec<(String, u64, u64)> {
    vec![
        hit("docs/guide.md", 1, 5),
        hit("src/main.py", 3, 12),
        hit("src/main.py", 6, 3),
        hit("src/util.rs", 1, 4),
    ]
}

/// A session whose workspace holds a small tree with ignored, hidden and binary
/// files.
async fn tree(server: &Server) -> String {
    let sid = server.session(ACME).await;
    let root = workspace(server, &sid);
    plant(
        &root,
        "src/main.py",
        "import os\ndef main():\n    print('Hello')\n    return 0\n\n# hello again\n",
    );
    plant(&root, "src/util.rs", "fn hello() {}\nfn other() {}\n");
    plant(&root, "docs/guide.md", "Say HELLO.\n");
    plant(&root, ".gitignore", "build/\n*.log\n");
    plant(&root, "build/out.txt", "hello from build\n");
    plant(&root, "debug.log", "hello log\n");
    plant(&root, "src/trace.log", "hello trace\n");
    plant(&root, ".hidden/secret.txt", "hello hidden\n");
    plant(&root, "bin/blob.bin", b"hello\0binary\n");
    // The NUL comes long after the match: the whole file is still dropped.
    let mut late = b"hello first\n".to_vec();
    late.extend(b"filler line\n".repeat(20_000));
    late.push(0);
    plant(&root, "bin/late.bin", late);
    sid
}

#[tokio::test]
async fn a_literal_match_reports_path_line_column_and_text_exactly() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (status, body) = grepped(&server, &sid, "pattern=Hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "object": "list",
            "truncated": false,
            "data": [{
                "path": "src/main.py", "line": 3, "column": 12,
                "text": "    print('Hello')", "before": [], "after": [],
            }],
            "has_more": false,
        })
    );
    // Regex syntax in a literal pattern is matched as written.
    let (status, body) = grepped(&server, &sid, "pattern=main()").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hits(&body), [hit("src/main.py", 2, 5)]);
    assert_eq!(body["data"][0]["text"], "def main():");
}

#[tokio::test]
async fn a_regex_match_reports_one_result_per_line_at_its_first_match() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (status, body) = grepped(&server, &sid, "pattern=o%5Cw*%5C(&regex=true").await;
    assert_eq!(status, 200, "{body}");
    // `o\w*\(` as a regex, not a literal: `hello(` and `other(` match.
    assert_eq!(
        hits(&body),
        [hit("src/util.rs", 1, 8), hit("src/util.rs", 2, 4)]
    );
    assert_eq!(body["data"][1]["text"], "fn other() {}");
}

#[tokio::test]
async fn case_sensitive_false_matches_every_case_and_skips_ignored_hidden_and_binary_files() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (status, body) = grepped(&server, &sid, "pattern=hello&case_sensitive=false").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hits(&body), hellos());
    assert_eq!(body["data"][0]["text"], "Say HELLO.");
    let (_, body) = grepped(&server, &sid, "pattern=binary").await;
    assert_eq!(body["data"], json!([]), "binary files are not searched");
}

#[tokio::test]
async fn context_gives_the_lines_before_and_after_each_match_within_the_file() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (_, body) = grepped(&server, &sid, "pattern=Hello&context=2").await;
    assert_eq!(
        body["data"][0]["before"],
        json!(["import os", "def main():"])
    );
    assert_eq!(body["data"][0]["after"], json!(["    return 0", ""]));
    // Near the start and end of a file, fewer lines exist.
    let (_, body) = grepped(
        &server,
        &sid,
        "pattern=hello&case_sensitive=false&context=3&include=**/*.py",
    )
    .await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{body}");
    assert_eq!(
        data[0]["before"],
        json!(["import os", "def main():"]),
        "{body}"
    );
    assert_eq!(
        data[0]["after"],
        json!(["    return 0", "", "# hello again"])
    );
    assert_eq!(
        data[1]["before"],
        json!(["    print('Hello')", "    return 0", ""])
    );
    assert_eq!(data[1]["after"], json!([]));
}

#[tokio::test]
async fn include_and_exclude_globs_take_comma_lists_and_repeated_parameters() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let all = "pattern=hello&case_sensitive=false";
    let (_, body) = grepped(&server, &sid, &format!("{all}&include=src/**")).await;
    assert_eq!(hits(&body), hellos()[1..]);
    let (_, body) = grepped(&server, &sid, &format!("{all}&exclude=**/*.rs")).await;
    assert_eq!(hits(&body), hellos()[..3]);
    for filters in ["include=docs/**,*.rs", "include=docs/**&include=*.rs"] {
        let (_, body) = grepped(&server, &sid, &format!("{all}&{filters}")).await;
        assert_eq!(
            hits(&body),
            [hit("docs/guide.md", 1, 5), hit("src/util.rs", 1, 4)],
            "{filters}"
        );
    }
}

#[tokio::test]
async fn gitignore_rules_apply_by_default_and_no_ignore_and_hidden_turn_them_off() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let all = "pattern=hello&case_sensitive=false";
    let (_, body) = grepped(&server, &sid, &format!("{all}&no_ignore=true")).await;
    let mut expected = vec![hit("build/out.txt", 1, 1), hit("debug.log", 1, 1)];
    expected.extend(hellos()[..3].iter().cloned());
    expected.push(hit("src/trace.log", 1, 1));
    expected.push(hit("src/util.rs", 1, 4));
    assert_eq!(hits(&body), expected);
    let (_, body) = grepped(&server, &sid, &format!("{all}&hidden=true")).await;
    let mut expected = vec![hit(".hidden/secret.txt", 1, 1)];
    expected.extend(hellos());
    assert_eq!(hits(&body), expected);
    // The root's `.gitignore` also holds below a scope.
    let (_, body) = grepped(&server, &sid, &format!("{all}&path=src")).await;
    assert_eq!(hits(&body), hellos()[1..]);
}

#[tokio::test]
async fn limit_cuts_the_sorted_matches_and_flags_has_more() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let all = "pattern=hello&case_sensitive=false";
    let (_, body) = grepped(&server, &sid, &format!("{all}&limit=2")).await;
    assert_eq!(hits(&body), hellos()[..2]);
    assert_eq!(body["has_more"], true);
    assert_eq!(body["truncated"], false);
    let (_, body) = grepped(&server, &sid, &format!("{all}&limit=4")).await;
    assert_eq!(hits(&body), hellos());
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn files_larger_than_max_bytes_per_file_are_skipped() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let all = "pattern=hello&case_sensitive=false";
    // docs/guide.md is 11 bytes, src/util.rs 28, src/main.py more.
    let (_, body) = grepped(&server, &sid, &format!("{all}&max_bytes_per_file=11")).await;
    assert_eq!(hits(&body), [hit("docs/guide.md", 1, 5)]);
    let (_, body) = grepped(&server, &sid, &format!("{all}&max_bytes_per_file=28")).await;
    assert_eq!(
        hits(&body),
        [hit("docs/guide.md", 1, 5), hit("src/util.rs", 1, 4)]
    );
}

#[tokio::test]
async fn a_scope_limits_the_search_and_a_linked_scope_shows_paths_under_the_link() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let (_, body) = grepped(
        &server,
        &sid,
        "pattern=hello&case_sensitive=false&path=docs",
    )
    .await;
    assert_eq!(hits(&body), [hit("docs/guide.md", 1, 5)]);
    let root = workspace(&server, &sid);
    std::os::unix::fs::symlink("src", root.join("lib")).unwrap();
    let (status, body) = grepped(&server, &sid, "pattern=hello&path=lib&include=lib/*.rs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hits(&body), [hit("lib/util.rs", 1, 4)]);
}

#[tokio::test]
async fn a_bad_pattern_flag_number_or_glob_is_400_with_a_clear_message() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let got = grepped(&server, &sid, "pattern=(&regex=true").await;
    assert_error(&got, 400, "invalid_input");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("pattern: "), "{message}");
    assert!(message.contains("unclosed group"), "{message}");
    for (bad, says) in [
        ("", "pattern must not be empty"),
        ("pattern=", "pattern must not be empty"),
        ("pattern=a&regex=yes", "regex must be true or false"),
        (
            "pattern=a&case_sensitive=1",
            "case_sensitive must be true or false",
        ),
        ("pattern=a&no_ignore=", "no_ignore must be true or false"),
        ("pattern=a&hidden=x", "hidden must be true or false"),
        (
            "pattern=a&context=-1",
            "context must be an integer of at least 0",
        ),
        (
            "pattern=a&context=x",
            "context must be an integer of at least 0",
        ),
        (
            "pattern=a&limit=0",
            "limit must be an integer of at least 1",
        ),
        (
            "pattern=a&limit=1.5",
            "limit must be an integer of at least 1",
        ),
        (
            "pattern=a&max_bytes_per_file=0",
            "max_bytes_per_file must be an integer of at least 1",
        ),
        ("pattern=a&include=%5B", "include: bad glob \"[\""),
        (
            "pattern=a&path=src/main.py",
            "path src/main.py is not a directory",
        ),
    ] {
        let got = grepped(&server, &sid, bad).await;
        assert_error(&got, 400, "invalid_input");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{bad}: {message}");
    }
}

#[tokio::test]
async fn a_scope_that_escapes_is_refused_and_links_out_are_never_searched() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    for bad in [
        "pattern=a&path=../x",
        "pattern=a&path=/etc",
        "pattern=a&path=src/../..",
    ] {
        assert_error(&grepped(&server, &sid, bad).await, 400, "invalid_path");
    }
    assert_error(
        &grepped(&server, &sid, "pattern=a&path=nope").await,
        404,
        "path_not_found",
    );
    let root = workspace(&server, &sid);
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    assert_error(
        &grepped(&server, &sid, "pattern=root&path=etc").await,
        403,
        "path_forbidden",
    );
    let (status, body) = grepped(&server, &sid, "pattern=root&no_ignore=true&hidden=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([]), "nothing outside is read");
}

#[tokio::test]
async fn an_unknown_environment_or_another_tenants_session_is_404() {
    let server = Server::start().await;
    let sid = tree(&server).await;
    let url = format!("/v1/sessions/{sid}/resources/environments/nope/grep?pattern=hello");
    assert_error(&server.get(&url, ACME).await, 404, "not_found");
    let url = format!("{}/grep?pattern=hello", env_url(&sid));
    assert_error(&server.get(&url, GLOBEX).await, 404, "not_found");
}

#[tokio::test]
async fn a_policy_denying_environments_grep_is_403_and_search_still_works() {
    let server = Server::with_config(&format!(
        "[[tenants]]\nname = \"initech\"\ntokens = [\"initech-token\"]\npolicy = {:?}\n\
         policy_config = {{ deny = [\"environments.grep\"], reason = \"no grep\" }}\n",
        reshost_test_artifacts::RULES_POLICY.path
    ))
    .await;
    let sid = server.session("initech-token").await;
    plant(&workspace(&server, &sid), "a.txt", "hello\n");
    let got = server
        .get(
            &format!("{}/grep?pattern=hello", env_url(&sid)),
            "initech-token",
        )
        .await;
    assert_error(&got, 403, "forbidden");
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("environments.grep"), "{message}");
    let (status, body) = server
        .get(&format!("{}/search?q=a", env_url(&sid)), "initech-token")
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn with_many_matching_files_the_first_lines_by_path_are_returned_every_time() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let root = workspace(&server, &sid);
    for i in 0..60 {
        plant(
            &root,
            &format!("d{}/f{i:02}.txt", i % 7),
            "hit\nmiss\nhit\n",
        );
    }
    let expected = [
        hit("d0/f00.txt", 1, 1),
        hit("d0/f00.txt", 3, 1),
        hit("d0/f07.txt", 1, 1),
        hit("d0/f07.txt", 3, 1),
        hit("d0/f14.txt", 1, 1),
    ];
    for _ in 0..5 {
        let (status, body) = grepped(&server, &sid, "pattern=hit&limit=5").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(hits(&body), expected);
        assert_eq!(body["has_more"], true);
    }
}
