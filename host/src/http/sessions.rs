//! `/v1/sessions`: create, list, get, delete. Sessions are the host's own: every
//! resource hangs off one, so the host keeps them and checks ownership itself.

use super::body::{Body, json_response, ok, read_json};
use super::error::{ApiError, ApiResult, Code};
use super::paging::{Query, list_page, param};
use crate::app::App;
use crate::app::{Ask, blocking};
use crate::cluster::Owner;
use crate::cluster::listing::Listing;
use crate::snapshot;
use crate::workspace;
use http::{HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use hyper::body::Incoming;
use reshost_paging::Source;
use serde_json::{Value, json};

/// A validated `POST /v1/sessions` body.
struct NewSession {
    agent: Value,
    template: Option<String>,
    /// The snapshot the workspace starts as: (session, snapshot id).
    from_snapshot: Option<(String, String)>,
    metadata: Value,
}

/// `from_snapshot`: `{"session_id", "snapshot_id"}`, both strings.
fn parse_from_snapshot(value: Value) -> ApiResult<(String, String)> {
    let Value::Object(mut fields) = value else {
        return Err(field_error("from_snapshot", "an object"));
    };
    let mut take = |name: &str| match fields.remove(name) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(field_error(&format!("from_snapshot.{name}"), "a string")),
    };
    let pair = (take("session_id")?, take("snapshot_id")?);
    if let Some(unknown) = fields.keys().next() {
        return Err(ApiError::invalid(format!(
            "unknown field from_snapshot.{unknown}"
        )));
    }
    Ok(pair)
}

fn field_error(field: &str, what: &str) -> ApiError {
    ApiError::invalid(format!("{field} must be {what}"))
}

fn parse_new_session(body: Value, app: &App) -> ApiResult<NewSession> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    let mut take = |name: &str| body.remove(name).filter(|v| !v.is_null());
    let agent = take("agent").unwrap_or_else(|| json!({}));
    let environment = take("environment");
    let from_snapshot = take("from_snapshot");
    let metadata = take("metadata").unwrap_or_else(|| json!({}));
    if let Some(unknown) = body.keys().next() {
        return Err(ApiError::invalid(format!("unknown field {unknown:?}")));
    }
    check_agent(&agent, app.config.limits.max_scrollback_bytes)?;
    if !metadata.is_object() {
        return Err(field_error("metadata", "an object"));
    }
    let template = match environment {
        None => None,
        Some(Value::Object(env)) => {
            if let Some(unknown) = env.keys().find(|k| *k != "template") {
                return Err(ApiError::invalid(format!(
                    "unknown field environment.{unknown}"
                )));
            }
            match env.get("template") {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) if app.config.templates.contains_key(name) => {
                    Some(name.clone())
                }
                Some(Value::String(name)) => {
                    let known: Vec<&str> =
                        app.config.templates.keys().map(String::as_str).collect();
                    return Err(ApiError::invalid(format!(
                        "unknown template {name:?}; configured templates: {known:?}"
                    )));
                }
                Some(_) => return Err(field_error("environment.template", "a string")),
            }
        }
        Some(_) => return Err(field_error("environment", "an object")),
    };
    let from_snapshot = from_snapshot.map(parse_from_snapshot).transpose()?;
    if template.is_some() && from_snapshot.is_some() {
        return Err(ApiError::invalid(
            "a session starts from a template or from a snapshot, not both",
        ));
    }
    Ok(NewSession {
        agent,
        template,
        from_snapshot,
        metadata,
    })
}

/// `agent.terminals` declares the terminals a session may launch.
fn check_agent(agent: &Value, max_scrollback: u64) -> ApiResult<()> {
    let agent = agent
        .as_object()
        .ok_or_else(|| field_error("agent", "an object"))?;
    let Some(terminals) = agent.get("terminals").filter(|t| !t.is_null()) else {
        return Ok(());
    };
    let terminals = terminals
        .as_object()
        .ok_or_else(|| field_error("agent.terminals", "an object of terminal specs"))?;
    for (name, spec) in terminals {
        let at = |field: &str| format!("agent.terminals.{name}.{field}");
        if name.is_empty() || name.len() > 64 {
            return Err(ApiError::invalid(
                "terminal names must be 1 to 64 characters",
            ));
        }
        let spec = spec
            .as_object()
            .ok_or_else(|| field_error(&format!("agent.terminals.{name}"), "an object"))?;
        for (field, value) in spec {
            let fine = match field.as_str() {
                "command" => value.as_str().is_some_and(|c| !c.is_empty()),
                "args" => value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string)),
                "env" => value
                    .as_object()
                    .is_some_and(|e| e.values().all(Value::is_string)),
                "allow_cwd_override" => value.is_boolean(),
                "scrollback_bytes" => value
                    .as_u64()
                    .is_some_and(|n| (1..=max_scrollback).contains(&n)),
                _ => return Err(ApiError::invalid(format!("unknown field {}", at(field)))),
            };
            if !fine {
                let what = match field.as_str() {
                    "command" => "a non-empty string".to_owned(),
                    "args" => "an array of strings".to_owned(),
                    "env" => "an object of strings".to_owned(),
                    "allow_cwd_override" => "a boolean".to_owned(),
                    _ => format!("an integer from 1 to {max_scrollback}"),
                };
                return Err(field_error(&at(field), &what));
            }
        }
    }
    Ok(())
}

pub(super) async fn create(
    app: &App,
    tenant: &str,
    headers: &HeaderMap,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    if app.cluster.draining() {
        // The proxy tries another runner.
        return Err(ApiError::new(
            Code::ServerBusy,
            "this runner is draining: it takes no new sessions",
        )
        .with_header(http::header::RETRY_AFTER, "1"));
    }
    let body = read_json(body, app.config.limits.max_json_bytes).await?;
    let new = parse_new_session(body, app)?;
    if let Some((from, snapshot)) = &new.from_snapshot
        && let Owner::Peer(peer) = app.cluster.owner(from)
    {
        let exists = app
            .cluster
            .peer_has_session(peer, from, authorization(headers)?)
            .await?;
        return Err(match exists {
            false => ApiError::not_found(format!("no such snapshot: {snapshot}")),
            true => ApiError::new(
                Code::CrossRunner,
                format!(
                    "session {from} is on runner {}, this is runner {}: a session starts from a snapshot on the snapshot's runner (the proxy sends it there)",
                    peer.name, app.cluster.runner
                ),
            ),
        });
    }
    app.check(tenant, Ask::new("sessions.create", None, None))
        .await?;
    app.room_for_session(tenant)?;
    let id = app.cluster.minter.session_id();
    let session = json!({
        "id": id,
        "object": "session",
        "created_at": crate::unix_now(),
        "agent": new.agent,
        "metadata": new.metadata,
    })
    .to_string();

    let dir = app.workspace(&id);
    let template = new.template.map(|t| app.config.templates[&t].clone());
    // The snapshot must be the tenant's, and stays while it is copied.
    let source = match &new.from_snapshot {
        None => None,
        Some((from, snapshot)) => {
            let missing = || ApiError::not_found(format!("no such snapshot: {snapshot}"));
            let shared = app.trees.share(from).await;
            app.store.session(tenant, from)?.ok_or_else(missing)?;
            app.store.snapshot(from, snapshot)?.ok_or_else(missing)?;
            Some((shared, from.clone(), snapshot.clone()))
        }
    };
    let (made, tracker, sid) = (dir.clone(), app.tracker.clone(), id.clone());
    let (store, staging) = (app.store.clone(), app.staging.clone());
    blocking("creating the workspace", move || -> anyhow::Result<()> {
        let t = std::time::Instant::now();
        workspace::create(&made)?;
        if let Some((_shared, from, snapshot)) = &source {
            snapshot::materialize(&store, (from, snapshot), (&sid, &made), &staging)?;
        }
        // A template is copied and its baseline recorded in one pass.
        let files = match &template {
            Some(template) => tracker.start_from(&sid, &made, template)?,
            None => tracker.start(&sid, &made)?,
        };
        tracing::info!(
            session = sid,
            files,
            elapsed_ms = t.elapsed().as_millis() as u64,
            "workspace created"
        );
        Ok(())
    })
    .await
    .map_err(ApiError::from)
    .and_then(|made| {
        let retry_after_s = app.config.limits.busy_retry_after_s;
        made.map_err(|e| ApiError::internal_or_busy("creating the workspace", e, retry_after_s))
    })
    .inspect_err(|_| discard(app, &id))?;

    app.register(tenant, &id, &session)
        .await
        .inspect_err(|_| discard(app, &id))?;
    Ok(json_response(StatusCode::CREATED, session))
}

/// Undoes a session creation that failed: its workspace, tracking and baseline go.
fn discard(app: &App, id: &str) {
    app.tracker.stop(id);
    let (dir, store, id) = (app.workspace(id), app.store.clone(), id.to_owned());
    tokio::task::spawn_blocking(move || {
        if let Err(e) = workspace::remove(&dir) {
            tracing::error!(error = %e, "removing the workspace of a failed session");
        }
        if let Err(e) = store.delete_baseline(&id) {
            tracing::error!(error = %e, "deleting the baseline of a failed session");
        }
    });
}

struct TenantSessions<'a> {
    app: &'a App,
    tenant: &'a str,
}

impl Source for TenantSessions<'_> {
    type Item = String;
    type Error = crate::store::Error;
    fn contains(&mut self, id: &str) -> Result<bool, crate::store::Error> {
        Ok(self.app.store.session(self.tenant, id)?.is_some())
    }
    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>, crate::store::Error> {
        self.app
            .store
            .scan_sessions(self.tenant, start, ascending, limit)
    }
}

/// The caller's credentials, to ask other runners as the caller.
pub(super) fn authorization(headers: &HeaderMap) -> ApiResult<&HeaderValue> {
    headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::invalid("other runners are asked with the Authorization header"))
}

/// Runners that did not answer, named on a listing that lacks their sessions.
const UNREACHABLE_HEADER: &str = "reshost-unreachable-runners";

pub(super) async fn list(
    app: &App,
    tenant: &str,
    query: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response<Body>> {
    app.check(tenant, Ask::new("sessions.list", None, None))
        .await?;
    let local = TenantSessions { app, tenant };
    if app.cluster.peers.is_empty() {
        return ok(list_page(&mut { local }, query)?);
    }
    let mut listing = Listing {
        local,
        cluster: &app.cluster,
        authorization: authorization(headers)?,
        runtime: tokio::runtime::Handle::current(),
        unreachable: Default::default(),
    };
    // The page walks its source synchronously; the source waits on the peers.
    let page = tokio::task::block_in_place(|| list_page(&mut listing, query))?;
    let mut response = ok(page)?;
    if !listing.unreachable.is_empty() {
        let names: Vec<&str> = listing.unreachable.iter().map(String::as_str).collect();
        if let Ok(value) = HeaderValue::from_str(&names.join(",")) {
            response.headers_mut().insert(UNREACHABLE_HEADER, value);
        }
    }
    Ok(response)
}

/// `GET /v1/runner/sessions?start=&order=&limit=`: up to `limit` of the
/// caller's sessions on this runner whose ids come strictly after `start` (which
/// need not exist here): this runner's part of a listing across runners.
pub(super) async fn runner_part(
    app: &App,
    tenant: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    app.check(tenant, Ask::new("sessions.list", None, None))
        .await?;
    let ascending = match param(query, "order").unwrap_or("desc") {
        "asc" => true,
        "desc" => false,
        other => {
            return Err(ApiError::invalid(format!(
                "order must be asc or desc, not {other:?}"
            )));
        }
    };
    let limit = match param(query, "limit").unwrap_or("20").parse::<usize>() {
        Ok(n @ 1..=RUNNER_PART_MAX) => n,
        _ => {
            return Err(ApiError::invalid(format!(
                "limit must be an integer from 1 to {RUNNER_PART_MAX}"
            )));
        }
    };
    let items = TenantSessions { app, tenant }.scan(param(query, "start"), ascending, limit)?;
    let data: Vec<String> = items.into_iter().map(|(_, item)| item).collect();
    ok(format!(
        r#"{{"object":"list","data":[{}]}}"#,
        data.join(",")
    ))
}

/// The most sessions one part holds: a listing page (1,000) and the one more
/// that tells whether there are more.
const RUNNER_PART_MAX: usize = 1001;

pub(super) async fn get(app: &App, tenant: &str, id: &str) -> ApiResult<Response<Body>> {
    let session = app
        .store
        .session(tenant, id)?
        .ok_or_else(|| ApiError::not_found(format!("no such session: {id}")))?;
    app.check(tenant, Ask::new("sessions.get", Some(id), None))
        .await?;
    ok(session)
}

pub(super) async fn delete(app: &App, tenant: &str, id: &str) -> ApiResult<Response<Body>> {
    app.authorize(tenant, id, Ask::new("sessions.delete", Some(id), None))
        .await?;
    // Not while a snapshot of it is taken or restored.
    let _alone = app.trees.alone(id).await;
    // Its processes end first, so that none records itself again afterwards.
    app.processes.close_session(id);
    let store = app.store.clone();
    let (t, i) = (tenant.to_owned(), id.to_owned());
    let existed = blocking("deleting the session", move || store.delete_session(&t, &i)).await??;
    if !existed {
        return Err(ApiError::not_found(format!("no such session: {id}")));
    }
    app.tracker.stop(id);
    app.moments.forget(id, None);
    app.terminals.close_session(id);
    app.sandbox.end_session(id);
    let dir = app.workspace(id);
    blocking("removing the workspace", move || workspace::remove(&dir))
        .await?
        .map_err(|e| ApiError::internal("removing the workspace", e))?;
    ok(json!({"id": id, "object": "session.deleted", "deleted": true}).to_string())
}
