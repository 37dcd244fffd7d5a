//! `…/environments/{env}/processes`: background processes. The environments
//! slot's component checks and plans a start (the same checks as a shell
//! command's); the host runs the process, keeps its output and answers the
//! rest: list, get, delete (kills), stdin, signals, output by byte offset, and
//! the output as Server-Sent Events resumable with `Last-Event-ID`.

use super::body::{Body, json_response, ok, read_bytes};
use super::environments::allowed;
use super::error::{ApiError, ApiResult};
use super::output_text::encode;
use super::paging::{EnvironmentItems, Query, list_page, param};
use super::shell_stream::name;
use super::sse::{self, Event};
use crate::app::{App, blocking};
use crate::process::output::{Cursor, Stream, Streams};
use crate::process::{End, Process};
use crate::runtime::EnvironmentsWorld;
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events queued for one client.
const QUEUED_EVENTS: usize = 16;

/// A process of the environment: live, or only recorded (it ended before the
/// server restarted).
enum Found {
    Live(Arc<Process>),
    Recorded(Value),
}

fn find(app: &App, (session, env): (&str, &str), id: &str) -> ApiResult<Found> {
    let missing = || ApiError::not_found(format!("no such process: {id}"));
    if let Some(process) = app.processes.get(session, id) {
        return match process.environment() == env {
            true => Ok(Found::Live(process)),
            false => Err(missing()),
        };
    }
    let stored = app.store.process(session, id)?.ok_or_else(missing)?;
    let record = (app.processes.shown(session, id, &stored))
        .map_err(|e| ApiError::internal("reading a process record", e))?;
    match record["environment_id"] == env {
        true => Ok(Found::Recorded(record)),
        false => Err(missing()),
    }
}

/// `POST …/processes`: `201` with the process once it runs.
pub(super) async fn start(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let operation = "environments.processes.start";
    let (caller, body) =
        super::environments::command_body(app, tenant, (session, env), body, operation).await?;
    let plan = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_process(store, &caller, env, &body)
                .await
        })
        .await?;
    let process = app
        .start_process(&caller, env, &plan.command, plan.cwd)
        .await?
        .map_err(ApiError::invalid)?;
    Ok(json_response(
        StatusCode::CREATED,
        process.json().to_string(),
    ))
}

pub(super) async fn list(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    query: &Query,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.list").await?;
    let shown = |id: &str, stored: &str| {
        let record = app.processes.shown(session, id, stored).ok()?;
        (record["environment_id"] == env).then(|| record.to_string())
    };
    let mut items = EnvironmentItems {
        scan: &|start, ascending, limit| app.store.scan_processes(session, start, ascending, limit),
        get: &|id| app.store.process(session, id),
        shown: &shown,
    };
    ok(list_page(&mut items, query)?)
}

pub(super) async fn get(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.get").await?;
    let json = match find(app, (session, env), id)? {
        Found::Live(process) => process.json(),
        Found::Recorded(record) => record,
    };
    ok(json.to_string())
}

/// `DELETE …/processes/{id}`: kills the process if it runs, and forgets it.
pub(super) async fn delete(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.delete").await?;
    find(app, (session, env), id)?;
    app.processes.forget(session, id).await;
    let (store, s, i) = (app.store.clone(), session.to_owned(), id.to_owned());
    blocking("deleting a process", move || {
        store.delete_processes(&s, &[i])
    })
    .await??;
    ok(json!({"id": id, "object": "process.deleted", "deleted": true}).to_string())
}

fn live(found: Found, id: &str) -> ApiResult<Arc<Process>> {
    match found {
        Found::Live(process) => Ok(process),
        Found::Recorded(_) => Err(crate::process::Refused::Ended(id.to_owned()).into()),
    }
}

/// A boolean query parameter: `true` or `false`, else `default` when absent.
fn flag(query: &Query, name: &str, default: bool) -> ApiResult<bool> {
    match param(query, name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::invalid(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

/// `POST …/processes/{id}/stdin`: the body's bytes to the process's stdin;
/// `?eof=true` closes it afterwards.
pub(super) async fn stdin(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
    query: &Query,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.stdin").await?;
    let eof = flag(query, "eof", false)?;
    let process = live(find(app, (session, env), id)?, id)?;
    let bytes = read_bytes(body, app.config.limits.max_write_bytes).await?;
    let wait = Duration::from_millis(app.config.limits.stdin_wait_ms);
    let written = process.write_stdin(&bytes, eof, wait).await?;
    ok(json!({
        "object": "process.stdin",
        "process_id": id,
        "written": written,
        "stdin_open": !eof,
    })
    .to_string())
}

/// The signals a client may send, by name.
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGWINCH", libc::SIGWINCH),
];

/// The signal a body's `signal` names: a name with or without `SIG` (any
/// case), or its number.
fn signal_of(value: &Value) -> ApiResult<(&'static str, i32)> {
    let found = match value {
        Value::String(name) => {
            let upper = name.to_ascii_uppercase();
            let full = match upper.starts_with("SIG") {
                true => upper,
                false => format!("SIG{upper}"),
            };
            SIGNALS.iter().find(|(n, _)| *n == full)
        }
        Value::Number(n) => SIGNALS
            .iter()
            .find(|(_, number)| n.as_i64() == Some(i64::from(*number))),
        _ => None,
    };
    found.copied().ok_or_else(|| {
        let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        ApiError::invalid(format!(
            "signal must be one of {} (by name or number)",
            names.join(", ")
        ))
    })
}

/// `POST …/processes/{id}/signal` `{"signal": "SIGTERM"}`: to the process's
/// shell and what it runs in its process group.
pub(super) async fn signal(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.signal").await?;
    let body = super::body::read_json(body, app.config.limits.max_json_bytes).await?;
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| *k != "signal") {
        return Err(ApiError::invalid(format!("unknown field: {unknown}")));
    }
    let (name, number) = signal_of(object.get("signal").unwrap_or(&Value::Null))?;
    let process = live(find(app, (session, env), id)?, id)?;
    process.signal(number).await?;
    ok(json!({"object": "process.signal", "process_id": id, "signal": name}).to_string())
}

/// A stream named by a query parameter.
fn stream_of(query: &Query) -> ApiResult<Stream> {
    match param(query, "stream") {
        None | Some("stdout") => Ok(Stream::Stdout),
        Some("stderr") => Ok(Stream::Stderr),
        Some(other) => Err(ApiError::invalid(format!(
            "stream must be stdout or stderr, not {other:?}"
        ))),
    }
}

/// A non-negative integer query parameter, `default` when absent.
fn number(query: &Query, name: &str, default: u64) -> ApiResult<u64> {
    param(query, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| ApiError::invalid(format!("{name} must be a non-negative integer")))
    })
}

/// The bytes a recorded process wrote to `stream`.
fn recorded_bytes(record: &Value, stream: Stream) -> u64 {
    record[format!("{}_bytes", name(stream))]
        .as_u64()
        .unwrap_or(0)
}

/// `GET …/processes/{id}/output?stream=&after=&limit=`: what the process wrote
/// to one stream from byte offset `after` on, as far as the ring still holds
/// it (`lost` counts what it no longer does).
pub(super) async fn output(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.output").await?;
    let stream = stream_of(query)?;
    let after = number(query, "after", 0)?;
    let ring_bytes = app.config.limits.process_output_bytes as u64;
    let limit = number(query, "limit", ring_bytes)?;
    if !(1..=ring_bytes).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be from 1 to {ring_bytes} (bytes)"
        )));
    }
    let past = |end: u64| {
        ApiError::invalid(format!(
            "after ({after}) is past the end of {} ({end} bytes so far)",
            name(stream)
        ))
    };
    let (start, next, data, state) = match find(app, (session, env), id)? {
        Found::Live(process) => process.read(|streams, end| {
            let ring = streams.ring(stream);
            if after > ring.end() {
                return Err(past(ring.end()));
            }
            let start = after.max(ring.start());
            let to = ring.end().min(start + limit);
            let encoded = encode(&ring.slice(start, to), end.is_none() || to < ring.end());
            let used = encoded.as_ref().map_or(0, |e| e.used as u64);
            Ok((
                start,
                start + used,
                encoded.map(|e| e.member()),
                end_state(end),
            ))
        })?,
        Found::Recorded(record) => {
            let end = recorded_bytes(&record, stream);
            if after > end {
                return Err(past(end));
            }
            let state = (false, record["exit_code"].clone());
            (end, end, None, state)
        }
    };
    let mut object = serde_json::Map::new();
    object.insert("object".into(), "process.output".into());
    object.insert("process_id".into(), id.into());
    object.insert("stream".into(), name(stream).into());
    object.insert("after".into(), after.into());
    object.insert("start".into(), start.into());
    object.insert("next".into(), next.into());
    object.insert("lost".into(), (start - after).into());
    match data {
        Some(member) => object.extend(member),
        None => {
            object.insert("text".into(), "".into());
        }
    }
    object.insert("running".into(), state.0.into());
    object.insert("exit_code".into(), state.1);
    ok(Value::Object(object).to_string())
}

/// `running` and `exit_code` of a process that ended as `end` (or runs).
fn end_state(end: Option<End>) -> (bool, Value) {
    (end.is_none(), end.and_then(|e| e.exit_code).into())
}

/// `GET …/processes/{id}/events`: the output as it comes, from the start or
/// from the `Last-Event-ID` a client reconnects with, then `exit`.
pub(super) async fn events(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
    query: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.processes.output").await?;
    let cursor = match sse::last_event_id(headers, query) {
        None => Cursor::default(),
        Some(last) => Cursor::parse(last).ok_or_else(|| {
            ApiError::invalid(format!(
                "Last-Event-ID {last:?} is not an id of this stream (<stdout offset>.<stderr offset>)"
            ))
        })?,
    };
    let found = find(app, (session, env), id)?;
    let ends = match &found {
        Found::Live(process) => process.read(|s, _| Cursor {
            stdout: s.stdout.end(),
            stderr: s.stderr.end(),
        }),
        Found::Recorded(record) => Cursor {
            stdout: recorded_bytes(record, Stream::Stdout),
            stderr: recorded_bytes(record, Stream::Stderr),
        },
    };
    if cursor.stdout > ends.stdout || cursor.stderr > ends.stderr {
        return Err(ApiError::invalid(format!(
            "Last-Event-ID {:?} is past the output ({})",
            cursor.id(),
            ends.id()
        )));
    }
    let (events, rx) = mpsc::channel(QUEUED_EVENTS);
    match found {
        Found::Live(process) => {
            tokio::spawn(follow(process, cursor, events));
        }
        Found::Recorded(record) => {
            // Its output went with the server that ran it: what the client
            // has not read is lost, and the process has ended.
            let mut cursor = cursor;
            let mut last = gaps(&mut cursor, ends);
            last.push(exit(&cursor, record));
            tokio::spawn(async move {
                for event in last {
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    let keepalive = Duration::from_millis(app.config.limits.event_keepalive_ms);
    Ok(sse::response(rx, keepalive))
}

/// `gap` events for the bytes before `starts` that `cursor` has not read (the
/// ring no longer holds them), moving it past them.
fn gaps(cursor: &mut Cursor, starts: Cursor) -> Vec<Event> {
    let mut events = Vec::new();
    for stream in [Stream::Stdout, Stream::Stderr] {
        let start = starts.at(stream);
        let at = cursor.of(stream);
        if *at < start {
            let data = json!({"stream": name(stream), "from": *at, "to": start});
            *at = start;
            events.push(Event {
                id: Some(cursor.id()),
                name: "gap",
                data: data.to_string(),
            });
        }
    }
    events
}

fn exit(cursor: &Cursor, process: Value) -> Event {
    Event {
        id: Some(cursor.id()),
        name: "exit",
        data: process.to_string(),
    }
}

/// The events for everything past `cursor` (moved past what they hold): gaps
/// first, then the output in the order it was written. While the process runs
/// (`ended` false) a character cut at the end of a stream waits for the rest.
fn batch(streams: &Streams, ended: bool, cursor: &mut Cursor) -> Vec<Event> {
    let starts = Cursor {
        stdout: streams.stdout.start(),
        stderr: streams.stderr.start(),
    };
    let mut events = gaps(cursor, starts);
    for piece in streams.since(*cursor) {
        let ring = streams.ring(piece.stream);
        let at = *cursor.of(piece.stream);
        if piece.end() <= at {
            continue;
        }
        let last = ended && piece.end() == ring.end();
        // From where the client is: a cut character left by an earlier piece
        // comes with this one.
        let Some(encoded) = encode(&ring.slice(at, piece.end()), !last) else {
            continue;
        };
        *cursor.of(piece.stream) += encoded.used as u64;
        events.push(Event {
            id: Some(cursor.id()),
            name: name(piece.stream),
            data: encoded.json(),
        });
    }
    events
}

/// Sends the output past `cursor` as it comes, then `exit`, until the client
/// leaves.
async fn follow(process: Arc<Process>, mut cursor: Cursor, events: mpsc::Sender<Event>) {
    let mut changed = process.watch();
    loop {
        changed.borrow_and_update();
        let (batch, done) = process.read(|streams, end| {
            let batch = batch(streams, end.is_some(), &mut cursor);
            let caught_up =
                cursor.stdout == streams.stdout.end() && cursor.stderr == streams.stderr.end();
            (batch, end.is_some() && caught_up)
        });
        for event in batch {
            if events.send(event).await.is_err() {
                return;
            }
        }
        if done {
            let _ = events.send(exit(&cursor, process.json())).await;
            return;
        }
        tokio::select! {
            changed = changed.changed() => if changed.is_err() { return },
            () = events.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_data(events: &[Event]) -> Vec<(&str, &str)> {
        events.iter().map(|e| (e.name, e.data.as_str())).collect()
    }

    #[test]
    fn a_batch_replays_both_streams_in_order_and_resumes_where_it_left() {
        let mut streams = Streams::new(1024);
        streams.push(Stream::Stdout, b"one\n");
        streams.push(Stream::Stderr, b"oops\n");
        streams.push(
            Stream::Stdout,
            "tw\u{e9}".as_bytes().split_last().unwrap().1,
        );
        let mut cursor = Cursor::default();
        let events = batch(&streams, false, &mut cursor);
        assert_eq!(
            names_and_data(&events),
            [
                ("stdout", r#"{"text":"one\n"}"#),
                ("stderr", r#"{"text":"oops\n"}"#),
                ("stdout", r#"{"text":"tw"}"#),
            ]
        );
        assert_eq!(events[2].id.as_deref(), Some("6.5"));
        // The rest of the cut character comes: it is sent whole.
        streams.push(Stream::Stdout, &"\u{e9}".as_bytes()[1..]);
        let events = batch(&streams, false, &mut cursor);
        assert_eq!(names_and_data(&events), [("stdout", r#"{"text":"é"}"#)]);
        assert_eq!(cursor.id(), "8.5");
        assert!(batch(&streams, true, &mut cursor).is_empty());
    }

    #[test]
    fn what_the_ring_dropped_is_told_as_a_gap() {
        let mut streams = Streams::new(4);
        streams.push(Stream::Stdout, b"abcdefgh");
        let mut cursor = Cursor::default();
        let events = batch(&streams, true, &mut cursor);
        assert_eq!(
            names_and_data(&events),
            [
                ("gap", r#"{"from":0,"stream":"stdout","to":4}"#),
                ("stdout", r#"{"text":"efgh"}"#),
            ]
        );
        assert_eq!(events[0].id.as_deref(), Some("4.0"));
    }

    #[test]
    fn signals_are_named_with_or_without_sig_or_by_number() {
        assert_eq!(signal_of(&json!("TERM")).unwrap(), ("SIGTERM", 15));
        assert_eq!(signal_of(&json!("sigint")).unwrap(), ("SIGINT", 2));
        assert_eq!(signal_of(&json!(9)).unwrap(), ("SIGKILL", 9));
        for bad in [json!("SIGFOO"), json!(0), json!(64), json!(null), json!([])] {
            assert!(signal_of(&bad).is_err(), "{bad}");
        }
    }
}
