//! `/v1/sessions/{sid}/resources/environments`, served by the `environments` slot.

use super::answer::answer;
use super::body::{Body, ok, read_text, string_field};
use super::error::ApiResult;
use super::paging::Query;
use super::raw;
use crate::app::App;
use crate::app::Ask;
use crate::bindings::environments_handler::{ReadAnswer, ShellStep};
use crate::runtime::EnvironmentsWorld;
use http::Response;
use hyper::body::Incoming;

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

/// `GET …/environments/{env}/filesystem/{path}`: a listing, a file's content, or
/// (`?format=raw`) its bytes streamed from the workspace.
pub(super) async fn read(
    app: &App,
    tenant: &str,
    session: &str,
    (env, path): (&str, &str),
    query: &Query,
) -> ApiResult<Response<Body>> {
    let ask = Ask {
        path: Some(path),
        ..Ask::new("environments.read", Some(session), Some(env))
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
/// slot busy); the component shapes the answer from the outcome.
pub(super) async fn shell(
    app: &App,
    tenant: &str,
    session: &str,
    env: &str,
    body: Incoming,
) -> ApiResult<Response<Body>> {
    // Another tenant's session is unknown before its body is read; the body
    // comes before the policy, which is told the command.
    app.caller(tenant, session)?;
    let body = read_text(body, app.config.limits.max_json_bytes).await?;
    let command = string_field(&body, "command");
    let ask = Ask {
        command: command.as_deref(),
        ..Ask::new("environments.shell", Some(session), Some(env))
    };
    let caller = app.authorize(tenant, session, ask).await?;
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
    let outcome = app.run_command(&caller, plan.command).await?;
    let json = app
        .call_slot::<EnvironmentsWorld, _>(&caller, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_shell_result(
                    store,
                    &caller,
                    env,
                    &plan.context,
                    outcome.as_ref().map_err(String::as_str),
                )
                .await
        })
        .await?;
    ok(json)
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
