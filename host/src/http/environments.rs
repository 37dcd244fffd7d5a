//! `/v1/sessions/{sid}/resources/environments`, served by the `environments` slot.

use super::body::Body;
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
    let ask = Ask::new("environments.list", Some(session), None);
    let slot = &app.runtime.environments;
    app.answer(
        tenant,
        session,
        ask,
        slot,
        COLLECTION,
        async |envs, store, caller| {
            envs.reshost_api_environments_handler()
                .call_list(store, caller, query)
                .await
        },
    )
    .await
}

pub async fn get(app: &App, tenant: &str, session: &str, id: &str) -> ApiResult<Response<Body>> {
    let ask = Ask::new("environments.get", Some(session), Some(id));
    let slot = &app.runtime.environments;
    app.answer(
        tenant,
        session,
        ask,
        slot,
        COLLECTION,
        async |envs, store, caller| {
            envs.reshost_api_environments_handler()
                .call_get(store, caller, id)
                .await
        },
    )
    .await
}
