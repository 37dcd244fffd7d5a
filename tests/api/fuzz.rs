//! Schemathesis (from PyPI, installed once into a venv under the target
//! directory) fuzzes live servers from `docs/openapi.json`: every operation, its
//! examples, boundary values, random inputs and the stateful links (create a
//! session, then use its id). It must find no server error and no answer outside
//! the document (status, content type, headers, body schema). The tenant API and
//! the admin API run against separate servers, since admin operations reconfigure
//! the server (tiny limits, say) on purpose. WebSocket attach is left to the
//! terminal tests (no HTTP client can hold a socket it upgraded), and event
//! streams (file events, a process's output) to theirs (a stream that lasts as
//! long as what it follows never answers whole).

use crate::admin::ADMIN;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned version: a new one may add checks, which is a change to review.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// A fixed seed, so that a run is repeatable; change it to explore further.
const SEED: &str = "20261206";
const METRICS: &str = "metrics-token";

/// The `st` command, installed on first use.
fn schemathesis() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    let st = venv.join("bin/st");
    if !st.exists() {
        let run = |command: &mut Command| {
            let out = command.output().expect("python3 is needed to fuzz the API");
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{command:?}: {log}");
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run(Command::new(venv.join("bin/pip")).args(["install", "-q", SCHEMATHESIS]));
    }
    st
}

/// Runs `st` for `seconds` on the operations `filter` selects; panics with its
/// report if it found anything.
fn fuzz(server: &Server, filter: &[&str], seconds: u32) {
    let config = server.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.openapi.tenantToken]\nbearer = {ACME:?}\n\
             [auth.openapi.tenantQueryToken]\napi_key = {ACME:?}\n\
             [auth.openapi.adminToken]\nbearer = {ADMIN:?}\n\
             [auth.openapi.metricsToken]\nbearer = {METRICS:?}\n"
        ),
    )
    .unwrap();
    let out = Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", server.base))
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"])
        .args(filter)
        .args(["--max-time", &seconds.to_string(), "--seed", SEED, "--workers", "2"])
        .env("NO_COLOR", "1")
        // Its cache (which replays earlier crashes first) stays with this server.
        .current_dir(server.dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_contract() {
    let config = format!("[metrics]\ntokens = [{METRICS:?}]\n[admin]\ntokens = [{ADMIN:?}]\n");
    let (tenant, admin) = (
        Server::with_config(&config).await,
        Server::with_config(&config).await,
    );
    tokio::task::block_in_place(|| {
        fuzz(
            &tenant,
            &["--exclude-path-regex", "^/admin/|/attach$|/events$"],
            150,
        );
        fuzz(&admin, &["--include-path-regex", "^/admin/"], 45);
    });
}
