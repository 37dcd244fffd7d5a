//! Hostile paths against the environment filesystem endpoints: lexical escapes,
//! encodings, overlong names and symlinks leading out of the workspace (to `/etc`, to
//! a sentinel file next to the data directory, to sibling sessions' workspaces), some
//! made on disk and some made by the session itself with the shell endpoint. The same
//! corpus is tried on `GET …/diff/{path}` and as the `path` scope of `GET …/search`.
//!
//! Requests go over a hand-written HTTP/1.1 client so the request target reaches the
//! server exactly as written (URL libraries normalize `..` and `%2e%2e` segments).
//!
//! The tests run as root in CI containers, so a write or delete aimed at a real
//! system file (`/etc/passwd`) is redirected to a fresh probe name: a buggy host then
//! creates a stray probe file (which the tests detect and remove) instead of
//! destroying the system.

use crate::common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client.

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn code(&self) -> String {
        self.json()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// `"<status> <code>"` for error replies, `"<status>"` otherwise.
    fn outcome(&self) -> String {
        let code = self.code();
        if code.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {code}", self.status)
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Sends `method target` (the request target exactly as given) and reads the reply.
async fn raw_request(
    server: &Server,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let addr = server
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() || method == "PUT" || method == "PATCH" {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut data = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut data))
        .await
        .unwrap_or_else(|_| panic!("no reply within 60 s: {method} {target}"))
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    let head_end = find(&data, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {target}: no HTTP reply: {data:?}"));
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &data[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        let len: usize = len.parse().unwrap();
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A filesystem-path suffix (as sent in a request target) as a query-string value
/// that decodes to the same bytes: `%XX` escapes are kept as they are, `/` and
/// unreserved bytes are sent literally, every other byte (`&`, `+`, `;`, `#`, `=`, …)
/// is escaped.
fn query_value(suffix: &str) -> String {
    let b = suffix.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push_str(&suffix[i..i + 3]);
            i += 3;
            continue;
        }
        if c.is_ascii_alphanumeric() || b"-._~/".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
        i += 1;
    }
    out
}

/// `s` as one single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn rand_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

// ---------------------------------------------------------------------------
// The fixture: a victim session whose workspace holds hostile symlinks, a sibling
// session (same tenant) and another tenant's session with secrets, and a sentinel
// directory next to the data directory.

struct Fixture {
    server: Server,
    sid: String,
    ws: PathBuf,
    sibling: String,
    sibling_ws: PathBuf,
    globex_ws: PathBuf,
    outside: PathBuf,
    sentinel_text: String,
    sibling_secret: String,
    globex_secret: String,
    /// A name that must never appear under `/etc` (writes are aimed there).
    probe: String,
}

fn remove_any(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
        Ok(_) => std::fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

impl Fixture {
    async fn new() -> Fixture {
        let server = Server::start().await;
        let sid = server.session(ACME).await;
        let sibling = server.session(ACME).await;
        let globex = server.session(GLOBEX).await;
        let ws = workspace(&server, &sid);
        let sibling_ws = workspace(&server, &sibling);
        let globex_ws = workspace(&server, &globex);
        let outside = server.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let f = Fixture {
            sentinel_text: format!("SENTINEL outside {}\n", rand_hex()),
            sibling_secret: format!("SENTINEL sibling {}\n", rand_hex()),
            globex_secret: format!("SENTINEL globex {}\n", rand_hex()),
            probe: format!("reshost-escape-probe-{}", rand_hex()),
            server,
            sid,
            ws,
            sibling,
            sibling_ws,
            globex_ws,
            outside,
        };
        f.arm();
        f.arm_shell_links().await;
        f
    }

    /// The victim workspace's hostile links (relative to the workspace root).
    fn links(&self) -> Vec<(&'static str, PathBuf)> {
        let o = &self.outside;
        vec![
            ("link_etc", "/etc".into()),
            ("link_root", "/".into()),
            ("link_proc", "/proc/self/root".into()),
            ("chain1", "chain2".into()),
            ("chain2", "/etc".into()),
            ("link_sentinel", o.join("sentinel.txt")),
            ("link_sentinel_rel", "../../../outside/sentinel.txt".into()),
            ("link_outside_dir", o.clone()),
            ("linkdir", o.clone()),
            ("link_sibling", self.sibling_ws.clone()),
            ("link_rel_sibling", format!("../{}", self.sibling).into()),
            ("link_globex", self.globex_ws.clone()),
            ("link_up", "..".into()),
            ("self_dot", ".".into()),
            ("inner/deep", "../../..".into()),
            ("inner/up2", "../..".into()),
            ("dangling_out", o.join("created_by_link.txt")),
            ("dangling_dir", o.join("newdir")),
            ("loop_a", "loop_b".into()),
            ("loop_b", "loop_a".into()),
            // Links that stay inside (controls).
            ("inside_link", "inside.txt".into()),
            ("inside_dir_link", "inner".into()),
            ("inner/up", "..".into()),
        ]
    }

    /// Links the session makes itself through the shell endpoint (not on disk), so
    /// the refusals also hold for links made by the session's own commands.
    fn shell_links(&self) -> Vec<(&'static str, String)> {
        vec![
            ("sh_etc", "/etc".to_owned()),
            ("sh_sibling", self.sibling_ws.display().to_string()),
            ("sh_rel_sibling", format!("../{}", self.sibling)),
        ]
    }

    /// `POST …/shell {"command": …}`, which must answer `200` with `exit_code: 0`.
    async fn shell(&self, command: &str) -> Value {
        let target = format!("{}/shell", self.env_path());
        let body = json!({ "command": command });
        let reply = raw_request(&self.server, "POST", &target, Some(ACME), Some(&body)).await;
        assert_eq!(reply.status, 200, "shell {command:?}: {}", reply.text());
        let v = reply.json().unwrap_or_default();
        assert_eq!(v["exit_code"], 0, "shell {command:?}: {v}");
        v
    }

    /// (Re)makes, with the shell endpoint, each shell link that is missing or
    /// altered (a DELETE of the link itself may have removed it).
    async fn arm_shell_links(&self) {
        for (name, target) in self.shell_links() {
            let at = self.ws.join(name);
            if std::fs::read_link(&at).ok() == Some(PathBuf::from(&target)) {
                continue;
            }
            // No trailing slash: `rm` removes the link itself, never its target.
            self.shell(&format!(
                "rm -rf -- {n} && ln -s -- {t} {n}",
                n = sh_quote(name),
                t = sh_quote(&target)
            ))
            .await;
            assert_eq!(
                std::fs::read_link(&at).ok(),
                Some(PathBuf::from(&target)),
                "the shell made the link {name}"
            );
        }
    }

    /// (Re)creates the victim's files and links, whatever an earlier request did.
    fn arm(&self) {
        // What lies outside, restored in case an earlier request got through.
        std::fs::create_dir_all(self.outside.join("subdir")).unwrap();
        std::fs::write(self.outside.join("sentinel.txt"), &self.sentinel_text).unwrap();
        std::fs::write(self.outside.join("subdir/nested.txt"), &self.sentinel_text).unwrap();
        std::fs::create_dir_all(self.sibling_ws.join("src")).unwrap();
        std::fs::write(self.sibling_ws.join("secret.txt"), &self.sibling_secret).unwrap();
        std::fs::write(self.sibling_ws.join("src/app.py"), &self.sibling_secret).unwrap();
        std::fs::create_dir_all(&self.globex_ws).unwrap();
        std::fs::write(self.globex_ws.join("secret.txt"), &self.globex_secret).unwrap();
        // The victim's own files and links.
        std::fs::create_dir_all(self.ws.join("inner")).unwrap();
        std::fs::write(self.ws.join("inside.txt"), "inside SENTINEL ok\n").unwrap();
        std::fs::write(self.ws.join("inner/file.txt"), "inner file\n").unwrap();
        for (name, target) in self.links() {
            let at = self.ws.join(name);
            remove_any(&at);
            symlink(&target, &at).unwrap();
        }
    }

    /// Everything outside the victim's workspace that an escape could touch.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        for root in [&self.outside, &self.sibling_ws, &self.globex_ws] {
            walk(root, &mut out);
        }
        for sys in ["/etc", "/"] {
            let p = Path::new(sys).join(&self.probe);
            out.insert(p.clone(), describe(&p));
        }
        out.insert(
            self.outside.join("created_by_link.txt"),
            describe(&self.outside.join("created_by_link.txt")),
        );
        out
    }

    /// Strings no reply may contain (unless the request itself carried them).
    fn needles(&self) -> Vec<String> {
        let mut v = vec![
            self.sentinel_text.trim().to_owned(),
            self.sibling_secret.trim().to_owned(),
            self.globex_secret.trim().to_owned(),
            "/workspaces/".to_owned(),
            "root:x:0:0".to_owned(),
            self.server.dir.path().display().to_string(),
        ];
        if let Ok(c) = self.server.dir.path().canonicalize() {
            v.push(c.display().to_string());
        }
        v
    }

    fn env_path(&self) -> String {
        env_url(&self.sid)
    }

    fn target(&self, suffix: &str) -> String {
        format!("{}/filesystem/{suffix}", self.env_path())
    }

    fn diff_target(&self, suffix: &str) -> String {
        format!("{}/diff/{suffix}", self.env_path())
    }

    /// A search for `q` scoped to the suffix's path (the `path` query parameter).
    fn grep_target(&self, suffix: &str) -> String {
        format!(
            "{}/grep?pattern=SENTINEL&no_ignore=true&hidden=true&path={}",
            self.env_path(),
            query_value(suffix)
        )
    }

    fn search_target(&self, q: &str, suffix: &str) -> String {
        format!(
            "{}/search?q={q}&path={}",
            self.env_path(),
            query_value(suffix)
        )
    }

    /// Whether `rel` (as a search lists it) names something that really lies inside
    /// the victim's workspace once every link is resolved.
    fn is_inside(&self, rel: &str) -> bool {
        let Ok(root) = self.ws.canonicalize() else {
            return false;
        };
        !rel.is_empty()
            && !rel.starts_with('/')
            && self
                .ws
                .join(rel)
                .canonicalize()
                .is_ok_and(|p| p.starts_with(&root))
    }

    /// Removes stray probe files a buggy host may have created in system places.
    fn clean_probes(&self) {
        for sys in ["/etc", "/"] {
            let _ = std::fs::remove_file(Path::new(sys).join(&self.probe));
        }
    }
}

fn describe(p: &Path) -> String {
    match std::fs::symlink_metadata(p) {
        Err(_) => "absent".into(),
        Ok(m) if m.file_type().is_symlink() => {
            format!("link -> {}", std::fs::read_link(p).unwrap().display())
        }
        Ok(m) if m.is_dir() => "dir".into(),
        Ok(_) => format!(
            "file {}",
            String::from_utf8_lossy(&std::fs::read(p).unwrap())
        ),
    }
}

fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
    out.insert(p.to_owned(), describe(p));
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(p).unwrap() {
            walk(&e.unwrap().path(), out);
        }
    }
}

// ---------------------------------------------------------------------------
// The corpus.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// A lexical escape: `400 invalid_path` for every method.
    Invalid,
    /// Resolves outside through a symlink: `403 path_forbidden` for every method.
    Forbidden,
    /// Like `Forbidden`, but the last component is the link itself, so DELETE may
    /// also remove the link (`200`, type `symlink`) without touching its target.
    ForbiddenLink,
    /// Either refusal (`400 invalid_path` or `403 path_forbidden`).
    Refused,
    /// Like `Refused`, but DELETE may remove the link itself (`200`).
    RefusedLink,
    /// A literal name inside the workspace that cannot escape: `400 invalid_path`
    /// or absent (`404 path_not_found`); PUT may also create it inside (`200`).
    Inert,
    /// Too long to exist: reads `400 invalid_path` or `404 path_not_found`, PUT
    /// `400 invalid_path`.
    TooLong,
    /// Not valid UTF-8 once decoded: `400` (`invalid_path` or `invalid_input`).
    BadUtf8,
}

struct Case {
    label: String,
    /// The request target after `…/filesystem/`, sent as is.
    suffix: String,
    /// Used instead of `suffix` for PUT and DELETE (system files are never written).
    write_suffix: Option<String>,
    expect: Expect,
}

fn case(label: &str, suffix: impl Into<String>, expect: Expect) -> Case {
    Case {
        label: label.to_owned(),
        suffix: suffix.into(),
        write_suffix: None,
        expect,
    }
}

fn system_case(label: &str, suffix: &str, write_suffix: String, expect: Expect) -> Case {
    Case {
        label: label.to_owned(),
        suffix: suffix.to_owned(),
        write_suffix: Some(write_suffix),
        expect,
    }
}

fn lexical_corpus(f: &Fixture) -> Vec<Case> {
    use Expect::*;
    let sibling_abs = format!("{}/secret.txt", f.sibling_ws.display());
    vec![
        case("literal ..", "..", Invalid),
        case("literal ../", "../", Invalid),
        case("literal ../x", "../x", Invalid),
        case(
            "literal ../../../../../../etc/passwd",
            "../../../../../../etc/passwd",
            Invalid,
        ),
        case(
            "literal ../<sibling>/secret.txt",
            format!("../{}/secret.txt", f.sibling),
            Invalid,
        ),
        case("literal a/../../x", "a/../../x", Invalid),
        case("literal ./../x", "./../x", Invalid),
        case("literal a/b/../../../x", "a/b/../../../x", Invalid),
        case("literal inner/../../x", "inner/../../x", Invalid),
        case("%2e%2e", "%2e%2e", Invalid),
        case("%2e%2e/x", "%2e%2e/x", Invalid),
        case(
            "%2E%2E/%2E%2E/etc/passwd",
            "%2E%2E/%2E%2E/etc/passwd",
            Invalid,
        ),
        case(".%2e/x", ".%2e/x", Invalid),
        case("%2e./x", "%2e./x", Invalid),
        case("%2e%2e%2f", "%2e%2e%2f", Invalid),
        case("%2e%2e%2fetc%2fpasswd", "%2e%2e%2fetc%2fpasswd", Invalid),
        case("a/%2e%2e/%2e%2e/x", "a/%2e%2e/%2e%2e/x", Invalid),
        case("%2e/%2e%2e/x", "%2e/%2e%2e/x", Invalid),
        case("x/..%2f..%2f..%2fetc", "x/..%2f..%2f..%2fetc", Invalid),
        case(
            "a%2f%2e%2e%2f%2e%2e%2fx",
            "a%2f%2e%2e%2f%2e%2e%2fx",
            Invalid,
        ),
        case("%2Fetc%2Fpasswd (absolute)", "%2Fetc%2Fpasswd", Invalid),
        case("%2F (absolute root)", "%2F", Invalid),
        case("%2F%2Fetc%2Fpasswd", "%2F%2Fetc%2Fpasswd", Invalid),
        case("%2F..%2F..%2Fetc", "%2F..%2F..%2Fetc", Invalid),
        case("//etc/passwd (empty first segment)", "/etc/passwd", Invalid),
        case(
            "absolute sibling workspace path",
            pct(&sibling_abs, false),
            Invalid,
        ),
        case("x%00", "x%00", Invalid),
        case("%00", "%00", Invalid),
        case("inside.txt%00.png", "inside.txt%00.png", Invalid),
        case("x%00/../../etc/passwd", "x%00/../../etc/passwd", Invalid),
        case("..%5c..%5cetc%5cpasswd", "..%5c..%5cetc%5cpasswd", Invalid),
        case("%5cetc%5cpasswd", "%5cetc%5cpasswd", Invalid),
        case("..%5c", "..%5c", Invalid),
        case("a%5c..%5c..%5cx", "a%5c..%5c..%5cx", Invalid),
        case("%2e%2e%5c%2e%2e%5c", "%2e%2e%5c%2e%2e%5c", Invalid),
        case(
            "6000-char path climbing out",
            format!("{}{}etc", "a/".repeat(1200), "../".repeat(1201)),
            Invalid,
        ),
        case("5000-char path", "a/".repeat(2500), TooLong),
        case("300-char component", "b".repeat(300), TooLong),
        case(
            "300-char middle component",
            format!("x/{}/y", "c".repeat(300)),
            TooLong,
        ),
        case("5000 dots", ".".repeat(5000), TooLong),
        case(
            "%c0%ae%c0%ae/x (overlong UTF-8 dots)",
            "%c0%ae%c0%ae/x",
            BadUtf8,
        ),
        case("%ff/x", "%ff/x", BadUtf8),
    ]
}

fn inert_corpus() -> Vec<Case> {
    use Expect::*;
    vec![
        case("%252e%252e%252f (double-encoded)", "%252e%252e%252f", Inert),
        case(
            "%252e%252e/%252e%252e/etc/passwd",
            "%252e%252e/%252e%252e/etc/passwd",
            Inert,
        ),
        case("%252Fetc%252Fpasswd", "%252Fetc%252Fpasswd", Inert),
        case("..%255c..%255c", "..%255c..%255c", Inert),
        case(
            "%25%32%65%25%32%65%25%32%66",
            "%25%32%65%25%32%65%25%32%66",
            Inert,
        ),
        case("fullwidth dots", "%ef%bc%8e%ef%bc%8e/x", Inert),
        case("one-dot leaders", "%e2%80%a4%e2%80%a4/x", Inert),
        case("....//....//etc/passwd", "....//....//etc/passwd", Inert),
        case("..;/x", "..;/x", Inert),
        case("...", "...", Inert),
        case("~/x", "~/x", Inert),
        case("$HOME/x", "%24HOME/x", Inert),
    ]
}

fn symlink_corpus(f: &Fixture) -> Vec<Case> {
    use Expect::*;
    let probe = &f.probe;
    vec![
        case("link_etc (the link)", "link_etc", ForbiddenLink),
        system_case(
            "link_etc/passwd",
            "link_etc/passwd",
            format!("link_etc/{probe}"),
            Forbidden,
        ),
        case(
            "link_etc/<absent> (no existence oracle)",
            format!("link_etc/{probe}"),
            Forbidden,
        ),
        system_case(
            "link_etc%2Fpasswd",
            "link_etc%2Fpasswd",
            format!("link_etc%2F{probe}"),
            Forbidden,
        ),
        system_case(
            "link_root/etc/passwd",
            "link_root/etc/passwd",
            format!("link_root/{probe}"),
            Forbidden,
        ),
        system_case(
            "link_proc/etc/passwd",
            "link_proc/etc/passwd",
            format!("link_proc/etc/{probe}"),
            Forbidden,
        ),
        system_case(
            "chain1/passwd (chain1 -> chain2 -> /etc)",
            "chain1/passwd",
            format!("chain1/{probe}"),
            Forbidden,
        ),
        system_case(
            "self_dot/link_etc/passwd",
            "self_dot/link_etc/passwd",
            format!("self_dot/link_etc/{probe}"),
            Forbidden,
        ),
        system_case(
            "inner/../link_etc/passwd",
            "inner/%2e%2e/link_etc/passwd",
            format!("inner/%2e%2e/link_etc/{probe}"),
            Forbidden,
        ),
        case("link_sentinel (the link)", "link_sentinel", ForbiddenLink),
        case(
            "link_sentinel_rel (relative link)",
            "link_sentinel_rel",
            ForbiddenLink,
        ),
        case(
            "link_outside_dir (the link)",
            "link_outside_dir",
            ForbiddenLink,
        ),
        case(
            "link_outside_dir/sentinel.txt",
            "link_outside_dir/sentinel.txt",
            Forbidden,
        ),
        case(
            "link_outside_dir/subdir",
            "link_outside_dir/subdir",
            Forbidden,
        ),
        case(
            "link_outside_dir/subdir/nested.txt",
            "link_outside_dir/subdir/nested.txt",
            Forbidden,
        ),
        case(
            "linkdir/new.txt (write through a linked parent)",
            "linkdir/new.txt",
            Forbidden,
        ),
        case(
            "linkdir/sub/new.txt (parents through a link)",
            "linkdir/sub/new.txt",
            Forbidden,
        ),
        case(
            "dangling_out (link to an absent outside file)",
            "dangling_out",
            ForbiddenLink,
        ),
        case(
            "dangling_dir/x.txt (absent outside dir)",
            "dangling_dir/x.txt",
            Forbidden,
        ),
        case("link_sibling (the link)", "link_sibling", ForbiddenLink),
        case(
            "link_sibling/secret.txt",
            "link_sibling/secret.txt",
            Forbidden,
        ),
        case("link_sibling/src", "link_sibling/src", Forbidden),
        case("link_sibling/new.txt", "link_sibling/new.txt", Forbidden),
        case(
            "link_rel_sibling/secret.txt",
            "link_rel_sibling/secret.txt",
            Forbidden,
        ),
        case(
            "link_globex/secret.txt",
            "link_globex/secret.txt",
            Forbidden,
        ),
        case(
            "link_up/<sibling>/secret.txt",
            format!("link_up/{}/secret.txt", f.sibling),
            Forbidden,
        ),
        case("link_up (the link, -> ..)", "link_up", ForbiddenLink),
        case(
            "inner/deep/workspaces/<sibling>/secret.txt (inner/deep -> ../../..)",
            format!("inner/deep/workspaces/{}/secret.txt", f.sibling),
            Forbidden,
        ),
        case(
            "inner/up2/<sibling>/secret.txt (inner/up2 -> ../..)",
            format!("inner/up2/{}/secret.txt", f.sibling),
            Forbidden,
        ),
        case(
            "literal link_sibling/../link_sibling/secret.txt",
            "link_sibling/../link_sibling/secret.txt",
            Refused,
        ),
        case("loop_a (symlink loop)", "loop_a", RefusedLink),
        case("loop_a/x (through a loop)", "loop_a/x", Refused),
        // Links the session made itself with the shell endpoint.
        case("sh_etc (shell-made link to /etc)", "sh_etc", ForbiddenLink),
        system_case(
            "sh_etc/passwd (shell-made link to /etc)",
            "sh_etc/passwd",
            format!("sh_etc/{probe}"),
            Forbidden,
        ),
        case(
            "sh_sibling (shell-made link to the sibling's workspace)",
            "sh_sibling",
            ForbiddenLink,
        ),
        case(
            "sh_sibling/secret.txt (shell-made)",
            "sh_sibling/secret.txt",
            Forbidden,
        ),
        case(
            "sh_sibling/src/app.py (shell-made)",
            "sh_sibling/src/app.py",
            Forbidden,
        ),
        case(
            "sh_sibling/new.txt (shell-made)",
            "sh_sibling/new.txt",
            Forbidden,
        ),
        case(
            "sh_rel_sibling/secret.txt (shell-made ../<sibling>)",
            "sh_rel_sibling/secret.txt",
            Forbidden,
        ),
    ]
}

/// Every case of the three corpora.
fn full_corpus(f: &Fixture) -> Vec<Case> {
    let mut cases = lexical_corpus(f);
    cases.extend(inert_corpus());
    cases.extend(symlink_corpus(f));
    cases
}

// ---------------------------------------------------------------------------
// Running a corpus.

const METHODS: [&str; 5] = ["GET", "GET raw", "PATCH", "DELETE", "PUT"];

/// `GET …/diff/{path}`, plain and `?format=unified`.
const DIFF_METHODS: [&str; 2] = ["DIFF", "DIFF unified"];

/// `GET …/search?q=…&path={path}`: `q=a`, and `q=/`, which every path under a
/// (non-root) scope holds, so a scope that got out would list all it reached.
const SEARCH_METHODS: [&str; 2] = ["SEARCH", "SEARCH all"];

/// `GET …/grep?pattern=SENTINEL&path={path}`, hidden and ignored files included:
/// every secret outside holds `SENTINEL`, so a scope that got out would show it.
const GREP_METHODS: [&str; 1] = ["GREP"];

fn allowed(expect: Expect, method: &str) -> &'static [&'static str] {
    use Expect::*;
    match (expect, method) {
        (Invalid, _) => &["400 invalid_path"],
        (Forbidden, _) => &["403 path_forbidden"],
        (ForbiddenLink, "DELETE") => &["403 path_forbidden", "200"],
        // Including DIFF: a diff of the link itself would show its content, the
        // link's target (a host path), so it is refused like a read through it.
        (ForbiddenLink, _) => &["403 path_forbidden"],
        (Refused, _) => &["400 invalid_path", "403 path_forbidden"],
        (RefusedLink, "DELETE") => &["400 invalid_path", "403 path_forbidden", "200"],
        // Including DIFF: though a diff shows the link itself (a loop between two
        // links inside, whose content is the other's name), it is refused like a read.
        (RefusedLink, _) => &["400 invalid_path", "403 path_forbidden"],
        // Nothing changed there this session.
        (Inert, "DIFF" | "DIFF unified") => &["400 invalid_path", "404 not_found"],
        // An absent scope, or (checked in `run_methods`) an empty result.
        (Inert, "SEARCH" | "SEARCH all" | "GREP") => {
            &["400 invalid_path", "404 path_not_found", "200"]
        }
        (Inert, "PUT") => &["400 invalid_path", "200"],
        // A PUT may have created it just before (PUT runs last, but an earlier
        // case may share a name): then PATCH finds no match and DELETE removes it.
        (Inert, "PATCH") => &["400 invalid_path", "404 path_not_found", "422 no_match"],
        (Inert, "DELETE") => &["400 invalid_path", "404 path_not_found", "200"],
        (Inert, _) => &["400 invalid_path", "404 path_not_found", "200"],
        (TooLong, "DIFF" | "DIFF unified") => &["400 invalid_path", "404 not_found"],
        (TooLong, "PUT") => &["400 invalid_path"],
        (TooLong, _) => &["400 invalid_path", "404 path_not_found"],
        // Query values are decoded lossily (invalid bytes become U+FFFD), which
        // names an absent scope inside.
        (BadUtf8, "SEARCH" | "SEARCH all" | "GREP") => &[
            "400 invalid_path",
            "400 invalid_input",
            "404 path_not_found",
        ],
        (BadUtf8, _) => &["400 invalid_path", "400 invalid_input"],
    }
}

/// Runs every case with every filesystem method; returns one line per violation.
async fn run(f: &Fixture, cases: &[Case]) -> Vec<String> {
    run_methods(f, cases, &METHODS).await
}

/// Runs every case with each of `methods`; returns one line per violation.
async fn run_methods(f: &Fixture, cases: &[Case], methods: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        for &method in methods {
            f.arm();
            f.arm_shell_links().await;
            let before = f.snapshot();
            let suffix = match (method, &c.write_suffix) {
                ("PUT" | "DELETE", Some(w)) => w.as_str(),
                _ => c.suffix.as_str(),
            };
            let (verb, target, body) = match method {
                "GET" => ("GET", f.target(suffix), None),
                "GET raw" => ("GET", format!("{}?format=raw", f.target(suffix)), None),
                "PATCH" => (
                    "PATCH",
                    f.target(suffix),
                    Some(json!({"old_text": "SENTINEL", "new_text": "PWNED"})),
                ),
                "DELETE" => (
                    "DELETE",
                    format!("{}?recursive=true", f.target(suffix)),
                    None,
                ),
                "PUT" => ("PUT", f.target(suffix), Some(json!({"content": "PWNED"}))),
                "DIFF" => ("GET", f.diff_target(suffix), None),
                "DIFF unified" => (
                    "GET",
                    format!("{}?format=unified", f.diff_target(suffix)),
                    None,
                ),
                "SEARCH" => ("GET", f.search_target("a", suffix), None),
                "SEARCH all" => ("GET", f.search_target("%2F", suffix), None),
                "GREP" => ("GET", f.grep_target(suffix), None),
                other => unreachable!("unknown method {other}"),
            };
            let reply = raw_request(&f.server, verb, &target, Some(ACME), body.as_ref()).await;
            let after = f.snapshot();
            let shown = if target.len() > 160 {
                format!("{}…({} chars)", &target[..160], target.len())
            } else {
                target.clone()
            };
            let mut problems = Vec::new();

            let outcome = reply.outcome();
            let ok = allowed(c.expect, method);
            if !ok.contains(&outcome.as_str()) {
                let mut text = reply.text();
                if text.len() > 300 {
                    text = format!("{}…", &text[..text.floor_char_boundary(300)]);
                }
                problems.push(format!("expected {} got {outcome}: {text}", ok.join(" | ")));
            }
            if reply.status >= 400 {
                match reply.json() {
                    Some(v)
                        if v["error"]["code"].is_string() && v["error"]["message"].is_string() => {}
                    _ => problems.push(format!(
                        "error body not in the error shape: {}",
                        reply.text()
                    )),
                }
            }
            if reply.status == 200 && method == "DELETE" {
                let v = reply.json().unwrap_or_default();
                if matches!(c.expect, Expect::ForbiddenLink | Expect::RefusedLink)
                    && v["type"] != "symlink"
                {
                    problems.push(format!("DELETE of the link itself answered {v}"));
                }
            }
            if (method.starts_with("SEARCH") || method == "GREP") && reply.status == 200 {
                let v = reply.json().unwrap_or_default();
                match v["data"].as_array() {
                    None => problems.push(format!("search answer without data: {v}")),
                    Some(listed) => {
                        if c.expect == Expect::Inert && !listed.is_empty() {
                            problems.push(format!("an absent scope listed files: {v}"));
                        }
                        for e in listed {
                            if !f.is_inside(e["path"].as_str().unwrap_or_default()) {
                                problems.push(format!(
                                    "search listed a file outside the workspace: {e}"
                                ));
                            }
                            let text = e["text"].as_str().unwrap_or_default();
                            if [&f.sentinel_text, &f.sibling_secret, &f.globex_secret]
                                .iter()
                                .any(|secret| secret.trim_end() == text)
                            {
                                problems.push(format!("grep showed a secret from outside: {e}"));
                            }
                        }
                    }
                }
            }
            if method.starts_with("DIFF")
                && reply.status == 200
                && reply
                    .json()
                    .is_none_or(|v| v["object"] != "session.environment.filesystem.file_diff")
            {
                problems.push(format!("not a file diff: {}", reply.text()));
            }
            if before != after {
                let changed: Vec<String> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{} now {v}", k.display()))
                    .chain(
                        before
                            .keys()
                            .filter(|k| !after.contains_key(*k))
                            .map(|k| format!("{} removed", k.display())),
                    )
                    .collect();
                problems.push(format!("OUTSIDE THE WORKSPACE CHANGED: {changed:?}"));
            }
            let decoded_target = percent_decode(&target);
            let haystack = format!(
                "{}\n{}",
                reply.text(),
                reply
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            for needle in f.needles() {
                if !decoded_target.contains(&needle)
                    && !target.contains(&needle)
                    && haystack.contains(&needle)
                {
                    problems.push(format!("reply leaks {needle:?}"));
                }
            }
            for p in problems {
                failures.push(format!("[{}] {method} {shown}\n      {p}", c.label));
            }
            f.clean_probes();
        }
    }
    f.arm();
    f.arm_shell_links().await;
    failures
}

#[track_caller]
fn report(what: &str, n: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {n} {what} requests misbehaved:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn the_corpus_is_big_enough() {
    let f = Fixture::new().await;
    let n = full_corpus(&f).len();
    assert!(n >= 40, "{n} hostile paths");
}

#[tokio::test]
async fn lexical_escapes_are_400_invalid_path() {
    let f = Fixture::new().await;
    let cases = lexical_corpus(&f);
    let failures = run(&f, &cases).await;
    report("lexical", cases.len() * METHODS.len(), failures);
}

#[tokio::test]
async fn double_encoded_and_lookalike_names_stay_inside() {
    let f = Fixture::new().await;
    let cases = inert_corpus();
    let failures = run(&f, &cases).await;
    report("inert", cases.len() * METHODS.len(), failures);
    // Whatever PUT created is inside the workspace, under its literal name.
    if let Ok(entries) = std::fs::read_dir(&f.ws) {
        for e in entries {
            let name = e.unwrap().file_name();
            let name = name.to_string_lossy();
            assert!(
                !name.contains('/') && name != ".." && name != ".",
                "odd name in the workspace: {name:?}"
            );
        }
    }
}

#[tokio::test]
async fn symlinks_leading_outside_are_403_path_forbidden() {
    let f = Fixture::new().await;
    let cases = symlink_corpus(&f);
    let failures = run(&f, &cases).await;
    report("symlink", cases.len() * METHODS.len(), failures);
}

#[tokio::test]
async fn diff_refuses_every_hostile_path() {
    let f = Fixture::new().await;
    let cases = full_corpus(&f);
    let failures = run_methods(&f, &cases, &DIFF_METHODS).await;
    report("diff", cases.len() * DIFF_METHODS.len(), failures);
}

#[tokio::test]
async fn search_scope_refuses_every_hostile_path() {
    let f = Fixture::new().await;
    let cases = full_corpus(&f);
    let failures = run_methods(&f, &cases, &SEARCH_METHODS).await;
    report("search", cases.len() * SEARCH_METHODS.len(), failures);
}

#[tokio::test]
async fn grep_scope_refuses_every_hostile_path_and_shows_nothing_from_outside() {
    let f = Fixture::new().await;
    let cases = full_corpus(&f);
    let failures = run_methods(&f, &cases, &GREP_METHODS).await;
    report("grep", cases.len() * GREP_METHODS.len(), failures);
}

#[tokio::test]
async fn links_and_dots_that_stay_inside_work() {
    let f = Fixture::new().await;
    let get = async |suffix: &str| {
        raw_request(&f.server, "GET", &f.target(suffix), Some(ACME), None).await
    };
    // Content through an inside link, a `..` that stays inside, `.` segments.
    for suffix in [
        "inside_link",
        "inner/../inside.txt",
        "./inside.txt",
        "inner/%2e%2e/inside.txt",
        "inner/up/inside.txt",
        "inside_dir_link/up/inside.txt",
    ] {
        let r = get(suffix).await;
        assert_eq!(r.status, 200, "GET {suffix}: {}", r.text());
        let v = r.json().unwrap();
        assert_eq!(v["content"], "inside SENTINEL ok\n", "GET {suffix}: {v}");
        assert_eq!(v["encoding"], "utf-8", "GET {suffix}: {v}");
    }
    // A listing through an inside directory link.
    let r = get("inside_dir_link").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["object"], "list", "{v}");
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"file.txt"), "{v}");
    // Writing through an inside directory link lands inside.
    let r = raw_request(
        &f.server,
        "PUT",
        &f.target("inside_dir_link/written.txt"),
        Some(ACME),
        Some(&json!({"content": "through a link"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read_to_string(f.ws.join("inner/written.txt")).unwrap(),
        "through a link"
    );
}

#[tokio::test]
async fn listing_a_workspace_with_outside_links_shows_links_and_no_host_paths() {
    let f = Fixture::new().await;
    let r = raw_request(
        &f.server,
        "GET",
        &format!("{}?limit=1000", f.target("").trim_end_matches('/')),
        Some(ACME),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    let data = v["data"].as_array().unwrap();
    for name in [
        "link_etc",
        "link_sentinel",
        "link_outside_dir",
        "link_sibling",
        "dangling_out",
        "loop_a",
    ] {
        let e = data
            .iter()
            .find(|e| e["id"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {v}"));
        assert_eq!(e["type"], "symlink", "{e}");
    }
    let text = r.text();
    for needle in f.needles() {
        assert!(!text.contains(&needle), "listing leaks {needle:?}: {text}");
    }
    assert!(
        !text.contains("/etc"),
        "listing leaks a link target: {text}"
    );
}

#[tokio::test]
async fn recursive_delete_never_follows_links_out() {
    let f = Fixture::new().await;
    let before = f.snapshot();
    // A real directory holding links to the outside, the sibling and /etc.
    let doomed = f.ws.join("doomed");
    std::fs::create_dir_all(doomed.join("sub")).unwrap();
    std::fs::write(doomed.join("sub/own.txt"), "own").unwrap();
    symlink(&f.outside, doomed.join("out")).unwrap();
    symlink(&f.sibling_ws, doomed.join("sub/sib")).unwrap();
    symlink("/etc", doomed.join("etc")).unwrap();
    symlink(format!("../../{}", f.sibling), doomed.join("rel_sib")).unwrap();
    let r = raw_request(
        &f.server,
        "DELETE",
        &format!("{}?recursive=true", f.target("doomed")),
        Some(ACME),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        std::fs::symlink_metadata(&doomed).is_err(),
        "the directory is gone"
    );
    assert_eq!(
        f.snapshot(),
        before,
        "nothing outside the workspace changed"
    );
    assert!(Path::new("/etc/passwd").exists());
    assert!(f.ws.join("inside.txt").exists());
}

#[tokio::test]
async fn the_root_cannot_be_deleted_by_any_spelling() {
    let f = Fixture::new().await;
    let base = f.target("");
    let base = base.trim_end_matches('/');
    for spelling in [
        "",
        "/",
        "/.",
        "/%2e",
        "/./",
        "/inner/..",
        "/inner/%2e%2e",
        "/inner/../",
        "/./.",
        "/%2E/",
    ] {
        for query in ["", "?recursive=true"] {
            let target = format!("{base}{spelling}{query}");
            let r = raw_request(&f.server, "DELETE", &target, Some(ACME), None).await;
            assert_eq!(r.status, 400, "DELETE {target}: {}", r.text());
            let code = r.code();
            assert!(
                code == "invalid_path" || code == "invalid_input",
                "DELETE {target}: {}",
                r.text()
            );
            assert!(
                f.ws.join("inside.txt").exists(),
                "DELETE {target} removed files"
            );
            assert!(
                f.ws.join("inner/file.txt").exists(),
                "DELETE {target} removed files"
            );
        }
    }
}
