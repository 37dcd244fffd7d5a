//! `…/environments/{env}/snapshots`: point-in-time copies of the workspace,
//! taken, listed, compared (with each other or with the workspace now, through
//! the `environments` component, in the shapes of `changes` and `diff`),
//! restored and deleted. Taking and restoring have the workspace's tree alone.

use super::body::{Body, json_response, ok, read_text};
use super::environments::{allowed, allowed_on};
use super::error::{ApiError, ApiResult};
use super::paging::{EnvironmentItems, Query, list_page, param};
use crate::app::{App, blocking};
use crate::runtime::EnvironmentsWorld;
use crate::snapshot::{self, Equal, Taken, Tracked};
use http::{Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

/// The longest snapshot name, in bytes.
const MAX_NAME_BYTES: usize = 256;

/// Snapshot `id` of the environment, as stored.
fn find(app: &App, (session, env): (&str, &str), id: &str) -> ApiResult<Value> {
    let missing = || ApiError::not_found(format!("no such snapshot: {id}"));
    let stored = app.store.snapshot(session, id)?.ok_or_else(missing)?;
    let snapshot: Value = serde_json::from_str(&stored)
        .map_err(|e| ApiError::internal("reading a snapshot record", e))?;
    match snapshot["environment_id"] == env {
        true => Ok(snapshot),
        false => Err(missing()),
    }
}

/// The `name` of a `POST …/snapshots` body (an empty body is `{}`).
fn name_of(body: &str) -> ApiResult<Option<String>> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_str(body).map_err(|e| ApiError::invalid(format!("bad JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    let name = object.remove("name");
    if let Some(unknown) = object.keys().next() {
        return Err(ApiError::invalid(format!("unknown field {unknown:?}")));
    }
    match name {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) if name.len() <= MAX_NAME_BYTES => Ok(Some(name)),
        Some(_) => Err(ApiError::invalid(format!(
            "name must be a string of at most {MAX_NAME_BYTES} bytes"
        ))),
    }
}

/// `POST …/snapshots`: `201` with the snapshot once it is stored.
pub(super) async fn create(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    body: Incoming,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.snapshots.create").await?;
    let name = name_of(&read_text(body, app.config.limits.max_json_bytes).await?)?;
    let room = app.room_for_snapshot(tenant).await?;
    let _alone = app.trees.alone(session).await;
    let id = format!("snap_{}", uuid::Uuid::now_v7().simple());
    let json = json!({
        "id": id,
        "object": "snapshot",
        "session_id": session,
        "environment_id": env,
        "name": name,
        "created_at": crate::unix_now(),
    });
    let (store, tracker, root) = (
        app.store.clone(),
        app.tracker.clone(),
        app.workspace(session),
    );
    let (s, i) = (session.to_owned(), id.clone());
    let (snapshot, equal) = blocking("taking a snapshot", move || {
        let mut json = json;
        let at = tracker.moment(&s, &root);
        snapshot::snapshot(&store, (&s, &i), &root, |taken: &Taken| {
            json["files"] = taken.files.into();
            json["bytes"] = taken.bytes.into();
            json["new_bytes"] = taken.new_bytes.into();
            json.to_string()
        })
        .map(|(_, unwatched)| (json, Equal { at, unwatched }))
    })
    .await?
    .map_err(|e| ApiError::internal("taking a snapshot", e))?;
    // What it stored could be known only once it was taken: over the quota, it
    // is not kept.
    if let Some(room) = room.filter(|r| snapshot["new_bytes"].as_u64() > Some(r.left)) {
        let (store, s) = (app.store.clone(), session.to_owned());
        blocking("dropping a snapshot over quota", move || {
            store.delete_snapshot(&s, &id)
        })
        .await??;
        return Err(room.refusal().into());
    }
    app.moments.set(session, &id, equal);
    Ok(json_response(StatusCode::CREATED, snapshot.to_string()))
}

/// The JSON of a stored snapshot, if it is the environment's.
fn of_environment(stored: &str, env: &str) -> Option<String> {
    let snapshot: Value = serde_json::from_str(stored).ok()?;
    (snapshot["environment_id"] == env).then(|| stored.to_owned())
}

pub(super) async fn list(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    query: &Query,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.snapshots.list").await?;
    let mut items = EnvironmentItems {
        scan: &|start, ascending, limit| app.store.scan_snapshots(session, start, ascending, limit),
        get: &|id| app.store.snapshot(session, id),
        shown: &|_, stored| of_environment(stored, env),
    };
    ok(list_page(&mut items, query)?)
}

pub(super) async fn get(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.snapshots.get").await?;
    ok(find(app, (session, env), id)?.to_string())
}

/// `DELETE …/snapshots/{id}`: the snapshot goes, and every content nothing
/// else holds.
pub(super) async fn delete(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
) -> ApiResult<Response<Body>> {
    allowed(app, tenant, (session, env), "environments.snapshots.delete").await?;
    // Not while a snapshot taken now leans on it, nor while it is restored.
    let _alone = app.trees.alone(session).await;
    find(app, (session, env), id)?;
    let (store, s, i) = (app.store.clone(), session.to_owned(), id.to_owned());
    blocking("deleting a snapshot", move || store.delete_snapshot(&s, &i)).await??;
    app.moments.forget(session, Some(id));
    ok(json!({"id": id, "object": "snapshot.deleted", "deleted": true}).to_string())
}

/// `POST …/snapshots/{id}/restore`: the workspace becomes the snapshot.
pub(super) async fn restore(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    id: &str,
) -> ApiResult<Response<Body>> {
    allowed(
        app,
        tenant,
        (session, env),
        "environments.snapshots.restore",
    )
    .await?;
    let _alone = app.trees.alone(session).await;
    find(app, (session, env), id)?;
    let (store, tracker, moments) = (app.store.clone(), app.tracker.clone(), app.moments.clone());
    let (root, staging) = (app.workspace(session), app.staging.clone());
    let (s, i) = (session.to_owned(), id.to_owned());
    let restored = blocking("restoring a snapshot", move || {
        let tracked = Tracked {
            tracker: &tracker,
            moments: &moments,
        };
        snapshot::restore(&store, (&s, &i), &root, &staging, Some(tracked))
    })
    .await?
    .map_err(|e| ApiError::internal("restoring a snapshot", e))?;
    ok(json!({
        "object": "snapshot.restored",
        "snapshot_id": id,
        "written": restored.written,
        "removed": restored.removed,
        "directories_made": restored.made,
        "modes_set": restored.modes,
    })
    .to_string())
}

/// What a comparison is between: the snapshot, and the one `to` names (which
/// must be the environment's too) or the workspace now.
fn compared(app: &App, (session, env): (&str, &str), id: &str, query: &Query) -> ApiResult<()> {
    find(app, (session, env), id)?;
    match param(query, "to") {
        None | Some("current") => Ok(()),
        Some(to) => find(app, (session, env), to).map(drop),
    }
}

/// `GET …/snapshots/{id}/changes` and `GET …/snapshots/{id}/diff/{path}`.
pub(super) async fn compare(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    (id, path): (&str, Option<&str>),
    query: &Query,
) -> ApiResult<Response<Body>> {
    let operation = match path {
        None => "environments.snapshots.changes",
        Some(_) => "environments.snapshots.diff",
    };
    allowed_on(app, tenant, (session, env), (operation, path)).await?;
    // Checked under the lock, so that neither goes before it is compared.
    let _shared = app.trees.share(session).await;
    compared(app, (session, env), id, query)?;
    let caller = app.caller(tenant, session)?;
    let cap = app.config.limits.read_cap_bytes;
    let json = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            let handler = envs.reshost_api_environments_handler();
            match path {
                None => {
                    handler
                        .call_snapshot_changes(store, &caller, env, id, query)
                        .await
                }
                Some(path) => {
                    handler
                        .call_snapshot_diff(store, &caller, env, id, path, query, cap)
                        .await
                }
            }
        })
        .await?;
    ok(json)
}
