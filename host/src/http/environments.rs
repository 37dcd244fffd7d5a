//! `/v1/sessions/{sid}/resources/environments`, served by the `environments` slot.

use super::answer::answer;
use super::body::{Body, ok, read_text, string_field};
use super::error::{ApiError, ApiResult};
use super::paging::{Query, param};
use super::raw;
use super::request_id;
use super::shell_stream::{self, ShellCall};
use super::sse;
use crate::app::App;
use crate::app::Ask;
use crate::bindings::environments_handler::{ReadAnswer, ShellStep};
use crate::bindings::exec::Outcome;
use crate::bindings::types::Caller;
use crate::runtime::EnvironmentsWorld;
use http::{HeaderMap, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) async fn list(
    app: &App,
    tenant: &str,
    session: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("environments.list", Some(session), None);
    answer::<EnvironmentsWorld>(app, tenant, session, ask, async |envs, store, caller| {
        envs.reshost_api_environments_handler()
            .call_list(store, caller, query)
            .await
    })
    .await
}

pub(super) async fn get(
    app: &App,
    tenant: &str,
    session: &str,
    id: &str,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("environments.get", Some(session), Some(id));
    answer::<EnvironmentsWorld>(app, tenant, session, ask, async |envs, store, caller| {
        envs.reshost_api_environments_handler()
            .call_get(store, caller, id)
            .await
    })
    .await
}

/// `GET …/environments/{env}/filesystem/{path}`: a listing, a file's content,
/// (`?format=raw`) its bytes streamed from the workspace, or (`?format=tar`,
/// `tar.gz`) a directory's archive.
pub(super) async fn read(
    app: &App,
    tenant: &str,
    session: &str,
    (env, path): (&str, &str),
    query: &Query,
) -> ApiResult<Response<Body>> {
    let archive = param(query, "format").is_some_and(|f| crate::archive::FORMATS.contains(&f));
    let operation = match archive {
        true => "environments.archive",
        false => "environments.read",
    };
    let ask = Ask {
        path: Some(path),
        ..Ask::new(operation, Some(session), Some(env))
    };
    let caller = app.authorize(tenant, session, ask).await?;
    let cap = app.config.limits.read_cap_bytes;
    let answer = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_read(store, &caller, env, path, query, cap)
                .await
        })
        .await?;
    match answer {
        ReadAnswer::Json(json) => ok(json),
        ReadAnswer::Raw(file) => {
            raw::respond(&app.workspace(session), &file.path, &file.content_type).await
        }
        // Only what the policy was asked about as an archive is packed.
        ReadAnswer::Archive(spec) if archive => {
            super::archive::download(&app.workspace(session), spec).await
        }
        ReadAnswer::Archive(_) => Err(ApiError::internal(
            "reading a path",
            "the component answered an archive to a read of another format",
        )),
    }
}

/// The two ways a request body changes a file.
#[derive(Clone, Copy)]
pub(super) enum Change {
    /// `PUT`: replace the whole file.
    Write,
    /// `PATCH`: replace text in it.
    Edit,
}

/// `PUT` or `PATCH …/environments/{env}/filesystem/{path}`.
pub(super) async fn change(
    app: &App,
    tenant: &str,
    session: &str,
    (env, path): (&str, &str),
    body: Incoming,
    change: Change,
) -> ApiResult<Response<Body>> {
    let operation = match change {
        Change::Write => "environments.write",
        Change::Edit => "environments.edit",
    };
    let ask = Ask {
        path: Some(path),
        ..Ask::new(operation, Some(session), Some(env))
    };
    let caller = app.authorize(tenant, session, ask).await?;
    // Read only once the request is allowed.
    let body = read_text(body, app.config.limits.max_write_bytes).await?;
    // What the file becomes is at most the body's size (a write's content, an
    // edit's new text), so the body bounds what the write adds.
    app.room_for_write(tenant, body.len() as u64).await?;
    let json = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            let handler = envs.reshost_api_environments_handler();
            match change {
                Change::Write => handler.call_write(store, &caller, env, path, &body).await,
                Change::Edit => handler.call_edit(store, &caller, env, path, &body).await,
            }
        })
        .await?;
    ok(json)
}

pub(super) async fn remove(
    app: &App,
    tenant: &str,
    session: &str,
    (env, path): (&str, &str),
    query: &Query,
) -> ApiResult<Response<Body>> {
    let ask = Ask {
        path: Some(path),
        ..Ask::new("environments.delete", Some(session), Some(env))
    };
    answer::<EnvironmentsWorld>(app, tenant, session, ask, async |envs, store, caller| {
        envs.reshost_api_environments_handler()
            .call_remove(store, caller, env, path, query)
            .await
    })
    .await
}

/// `POST …/environments/{env}/shell`: the component checks the body and plans the
/// command; the host runs it with no instance held (a long command keeps no pool
/// slot busy); the component shapes the answer from the outcome. Streamed (the
/// plan says so, or the client accepts only `text/event-stream`), the output
/// goes out as it comes and the answer follows as the last event.
pub(super) async fn shell(
    app: &Arc<App>,
    tenant: &str,
    session: &str,
    env: &str,
    headers: &HeaderMap,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    let (caller, body) =
        command_body(app, tenant, (session, env), body, "environments.shell").await?;
    let step = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_shell(store, &caller, env, &body)
                .await
        })
        .await?;
    let plan = match step {
        ShellStep::Answer(json) => return ok(json),
        ShellStep::Run(plan) => plan,
    };
    let call = ShellCall {
        app: app.clone(),
        caller,
        env: env.to_owned(),
        context: plan.context,
        kill_on_disconnect: plan.kill_on_disconnect,
        request_id: request_id::of(headers).to_str().unwrap_or("-").to_owned(),
    };
    let (tap, pieces) = match plan.stream || sse::wanted(headers) {
        true => {
            let (tap, pieces) = mpsc::channel(shell_stream::TAP_PIECES);
            (Some(tap), Some(pieces))
        }
        false => (None, None),
    };
    let launched = match app.launch_command(&call.caller, &plan.command, tap)? {
        Ok(launched) => launched,
        Err(refusal) => return ok(shell_answer(&call, Err(refusal)).await?),
    };
    match pieces {
        Some(pieces) => Ok(shell_stream::respond(call, launched, pieces)),
        None => ok(shell_answer(&call, Ok(launched.finish().await?)).await?),
    }
}

/// The caller and JSON body of a request that runs a command (`shell`, a
/// process), once the policy allowed `operation`. Another tenant's session is
/// unknown before its body is read; the body comes before the policy, which is
/// told the command.
pub(super) async fn command_body(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    body: Incoming,
    operation: &'static str,
) -> ApiResult<(Caller, String)> {
    app.caller(tenant, session)?;
    let body = read_text(body, app.config.limits.max_json_bytes).await?;
    let command = string_field(&body, "command");
    let ask = Ask {
        command: command.as_deref(),
        ..Ask::new(operation, Some(session), Some(env))
    };
    Ok((app.authorize(tenant, session, ask).await?, body))
}

/// The component's answer to a planned command's outcome, or to the host's
/// refusal to run it.
pub(super) async fn shell_answer(
    call: &ShellCall,
    outcome: Result<Outcome, String>,
) -> ApiResult<String> {
    let outcome = outcome.as_ref().map_err(String::as_str);
    let json = call
        .app
        .call_slot::<EnvironmentsWorld, _>(&call.caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_shell_result(store, &call.caller, &call.env, &call.context, outcome)
                .await
        })
        .await?;
    Ok(json)
}

/// Checks that the session is the tenant's, the policy allows `operation` and
/// the environment exists (the component says which do).
pub(super) async fn allowed(
    app: &App,
    tenant: &str,
    place: (&str, &str),
    operation: &'static str,
) -> ApiResult<()> {
    allowed_on(app, tenant, place, (operation, None)).await
}

/// [`allowed`] for an operation on `path`, which the policy is told.
pub(super) async fn allowed_on(
    app: &App,
    tenant: &str,
    (session, env): (&str, &str),
    (operation, path): (&'static str, Option<&str>),
) -> ApiResult<()> {
    let ask = Ask {
        path,
        ..Ask::new(operation, Some(session), Some(env))
    };
    let caller = app.authorize(tenant, session, ask).await?;
    app.call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
        envs.reshost_api_environments_handler()
            .call_get(store, &caller, env)
            .await
    })
    .await?;
    Ok(())
}

/// What a search looks at.
#[derive(Clone, Copy)]
pub enum Lookup {
    /// `GET …/search`: file paths.
    Paths,
    /// `GET …/grep`: file contents.
    Contents,
}

/// `GET …/environments/{env}/search` and `…/grep`.
pub(super) async fn search(
    app: &App,
    tenant: &str,
    session: &str,
    env: &str,
    query: &Query,
    lookup: Lookup,
) -> ApiResult<Response<Body>> {
    // No `path` searches the root: the policy is told so, not left to guess.
    let scope = query
        .iter()
        .find(|(k, _)| k == "path")
        .map_or("", |(_, v)| v.as_str());
    let operation = match lookup {
        Lookup::Paths => "environments.search",
        Lookup::Contents => "environments.grep",
    };
    let ask = Ask {
        path: Some(scope),
        ..Ask::new(operation, Some(session), Some(env))
    };
    answer::<EnvironmentsWorld>(app, tenant, session, ask, async |envs, store, caller| {
        let handler = envs.reshost_api_environments_handler();
        match lookup {
            Lookup::Paths => handler.call_search(store, caller, env, query).await,
            Lookup::Contents => handler.call_grep(store, caller, env, query).await,
        }
    })
    .await
}

/// `GET …/environments/{env}/changes`.
pub(super) async fn changes(
    app: &App,
    tenant: &str,
    session: &str,
    env: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let ask = Ask::new("environments.changes", Some(session), Some(env));
    answer::<EnvironmentsWorld>(app, tenant, session, ask, async |envs, store, caller| {
        envs.reshost_api_environments_handler()
            .call_changes(store, caller, env, query)
            .await
    })
    .await
}

/// `GET …/environments/{env}/diff/{path}`.
pub(super) async fn diff(
    app: &App,
    tenant: &str,
    session: &str,
    env: &str,
    path: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let ask = Ask {
        path: Some(path),
        ..Ask::new("environments.diff", Some(session), Some(env))
    };
    let cap = app.config.limits.read_cap_bytes;
    answer::<EnvironmentsWorld>(app, tenant, session, ask, async |envs, store, caller| {
        envs.reshost_api_environments_handler()
            .call_diff(store, caller, env, path, query, cap)
            .await
    })
    .await
}
