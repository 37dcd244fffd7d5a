//! The common shape of a resource request: authorize it, then let the slot's
//! component answer with a JSON body.

use super::body::{Body, ok};
use super::error::ApiResult;
use crate::app::{App, Ask};
use crate::bindings::types::{Caller, Error as ComponentError};
use crate::runtime::{Guest, ResourceWorld};
use http::Response;

/// Authorizes `ask` on the tenant's `session`, then lets world `W`'s slot
/// answer through `f` with a JSON body.
pub async fn answer<W: ResourceWorld>(
    app: &App,
    tenant: &str,
    session: &str,
    ask: Ask<'_>,
    f: impl AsyncFnOnce(
        &W::Instance,
        &mut wasmtime::Store<Guest>,
        &Caller,
    ) -> wasmtime::Result<Result<String, ComponentError>>,
) -> ApiResult<Response<Body>> {
    let caller = app.authorize(tenant, session, ask).await?;
    let json = app
        .call_slot::<W, _>(&caller, async |instance, store| {
            f(instance, store, &caller).await
        })
        .await?;
    ok(json)
}
