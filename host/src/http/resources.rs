//! `/v1/sessions/{sid}/resources`: every resource of a session, of any type, read
//! from the records the resource slots keep (each record is its resource object).

use super::V1;
use super::body::{Body, ok};
use super::error::{ApiError, ApiResult};
use super::paging::{Query, list_page, param};
use crate::app::App;
use crate::app::Ask;
use crate::runtime::COLLECTIONS;
use crate::store::Store;
use http::Method;
use http::Response;
use reshost_paging::Source;

struct SessionResources<'a> {
    store: &'a Store,
    session: &'a str,
    collection: Option<&'static str>,
}

impl Source for SessionResources<'_> {
    type Item = String;
    type Error = crate::store::Error;
    fn contains(&mut self, id: &str) -> Result<bool, crate::store::Error> {
        let found = self.store.resource(self.session, id)?;
        Ok(found.is_some_and(|(c, _)| self.collection.is_none_or(|want| want == c)))
    }
    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>, crate::store::Error> {
        match self.collection {
            Some(c) => self
                .store
                .scan_records(self.session, c, start, ascending, limit),
            None => self
                .store
                .scan_resources(self.session, start, ascending, limit),
        }
    }
}

async fn list(app: &App, tenant: &str, session: &str, query: &Query) -> ApiResult<Response<Body>> {
    // Each resource type is the records collection its slot keeps.
    let collection = match param(query, "type") {
        None => None,
        Some(t) => Some(
            COLLECTIONS
                .iter()
                .copied()
                .find(|c| *c == t)
                .ok_or_else(|| {
                    ApiError::invalid(format!("type must be one of {COLLECTIONS:?}, not {t:?}"))
                })?,
        ),
    };
    app.authorize(
        tenant,
        session,
        Ask::new("resources.list", Some(session), None),
    )
    .await?;
    let mut source = SessionResources {
        store: &app.store,
        session,
        collection,
    };
    ok(app.terminals.overlay(list_page(&mut source, query)?))
}

async fn get(app: &App, tenant: &str, session: &str, id: &str) -> ApiResult<Response<Body>> {
    app.authorize(
        tenant,
        session,
        Ask::new("resources.get", Some(session), Some(id)),
    )
    .await?;
    match app.store.resource(session, id)? {
        Some((_, value)) => ok(app.terminals.overlay(value)),
        None => Err(ApiError::not_found(format!("no such resource: {id}"))),
    }
}

/// `/v1/sessions/{sid}/resources…`: every resource, or one type's routes.
pub async fn route(req: V1<'_>, session: &str, path: &[&str]) -> ApiResult<Response<Body>> {
    let (app, tenant) = (req.app, req.tenant);
    match (path, &req.method) {
        ([], &Method::GET) => list(app, tenant, session, &req.query).await,
        ([], _) => Err(ApiError::method_not_allowed("GET")),
        (["files", rest @ ..], _) => super::files::route(req, session, rest).await,
        (["terminals", rest @ ..], _) => super::terminals::route(req, session, rest).await,
        (["environments", rest @ ..], _) => super::environments::route(req, session, rest).await,
        ([rid], &Method::GET) => get(app, tenant, session, rid).await,
        ([_], _) => Err(ApiError::method_not_allowed("GET")),
        _ => Err(super::no_route()),
    }
}
