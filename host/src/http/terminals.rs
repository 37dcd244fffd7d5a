//! `/v1/sessions/{sid}/resources/terminals`, served by the `terminals` slot; the
//! host adds each terminal's live state to what the component answers.

use super::body::{Body, json_response, read_text, string_field};
use super::error::{ApiError, ApiResult, Code};
use super::paging::Query;
use crate::app::App;
use crate::app::Ask;
use crate::cluster::{Owner, Peer};
use crate::runtime::TerminalsWorld;
use http::{Response, StatusCode};
use hyper::body::Incoming;

fn answer(app: &App, status: StatusCode, json: String) -> ApiResult<Response<Body>> {
    Ok(json_response(status, app.terminals.overlay(json)))
}

pub(super) async fn list(
    app: &App,
    tenant: &str,
    session: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let caller = app
        .authorize(
            tenant,
            session,
            Ask::new("terminals.list", Some(session), None),
        )
        .await?;
    let json = app
        .call_slot::<TerminalsWorld, _>(&caller, async |t, store| {
            t.reshost_api_terminals_handler()
                .call_list(store, &caller, query)
                .await
        })
        .await?;
    answer(app, StatusCode::OK, json)
}

pub(super) async fn launch(
    app: &App,
    tenant: &str,
    session: &str,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    // Another tenant's session is unknown before its body is read; the body
    // comes before the policy, which is told the terminal's name.
    app.caller(tenant, session)?;
    let body = read_text(body, app.config.limits.max_json_bytes).await?;
    let name = string_field(&body, "terminal");
    let ask = Ask {
        terminal: name.as_deref(),
        ..Ask::new("terminals.launch", Some(session), None)
    };
    let caller = app.authorize(tenant, session, ask).await?;
    app.room_for_terminal(tenant)?;
    let declared = app
        .store
        .session(tenant, session)?
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|s| s["agent"].get("terminals").cloned())
        .filter(|t| t.is_object())
        .unwrap_or_else(|| serde_json::json!({}))
        .to_string();
    let launched = app
        .call_slot::<TerminalsWorld, _>(&caller, async |t, store| {
            t.reshost_api_terminals_handler()
                .call_launch(store, &caller, &body, &declared)
                .await
        })
        .await?;
    let status = if launched.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    answer(app, status, launched.json)
}

/// The operations on one terminal.
#[derive(Clone, Copy)]
pub(super) enum One {
    Get,
    Close,
}

pub(super) async fn one(
    app: &App,
    tenant: &str,
    session: &str,
    id: &str,
    op: One,
) -> ApiResult<Response<Body>> {
    let operation = match op {
        One::Get => "terminals.get",
        One::Close => "terminals.close",
    };
    let caller = app
        .authorize(
            tenant,
            session,
            Ask::new(operation, Some(session), Some(id)),
        )
        .await?;
    let json = app
        .call_slot::<TerminalsWorld, _>(&caller, async |t, store| {
            let handler = t.reshost_api_terminals_handler();
            match op {
                One::Get => handler.call_get(store, &caller, id).await,
                One::Close => handler.call_close(store, &caller, id).await,
            }
        })
        .await?;
    answer(app, StatusCode::OK, json)
}

pub(super) async fn transfer(
    app: &App,
    tenant: &str,
    (session, id): (&str, &str),
    headers: &http::HeaderMap,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let caller = app
        .authorize(
            tenant,
            session,
            Ask::new("terminals.transfer", Some(session), Some(id)),
        )
        .await?;
    let body = read_text(body, app.config.limits.max_json_bytes).await?;
    let target = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| Some(b.get("target_session_id")?.as_str()?.to_owned()));
    if let Some(target) = target
        && let Owner::Peer(peer) = app.cluster.owner(&target)
    {
        return Err(across_runners(app, tenant, (session, id), (&target, peer), headers).await);
    }
    let json = app
        .call_slot::<TerminalsWorld, _>(&caller, async |t, store| {
            t.reshost_api_terminals_handler()
                .call_transfer(store, &caller, id, &body)
                .await
        })
        .await?;
    answer(app, StatusCode::OK, json)
}

/// Why a terminal does not move to a session of another runner: its process
/// runs on this one. Unknown terminals and targets are `404` as anywhere.
async fn across_runners(
    app: &App,
    tenant: &str,
    (session, id): (&str, &str),
    (target, peer): (&str, &Peer),
    headers: &http::HeaderMap,
) -> ApiError {
    let found = async {
        one(app, tenant, session, id, One::Get).await?;
        let authorization = super::sessions::authorization(headers)?;
        Ok::<_, ApiError>(
            app.cluster
                .peer_has_session(peer, target, authorization)
                .await?,
        )
    };
    match found.await {
        Err(e) => e,
        Ok(false) => ApiError::not_found(format!("no such session: {target}")),
        Ok(true) => ApiError::new(
            Code::CrossRunner,
            format!(
                "session {target} is on runner {}, this is runner {}: a terminal's process runs where it started and cannot move between runners",
                peer.name, app.cluster.runner
            ),
        ),
    }
}
