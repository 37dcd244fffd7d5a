//! `/v1/sessions/{sid}/resources/environments`, served by the `environments` slot.

use super::body::{Body, ok};
use super::error::ApiResult;
use super::paging::Query;
use super::policy::Ask;
use crate::app::App;
use http::Response;

const COLLECTION: &str = "environment";

pub async fn list(
    app: &App,
    tenant: &str,
    session: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let caller = app
        .authorize(
            tenant,
            session,
            Ask::new("environments.list", Some(session), None),
        )
        .await?;
    let slot = &app.runtime.environments;
    let json = app
        .call_slot(slot, &caller, COLLECTION, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_list(store, &caller, query)
                .await
        })
        .await?;
    ok(json)
}

pub async fn get(app: &App, tenant: &str, session: &str, id: &str) -> ApiResult<Response<Body>> {
    let caller = app
        .authorize(
            tenant,
            session,
            Ask::new("environments.get", Some(session), Some(id)),
        )
        .await?;
    let slot = &app.runtime.environments;
    let json = app
        .call_slot(slot, &caller, COLLECTION, async |envs, store| {
            envs.reshost_api_environments_handler()
                .call_get(store, &caller, id)
                .await
        })
        .await?;
    ok(json)
}
