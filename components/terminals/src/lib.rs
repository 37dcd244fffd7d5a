//! The default `terminals` handler: the terminals a session launches from its
//! agent's declared specs. Each terminal is one record (key: its id, value: the
//! resource object); the host runs the process and adds its live state.
//!
//! A terminal's id is `terminal_{name}_{session_key}`, so launching the same name
//! and key again finds the running terminal instead of starting another one.

wit_bindgen::generate!({
    path: "../../wit",
    world: "terminals",
    with: {
        "reshost:api/types@0.1.0": reshost_guest::types,
        "reshost:api/records@0.1.0": reshost_guest::records,
        "reshost:api/pty@0.1.0": reshost_guest::pty,
    },
});

use exports::reshost::api::terminals_handler::{Caller, Guest, Launched};
use reshost_guest::pty::{self, Spec};
use reshost_guest::types::Error;
use reshost_guest::{invalid_input, not_found, records, unix_now};
use serde_json::{Map, Value, json};

/// The screen size when the launch does not give one.
const DEFAULT_COLS: u16 = 80;
const DEFAULT_ROWS: u16 = 24;
/// Scrollback kept when the spec does not say.
const DEFAULT_SCROLLBACK_BYTES: u64 = 1024 * 1024;
/// Longest `session_key`.
const MAX_KEY_BYTES: usize = 64;

struct Terminals;

fn object(body: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid_input("the body must be a JSON object")),
        Err(e) => Err(invalid_input(format!("the body is not valid JSON: {e}"))),
    }
}

fn existing(id: &str) -> Result<Value, Error> {
    records::get(id)
        .and_then(|json| serde_json::from_str(&json).ok())
        .ok_or_else(|| not_found(format!("no such terminal: {id}")))
}

fn size(body: &Map<String, Value>, field: &str, default: u16) -> Result<u16, Error> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .map(|n| n as u16)
            .ok_or_else(|| invalid_input(format!("{field} must be an integer from 1 to 1000"))),
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, Error> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid_input(format!("{field} must be a string"))),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The process spec of a declared terminal.
fn spec(declared: &Map<String, Value>, cwd: String, cols: u16, rows: u16) -> Spec {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let env = declared
        .get("env")
        .and_then(Value::as_object)
        .map(|e| {
            e.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Spec {
        command: declared
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("bash")
            .to_owned(),
        args: strings(declared.get("args")),
        env,
        cwd,
        cols,
        rows,
        scrollback_bytes: declared
            .get("scrollback_bytes")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_SCROLLBACK_BYTES),
    }
}

impl Guest for Terminals {
    fn list(_: Caller, query: Vec<(String, String)>) -> Result<String, Error> {
        reshost_guest::list_records(&query, reshost_paging::STANDARD)
    }

    fn launch(caller: Caller, body: String, declared: String) -> Result<Launched, Error> {
        let body = object(&body)?;
        if let Some(unknown) = body
            .keys()
            .find(|k| !["terminal", "session_key", "cwd", "cols", "rows"].contains(&k.as_str()))
        {
            return Err(invalid_input(format!("unknown field {unknown:?}")));
        }
        let declared: Map<String, Value> = serde_json::from_str(&declared).unwrap_or_default();
        let name = string_field(&body, "terminal")?
            .ok_or_else(|| invalid_input("terminal is required"))?;
        let Some(Value::Object(terminal)) = declared.get(name) else {
            let known: Vec<&String> = declared.keys().collect();
            return Err(invalid_input(format!(
                "terminal {name:?} is not declared in the session's agent.terminals; declared: {known:?}"
            )));
        };
        let key = string_field(&body, "session_key")?.unwrap_or("default");
        if !valid_key(key) {
            return Err(invalid_input(format!(
                "session_key must be 1 to {MAX_KEY_BYTES} characters of A-Z a-z 0-9 - _ ."
            )));
        }
        let cwd = string_field(&body, "cwd")?;
        if cwd.is_some() && terminal.get("allow_cwd_override") != Some(&Value::Bool(true)) {
            return Err(invalid_input(format!(
                "terminal {name:?} does not allow a cwd override"
            )));
        }
        let (cols, rows) = (
            size(&body, "cols", DEFAULT_COLS)?,
            size(&body, "rows", DEFAULT_ROWS)?,
        );
        let id = format!("terminal_{name}_{key}");
        if let Some(json) = records::get(&id)
            && pty::status(&id).is_some_and(|s| s.running)
        {
            return Ok(Launched {
                created: false,
                json,
            });
        }
        pty::spawn(
            &id,
            &spec(terminal, cwd.unwrap_or("").to_owned(), cols, rows),
        )?;
        let resource = json!({
            "id": id,
            "object": "session.resource",
            "type": "terminal",
            "session_id": caller.session_id,
            "name": name,
            "environment": "default",
            "metadata": {
                "terminal_name": name,
                "session_key": key,
                "cols": cols,
                "rows": rows,
                "created_at": unix_now(),
            },
        })
        .to_string();
        records::put(&id, &resource, None);
        Ok(Launched {
            created: true,
            json: resource,
        })
    }

    fn get(_: Caller, terminal_id: String) -> Result<String, Error> {
        Ok(existing(&terminal_id)?.to_string())
    }

    fn close(_: Caller, terminal_id: String) -> Result<String, Error> {
        existing(&terminal_id)?;
        pty::kill(&terminal_id);
        records::delete(&terminal_id);
        Ok(
            json!({"id": terminal_id, "object": "session.resource.deleted", "deleted": true})
                .to_string(),
        )
    }

    fn transfer(_: Caller, terminal_id: String, body: String) -> Result<String, Error> {
        let body = object(&body)?;
        if let Some(unknown) = body.keys().find(|k| *k != "target_session_id") {
            return Err(invalid_input(format!("unknown field {unknown:?}")));
        }
        let target = string_field(&body, "target_session_id")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid_input("target_session_id is required"))?;
        let mut resource = existing(&terminal_id)?;
        resource["session_id"] = target.into();
        let json = resource.to_string();
        pty::transfer(&terminal_id, target, &json)?;
        Ok(json)
    }
}

export!(Terminals);
