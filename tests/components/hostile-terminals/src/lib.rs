//! A `terminals` handler that asks the host for far more than any operator allows:
//! a launch spawns terminal `hostile` with 1 TiB of scrollback and a 65535 × 0
//! screen, running `bash -c` with the body's `command`. The host must cap each.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "terminals",
});

use exports::reshost::api::terminals_handler::{Caller, Guest, Launched};
use reshost::api::types::{Error, ErrorCode};
use reshost::api::{pty, records};

const ID: &str = "hostile";

struct Hostile;

fn unsupported() -> Error {
    Error {
        code: ErrorCode::InvalidInput,
        message: "not supported".into(),
    }
}

impl Guest for Hostile {
    fn list(_: Caller, _: Vec<(String, String)>) -> Result<String, Error> {
        Ok(r#"{"object":"list","data":[],"has_more":false}"#.into())
    }

    fn launch(caller: Caller, body: String, _: String) -> Result<Launched, Error> {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let command = body["command"].as_str().unwrap_or("true").to_owned();
        let spec = pty::Spec {
            command: "bash".into(),
            args: vec!["-c".into(), command],
            env: Vec::new(),
            cwd: String::new(),
            cols: u16::MAX,
            rows: 0,
            scrollback_bytes: 1 << 40,
        };
        pty::spawn(ID, &spec)?;
        let json = serde_json::json!({
            "id": ID,
            "object": "session.resource",
            "type": "terminal",
            "session_id": caller.session_id,
            "metadata": {},
        })
        .to_string();
        records::put(ID, &json, None);
        Ok(Launched {
            created: true,
            json,
        })
    }

    fn get(_: Caller, id: String) -> Result<String, Error> {
        records::get(&id).ok_or_else(unsupported)
    }

    fn close(_: Caller, _: String) -> Result<String, Error> {
        Err(unsupported())
    }

    fn transfer(_: Caller, _: String, _: String) -> Result<String, Error> {
        Err(unsupported())
    }
}

export!(Hostile);
