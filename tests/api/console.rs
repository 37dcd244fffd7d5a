//! The web console's files (`docs/console.md`): served without a token at `/` and
//! `/console/{path}` with their types and security headers, every file the page
//! loads present, nothing loaded from another origin, and nothing but the
//! embedded files reachable however a path is spelled. (What the page does in a
//! browser is `tests/browser/`.)

use crate::common::*;
use reqwest::{Method, StatusCode};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The security headers every console answer carries.
#[track_caller]
fn assert_console_headers(headers: &reqwest::header::HeaderMap, path: &str) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data: blob:",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{path}: {directive} not in {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(headers["cache-control"], "no-cache", "{path}");
    assert!(headers.contains_key("etag"), "{path}");
}

fn expected_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => panic!("the console loads {path}, of no known type"),
    }
}

/// The quoted values after each `prefix` in `text` (`src="…"`, `from "…"`).
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter_map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// `reference` (relative or absolute) as a path on the server, from the file at `from`.
fn resolve(from: &str, reference: &str) -> String {
    let mut parts: Vec<&str> = if reference.starts_with('/') {
        Vec::new()
    } else {
        from.split('/').collect::<Vec<_>>()[..from.matches('/').count()].to_vec()
    };
    for part in reference.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Every file the page loads: the page's `src`/`href` references on this server,
/// then the modules the scripts import, transitively; each path with its
/// content type and text.
async fn crawl(server: &Server) -> BTreeMap<String, (String, String)> {
    let mut found = BTreeMap::new();
    let mut todo = vec!["/".to_owned()];
    while let Some(path) = todo.pop() {
        if found.contains_key(&path) {
            continue;
        }
        let response = server
            .request(Method::GET, &path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_console_headers(response.headers(), &path);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        let references: Vec<&str> = if path == "/" {
            let mut refs = quoted_after(&text, " src=\"");
            refs.extend(quoted_after(&text, " href=\""));
            // The skip link and the empty icon are not files.
            refs.retain(|r| !r.starts_with('#') && *r != "data:,");
            refs
        } else if path.ends_with("js") {
            let mut refs = quoted_after(&text, "from \"");
            refs.extend(quoted_after(&text, "import(\""));
            refs
        } else {
            Vec::new()
        };
        for reference in references {
            assert!(
                reference.starts_with('/')
                    || reference.starts_with("./")
                    || reference.starts_with("../"),
                "{path} loads {reference:?}: not a path on this server"
            );
            todo.push(resolve(&path, reference));
        }
        found.insert(path, (content_type, text));
    }
    found
}

#[tokio::test]
async fn the_page_and_every_file_it_loads_are_served_without_a_token_with_their_types() {
    let server = Server::start().await;
    let files = crawl(&server).await;
    let page = &files["/"];
    assert_eq!(page.0, "text/html; charset=utf-8");
    for id in [
        "signin-form",
        "sessions-page",
        "session-page",
        "operator-page",
    ] {
        assert!(page.1.contains(&format!("id=\"{id}\"")), "{id}");
    }
    for (path, (content_type, _)) in &files {
        if path != "/" {
            assert_eq!(content_type, expected_type(path), "{path}");
        }
    }
    // The crawl reached the scripts, their modules and the terminal's.
    for needed in [
        "/console/js/main.js",
        "/console/js/terminals.js",
        "/console/vendor/xterm/xterm.mjs",
        "/console/vendor/xterm/xterm.css",
        "/console/vendor/addon-fit/addon-fit.mjs",
    ] {
        assert!(
            files.contains_key(needed),
            "{needed} not loaded: {:?}",
            files.keys()
        );
    }
    // The vendored licences are served beside the code.
    for license in [
        "/console/vendor/xterm/LICENSE",
        "/console/vendor/addon-fit/LICENSE",
    ] {
        let response = server
            .request(Method::GET, license, None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{license}");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("Permission is hereby granted"), "{license}");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_and_loads_nothing_from_another_origin() {
    let server = Server::start().await;
    let files = crawl(&server).await;
    let page = &files["/"].1;
    // The CSP allows only the server's own scripts: an inline one would not run.
    for tag in page.match_indices("<script").map(|(at, _)| &page[at..]) {
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(tag.contains(" src=\"/console/"), "inline script: {tag}");
    }
    assert!(
        !page.contains(" onclick=") && !page.contains(" onload="),
        "inline handlers"
    );
    for (path, (_, text)) in &files {
        let vendored = path.starts_with("/console/vendor/");
        for (at, _) in text
            .match_indices("http://")
            .chain(text.match_indices("https://"))
        {
            // Only the vendored files name URLs, in their licence comments or as
            // XML namespace names (identifiers, never fetched).
            let in_comment = text[..at]
                .rfind("/*")
                .is_some_and(|open| !text[open..at].contains("*/"));
            let namespace = text[at..].starts_with("http://www.w3.org/");
            let url: String = text[at..].chars().take(60).collect();
            assert!(vendored && (in_comment || namespace), "{path} names {url}");
        }
        if path.ends_with(".css") {
            assert!(!text.contains("@import"), "{path} imports");
            for value in text.match_indices("url(").map(|(at, _)| &text[at + 4..]) {
                let value = value.trim_start_matches(['"', '\'']);
                assert!(
                    !value.contains("//") || value.starts_with("data:"),
                    "{path}: url({value:.40})"
                );
            }
        }
    }
}

#[tokio::test]
async fn head_is_the_headers_of_get_and_a_known_etag_is_304() {
    let server = Server::start().await;
    for path in ["/", "/console/js/main.js"] {
        let get = server
            .request(Method::GET, path, None)
            .send()
            .await
            .unwrap();
        let (etag, length) = (
            get.headers()["etag"].clone(),
            get.bytes().await.unwrap().len(),
        );
        let head = server
            .request(Method::HEAD, path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK, "{path}");
        assert_console_headers(head.headers(), path);
        assert_eq!(
            head.headers()["content-length"],
            length.to_string().as_str()
        );
        assert_eq!(head.headers()["etag"], etag);
        assert!(head.bytes().await.unwrap().is_empty());
        let again = server
            .request(Method::GET, path, None)
            .header("If-None-Match", etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()["etag"], etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let other = server
            .request(Method::GET, path, None)
            .header("If-None-Match", "\"not-it\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::OK, "{path}");
    }
    let post = server
        .request(Method::POST, "/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn unknown_files_are_the_apis_404() {
    let server = Server::start().await;
    for path in [
        "/console/nope.js",
        "/console/",
        "/console/js/",
        "/console",
        "/console/vendor/xterm/xterm.js",
        "/index.html",
        "/console/INDEX.HTML",
    ] {
        let response = server
            .request(Method::GET, path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let got = json_of(response).await;
        assert_error(&got, 404, "not_found");
    }
}

/// Sends `GET target` exactly as written (URL libraries would normalize `..`)
/// and answers the status and body.
async fn raw_get(server: &Server, target: &str) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply.split(' ').nth(1).unwrap().parse().unwrap();
    let body = reply.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn no_spelling_of_a_path_reaches_beyond_the_embedded_files() {
    let server = Server::start().await;
    // A file next to the data directory, and the repository's own files.
    std::fs::write(server.dir.path().join("secret.txt"), "sentinel-secret").unwrap();
    let targets = [
        "/console/../Cargo.toml",
        "/console/../../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/%2E%2E/%2E%2E/Cargo.toml",
        "/console/..%2fCargo.toml",
        "/console/..%2f..%2fhost%2fCargo.toml",
        "/console/%252e%252e/Cargo.toml",
        "/console/js/../../../README.md",
        "/console/vendor/xterm/..%2f..%2f..%2f..%2fREADME.md",
        "/console//etc/passwd",
        "/console/%2fetc%2fpasswd",
        "/console/..%5c..%5cCargo.toml",
        "/console/./index.html",
        "/console/js/./main.js",
        "/console/secret.txt",
        "/console/../secret.txt",
        "/console/index.html%00.js",
    ];
    let mut outcomes = BTreeSet::new();
    for target in targets {
        let (status, body) = raw_get(&server, target).await;
        assert_eq!(status, 404, "{target}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "not_found", "{target}");
        for leak in [
            "[package]",
            "root:",
            "sentinel-secret",
            "# reshost",
            "<html",
        ] {
            assert!(!body.contains(leak), "{target} answered {body}");
        }
        outcomes.insert(status);
    }
    assert_eq!(outcomes, BTreeSet::from([404]));
    // A path that does not decode is refused as everywhere.
    let (status, _) = raw_get(&server, "/console/%ff").await;
    assert_eq!(status, 400);
}
