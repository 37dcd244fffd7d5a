//! Archives of environment directories:
//! `GET …/filesystem[/{path}]?format=tar|tar.gz` streams one and `POST` of the
//! same extracts one, all or nothing, refusing entries that would escape.

use crate::common::*;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

// ---------------------------------------------------------------------------
// Helpers (local to this file).

/// `GET …?format=` of `path`: status, headers and the body's bytes.
async fn download(
    server: &Server,
    token: &str,
    sid: &str,
    path: &str,
    format: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let url = format!("{}?format={format}", fs_url(sid, path));
    let resp = server
        .request(Method::GET, &url, Some(token))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// The archive of `path`, asserting 200.
async fn archive_of(server: &Server, sid: &str, path: &str, format: &str) -> Vec<u8> {
    let (status, _, bytes) = download(server, ACME, sid, path, format).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}

/// `POST …?format=` of `archive` into `path`, declared as `content_type`.
async fn extract_as(
    server: &Server,
    token: &str,
    sid: &str,
    path: &str,
    format: &str,
    content_type: &str,
    archive: Vec<u8>,
) -> (StatusCode, Value) {
    let url = format!("{}?format={format}", fs_url(sid, path));
    let rb = server
        .request(Method::POST, &url, Some(token))
        .header(CONTENT_TYPE, content_type)
        .body(archive);
    json_of(rb.send().await.unwrap()).await
}

/// `POST …?format=tar` of `archive` into `path` as ACME.
async fn extract(server: &Server, sid: &str, path: &str, archive: Vec<u8>) -> (StatusCode, Value) {
    extract_as(server, ACME, sid, path, "tar", "application/x-tar", archive).await
}

/// What an entry of a tree is: its kind, permission bits, and content (a file's
/// bytes, a symlink's target).
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(String),
}

/// Everything below `root`, by relative path, links not followed.
fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut tree = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.is_symlink() {
                Node::Link(std::fs::read_link(&path).unwrap().to_str().unwrap().into())
            } else if meta.is_dir() {
                todo.push(path.clone());
                Node::Dir(mode)
            } else {
                Node::File(mode, std::fs::read(&path).unwrap())
            };
            tree.insert(rel, node);
        }
    }
    tree
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tar entry written header by header, so that it can say what the `tar`
/// crate's own builders refuse to (`..`, absolute paths, devices).
struct Entry<'a> {
    path: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
    /// The size the header declares (else the data's).
    size: Option<u64>,
}

fn file<'a>(path: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        path,
        kind: tar::EntryType::Regular,
        link: "",
        data,
        size: None,
    }
}

fn dir(path: &str) -> Entry<'_> {
    Entry {
        kind: tar::EntryType::Directory,
        ..file(path, b"")
    }
}

fn link<'a>(path: &'a str, target: &'a str) -> Entry<'a> {
    Entry {
        kind: tar::EntryType::Symlink,
        link: target,
        ..file(path, b"")
    }
}

fn hard<'a>(path: &'a str, target: &'a str) -> Entry<'a> {
    Entry {
        kind: tar::EntryType::Link,
        ..link(path, target)
    }
}

fn special(path: &str, kind: tar::EntryType) -> Entry<'_> {
    Entry {
        kind,
        ..file(path, b"")
    }
}

/// An uncompressed archive of `entries`, names written into the headers as
/// they are.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        old.linkname[..entry.link.len()].copy_from_slice(entry.link.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_mode(0o644);
        header.set_size(entry.size.unwrap_or(entry.data.len() as u64));
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The entries of an archive: path, type, mode and link target.
fn listing(archive: &[u8]) -> Vec<(String, tar::EntryType, u32, Option<String>)> {
    tar::Archive::new(archive)
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_str().unwrap().to_owned());
            (
                entry.path().unwrap().to_str().unwrap().to_owned(),
                entry.header().entry_type(),
                entry.header().mode().unwrap(),
                link,
            )
        })
        .collect()
}

#[track_caller]
fn assert_refused(got: &(StatusCode, Value), status: u16, code: &str, says: &str) {
    assert_error(got, status, code);
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{says:?} not in {message:?}");
}

/// Nothing of an archive is left in the server's staging directory.
#[track_caller]
fn assert_no_staging_left(server: &Server) {
    let staging = server.data_dir().join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in staging: {left:?}");
}

/// Plants a tree of `dirs` × `per_dir` files with varied modes and contents,
/// relative symlinks (to files, to directories, dangling) and empty directories;
/// returns how many files it planted.
fn plant_tree(root: &Path, dirs: usize, per_dir: usize) -> usize {
    const MODES: [u32; 4] = [0o644, 0o755, 0o600, 0o640];
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            let path = dir.join(format!("f{f:04}.txt"));
            let content = format!("{d}/{f}\n").repeat(f % 7);
            std::fs::write(&path, content).unwrap();
            chmod(&path, MODES[(d + f) % MODES.len()]);
        }
        chmod(&dir, [0o755, 0o700, 0o750][d % 3]);
    }
    std::fs::write(root.join("binary.bin"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    std::fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    std::fs::create_dir_all(root.join("deep/a/b/c/d/e")).unwrap();
    std::fs::write(root.join("deep/a/b/c/d/e/leaf"), "leaf").unwrap();
    symlink("d000/f0001.txt", root.join("to-file")).unwrap();
    symlink("deep/a", root.join("to-dir")).unwrap();
    symlink("../../d001", root.join("deep/a/up-two")).unwrap();
    symlink("no-such-thing", root.join("dangling")).unwrap();
    dirs * per_dir + 2
}

// ---------------------------------------------------------------------------
// Round trips.

#[tokio::test]
async fn a_10000_file_tree_round_trips_through_tar_with_bytes_modes_symlinks_and_empty_dirs() {
    let server = Server::start().await;
    let (from, to) = (server.session(ACME).await, server.session(ACME).await);
    let source = workspace(&server, &from).join("project");
    let files = plant_tree(&source, 100, 100);
    assert_eq!(files, 10_002);

    let archive = archive_of(&server, &from, "project", "tar").await;
    // A missing directory is made, with its missing parents.
    let (status, body) = extract(&server, &to, "restored", archive).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "object": "session.environment.filesystem.extraction",
            "path": "restored",
            "extracted": {"files": files, "directories": 100 + 8, "symlinks": 4,
                          "hard_links": 0, "bytes": body["extracted"]["bytes"]},
        })
    );
    let expected = snapshot(&source);
    let bytes: usize = expected
        .values()
        .map(|node| match node {
            Node::File(_, data) => data.len(),
            Node::Link(target) => target.len(),
            Node::Dir(_) => 0,
        })
        .sum();
    assert_eq!(body["extracted"]["bytes"], bytes);
    let restored = snapshot(&workspace(&server, &to).join("restored"));
    assert_eq!(restored.len(), expected.len());
    assert!(restored == expected, "the restored tree differs");
    assert_no_staging_left(&server);
}

#[tokio::test]
async fn the_root_round_trips_through_tar_gz() {
    let server = Server::start().await;
    let (from, to) = (server.session(ACME).await, server.session(ACME).await);
    plant_tree(&workspace(&server, &from), 5, 20);

    let url = format!("{}?format=tar.gz", fs_url(&from, ""));
    let resp = server
        .request(Method::GET, &url, Some(ACME))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/gzip");
    assert_eq!(
        resp.headers()[CONTENT_DISPOSITION],
        "attachment; filename=\"environment.tar.gz\""
    );
    let archive = resp.bytes().await.unwrap().to_vec();
    assert!(!listing(&gunzip(&archive)).is_empty());

    let (status, body) = extract_as(
        &server,
        ACME,
        &to,
        "",
        "tar.gz",
        "application/gzip",
        archive,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "");
    assert_eq!(body["extracted"]["files"], 5 * 20 + 2);
    assert!(snapshot(&workspace(&server, &to)) == snapshot(&workspace(&server, &from)));
}

#[tokio::test]
async fn a_download_stores_symlinks_as_links_and_never_reads_through_them() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "dir/a.txt", "a");
    chmod(&ws.join("dir/a.txt"), 0o4755);
    symlink("/etc", ws.join("dir/etc")).unwrap();
    symlink("../..", ws.join("dir/up")).unwrap();
    symlink("/etc/passwd", ws.join("dir/passwd")).unwrap();

    let (status, headers, archive) = download(&server, ACME, &sid, "dir", "tar").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/x-tar");
    assert_eq!(
        headers[CONTENT_DISPOSITION],
        "attachment; filename=\"dir.tar\""
    );
    assert!(!headers.contains_key(CONTENT_LENGTH));
    use tar::EntryType::{Regular, Symlink};
    assert_eq!(
        listing(&archive),
        [
            ("a.txt".to_owned(), Regular, 0o755, None),
            ("etc".to_owned(), Symlink, 0o777, Some("/etc".to_owned())),
            (
                "passwd".to_owned(),
                Symlink,
                0o777,
                Some("/etc/passwd".to_owned())
            ),
            ("up".to_owned(), Symlink, 0o777, Some("../..".to_owned())),
        ],
        "setuid dropped, links stored as links, nothing below them"
    );
}

// ---------------------------------------------------------------------------
// Extraction rules.

#[tokio::test]
async fn every_tar_slip_case_is_refused_with_400_and_leaves_the_workspace_untouched() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "keep.txt", "keep");
    plant(&ws, "sub/inner.txt", "inner");
    symlink("/tmp", ws.join("ws-link")).unwrap();
    let before = snapshot(&ws);
    let outside = ws.parent().unwrap().to_owned();
    let outside_before = std::fs::read_dir(&outside).unwrap().count();

    let fresh = || file("fresh.txt", b"written before the bad entry");
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "dot-dot",
            vec![fresh(), file("../x", b"x")],
            "cannot climb with ..",
        ),
        (
            "dot-dot inside",
            vec![fresh(), file("a/../../x", b"x")],
            "cannot climb with ..",
        ),
        (
            "absolute",
            vec![fresh(), file("/etc/x", b"x")],
            "absolute paths are refused",
        ),
        (
            "symlink to /etc then a file through it",
            vec![fresh(), link("l", "/etc"), file("l/x", b"x")],
            "leads outside the directory",
        ),
        (
            "symlink to ../.. then a file through it",
            vec![fresh(), link("l", "../.."), file("l/x", b"x")],
            "written through the symlink l",
        ),
        (
            "symlink climbing out",
            vec![fresh(), link("up", "..")],
            "leads outside the directory",
        ),
        (
            "symlink chain climbing out",
            vec![fresh(), dir("d/"), link("d/s", ".."), link("d/t", "s/..")],
            "leads outside the directory",
        ),
        (
            "symlink through the workspace's own link",
            vec![fresh(), link("l", "ws-link/..")],
            "leads outside the directory",
        ),
        (
            "a regular entry below the archive's symlink",
            vec![fresh(), link("l", "sub"), file("l/x", b"x")],
            "written through the symlink l",
        ),
        (
            "an entry below the workspace's symlink",
            vec![fresh(), file("ws-link/x", b"x")],
            "written through the symlink ws-link",
        ),
        (
            "hard link climbing out",
            vec![fresh(), hard("h", "../x")],
            "cannot climb with ..",
        ),
        (
            "hard link to an absolute path",
            vec![fresh(), hard("h", "/etc/passwd")],
            "absolute",
        ),
        (
            "hard link to a workspace file",
            vec![fresh(), hard("h", "keep.txt")],
            "a file earlier in the archive",
        ),
        (
            "hard link to a symlink",
            vec![fresh(), link("l", "keep.txt"), hard("h", "l")],
            "a file earlier in the archive",
        ),
        (
            "character device",
            vec![fresh(), special("dev", tar::EntryType::Char)],
            "device entries are refused",
        ),
        (
            "block device",
            vec![fresh(), special("dev", tar::EntryType::Block)],
            "device entries are refused",
        ),
        (
            "fifo",
            vec![fresh(), special("fifo", tar::EntryType::Fifo)],
            "FIFO entries are refused",
        ),
        (
            "a declared size beyond the data",
            vec![
                fresh(),
                Entry {
                    size: Some(1 << 20),
                    ..file("short", b"ten bytes!")
                },
            ],
            "cannot be read",
        ),
        (
            "backslash",
            vec![fresh(), file("a\\..\\x", b"x")],
            "backslash",
        ),
    ];
    for (name, entries, says) in &cases {
        let got = extract(&server, &sid, "", tar_of(entries)).await;
        assert_error(&got, 400, "invalid_input");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{name}: {says:?} not in {message:?}"
        );
        assert!(snapshot(&ws) == before, "{name}: the workspace changed");
        // Gzipped, the same.
        let got = extract_as(
            &server,
            ACME,
            &sid,
            "",
            "tar.gz",
            "application/gzip",
            gzip(&tar_of(entries)),
        )
        .await;
        assert_error(&got, 400, "invalid_input");
        assert!(
            snapshot(&ws) == before,
            "{name} (gzipped): the workspace changed"
        );
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), outside_before);
    assert!(!Path::new("/etc/x").exists());
    assert_no_staging_left(&server);
}

#[tokio::test]
async fn an_extraction_replaces_files_and_links_merges_directories_and_keeps_their_modes() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "app/old.txt", "old");
    plant(&ws, "app/keep.txt", "keep");
    plant(&ws, "app/target.txt", "target");
    symlink("target.txt", ws.join("app/link")).unwrap();
    chmod(&ws.join("app"), 0o700);

    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, kind: tar::EntryType, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, data).unwrap();
    };
    add("./", 0o755, tar::EntryType::Directory, b"");
    add("./old.txt", 0o600, tar::EntryType::Regular, b"new");
    add(
        "./link",
        0o6755,
        tar::EntryType::Regular,
        b"no longer a link",
    );
    add("./new-dir/", 0o500, tar::EntryType::Directory, b"");
    add("./new-dir/x", 0o444, tar::EntryType::Regular, b"x");
    add("./twice", 0o644, tar::EntryType::Regular, b"first");
    add("./twice", 0o644, tar::EntryType::Regular, b"second");
    let archive = builder.into_inner().unwrap();

    let (status, body) = extract(&server, &sid, "app", archive).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["extracted"],
        json!({"files": 5, "directories": 1, "symlinks": 0, "hard_links": 0, "bytes": 3 + 16 + 1 + 5 + 6})
    );
    let app = snapshot(&ws.join("app"));
    let want = [
        ("keep.txt", Node::File(0o644, b"keep".to_vec())),
        ("link", Node::File(0o755, b"no longer a link".to_vec())),
        ("new-dir", Node::Dir(0o700)),
        ("new-dir/x", Node::File(0o444, b"x".to_vec())),
        ("old.txt", Node::File(0o600, b"new".to_vec())),
        ("target.txt", Node::File(0o644, b"target".to_vec())),
        ("twice", Node::File(0o644, b"second".to_vec())),
    ];
    assert_eq!(
        app,
        want.into_iter().map(|(p, n)| (p.to_owned(), n)).collect(),
        "replaced the link (not its target), setuid dropped, owner rwx added to new dirs"
    );
    let mode = std::fs::metadata(ws.join("app"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "an existing directory keeps its mode");
}

#[tokio::test]
async fn a_directory_against_a_file_is_409_and_changes_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "file.txt", "f");
    plant(&ws, "dir/x", "x");
    let before = snapshot(&ws);
    let cases = [
        vec![file("new.txt", b"n"), dir("file.txt/")],
        vec![file("new.txt", b"n"), file("file.txt/below", b"b")],
        vec![file("new.txt", b"n"), file("dir", b"over a directory")],
        vec![file("a", b"a"), file("a/b", b"b")],
    ];
    for entries in &cases {
        let got = extract(&server, &sid, "", tar_of(entries)).await;
        assert_error(&got, 409, "conflict");
        assert!(snapshot(&ws) == before);
    }
}

#[tokio::test]
async fn the_archive_limits_are_413_and_change_nothing() {
    let server = Server::with_config(
        "[limits]\nmax_archive_entries = 5\nmax_unpacked_bytes = 1000\nmax_archive_bytes = 20000\n",
    )
    .await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "keep.txt", "keep");
    let before = snapshot(&ws);

    let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    let many: Vec<Entry> = names.iter().map(|n| file(n, b"x")).collect();
    let got = extract(&server, &sid, "", tar_of(&many)).await;
    assert_refused(&got, 413, "payload_too_large", "max_archive_entries");
    let got = extract(&server, &sid, "", tar_of(&many[..5])).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    std::fs::remove_dir_all(&ws).unwrap();
    std::fs::create_dir(&ws).unwrap();
    plant(&ws, "keep.txt", "keep");

    let big = vec![b'b'; 600];
    let got = extract(
        &server,
        &sid,
        "",
        tar_of(&[file("a", &big), file("b", &big)]),
    )
    .await;
    assert_refused(&got, 413, "payload_too_large", "max_unpacked_bytes");
    let huge = Entry {
        size: Some(1 << 40),
        ..file("huge", b"tiny")
    };
    let got = extract(&server, &sid, "", tar_of(&[huge])).await;
    assert_refused(&got, 413, "payload_too_large", "max_unpacked_bytes");
    // A gzip bomb: tiny compressed, a long name far beyond the limits unpacked
    // (the `tar` crate reads such names whole: the unpacked stream is bounded).
    let bomb = gzip(&tar_of(&[
        Entry {
            kind: tar::EntryType::GNULongName,
            ..file("././@LongLink", &vec![b'n'; 1_000_000])
        },
        file("x", b"x"),
    ]));
    assert!(bomb.len() < 20000, "{}", bomb.len());
    let got = extract_as(&server, ACME, &sid, "", "tar.gz", "application/gzip", bomb).await;
    assert_refused(&got, 413, "payload_too_large", "max_unpacked_bytes");
    let got = extract(&server, &sid, "", vec![0; 20001]).await;
    assert_refused(&got, 413, "payload_too_large", "20000 bytes");
    assert!(snapshot(&ws) == before);
    assert_no_staging_left(&server);
}

#[tokio::test]
async fn an_extraction_over_the_workspace_quota_is_507_and_writes_nothing() {
    let server = Server::with_config(
        "[[tenants]]\nname = \"small\"\ntokens = [\"small-token\"]\nlimits = { workspace_bytes = 3000 }\n",
    )
    .await;
    let sid = server.session("small-token").await;
    let ws = workspace(&server, &sid);
    plant(&ws, "keep.txt", vec![b'k'; 1000]);
    let before = snapshot(&ws);
    let big = vec![b'b'; 1500];
    let archive = tar_of(&[file("a", &big), file("b", &big)]);
    let got = extract_as(
        &server,
        "small-token",
        &sid,
        "",
        "tar",
        "application/x-tar",
        archive,
    )
    .await;
    assert_refused(&got, 507, "insufficient_storage", "workspace_bytes");
    assert!(snapshot(&ws) == before);
    assert_no_staging_left(&server);
    let archive = tar_of(&[file("a", &big)]);
    let got = extract_as(
        &server,
        "small-token",
        &sid,
        "",
        "tar",
        "application/x-tar",
        archive,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
}

#[tokio::test]
async fn malformed_archives_are_400_and_change_nothing() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "keep.txt", "keep");
    let before = snapshot(&ws);
    let good = tar_of(&[file("a.txt", &[b'a'; 2000])]);
    let not_tar = b"this is not a tar archive, just some text that goes on".repeat(20);
    for (format, content_type, body) in [
        ("tar", "application/x-tar", not_tar.clone()),
        ("tar", "application/x-tar", good[..1024].to_vec()),
        ("tar.gz", "application/gzip", good.clone()),
        ("tar.gz", "application/gzip", gzip(&not_tar)),
        ("tar.gz", "application/gzip", gzip(&good)[..40].to_vec()),
    ] {
        let got = extract_as(&server, ACME, &sid, "", format, content_type, body).await;
        assert_refused(&got, 400, "invalid_input", "the archive cannot be read");
        assert!(snapshot(&ws) == before);
    }
}

#[tokio::test]
async fn format_and_content_type_are_checked_before_the_body_is_read() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    plant(&workspace(&server, &sid), "dir/", "");
    let archive = tar_of(&[file("a.txt", b"a")]);
    let url = fs_url(&sid, "dir");
    let post = |query: &str, content_type: Option<&str>| {
        let mut rb = server
            .request(Method::POST, &format!("{url}{query}"), Some(ACME))
            .body(archive.clone());
        if let Some(ct) = content_type {
            rb = rb.header(CONTENT_TYPE, ct);
        }
        async move { json_of(rb.send().await.unwrap()).await }
    };
    assert_refused(
        &post("", None).await,
        400,
        "invalid_input",
        "format is required",
    );
    assert_refused(
        &post("?format=zip", None).await,
        400,
        "invalid_input",
        "\"zip\"",
    );
    let got = post("?format=tar", Some("application/json")).await;
    assert_refused(&got, 415, "unsupported_media_type", "application/x-tar");
    let got = post("?format=tar", Some("application/gzip")).await;
    assert_refused(&got, 415, "unsupported_media_type", "application/gzip");
    let got = post("?format=tar.gz", Some("application/x-tar")).await;
    assert_refused(&got, 415, "unsupported_media_type", "application/x-tar");
    for content_type in [
        None,
        Some("application/octet-stream"),
        Some("Application/X-Tar; x=1"),
    ] {
        let (status, body) = post("?format=tar", content_type).await;
        assert_eq!(status, StatusCode::OK, "{content_type:?}: {body}");
    }
    let (status, body) = post("?format=tar", Some("application/tar")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(workspace(&server, &sid).join("dir/a.txt").exists());
}

#[tokio::test]
async fn archives_are_of_directories_and_an_extraction_makes_a_missing_one() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "file.txt", "f");
    let archive = || tar_of(&[file("a.txt", b"a")]);

    let (status, _, body) = download(&server, ACME, &sid, "file.txt", "tar").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("file.txt is not a directory")
    );
    let got = extract(&server, &sid, "file.txt", archive()).await;
    assert_refused(&got, 400, "invalid_input", "file.txt is not a directory");
    let got = extract(&server, &sid, "file.txt/below", archive()).await;
    assert_error(&got, 409, "conflict");
    let got = server
        .get(&format!("{}?format=tar", fs_url(&sid, "missing")), ACME)
        .await;
    assert_error(&got, 404, "path_not_found");
    let got = server
        .get(&format!("{}?format=tar", fs_url(&sid, "a\\b")), ACME)
        .await;
    assert_error(&got, 400, "invalid_path");

    // A refused archive makes nothing, not even the directory.
    let got = extract(&server, &sid, "new/deeper", tar_of(&[file("../x", b"x")])).await;
    assert_error(&got, 400, "invalid_input");
    assert!(!ws.join("new").exists());
    let (status, body) = extract(&server, &sid, "new/deeper", archive()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "new/deeper");
    assert_eq!(std::fs::read(ws.join("new/deeper/a.txt")).unwrap(), b"a");

    let other_env = format!("/v1/sessions/{sid}/resources/environments/nope/filesystem");
    let got = server.get(&format!("{other_env}?format=tar"), ACME).await;
    assert_error(&got, 404, "not_found");
    let rb = server
        .request(Method::POST, &format!("{other_env}?format=tar"), Some(ACME))
        .body(archive());
    assert_error(&json_of(rb.send().await.unwrap()).await, 404, "not_found");

    // Another tenant's session is unknown, whichever way.
    let got = server
        .get(&format!("{}?format=tar", fs_url(&sid, "")), GLOBEX)
        .await;
    assert_error(&got, 404, "not_found");
    let got = extract_as(
        &server,
        GLOBEX,
        &sid,
        "",
        "tar",
        "application/x-tar",
        archive(),
    )
    .await;
    assert_error(&got, 404, "not_found");
    assert!(!workspace(&server, &sid).join("a.txt").exists());
}

#[tokio::test]
async fn the_read_only_example_policy_allows_archive_and_denies_extract() {
    let server = crate::admin::admin_server("").await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    plant(&ws, "a.txt", "a");
    let before = snapshot(&ws);
    let read_only = reshost_test_artifacts::POLICY_READ_ONLY.wasm;
    crate::admin::policy_set(&server, "acme", Some(read_only), None).await;

    let archive = archive_of(&server, &sid, "", "tar").await;
    assert_eq!(listing(&archive).len(), 1);
    let got = extract(&server, &sid, "", archive).await;
    assert_refused(
        &got,
        403,
        "forbidden",
        "environments.extract is not allowed",
    );
    assert!(snapshot(&ws) == before);
}

#[tokio::test]
async fn a_policy_denying_archive_or_extract_is_403_and_changes_nothing() {
    let server = Server::with_config(&format!(
        "[[tenants]]\nname = \"initech\"\ntokens = [\"initech-token\"]\npolicy = {:?}\n\
         policy_config = {{ deny = [\"environments.archive\", \"environments.extract\"], reason = \"no archives\" }}\n",
        reshost_test_artifacts::RULES_POLICY.path
    ))
    .await;
    let sid = server.session("initech-token").await;
    let ws = workspace(&server, &sid);
    plant(&ws, "a.txt", "a");
    let before = snapshot(&ws);
    let got = download(&server, "initech-token", &sid, "", "tar").await;
    assert_eq!(got.0, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(&got.2).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no archives"),
        "{body}"
    );
    let (status, _) = server.get(&fs_url(&sid, "a.txt"), "initech-token").await;
    assert_eq!(status, StatusCode::OK, "plain reads stay allowed");
    let archive = tar_of(&[file("b.txt", b"b")]);
    let got = extract_as(
        &server,
        "initech-token",
        &sid,
        "",
        "tar",
        "application/x-tar",
        archive,
    )
    .await;
    assert_refused(&got, 403, "forbidden", "no archives");
    assert!(snapshot(&ws) == before);
}
