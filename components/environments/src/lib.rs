//! The default `environments` handler: every session has the environment `default`,
//! rooted at its workspace, which this component reaches as its only preopen.

wit_bindgen::generate!({
    path: "../../wit",
    world: "environments",
    with: {
        "reshost:api/types@0.1.0": reshost_guest::types,
        "reshost:api/records@0.1.0": reshost_guest::records,
        "reshost:api/exec@0.1.0": reshost_guest::exec,
        "reshost:api/tree@0.1.0": reshost_guest::tree,
        "reshost:api/watch@0.1.0": reshost_guest::watch,
        "reshost:api/snapshots@0.1.0": reshost_guest::snapshots,
    },
});

mod archive;
mod changes;
mod filters;
mod fs;
mod grep;
mod paths;
mod search;

use exports::reshost::api::environments_handler::{
    ArchiveSpec, Caller, EventFilter, Guest, ProcessPlan, RawFile, ReadAnswer, ShellPlan, ShellStep,
};
use reshost_guest::exec::Outcome;
use reshost_guest::types::Error;
use reshost_guest::{not_found, records};
use serde_json::json;

const DEFAULT: &str = "default";

/// What a read answers, before it becomes the WIT variant.
pub enum Answer {
    Json(String),
    Raw { path: String, content_type: String },
    Archive(ArchiveSpec),
}

struct Environments;

/// Only environments the session has exist.
fn environment(env_id: &str) -> Result<(), Error> {
    match records::get(env_id) {
        Some(_) => Ok(()),
        None => Err(not_found(format!("no such environment: {env_id}"))),
    }
}

impl Guest for Environments {
    fn init(caller: Caller) -> Result<(), Error> {
        let environment = json!({
            "id": DEFAULT,
            "object": "session.resource",
            "type": "environment",
            "session_id": caller.session_id,
            "name": DEFAULT,
            "metadata": {"root": "/"},
        });
        records::put(DEFAULT, &environment.to_string(), None);
        Ok(())
    }

    fn list(_: Caller, query: Vec<(String, String)>) -> Result<String, Error> {
        reshost_guest::list_records(&query, reshost_paging::STANDARD)
    }

    fn get(_: Caller, env_id: String) -> Result<String, Error> {
        records::get(&env_id).ok_or_else(|| not_found(format!("no such environment: {env_id}")))
    }

    fn read(
        _: Caller,
        env_id: String,
        path: String,
        query: Vec<(String, String)>,
        read_cap: u64,
    ) -> Result<ReadAnswer, Error> {
        environment(&env_id)?;
        Ok(match fs::read(&path, &query, read_cap)? {
            Answer::Json(json) => ReadAnswer::Json(json),
            Answer::Raw { path, content_type } => ReadAnswer::Raw(RawFile { path, content_type }),
            Answer::Archive(spec) => ReadAnswer::Archive(spec),
        })
    }

    fn write(_: Caller, env_id: String, path: String, body: String) -> Result<String, Error> {
        environment(&env_id)?;
        fs::write(&path, &body)
    }

    fn edit(_: Caller, env_id: String, path: String, body: String) -> Result<String, Error> {
        environment(&env_id)?;
        fs::edit(&path, &body)
    }

    fn extract(
        _: Caller,
        env_id: String,
        path: String,
        query: Vec<(String, String)>,
        content_type: Option<String>,
    ) -> Result<ArchiveSpec, Error> {
        environment(&env_id)?;
        archive::extract(&path, &query, content_type.as_deref())
    }

    fn search(_: Caller, env_id: String, query: Vec<(String, String)>) -> Result<String, Error> {
        environment(&env_id)?;
        search::search(&query)
    }

    fn grep(_: Caller, env_id: String, query: Vec<(String, String)>) -> Result<String, Error> {
        environment(&env_id)?;
        grep::grep(&query)
    }

    fn shell(_: Caller, env_id: String, body: String) -> Result<ShellStep, Error> {
        environment(&env_id)?;
        let plan = fs::plan_shell(&body)?;
        Ok(ShellStep::Run(ShellPlan {
            command: plan.command,
            context: plan.shown_cwd,
            stream: plan.stream,
            kill_on_disconnect: plan.kill_on_disconnect,
        }))
    }

    fn process(_: Caller, env_id: String, body: String) -> Result<ProcessPlan, Error> {
        environment(&env_id)?;
        let (command, cwd) = fs::plan_process(&body)?;
        Ok(ProcessPlan { command, cwd })
    }

    fn shell_result(
        _: Caller,
        env_id: String,
        context: String,
        outcome: Result<Outcome, String>,
    ) -> Result<String, Error> {
        environment(&env_id)?;
        fs::shell_result(&context, outcome)
    }

    fn remove(
        _: Caller,
        env_id: String,
        path: String,
        query: Vec<(String, String)>,
    ) -> Result<String, Error> {
        environment(&env_id)?;
        fs::remove(&path, &query)
    }

    fn changes(_: Caller, env_id: String, _: Vec<(String, String)>) -> Result<String, Error> {
        environment(&env_id)?;
        changes::list()
    }

    fn events(
        _: Caller,
        env_id: String,
        query: Vec<(String, String)>,
    ) -> Result<EventFilter, Error> {
        environment(&env_id)?;
        let include = filters::Globs::parse(&query, "include")?.patterns;
        let exclude = filters::Globs::parse(&query, "exclude")?.patterns;
        Ok(EventFilter { include, exclude })
    }

    fn diff(
        _: Caller,
        env_id: String,
        path: String,
        query: Vec<(String, String)>,
        read_cap: u64,
    ) -> Result<String, Error> {
        environment(&env_id)?;
        changes::diff(&path, &query, read_cap, changes::Sides::Session)
    }

    fn snapshot_changes(
        _: Caller,
        env_id: String,
        snapshot_id: String,
        query: Vec<(String, String)>,
    ) -> Result<String, Error> {
        environment(&env_id)?;
        changes::snapshot_list(&snapshot_id, &query)
    }

    fn snapshot_diff(
        _: Caller,
        env_id: String,
        snapshot_id: String,
        path: String,
        query: Vec<(String, String)>,
        read_cap: u64,
    ) -> Result<String, Error> {
        environment(&env_id)?;
        let to = changes::to(&query);
        let sides = changes::Sides::Snapshot(&snapshot_id, to);
        changes::diff(&path, &query, read_cap, sides)
    }
}

export!(Environments);
