//! The default `environments` handler: every session has the environment `default`,
//! rooted at its workspace.

wit_bindgen::generate!({
    path: "../../wit",
    world: "environments",
    with: {
        "reshost:api/types@0.1.0": reshost_guest::types,
        "reshost:api/records@0.1.0": reshost_guest::records,
    },
});

use exports::reshost::api::environments_handler::{Caller, Guest};
use reshost_guest::types::Error;
use reshost_guest::{not_found, records};
use serde_json::json;

const DEFAULT: &str = "default";

struct Environments;

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
}

export!(Environments);
