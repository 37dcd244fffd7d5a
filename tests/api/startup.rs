//! Start-up: a bad config is refused before serving, with a message that names the
//! offending key; without configured tenants, `RESHOST_TOKEN` is the one token.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `reshost serve` that is killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `acme` tenant alone, for configs written here.
const ONE_TENANT: &str = "\n[[tenants]]\nname = \"acme\"\ntokens = [\"acme-token\"]\n";

fn serve(dir: &Path, config: &str, env: &[(&str, &str)]) -> Process {
    let path = dir.join("reshost.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_reshost"));
    command
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env_remove("RESHOST_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    Process(command.spawn().unwrap())
}

/// Runs `reshost serve` on a config that must be refused; returns its exit status and stderr.
fn refused(extra: &str) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}{extra}\n", config_preamble(dir.path()));
    let mut process = serve(dir.path(), &config, &[]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reshost kept running with a bad config:\n{config}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(process.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(process.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(
        !stdout.contains("listening on"),
        "reshost listened with a bad config:\n{config}"
    );
    (status, stderr)
}

/// Refused with a non-zero exit (not a crash) and a message naming `key`.
#[track_caller]
fn assert_refused_naming(extra: &str, key: &str) {
    let (status, stderr) = refused(extra);
    assert!(!status.success(), "exit {status} for config:\n{extra}");
    assert!(
        status.code().is_some(),
        "killed by a signal ({status}) for config:\n{extra}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic instead of an error for config:\n{extra}\n{stderr}"
    );
    assert!(
        stderr.contains(key),
        "stderr does not name {key:?} for config:\n{extra}\nstderr:\n{stderr}"
    );
}

#[test]
fn unknown_config_key_is_refused_naming_it() {
    assert_refused_naming(
        &format!("[limits]\nmax_upload_bites = 5\n{ONE_TENANT}"),
        "max_upload_bites",
    );
    assert_refused_naming(&format!("lissen = \"127.0.0.1:0\"\n{ONE_TENANT}"), "lissen");
}

#[test]
fn wrongly_typed_config_value_is_refused_naming_the_key() {
    assert_refused_naming(
        &format!("[limits]\nmax_upload_bytes = \"big\"\n{ONE_TENANT}"),
        "max_upload_bytes",
    );
    assert_refused_naming(
        &format!("[limits]\ncomponent_timeout_ms = -5\n{ONE_TENANT}"),
        "component_timeout_ms",
    );
}

#[test]
fn a_zero_ping_interval_is_refused_naming_the_key() {
    assert_refused_naming(
        &format!("[limits]\nterminal_ping_interval_ms = 0\n{ONE_TENANT}"),
        "terminal_ping_interval_ms",
    );
}

#[test]
fn missing_component_file_is_refused_naming_the_slot() {
    assert_refused_naming(
        &format!("[components]\nfiles = \"/nonexistent/handler.wasm\"\n{ONE_TENANT}"),
        "files",
    );
}

#[test]
fn out_of_range_slot_and_admission_limits_are_refused_naming_the_key() {
    for (extra, key) in [
        (
            "[slots.files]\ntimeout_ms = 3600001\n",
            "slots.files.timeout_ms",
        ),
        (
            "[slots.policy]\ntimeout_ms = 0\n",
            "slots.policy.timeout_ms",
        ),
        (
            "[slots.terminals]\nmemory_bytes = 65535\n",
            "slots.terminals.memory_bytes",
        ),
        (
            "[limits]\ncomponent_timeout_ms = 3600001\n",
            "limits.component_timeout_ms",
        ),
        ("[limits]\nadmission_queue = 0\n", "limits.admission_queue"),
        (
            "[limits]\nbusy_retry_after_s = 0\n",
            "limits.busy_retry_after_s",
        ),
    ] {
        assert_refused_naming(&format!("{extra}{ONE_TENANT}"), key);
    }
}

#[test]
fn bad_tenant_limits_are_refused_naming_the_key() {
    assert_refused_naming(
        "[[tenants]]\nname = \"acme\"\ntokens = [\"t\"]\nlimits = { shells = 1 }\n",
        "tenants[0].limits",
    );
    assert_refused_naming(
        "[[tenants]]\nname = \"acme\"\ntokens = [\"t\"]\nlimits = { sessions = \"many\" }\n",
        "tenants[0].limits",
    );
    assert_refused_naming(
        &format!("[tenant_limits]\nshells = 1\n{ONE_TENANT}"),
        "shells",
    );
}

#[test]
fn an_unknown_slot_is_refused_naming_it() {
    assert_refused_naming(
        &format!("[components]\nfilez = \"/nonexistent/handler.wasm\"\n{ONE_TENANT}"),
        "filez",
    );
    assert_refused_naming(
        &format!("[slots.shells]\ntimeout_ms = 5\n{ONE_TENANT}"),
        "shells",
    );
}

#[test]
fn tenant_without_tokens_is_refused() {
    assert_refused_naming("[[tenants]]\nname = \"acme\"\ntokens = []\n", "tokens");
    assert_refused_naming("[[tenants]]\nname = \"acme\"\n", "tokens");
}

#[test]
fn missing_template_directory_is_refused_naming_the_template() {
    assert_refused_naming(
        &format!("[templates]\nstarter = \"/nonexistent/template\"\n{ONE_TENANT}"),
        "starter",
    );
}

#[test]
fn valid_config_with_every_section_starts() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    std::fs::create_dir(&template).unwrap();
    let config = format!(
        "{}[limits]\nmax_upload_bytes = 1000000\nmax_json_bytes = 4096\ncomponent_timeout_ms = 2000\n\
         component_memory_bytes = 33554432\n[templates]\nstarter = {template:?}\n{ONE_TENANT}",
        config_preamble(dir.path())
    );
    let mut process = serve(dir.path(), &config, &[]);
    let line = BufReader::new(process.0.stdout.take().unwrap())
        .lines()
        .next();
    let line = line.map(Result::unwrap).unwrap_or_default();
    assert!(
        line.starts_with("listening on http://"),
        "first stdout line: {line:?}"
    );
}

#[tokio::test]
async fn reshost_token_env_is_the_default_tenants_token_without_configured_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = serve(
        dir.path(),
        &config_preamble(dir.path()),
        &[("RESHOST_TOKEN", "xyz")],
    );
    let stdout = process.0.stdout.take().unwrap();
    let base = listening_address(stdout, || {
        let mut stderr = String::new();
        std::io::Read::read_to_string(process.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        stderr
    });
    let http = reqwest::Client::new();

    let response = http
        .post(format!("{base}/v1/sessions"))
        .bearer_auth("xyz")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, session) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let sid = session["id"].as_str().unwrap();

    let (status, list) = json_of(
        http.get(format!("{base}/v1/sessions"))
            .bearer_auth("xyz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["id"], sid, "{list}");

    for token in ["xy", "acme-token", "default"] {
        let got = json_of(
            http.get(format!("{base}/v1/sessions"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&got, 401, "unauthorized");
    }
    let got = json_of(
        http.get(format!("{base}/v1/sessions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 401, "unauthorized");
}

#[test]
fn an_unknown_log_format_is_refused_in_the_config_and_on_the_command_line() {
    assert_refused_naming(&format!("log_format = \"yaml\"{ONE_TENANT}"), "log_format");
    let out = Command::new(env!("CARGO_BIN_EXE_reshost"))
        .args(["serve", "--log-format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown log format \"yaml\""), "{stderr}");
}

#[test]
fn log_format_json_on_the_command_line_overrides_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}log_format = \"text\"{ONE_TENANT}",
        config_preamble(dir.path())
    );
    let path = dir.path().join("reshost.toml");
    std::fs::write(&path, config).unwrap();
    let mut process = Process(
        Command::new(env!("CARGO_BIN_EXE_reshost"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "json"])
            .env("RESHOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = std::io::BufReader::new(process.0.stderr.take().unwrap());
    let first = std::io::BufRead::lines(stderr).next().unwrap().unwrap();
    let line: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(line["fields"]["message"].is_string(), "{line}");
}

#[tokio::test]
async fn a_relative_data_dir_puts_nothing_of_the_server_into_workspaces() {
    // `data_dir = "data"` in a config named by a relative path, from its folder:
    // every path of the server is relative to where it started.
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache_dir();
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\ncache_dir = {cache:?}\n{ONE_TENANT}"
    );
    std::fs::write(dir.path().join("reshost.toml"), config).unwrap();
    let mut process = Process(
        Command::new(env!("CARGO_BIN_EXE_reshost"))
            .args(["serve", "--config", "reshost.toml"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = listening_address(process.0.stdout.take().unwrap(), String::new);
    let http = reqwest::Client::new();
    let (status, session) = json_of(
        http.post(format!("{base}/v1/sessions"))
            .bearer_auth(ACME)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let sid = session["id"].as_str().unwrap();
    let (status, ran) = json_of(
        http.post(format!("{base}{}", shell_path(sid)))
            .bearer_auth(ACME)
            .json(&json!({"command": "ls -A; echo \"$HOME\""}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    let home = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("data/workspaces")
        .join(sid);
    assert_eq!(ran["stdout"], format!("{}\n", home.display()), "{ran}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("data/workspaces").join(sid))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
