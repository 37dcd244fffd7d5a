//! The sandbox around what sessions run: an escape corpus run through `shell`
//! and through an attached terminal (and, as its control, without the sandbox,
//! where the same probes must escape), process floods, memory, lingering
//! background jobs, the network modes, what keeps working inside, and
//! `GET /admin/v1/sandbox`.
//!
//! Each probe prints `ESC''APED-<name>` only if the attack worked: typed into a
//! terminal, the `''` keeps the echo of the command line from matching.

use crate::common::*;
use crate::terminals::{
    attach_shell, get_terminal, launch_as, launch_shell, session as terminal_session,
    unique_seconds,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SENTINEL: &str = "globex-sentinel-7f3a";

/// Runs `command` in `sid` as the token's tenant; the answer must be 200.
async fn run(server: &Server, token: &str, sid: &str, command: &str, timeout: u64) -> Value {
    let (status, body) = server
        .post(
            &shell_path(sid),
            token,
            json!({"command": command, "timeout": timeout}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs `command` in ACME's `sid` without waiting: the task ends with the answer.
fn in_background(
    server: &Server,
    sid: &str,
    command: &str,
    timeout: u64,
) -> tokio::task::JoinHandle<reqwest::Result<Value>> {
    let request = reqwest::Client::new()
        .post(server.url(&shell_path(sid)))
        .bearer_auth(ACME)
        .json(&json!({"command": command, "timeout": timeout}));
    tokio::spawn(async move { request.send().await?.json::<Value>().await })
}

/// stdout and stderr of `command` together.
async fn output(server: &Server, sid: &str, command: &str) -> String {
    let body = run(server, ACME, sid, command, 30).await;
    format!(
        "{}{}",
        body["stdout"].as_str().unwrap(),
        body["stderr"].as_str().unwrap()
    )
}

/// A name unique in this test run.
fn unique(tag: &str) -> String {
    let (_, printed) = crate::terminals::marker(tag);
    printed
}

/// What the probes aim at.
struct Targets {
    /// Tenant B's workspace (holding `secret.txt` with the sentinel) and its id.
    victim: PathBuf,
    victim_id: String,
    data_dir: PathBuf,
    config: PathBuf,
    server_pid: u32,
    port: u16,
    /// Names the probes try to create on the host: `/tmp/<it>`, `/root/<it>`…
    stray: String,
    /// Listening Unix sockets of the host's (in `/run`) and of the victim's.
    sockets: Vec<(PathBuf, std::os::unix::net::UnixListener)>,
}

impl Drop for Targets {
    fn drop(&mut self) {
        for (path, _) in &self.sockets {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Targets {
    async fn new(server: &Server) -> Targets {
        let victim_id = terminal_session(server, GLOBEX).await;
        // A terminal of the victim's: its PTY must be out of reach.
        launch_as(server, GLOBEX, &victim_id, "victim").await;
        let status = server
            .request(
                reqwest::Method::PUT,
                &format!(
                    "/v1/sessions/{victim_id}/resources/environments/default/filesystem/secret.txt"
                ),
                Some(GLOBEX),
            )
            .json(&json!({"content": SENTINEL}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
        let victim = workspace(server, &victim_id);
        assert_eq!(
            std::fs::read_to_string(victim.join("secret.txt")).unwrap(),
            SENTINEL,
            "the victim's file must be there for the probes to mean anything"
        );
        let stray = unique("stray");
        let sockets = [
            Path::new("/run").join(format!("{stray}.sock")),
            victim.join("s"),
        ]
        .into_iter()
        // A path past SUN_LEN (108 bytes: a deep data dir) cannot be a socket.
        .filter(|path| path.as_os_str().len() < 100)
        .map(|path| {
            let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
            (path, listener)
        })
        .collect();
        Targets {
            sockets,
            victim,
            victim_id,
            data_dir: server.data_dir(),
            config: server.config_path(),
            server_pid: server.pid(),
            port: server.port(),
            stray,
        }
    }

    /// `(name, one line of shell)`: each prints `ESCAPED-<name>` if it got through.
    fn probes(&self) -> Vec<(&'static str, String)> {
        let b = self.victim.display();
        let bid = &self.victim_id;
        let data = self.data_dir.display();
        let config = self.config.display();
        let (pid, port, stray) = (self.server_pid, self.port, &self.stray);
        let grep = format!("grep -q {SENTINEL}");
        let mut probes = vec![
            ("absolute", format!("cat {b}/secret.txt 2>/dev/null | {grep}")),
            ("dotdot", format!("cat ../{bid}/secret.txt 2>/dev/null | {grep}")),
            (
                "proc-root",
                format!("cat /proc/self/root{b}/secret.txt 2>/dev/null | {grep}"),
            ),
            (
                "symlink",
                format!("ln -sf {b}/secret.txt sl-$$ 2>/dev/null; cat sl-$$ 2>/dev/null | {grep}"),
            ),
            (
                "hardlink",
                format!("ln {b}/secret.txt hl-$$ 2>/dev/null; cat hl-$$ 2>/dev/null | {grep}"),
            ),
            (
                "list-other",
                format!("ls {b}/.. .. 2>/dev/null | grep -q {bid}"),
            ),
            ("write-other", format!("echo x 2>/dev/null > {b}/pwned")),
            ("list-data", format!("ls {data} 2>/dev/null | grep -q redb")),
            (
                "read-db",
                format!("[ \"$(head -c 64 {data}/reshost.redb 2>/dev/null | wc -c)\" -gt 0 ]"),
            ),
            ("read-config", format!("grep -q acme-token {config} 2>/dev/null")),
            ("signal-server", format!("kill -0 {pid} 2>/dev/null")),
            (
                "server-environ",
                format!("tr '\\0' '\\n' 2>/dev/null < /proc/{pid}/environ | grep -q CARGO"),
            ),
            (
                "ptrace-server",
                format!(
                    "python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None).ptrace(16, {pid}, 0, 0) != 0)' 2>/dev/null"
                ),
            ),
            ("ps-server", "ps -eo args 2>/dev/null | grep -q 'reshost serv[e]'".into()),
            (
                "server-port",
                format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null"),
            ),
            (
                "server-port-any-address",
                format!("(exec 3<>/dev/tcp/0.0.0.0/{port}) 2>/dev/null"),
            ),
            (
                "disk-device",
                "for d in /dev/[sv]d? /dev/nvme?n?; do head -c 1 $d >/dev/null 2>&1 && exit 0; done; exit 1"
                    .into(),
            ),
            ("mount", "mount -t tmpfs none /mnt 2>/dev/null".into()),
            (
                "other-pty",
                "for p in /dev/pts/[0-9]*; do [ -e $p ] && (echo x 2>/dev/null > $p) && exit 0; done; exit 1"
                    .into(),
            ),
            // Kernel surface the seccomp filter takes away.
            ("nested-userns", "unshare -Ur true 2>/dev/null".into()),
            (
                "io-uring",
                "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None, use_errno=True); l.syscall(425, 0, 0); sys.exit(ctypes.get_errno() == 1)'"
                    .into(),
            ),
            // Only root may read these; a root server's sandbox is root to them.
            ("etc-shadow", "grep -q '^root:' /etc/shadow 2>/dev/null".into()),
            (
                "private-key",
                "cat /etc/ssl/private/* /etc/ssh/ssh_host_*_key 2>/dev/null | grep -q PRIVATE"
                    .into(),
            ),
        ];
        for (path, _) in &self.sockets {
            probes.push((
                "unix-socket",
                format!(
                    "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"{}\")' 2>/dev/null",
                    path.display()
                ),
            ));
        }
        for dir in ["/root", "/"] {
            probes.push(("write-host", format!("touch {dir}/{stray} 2>/dev/null")));
        }
        // Inside, /tmp is the session's own: these work, and must not land on the host.
        probes.push(("tmp", format!("touch /tmp/{stray} /var/tmp/{stray}; false")));
        probes
            .into_iter()
            .map(|(name, probe)| (name, format!("( {probe} ) && echo ESC''APED-{name}")))
            .collect()
    }

    /// What the probes may have left on the host.
    fn assert_host_untouched(&self) {
        assert!(!self.victim.join("pwned").exists(), "wrote into the victim");
        for dir in ["/tmp", "/var/tmp", "/root", "/"] {
            let stray = Path::new(dir).join(&self.stray);
            assert!(
                !stray.exists(),
                "{} was created on the host",
                stray.display()
            );
        }
        assert_eq!(
            std::fs::read_to_string(self.victim.join("secret.txt")).unwrap(),
            SENTINEL
        );
    }
}

/// Runs every probe through `shell` and through a terminal of a new ACME
/// session; asserts that none escaped and that ACME's own file stays readable.
async fn assert_confined(server: &Server) {
    let targets = Targets::new(server).await;
    let sid = terminal_session(server, ACME).await;
    let own = workspace(server, &sid).join("own.txt");
    std::fs::write(&own, "own-content").unwrap();
    let script: Vec<String> = targets.probes().into_iter().map(|(_, p)| p).collect();
    let shell = output(server, &sid, &format!("{}\ncat own.txt", script.join("\n"))).await;
    assert!(!shell.contains("ESCAPED"), "through shell:\n{shell}");
    assert!(shell.ends_with("own-content"), "{shell}");

    let (tid, _) = launch_shell(server, &sid, "probes").await;
    let mut client = attach_shell(server, &sid, &tid).await;
    for line in &script {
        client.input(&format!("{line}\r")).await;
    }
    client.input("cat own.txt; echo; echo ALL''DONE\r").await;
    client
        .wait_output_within("ALLDONE", Duration::from_secs(20))
        .await;
    let text = client.text();
    assert!(!text.contains("ESCAPED"), "through a terminal:\n{text}");
    assert!(text.contains("own-content"), "{text}");
    targets.assert_host_untouched();
}

#[tokio::test]
async fn no_probe_escapes_through_shell_or_terminal_with_the_data_dir_under_tmp() {
    let server = Server::start().await;
    assert!(server.data_dir().starts_with(std::env::temp_dir()));
    assert_confined(&server).await;
}

#[tokio::test]
async fn no_probe_escapes_when_the_data_dir_and_config_lie_inside_a_read_only_path() {
    // Outside /tmp, and granted read-only as a whole: the sandbox must carve the
    // data dir and the config file out of it.
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sb");
    std::fs::create_dir_all(&parent).unwrap();
    // What is beside the data dir at start stays readable.
    let visible = parent.join(unique("visible"));
    std::fs::write(&visible, "readable").unwrap();
    let server = Server::with_config_in(
        &parent,
        &format!("[sandbox]\nread_only = [\"/usr\", \"/etc\", {parent:?}]\n"),
    )
    .await;
    assert_confined(&server).await;
    let sid = server.session(ACME).await;
    let got = output(&server, &sid, &format!("cat {}", visible.display())).await;
    std::fs::remove_file(&visible).unwrap();
    assert_eq!(
        got, "readable",
        "the rest of a read-only path stays readable"
    );
}

#[tokio::test]
async fn a_data_dir_reached_through_a_symlink_still_serves_commands() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (real, link) = (tmp.join("sb-real"), tmp.join("sb-link"));
    std::fs::create_dir_all(&real).unwrap();
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(&real, &link).unwrap();
    }
    let server = Server::with_config_in(&link, "").await;
    let sid = server.session(ACME).await;
    let body = run(&server, ACME, &sid, "touch made && pwd", 30).await;
    assert_eq!(body["exit_code"], 0, "{body}");
    let ws = workspace(&server, &sid);
    assert!(ws.join("made").exists());
    assert_eq!(
        body["stdout"].as_str().unwrap().trim(),
        ws.canonicalize().unwrap().to_str().unwrap()
    );
}

#[tokio::test]
async fn without_the_sandbox_the_same_probes_escape() {
    // The control: proves the probes detect what they claim to (harmless reads only).
    let server = Server::with_config("[sandbox]\nmode = \"off\"\n").await;
    assert!(
        server.stderr().contains("unconfined"),
        "{}",
        server.stderr()
    );
    let targets = Targets::new(&server).await;
    let sid = server.session(ACME).await;
    let mut escaped = vec![
        "absolute",
        "list-data",
        "read-config",
        "signal-server",
        "server-port",
        "nested-userns",
        "io-uring",
        "other-pty",
        "unix-socket",
    ];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        escaped.push("etc-shadow");
    }
    let probes: Vec<String> = targets
        .probes()
        .into_iter()
        .filter(|(name, _)| escaped.contains(name))
        .map(|(_, p)| p)
        .collect();
    let got = output(&server, &sid, &probes.join("\n")).await;
    for name in escaped {
        assert!(got.contains(&format!("ESCAPED-{name}")), "{name}: {got}");
    }
}

#[tokio::test]
async fn a_process_flood_stops_at_the_limit_dies_at_the_timeout_and_other_tenants_are_served() {
    let server = Server::with_config("[sandbox]\nmax_processes = 64\n").await;
    let sid = server.session(ACME).await;
    let other = server.session(GLOBEX).await;
    let seconds = unique_seconds(60);
    let flood = format!("for i in $(seq 3000); do sleep {seconds} & done 2>/dev/null; wait");
    let started = Instant::now();
    let flooding = in_background(&server, &sid, &flood, 4);
    let mut most = 0;
    while !flooding.is_finished() {
        most = most.max(host_pids(&["sleep", &seconds]).len());
        // Another tenant is served normally throughout.
        let asked = Instant::now();
        let body = run(&server, GLOBEX, &other, "echo served", 5).await;
        assert_eq!(body["stdout"], "served\n");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = flooding.await.unwrap().unwrap();
    assert_eq!(body["timed_out"], true, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert!(most >= 20, "the flood never got going ({most} sleeps seen)");
    assert!(most <= 64, "{most} sleeps ran at once; the limit is 64");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(host_pids(&["sleep", &seconds]), Vec::<u32>::new());
}

#[tokio::test]
async fn a_command_cannot_allocate_past_the_memory_limit() {
    let server = Server::with_config("[sandbox]\nmemory_bytes = 67108864\n").await;
    let sid = server.session(ACME).await;
    let body = run(&server, ACME, &sid, "perl -e '$x=\"a\" x (6*1024**3)'", 30).await;
    assert_ne!(body["exit_code"], 0, "{body}");
    assert_ne!(body["exit_code"], Value::Null, "{body}");
    let body = run(
        &server,
        ACME,
        &sid,
        "python3 -c 'b = bytearray(16 << 20); print(len(b))'",
        30,
    )
    .await;
    assert_eq!(body["stdout"], "16777216\n", "{body}");
}

#[tokio::test]
async fn cpu_time_file_size_and_extra_read_write_paths_are_applied() {
    let shared = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let server = Server::with_config(&format!(
        "[sandbox]\ncpu_seconds = 1\nfile_size_bytes = 1048576\nread_write = [{:?}]\n",
        shared.path()
    ))
    .await;
    let sid = server.session(ACME).await;
    let dir = shared.path().display();
    let body = run(
        &server,
        ACME,
        &sid,
        &format!(
            "ulimit -t; ulimit -f; echo granted > {dir}/note; \
             head -c 2000000 /dev/zero > big; echo big=$?; \
             timeout 10 sh -c 'while :; do :; done'; echo spin=$?"
        ),
        30,
    )
    .await;
    // 1024-byte blocks; past the size SIGXFSZ (128+25); past the CPU time SIGKILL
    // after SIGXCPU (the shell reports 128+9 or 128+24).
    let stdout = body["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("1\n1024\nbig=153\nspin="), "{body}");
    assert!(
        ["spin=137\n", "spin=152\n"]
            .iter()
            .any(|s| stdout.ends_with(s)),
        "{body}"
    );
    assert_eq!(
        std::fs::read_to_string(shared.path().join("note")).unwrap(),
        "granted\n"
    );
    let big = workspace(&server, &sid).join("big");
    assert_eq!(std::fs::metadata(big).unwrap().len(), 1048576);
}

#[tokio::test]
async fn background_jobs_outlive_the_shell_until_its_deadline_only() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let seconds = unique_seconds(60);
    let asked = Instant::now();
    let body = run(
        &server,
        ACME,
        &sid,
        &format!("sleep {seconds} & setsid sleep {seconds} & echo started"),
        2,
    )
    .await;
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(body["stdout"], "started\n");
    assert_eq!(body["exit_code"], 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(host_pids(&["sleep", &seconds]).len(), 2, "the jobs run on");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(host_pids(&["sleep", &seconds]), Vec::<u32>::new());
}

#[tokio::test]
async fn deleting_the_session_ends_its_running_commands() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let seconds = unique_seconds(30);
    let running = in_background(
        &server,
        &sid,
        &format!("sleep {seconds} & sleep {seconds}"),
        30,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while host_pids(&["sleep", &seconds]).len() < 2 {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = server.delete(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(status, 200, "{body}");
    let answered = tokio::time::timeout(Duration::from_secs(3), running).await;
    assert!(
        answered.is_ok(),
        "the shell call did not end with its session"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(host_pids(&["sleep", &seconds]), Vec::<u32>::new());
    assert!(!server.data_dir().join("sandbox").join(&sid).exists());
}

#[tokio::test]
async fn toolchains_cwd_env_and_a_private_persistent_tmp_work_inside() {
    let server = Server::start().await;
    let sid = server.session(ACME).await;
    let ws = workspace(&server, &sid);
    std::fs::create_dir(ws.join("sub")).unwrap();
    let (status, body) = server
        .post(
            &shell_path(&sid),
            ACME,
            json!({
                "command": "python3 -c 'print(6*7)'; \
                    git init -q /tmp/repo && git -C /tmp/repo -c user.email=a@b -c user.name=a commit -q --allow-empty -m m && git -C /tmp/repo log --oneline | wc -l; \
                    printf 'int main(void){return 42;}' > t.c && gcc t.c -o t && ./t; echo gcc=$?; \
                    python3 -c 'import threading; t = threading.Thread(target=print, args=(\"thread-ok\",)); t.start(); t.join()'; \
                    echo \"$FOO $(pwd) $TMPDIR $HOME\"; echo kept > /tmp/note; ps -e --no-headers | wc -l",
                "cwd": "sub",
                "env": {"FOO": "bar"},
                "timeout": 60,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ws = ws.canonicalize().unwrap();
    let want = format!(
        "42\n1\ngcc=42\nthread-ok\nbar {} /tmp {}\n",
        ws.join("sub").display(),
        ws.display()
    );
    let stdout = body["stdout"].as_str().unwrap();
    assert!(stdout.starts_with(&want), "{body}");
    // PID 1 (the sandbox's init), bash, ps and wc: nothing of the host.
    let processes: usize = stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(processes <= 5, "{body}");
    // The session's /tmp persists across its commands, and is no one else's.
    assert_eq!(output(&server, &sid, "cat /tmp/note").await, "kept\n");
    let other = server.session(ACME).await;
    let got = output(&server, &other, "cat /tmp/note 2>&1; ls /tmp | wc -l").await;
    assert!(got.contains("No such file"), "{got}");
    // Files the shell writes are tracked as changes.
    let (status, body) = server
        .get(
            &format!("/v1/sessions/{sid}/resources/environments/default/changes"),
            ACME,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("sub/t.c"), "{body}");
}

#[tokio::test]
async fn job_control_and_ctrl_c_work_in_a_sandboxed_terminal() {
    let server = Server::start().await;
    let sid = terminal_session(&server, ACME).await;
    let (tid, _) = launch_shell(&server, &sid, "jobs").await;
    let mut client = attach_shell(&server, &sid, &tid).await;
    client.input("sleep 300 &\r").await;
    client.input("jobs; echo JOBS''LISTED\r").await;
    client.wait_output("JOBSLISTED").await;
    assert!(client.text().contains("Running"), "{}", client.text());
    // Ctrl-C reaches the foreground job, not the sandbox around the shell.
    client.input("sleep 300\r").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.input("\x03").await;
    client.echo("after-interrupt").await;
    // Ctrl-Z stops it; `fg` resumes it; Ctrl-C then ends it.
    client.input("sleep 301\r").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.input("\x1a").await;
    client.wait_output("Stopped").await;
    client.input("fg\r").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.input("\x03").await;
    client.input("kill %1; echo KILL''ED-$?\r").await;
    client.wait_output("KILLED-0").await;
    let body = get_terminal(&server, &sid, &tid).await;
    assert_eq!(body["metadata"]["running"], true, "{body}");
}

#[tokio::test]
async fn with_network_none_only_loopback_works_and_the_server_stays_unreachable() {
    let server = Server::with_config("[sandbox]\nnetwork = \"none\"\n").await;
    let sid = server.session(ACME).await;
    let port = server.port();
    let got = output(
        &server,
        &sid,
        &format!(
            "(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo ESC''APED; \
             python3 -c \"import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); \
             socket.create_connection(s.getsockname()); print('loopback-ok')\"; \
             python3 -c \"import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)\" 2>/dev/null || echo no-route"
        ),
    )
    .await;
    assert_eq!(got, "loopback-ok\nno-route\n");
}

#[tokio::test]
async fn admin_sandbox_reports_every_layer_to_admins_only() {
    let server = Server::with_config("[admin]\ntokens = [\"admin-secret\"]\n").await;
    let (status, body) = server.get("/admin/v1/sandbox", "admin-secret").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "enforce");
    for layer in ["filesystem", "processes", "resources", "network"] {
        assert_eq!(body["layers"][layer]["active"], true, "{layer}: {body}");
    }
    assert_eq!(
        body["layers"]["network"]["blocked_ports"],
        json!([server.port()])
    );
    assert_eq!(body["layers"]["network"]["mode"], "full");
    assert_eq!(body["layers"]["resources"]["processes"]["limit"], 256);
    assert_eq!(
        body["layers"]["resources"]["memory_bytes"]["limit"],
        2u64 << 30
    );
    assert_error(
        &server.get("/admin/v1/sandbox", ACME).await,
        401,
        "unauthorized",
    );
    let (status, _) = server
        .post("/admin/v1/sandbox", "admin-secret", json!({}))
        .await;
    assert_eq!(status, 405);
    assert!(
        server.stderr().contains("sandbox enforced"),
        "{}",
        server.stderr()
    );

    let off =
        Server::with_config("[sandbox]\nmode = \"off\"\n[admin]\ntokens = [\"admin-secret\"]\n")
            .await;
    let (status, body) = off.get("/admin/v1/sandbox", "admin-secret").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "off");
    assert_eq!(body["layers"]["filesystem"]["active"], false);
}

#[tokio::test]
async fn bad_sandbox_settings_are_refused_at_start_naming_the_key() {
    for (extra, key) in [
        ("[sandbox]\nmode = \"loose\"\n", "mode"),
        ("[sandbox]\nnetwork = \"some\"\n", "network"),
        ("[sandbox]\nmax_processes = 2\n", "sandbox.max_processes"),
        ("[sandbox]\nmemory_bytes = 1024\n", "sandbox.memory_bytes"),
        ("[sandbox]\nmemory_bytes = \"lots\"\n", "memory_bytes"),
        ("[sandbox]\nunknown = 1\n", "unknown"),
    ] {
        let stderr = refused_start(extra);
        assert!(stderr.contains(key), "{extra}: {stderr}");
    }
}

/// Starts `reshost serve` with `extra` as its config (beside a data dir), which
/// must refuse to start without serving; returns what it printed on stderr.
fn refused_start(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reshost.toml");
    let data = dir.path().join("data");
    let text = format!("listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\n{extra}");
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reshost"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{extra}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{extra}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_sandbox_that_cannot_run_a_command_keeps_the_server_from_starting() {
    // No `true` on this PATH: the start's confined test command fails.
    let stderr = refused_start("[sandbox]\npath = \"/nonexistent\"\n");
    assert!(
        stderr.contains("the sandbox cannot be enforced on this machine")
            && stderr.contains("a confined test command failed")
            && stderr.contains("mode = \"off\""),
        "{stderr}"
    );
}

#[test]
fn sandbox_exec_with_a_bad_plan_fails_with_125_and_says_why() {
    for args in [
        vec!["sandbox-exec"],
        vec!["sandbox-exec", "{}", "--"],
        vec!["sandbox-exec", "not json", "--", "true"],
        vec!["sandbox-exec", "{}", "--", "true"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reshost"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("reshost sandbox: "),
            "{args:?}: {stderr}"
        );
    }
}
