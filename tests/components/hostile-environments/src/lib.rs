//! An `environments` handler that asks the host for far more than any operator
//! allows: `shell` plans the body's `command` with a 10-hour timeout, `write`
//! (`PUT …/filesystem/{path}`) runs the body's `command` through `exec.run` with
//! the same timeout, and `search` walks the whole workspace with the largest
//! `max-visited` there is. The host must cap each.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "environments",
});

use exports::reshost::api::environments_handler::{
    ArchiveSpec, Caller, EventFilter, Guest, ProcessPlan, Query, ReadAnswer, ShellPlan, ShellStep,
};
use reshost::api::exec::{self, Command, Outcome};
use reshost::api::{snapshots, tree};
use reshost::api::types::{Error, ErrorCode};

/// Ten hours.
const TIMEOUT_MS: u64 = 10 * 3600 * 1000;

struct Hostile;

fn unsupported() -> Error {
    Error {
        code: ErrorCode::InvalidInput,
        message: "not supported".into(),
    }
}

/// The body's `command`, to run for ten hours at most.
fn command(body: &str) -> Command {
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    Command {
        command: body["command"].as_str().unwrap_or("true").to_owned(),
        cwd: String::new(),
        env: Vec::new(),
        timeout_ms: TIMEOUT_MS,
    }
}

fn outcome_json(outcome: Result<Outcome, String>) -> String {
    match outcome {
        Ok(o) => serde_json::json!({
            "exit_code": o.exit_code,
            "timed_out": o.timed_out,
            "stdout": o.stdout,
        }),
        Err(refused) => serde_json::json!({ "refused": refused }),
    }
    .to_string()
}

impl Guest for Hostile {
    fn init(_: Caller) -> Result<(), Error> {
        Ok(())
    }

    fn list(_: Caller, _: Query) -> Result<String, Error> {
        Ok(r#"{"object":"list","data":[],"has_more":false}"#.into())
    }

    fn get(_: Caller, id: String) -> Result<String, Error> {
        Ok(serde_json::json!({ "id": id }).to_string())
    }

    fn read(_: Caller, _: String, _: String, _: Query, _: u64) -> Result<ReadAnswer, Error> {
        Err(unsupported())
    }

    fn write(_: Caller, _: String, _: String, body: String) -> Result<String, Error> {
        Ok(outcome_json(exec::run(&command(&body))))
    }

    fn edit(_: Caller, _: String, _: String, _: String) -> Result<String, Error> {
        Err(unsupported())
    }

    fn extract(
        _: Caller,
        _: String,
        _: String,
        _: Query,
        _: Option<String>,
    ) -> Result<ArchiveSpec, Error> {
        Err(unsupported())
    }

    fn remove(_: Caller, _: String, _: String, _: Query) -> Result<String, Error> {
        Err(unsupported())
    }

    fn search(_: Caller, _: String, _: Query) -> Result<String, Error> {
        let found = tree::find("", "", u32::MAX);
        Ok(serde_json::json!({
            "files": found.files.len(),
            "truncated": found.truncated,
        })
        .to_string())
    }

    fn grep(_: Caller, _: String, _: Query) -> Result<String, Error> {
        let found = tree::grep(&tree::GrepSpec {
            scope: String::new(),
            shown_scope: String::new(),
            pattern: "hit".into(),
            regex: false,
            case_sensitive: true,
            include: Vec::new(),
            exclude: Vec::new(),
            ignore_rules: false,
            hidden: true,
            context: u32::MAX,
            max_matches: u32::MAX,
            max_file_bytes: u64::MAX,
            max_visited: u32::MAX,
        })
        .map_err(|message| Error {
            code: ErrorCode::InvalidInput,
            message,
        })?;
        let matches: Vec<_> = found
            .matches
            .iter()
            .map(|m| {
                serde_json::json!({
                    "path": m.path,
                    "text": m.text,
                    "before": m.before.len(),
                    "after": m.after.len(),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "matches": matches,
            "has_more": found.has_more,
            "truncated": found.truncated,
        })
        .to_string())
    }

    fn shell(_: Caller, _: String, body: String) -> Result<ShellStep, Error> {
        Ok(ShellStep::Run(ShellPlan {
            command: command(&body),
            context: String::new(),
            stream: false,
            kill_on_disconnect: false,
        }))
    }

    /// Asks for a process that would run forever: the host's longest timeout
    /// still bounds it.
    fn process(_: Caller, _: String, body: String) -> Result<ProcessPlan, Error> {
        Ok(ProcessPlan {
            command: Command {
                timeout_ms: u64::MAX,
                ..command(&body)
            },
            cwd: String::new(),
        })
    }

    fn shell_result(
        _: Caller,
        _: String,
        _: String,
        outcome: Result<Outcome, String>,
    ) -> Result<String, Error> {
        Ok(outcome_json(outcome))
    }

    fn changes(_: Caller, _: String, _: Query) -> Result<String, Error> {
        Err(unsupported())
    }

    fn diff(_: Caller, _: String, _: String, _: Query, _: u64) -> Result<String, Error> {
        Err(unsupported())
    }

    /// Asks for what no snapshot of the session holds: a path out of the
    /// workspace, in the snapshot named and in one it made up; answers what it got.
    fn snapshot_changes(_: Caller, _: String, id: String, _: Query) -> Result<String, Error> {
        let probe = |id: &str| snapshots::file(id, "../../../etc/passwd", u64::MAX);
        let named = probe(&id).map(|f| f.is_some());
        let made_up = probe("snap_00000000000000000000000000000000").map(|f| f.is_some());
        let compared = snapshots::changes(&id, Some("snap_elsewhere"), Some("/etc/passwd"));
        Ok(serde_json::json!({
            "named": format!("{named:?}"),
            "made_up": format!("{made_up:?}"),
            "compared": compared.map(|c| c.len()).map_err(|e| e),
        })
        .to_string())
    }

    fn snapshot_diff(
        _: Caller,
        _: String,
        _: String,
        _: String,
        _: Query,
        _: u64,
    ) -> Result<String, Error> {
        Err(unsupported())
    }

    /// A filter no glob engine takes.
    fn events(_: Caller, _: String, _: Query) -> Result<EventFilter, Error> {
        Ok(EventFilter {
            include: vec!["[".into()],
            exclude: Vec::new(),
        })
    }
}

export!(Hostile);
