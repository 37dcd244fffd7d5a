//! Three runners behind an unmodified HAProxy, on loopback, as
//! `docs/scale-out.md` deploys them: the proxy's config is the one
//! `reshost cluster proxy-config` prints; sessions are spread over the runners,
//! every endpoint works through the proxy, the listing is one list, and a
//! runner that dies takes only its own sessions away, until it is back.

use crate::admin::ADMIN;
use crate::common::*;
use crate::terminals::{attach_shell, launch_shell, terminal, terminals};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNNERS: [&str; 3] = ["r0", "r1", "r2"];

/// The runners, the proxy, and the API as clients see it (through the proxy).
struct Cluster {
    runners: Vec<Server>,
    proxy: Child,
    api: Server,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// HAProxy: `$RESHOST_HAPROXY`, else `haproxy` on the PATH or in /usr/sbin
/// (Debian's package; `.ci/run` installs it).
fn haproxy() -> PathBuf {
    if let Ok(path) = std::env::var("RESHOST_HAPROXY") {
        return PathBuf::from(path);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .expect("the cluster tests need HAProxy 2.4 or later: apt-get install haproxy (or set RESHOST_HAPROXY)")
}

/// The tag a runner's session ids carry (characters 17..25).
fn tag(runner: &str) -> String {
    sha256_hex(runner.as_bytes())[..8].to_owned()
}

/// The runner whose tag a session id carries.
fn runner_of(id: &str) -> usize {
    let tag_in_id = &id[17..25];
    RUNNERS
        .iter()
        .position(|r| tag(r) == tag_in_id)
        .unwrap_or_else(|| panic!("{id} carries no runner's tag"))
}

impl Cluster {
    /// Three runners (each config: the test preamble, `extra`, the cluster
    /// table) and the proxy, ready.
    async fn start(extra: &str) -> Cluster {
        let ports: Vec<u16> = (0..RUNNERS.len()).map(|_| free_port()).collect();
        let table: String = RUNNERS
            .iter()
            .zip(&ports)
            .map(|(r, p)| format!("{r} = \"http://127.0.0.1:{p}\"\n"))
            .collect();
        let config = format!("{extra}\n[cluster]\ndrain_ms = 1500\n[cluster.runners]\n{table}");
        // One config for all, the name from the command line, as in Kubernetes.
        let runners: Vec<Server> = RUNNERS
            .iter()
            .zip(&ports)
            .map(|(name, port)| {
                let listen = format!("127.0.0.1:{port}");
                Server::with_args(
                    &std::env::temp_dir(),
                    &config,
                    &["--listen", &listen, "--runner", name],
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let proxy_port = free_port();
        let made = Command::new(env!("CARGO_BIN_EXE_reshost"))
            .args(["cluster", "proxy-config", "--config"])
            .arg(runners[0].config_path())
            .args(["--listen", &format!("127.0.0.1:{proxy_port}")])
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, &made.stdout).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let proxy = Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let cluster = Cluster {
            runners,
            proxy,
            api: Server::at(format!("http://127.0.0.1:{proxy_port}")),
            dir,
        };
        cluster
            .until("the proxy serves every runner", async || {
                for name in RUNNERS {
                    let asked = cluster
                        .api
                        .request(Method::GET, "/healthz", None)
                        .header("reshost-runner", name)
                        .send()
                        .await;
                    if !asked.is_ok_and(|r| r.status() == StatusCode::OK) {
                        return false;
                    }
                }
                true
            })
            .await;
        cluster
    }

    fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Polls `check` until it holds (20 s at most).
    async fn until(&self, what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "{what}: not within 20 s\n{}",
                self.proxy_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `n` new ACME sessions through the proxy, 10 at a time.
    async fn sessions(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for start in (0..n).step_by(10) {
            let made = (start..n.min(start + 10)).map(|_| self.api.session(ACME));
            ids.extend(join_all(made).await);
        }
        ids
    }
}

/// Every id of a listing walked page by page through `server`, with the
/// unreachable-runners header of each page.
async fn walk(server: &Server, token: &str, order: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/sessions?order={order}&limit={limit}{after}");
        let (status, page) = server.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let got = assert_list(&page);
        ids.extend(got.iter().cloned());
        if page["has_more"] == false {
            return ids;
        }
        after = format!("&after={}", page["last_id"].as_str().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_runners_behind_haproxy_share_300_sessions_and_list_them_as_one() {
    let cluster = Cluster::start(&format!("[admin]\ntokens = [{ADMIN:?}]\n")).await;
    let mut ids = cluster.sessions(300).await;
    let mut per_runner = BTreeMap::new();
    for id in &ids {
        *per_runner.entry(runner_of(id)).or_insert(0) += 1;
    }
    assert_eq!(
        per_runner.len(),
        3,
        "not every runner got sessions: {per_runner:?}"
    );
    assert!(
        per_runner.values().all(|&n| n <= 150),
        "a runner above 50%: {per_runner:?}"
    );
    // Each session is on the runner its id names, and only there.
    for id in ids.iter().step_by(7) {
        for (i, runner) in cluster.runners.iter().enumerate() {
            let (status, _) = runner.get(&format!("/v1/sessions/{id}"), ACME).await;
            let expected = if i == runner_of(id) { 200 } else { 404 };
            assert_eq!(status.as_u16(), expected, "{id} on {}", RUNNERS[i]);
        }
    }
    // The admin API is each runner's own: the proxy sends it to the runner named.
    for (i, runner) in RUNNERS.iter().enumerate() {
        let usage = cluster
            .api
            .request(Method::GET, "/admin/v1/tenants/acme/usage", Some(ADMIN))
            .header("reshost-runner", *runner)
            .send()
            .await
            .unwrap();
        let (status, usage) = json_of(usage).await;
        assert_eq!(status, StatusCode::OK, "{usage}");
        assert_eq!(
            usage["sessions"]["used"], per_runner[&i],
            "{runner}: {usage}"
        );
    }
    // On `/v1` the header places nothing: a client cannot pile sessions on one runner.
    let pinned = join_all((0..12).map(async |_| {
        let made = cluster
            .api
            .request(Method::POST, "/v1/sessions", Some(ACME))
            .header("reshost-runner", "r0")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        json_of(made).await.1["id"].as_str().unwrap().to_owned()
    }))
    .await;
    assert!(pinned.iter().any(|id| runner_of(id) != 0), "{pinned:?}");
    for id in &pinned {
        expect(
            &cluster.api,
            Method::DELETE,
            &format!("/v1/sessions/{id}"),
            None,
            200,
        )
        .await;
    }
    let globex = cluster.api.session(GLOBEX).await;

    // The listing through the proxy: one list, in id (= creation) order, every
    // session once, whichever runner answers it.
    ids.sort();
    assert_eq!(walk(&cluster.api, ACME, "asc", 37).await, ids);
    let mut descending = ids.clone();
    descending.reverse();
    assert_eq!(walk(&cluster.api, ACME, "desc", 100).await, descending);
    assert_eq!(
        walk(&cluster.runners[1], ACME, "desc", 1000).await,
        descending
    );
    assert_eq!(
        walk(&cluster.api, GLOBEX, "desc", 20).await,
        vec![globex.clone()]
    );
    // `before` a session of any runner, and the default page.
    for at in [150, 151, 152] {
        let path = format!("/v1/sessions?order=asc&limit=10&before={}", ids[at]);
        let (status, page) = cluster.api.get(&path, ACME).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(assert_list(&page), ids[at - 10..at]);
        assert_eq!(page["has_more"], true);
    }
    let (_, page) = cluster.api.get("/v1/sessions", ACME).await;
    assert_eq!(assert_list(&page), descending[..20]);
    // Cursors: another tenant's session, or an unknown one of any runner, is
    // unknown; ids of no runner too.
    for runner in RUNNERS {
        let unknown = format!("conv_{}{}{}", "0".repeat(12), tag(runner), "0".repeat(12));
        let got = cluster
            .api
            .get(&format!("/v1/sessions?after={unknown}"), ACME)
            .await;
        assert_error(&got, 400, "invalid_input");
    }
    let got = cluster
        .api
        .get(&format!("/v1/sessions?after={globex}"), ACME)
        .await;
    assert_error(&got, 400, "invalid_input");
    let got = cluster.api.get("/v1/sessions?after=conv_zz", ACME).await;
    assert_error(&got, 400, "invalid_input");

    // A runner's own part (how the others ask it): strictly past `start`,
    // which need not exist there; bad parameters are refused.
    let r2 = &cluster.runners[2];
    let own: Vec<&String> = ids.iter().filter(|id| runner_of(id) == 2).collect();
    let path = format!("/v1/runner/sessions?order=asc&limit=1001&start={}", ids[0]);
    let (status, part) = r2.get(&path, ACME).await;
    assert_eq!(status, StatusCode::OK, "{part}");
    let got: Vec<&str> = part["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = own
        .iter()
        .map(|s| s.as_str())
        .filter(|s| *s > ids[0].as_str())
        .collect();
    assert_eq!(got, expected);
    for bad in ["order=up", "limit=0", "limit=1002", "limit=x", "limit=-1"] {
        let got = r2.get(&format!("/v1/runner/sessions?{bad}"), ACME).await;
        assert_error(&got, 400, "invalid_input");
    }
    let (_, part) = r2.get("/v1/runner/sessions?limit=1001", GLOBEX).await;
    assert!(
        part["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] == globex.as_str())
    );
    let got = r2.get("/v1/runner/sessions", "no-such-token").await;
    assert_error(&got, 401, "unauthorized");
}

/// `method path` with a JSON body (or none) as ACME; must answer `expected`.
async fn expect(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
    expected: u16,
) -> Value {
    let mut request = server.request(method.clone(), path, Some(ACME));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, answer) = json_of(request.send().await.unwrap()).await;
    assert_eq!(status.as_u16(), expected, "{method} {path}: {answer}");
    answer
}

/// One uncompressed tar holding `name` with `bytes`.
fn tar_with(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    archive.append_data(&mut header, name, bytes).unwrap();
    archive.into_inner().unwrap()
}

/// Every endpoint of the API, through `api`, on the ACME session `sid` (which
/// declares the `shell` terminal); `elsewhere` is a session on another runner.
async fn every_endpoint(api: &Server, sid: &str, elsewhere: &str) {
    use Method as M;
    let env = env_url(sid);
    expect(api, M::GET, &format!("/v1/sessions/{sid}"), None, 200).await;
    expect(
        api,
        M::GET,
        &format!("/v1/sessions/{sid}/resources"),
        None,
        200,
    )
    .await;
    expect(
        api,
        M::GET,
        &format!("/v1/sessions/{sid}/resources/environments"),
        None,
        200,
    )
    .await;
    expect(api, M::GET, &env, None, 200).await;
    expect(
        api,
        M::GET,
        &format!("/v1/sessions/{sid}/resources/default"),
        None,
        200,
    )
    .await;

    // Files.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (status, file) = api.upload(ACME, sid, "data.bin", None, bytes.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].as_str().unwrap();
    let files = files_path(sid);
    let (_, list) = api.get(&files, ACME).await;
    assert_eq!(assert_list(&list), [fid]);
    expect(api, M::GET, &format!("{files}/{fid}"), None, 200).await;
    let content = api
        .request(M::GET, &format!("{files}/{fid}/content"), Some(ACME))
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(content.bytes().await.unwrap(), bytes);
    let ranged = api
        .request(M::GET, &format!("{files}/{fid}/content"), Some(ACME))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), bytes[10..20]);

    // The environment: its file events, then every way to change and read it.
    let stream = api
        .request(M::GET, &format!("{env}/events"), Some(ACME))
        .send()
        .await
        .unwrap();
    let mut events = Events::of(stream);
    let write = json!({"content": "hello\nworld\n"});
    expect(api, M::PUT, &fs_url(sid, "src/a.txt"), Some(write), 200).await;
    let event = events.next(Duration::from_secs(10)).await.unwrap();
    assert!(
        ["created", "modified"].contains(&event.name.as_str()),
        "{event:?}"
    );
    let read = expect(api, M::GET, &fs_url(sid, "src/a.txt"), None, 200).await;
    assert_eq!(read["content"], "hello\nworld\n", "{read}");
    let edit = json!({"old_text": "world", "new_text": "there"});
    expect(api, M::PATCH, &fs_url(sid, "src/a.txt"), Some(edit), 200).await;
    let listing = expect(api, M::GET, &fs_url(sid, "src"), None, 200).await;
    assert_eq!(assert_list(&listing), ["src/a.txt"]);
    let changes = expect(api, M::GET, &format!("{env}/changes"), None, 200).await;
    assert!(changes.to_string().contains("src/a.txt"), "{changes}");
    let diff = expect(api, M::GET, &format!("{env}/diff/src/a.txt"), None, 200).await;
    assert_eq!(diff["after"], "hello\nthere\n", "{diff}");
    let found = expect(api, M::GET, &format!("{env}/search?q=a.txt"), None, 200).await;
    assert!(found.to_string().contains("src/a.txt"), "{found}");
    let grep = expect(api, M::GET, &format!("{env}/grep?pattern=there"), None, 200).await;
    assert!(grep.to_string().contains("src/a.txt"), "{grep}");
    let shell = json!({"command": "cat src/a.txt", "timeout": 30});
    let ran = expect(api, M::POST, &format!("{env}/shell"), Some(shell), 200).await;
    assert_eq!(ran["stdout"], "hello\nthere\n", "{ran}");
    let tar = tar_with("in/b.txt", b"from a tar");
    let extracted = api
        .request(
            M::POST,
            &format!("{}?format=tar", fs_url(sid, "")),
            Some(ACME),
        )
        .body(tar)
        .send()
        .await
        .unwrap();
    assert_eq!(
        extracted.status(),
        StatusCode::OK,
        "{}",
        extracted.text().await.unwrap()
    );
    let packed = api
        .request(
            M::GET,
            &format!("{}?format=tar", fs_url(sid, "in")),
            Some(ACME),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(packed.status(), StatusCode::OK);
    assert!(
        packed
            .bytes()
            .await
            .unwrap()
            .windows(10)
            .any(|w| w == b"from a tar")
    );
    expect(api, M::DELETE, &fs_url(sid, "in/b.txt"), None, 200).await;

    // Background processes.
    let procs = format!("{env}/processes");
    let cat = expect(api, M::POST, &procs, Some(json!({"command": "cat"})), 201).await;
    let pid = cat["id"].as_str().unwrap();
    let fed = api
        .request(
            M::POST,
            &format!("{procs}/{pid}/stdin?eof=true"),
            Some(ACME),
        )
        .body("piped\n")
        .send()
        .await
        .unwrap();
    assert_eq!(fed.status(), StatusCode::OK);
    let ended = api
        .request(M::GET, &format!("{procs}/{pid}/events"), Some(ACME))
        .send()
        .await
        .unwrap();
    let all = Events::of(ended).all(Duration::from_secs(20)).await;
    assert!(all.iter().any(|e| e.name == "exit"), "{all:?}");
    let output = expect(api, M::GET, &format!("{procs}/{pid}/output"), None, 200).await;
    assert!(output.to_string().contains("piped"), "{output}");
    expect(api, M::GET, &format!("{procs}/{pid}"), None, 200).await;
    let (_, list) = api.get(&procs, ACME).await;
    assert_eq!(assert_list(&list), [pid]);
    let sleeper = expect(
        api,
        M::POST,
        &procs,
        Some(json!({"command": "sleep 60"})),
        201,
    )
    .await;
    let sleeper = sleeper["id"].as_str().unwrap();
    expect(
        api,
        M::POST,
        &format!("{procs}/{sleeper}/signal"),
        Some(json!({"signal": "TERM"})),
        200,
    )
    .await;
    expect(api, M::DELETE, &format!("{procs}/{sleeper}"), None, 200).await;

    // Snapshots, and a session made from one: on the snapshot's runner.
    let snaps = format!("{env}/snapshots");
    let snap = expect(api, M::POST, &snaps, Some(json!({"name": "s"})), 201).await;
    let snap = snap["id"].as_str().unwrap();
    expect(api, M::GET, &format!("{snaps}/{snap}"), None, 200).await;
    let (_, list) = api.get(&snaps, ACME).await;
    assert_eq!(assert_list(&list), [snap]);
    expect(
        api,
        M::PUT,
        &fs_url(sid, "src/a.txt"),
        Some(json!({"content": "changed\n"})),
        200,
    )
    .await;
    let since = expect(api, M::GET, &format!("{snaps}/{snap}/changes"), None, 200).await;
    assert!(since.to_string().contains("src/a.txt"), "{since}");
    expect(
        api,
        M::GET,
        &format!("{snaps}/{snap}/diff/src/a.txt"),
        None,
        200,
    )
    .await;
    expect(api, M::POST, &format!("{snaps}/{snap}/restore"), None, 200).await;
    let read = expect(api, M::GET, &fs_url(sid, "src/a.txt"), None, 200).await;
    assert_eq!(read["content"], "hello\nthere\n");
    for _ in 0..3 {
        let from = json!({"from_snapshot": {"session_id": sid, "snapshot_id": snap}});
        let copy = expect(api, M::POST, "/v1/sessions", Some(from), 201).await;
        let copy = copy["id"].as_str().unwrap();
        assert_eq!(
            runner_of(copy),
            runner_of(sid),
            "made away from its snapshot"
        );
        let read = expect(api, M::GET, &fs_url(copy, "src/a.txt"), None, 200).await;
        assert_eq!(read["content"], "hello\nthere\n");
        expect(api, M::DELETE, &format!("/v1/sessions/{copy}"), None, 200).await;
    }
    let missing = json!({"from_snapshot": {"session_id": elsewhere, "snapshot_id": "snap_0"}});
    expect(api, M::POST, "/v1/sessions", Some(missing), 404).await;
    expect(api, M::DELETE, &format!("{snaps}/{snap}"), None, 200).await;

    // Terminals: launch, attach over WebSocket, and what a transfer may do.
    let (tid, _) = launch_shell(api, sid, "main").await;
    let mut attached = attach_shell(api, sid, &tid).await;
    attached.echo("through-the-proxy").await;
    expect(api, M::GET, &terminal(sid, &tid), None, 200).await;
    let (_, list) = api.get(&terminals(sid), ACME).await;
    assert_eq!(assert_list(&list), std::slice::from_ref(&tid));
    let transfer = format!("{}/transfer", terminal(sid, &tid));
    let moved = expect(
        api,
        M::POST,
        &transfer,
        Some(json!({"target_session_id": elsewhere})),
        409,
    )
    .await;
    assert_eq!(moved["error"]["code"], "cross_runner", "{moved}");
    let other_runner = RUNNERS[runner_of(elsewhere)];
    let unknown = format!(
        "conv_{}{}{}",
        "0".repeat(12),
        tag(other_runner),
        "0".repeat(12)
    );
    expect(
        api,
        M::POST,
        &transfer,
        Some(json!({"target_session_id": unknown})),
        404,
    )
    .await;
    let no_terminal = format!("{}/transfer", terminal(sid, "terminal_nope_x"));
    expect(
        api,
        M::POST,
        &no_terminal,
        Some(json!({"target_session_id": elsewhere})),
        404,
    )
    .await;
    attached.echo("still-attached").await;
    expect(api, M::DELETE, &terminal(sid, &tid), None, 200).await;

    expect(api, M::DELETE, &format!("{files}/{fid}"), None, 200).await;
    expect(api, M::DELETE, &fs_url(sid, "src/a.txt"), None, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_works_through_the_proxy_on_every_runner() {
    let cluster = Cluster::start("").await;
    let api = &cluster.api;
    // Sessions until each runner holds one.
    let mut on: Vec<Option<String>> = vec![None; RUNNERS.len()];
    while on.iter().any(Option::is_none) {
        let sid = crate::terminals::session(api, ACME).await;
        let at = runner_of(&sid);
        on[at].get_or_insert(sid);
    }
    let on: Vec<String> = on.into_iter().map(Option::unwrap).collect();
    for (i, sid) in on.iter().enumerate() {
        every_endpoint(api, sid, &on[(i + 1) % on.len()]).await;
    }
    // Another tenant's session is not there, on any runner.
    for sid in &on {
        let got = api.get(&format!("/v1/sessions/{sid}"), GLOBEX).await;
        assert_error(&got, 404, "not_found");
        let got = api.get(&fs_url(sid, ""), GLOBEX).await;
        assert_error(&got, 404, "not_found");
    }
    for sid in &on {
        expect(
            api,
            Method::DELETE,
            &format!("/v1/sessions/{sid}"),
            None,
            200,
        )
        .await;
        expect(api, Method::GET, &format!("/v1/sessions/{sid}"), None, 404).await;
    }
    // Everything else goes to any runner.
    for path in ["/healthz", "/openapi.json", "/"] {
        let got = api.request(Method::GET, path, None).send().await.unwrap();
        assert_eq!(got.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_runner_fails_only_its_own_sessions_and_a_restart_brings_them_back_with_their_files()
 {
    let mut cluster = Cluster::start("").await;
    let ids = cluster.sessions(30).await;
    let files: Vec<(String, String, Vec<u8>)> = join_all(ids.iter().map(async |sid| {
        let bytes = format!("the file of {sid}").into_bytes();
        let (status, file) = cluster
            .api
            .upload(ACME, sid, "f.txt", None, bytes.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        let write = json!({"content": sid});
        expect(
            &cluster.api,
            Method::PUT,
            &fs_url(sid, "id.txt"),
            Some(write),
            200,
        )
        .await;
        (sid.clone(), file["id"].as_str().unwrap().to_owned(), bytes)
    }))
    .await;
    let downloads = async |cluster: &Cluster| -> Vec<(String, u16, Vec<u8>, Value)> {
        join_all(files.iter().map(async |(sid, fid, _)| {
            let url = format!("{}/{fid}/content", files_path(sid));
            let got = cluster
                .api
                .request(Method::GET, &url, Some(ACME))
                .send()
                .await
                .unwrap();
            let status = got.status().as_u16();
            let bytes = got.bytes().await.unwrap().to_vec();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (sid.clone(), status, bytes, body)
        }))
        .await
    };

    let victim = 1;
    cluster.runners[victim].kill();
    for (sid, status, bytes, body) in downloads(&cluster).await {
        let (_, _, expected) = files.iter().find(|f| f.0 == sid).unwrap();
        if runner_of(&sid) == victim {
            assert_eq!(status, 503, "{sid}: {body}");
            assert_eq!(body["error"]["code"], "runner_unavailable", "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("runner r1"),
                "{body}"
            );
        } else {
            assert_eq!((status, &bytes), (200, expected), "{sid} on a live runner");
        }
    }
    // The listing still answers, with the others' sessions, and says whose are missing.
    let listed = cluster
        .api
        .request(Method::GET, "/v1/sessions?limit=1000", Some(ACME))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.headers()["reshost-unreachable-runners"], "r1");
    let (_, page) = json_of(listed).await;
    let mut alive: Vec<String> = ids
        .iter()
        .filter(|id| runner_of(id) != victim)
        .cloned()
        .collect();
    alive.sort();
    alive.reverse();
    assert_eq!(assert_list(&page), alive);
    // A cursor on the dead runner cannot be placed.
    let dead = ids.iter().find(|id| runner_of(id) == victim).unwrap();
    let got = cluster
        .api
        .get(&format!("/v1/sessions?after={dead}"), ACME)
        .await;
    assert_error(&got, 503, "runner_unavailable");
    // New sessions keep coming, on the live runners.
    for sid in cluster.sessions(20).await {
        assert_ne!(runner_of(&sid), victim, "{sid} made on the dead runner");
    }
    // A terminal cannot move to a session of the dead runner: it stays where it was.
    let home = &crate::terminals::session(&cluster.api, ACME).await;
    assert_ne!(runner_of(home), victim);
    let (tid, _) = launch_shell(&cluster.api, home, "stays").await;
    let refused = expect(
        &cluster.api,
        Method::POST,
        &format!("{}/transfer", terminal(home, &tid)),
        Some(json!({"target_session_id": dead})),
        503,
    )
    .await;
    assert_eq!(refused["error"]["code"], "runner_unavailable", "{refused}");
    let (_, listed) = cluster.api.get(&terminals(home), ACME).await;
    assert_eq!(assert_list(&listed), std::slice::from_ref(&tid));
    let session = format!("/v1/sessions/{home}");
    expect(&cluster.api, Method::DELETE, &session, None, 200).await;

    // Back on the same port with the same data: its sessions and files return.
    cluster.runners[victim].spawn();
    cluster
        .until("the restarted runner serves its sessions", async || {
            let (_, status, _, _) = downloads(&cluster)
                .await
                .into_iter()
                .find(|d| runner_of(&d.0) == victim)
                .unwrap();
            status == 200
        })
        .await;
    for (sid, status, bytes, _) in downloads(&cluster).await {
        let (_, _, expected) = files.iter().find(|f| f.0 == sid).unwrap();
        assert_eq!((status, &bytes), (200, expected), "{sid} after the restart");
        let read = expect(
            &cluster.api,
            Method::GET,
            &fs_url(&sid, "id.txt"),
            None,
            200,
        )
        .await;
        assert_eq!(read["content"], sid.as_str());
    }
    let listed = cluster
        .api
        .request(Method::GET, "/v1/sessions?limit=1000", Some(ACME))
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .headers()
            .get("reshost-unreachable-runners")
            .is_none()
    );
    assert_eq!(assert_list(&json_of(listed).await.1).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draining_runner_takes_no_new_sessions_but_serves_its_own_until_it_stops() {
    let mut cluster = Cluster::start("").await;
    let ids = cluster.sessions(12).await;
    let victim = runner_of(&ids[0]);
    let own: Vec<&String> = ids.iter().filter(|id| runner_of(id) == victim).collect();
    let runner = &mut cluster.runners[victim];
    unsafe { libc::kill(runner.pid() as i32, libc::SIGTERM) };
    // drain_ms = 1500: not ready, no new sessions, its sessions still served.
    let runner = &cluster.runners[victim];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let health = runner
            .request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap();
        if health.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(json_of(health).await.1, json!({"status": "draining"}));
            break;
        }
        assert!(Instant::now() < deadline, "never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = runner.post("/v1/sessions", ACME, json!({})).await;
    assert_error(&refused, 503, "server_busy");
    for sid in &own {
        expect(
            runner,
            Method::GET,
            &format!("/v1/sessions/{sid}"),
            None,
            200,
        )
        .await;
        expect(
            &cluster.api,
            Method::GET,
            &format!("/v1/sessions/{sid}"),
            None,
            200,
        )
        .await;
    }
    // Through the proxy, creations land on the others.
    for sid in cluster.sessions(10).await {
        assert_ne!(runner_of(&sid), victim);
    }
}

#[tokio::test]
async fn cluster_settings_that_cannot_work_are_refused_at_start_with_the_key_named() {
    for (table, args, says) in [
        (
            "[cluster.runners]\nr0 = \"http://127.0.0.1:1\"\n",
            vec![],
            "this runner \"local\" is not among them",
        ),
        (
            "[cluster.runners]\nr0 = \"https://127.0.0.1:1\"\n",
            vec!["--runner", "r0"],
            "cluster.runners.r0",
        ),
        (
            "[cluster.runners]\nr0 = \"http://127.0.0.1:1/api\"\n",
            vec!["--runner", "r0"],
            "without a path",
        ),
        (
            "[cluster.runners]\nr0 = \"127.0.0.1:1\"\n",
            vec!["--runner", "r0"],
            "cluster.runners.r0",
        ),
        (
            "[cluster.runners]\n\"r 0\" = \"http://127.0.0.1:1\"\n",
            vec!["--runner", "r 0"],
            "cluster.runner",
        ),
        (
            "[cluster]\npeer_timeout_ms = 0\n",
            vec![],
            "cluster.peer_timeout_ms",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{}{table}", config_preamble(dir.path()));
        let path = dir.path().join("reshost.toml");
        std::fs::write(&path, config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_reshost"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{table} started");
        assert!(stderr.contains(says), "{table}: {stderr}");
    }
    // The proxy's config needs runners to route to.
    let out = Command::new(env!("CARGO_BIN_EXE_reshost"))
        .args(["cluster", "proxy-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [cluster.runners]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_asked_directly_for_another_runner_s_snapshot_says_where_it_is() {
    let cluster = Cluster::start("").await;
    let ids = cluster.sessions(6).await;
    let sid = &ids[0];
    let snaps = format!("{}/snapshots", env_url(sid));
    let snap = expect(&cluster.api, Method::POST, &snaps, Some(json!({})), 201).await;
    let other = &cluster.runners[(runner_of(sid) + 1) % RUNNERS.len()];
    let from = json!({"from_snapshot": {"session_id": sid, "snapshot_id": snap["id"]}});
    let got = other.post("/v1/sessions", ACME, from.clone()).await;
    assert_error(&got, 409, "cross_runner");
    // Another tenant learns nothing: no such snapshot.
    let got = other.post("/v1/sessions", GLOBEX, from).await;
    assert_error(&got, 404, "not_found");
}
