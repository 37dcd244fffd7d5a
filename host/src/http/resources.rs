//! `/v1/sessions/{sid}/resources`: every resource of a session, of any type, read
//! from the records the resource slots keep (each record is its resource object).

use super::body::{Body, ok};
use super::error::{ApiError, ApiResult};
use super::paging::{Query, list_page, param};
use crate::app::App;
use crate::app::Ask;
use crate::runtime::COLLECTIONS;
use crate::store::Store;
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

pub(super) async fn list(
    app: &App,
    tenant: &str,
    session: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
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

pub(super) async fn get(
    app: &App,
    tenant: &str,
    session: &str,
    id: &str,
) -> ApiResult<Response<Body>> {
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
