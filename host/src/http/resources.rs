//! `/v1/sessions/{sid}/resources`: every resource of a session, of any type, read
//! from the records the resource slots keep (each record is its resource object).

use super::body::{Body, ok};
use super::error::{ApiError, ApiResult};
use super::paging::{Query, list_page, param};
use super::policy::Ask;
use crate::app::App;
use crate::store::Store;
use http::Response;
use reshost_paging::Source;

/// API type name → the collection its slot keeps.
const TYPES: &[(&str, &str)] = &[
    ("environment", "environment"),
    ("file", "file"),
    ("terminal", "terminal"),
];

struct SessionResources<'a> {
    store: &'a Store,
    session: &'a str,
    collection: Option<&'static str>,
    failed: Option<redb::Error>,
}

impl SessionResources<'_> {
    fn keep<T: Default>(&mut self, r: Result<T, redb::Error>) -> T {
        r.unwrap_or_else(|e| {
            self.failed = Some(e);
            T::default()
        })
    }
}

impl Source for SessionResources<'_> {
    type Item = String;
    fn contains(&mut self, id: &str) -> bool {
        let found = self.store.resource(self.session, id);
        let found = self.keep(found);
        found.is_some_and(|(c, _)| self.collection.is_none_or(|want| want == c))
    }
    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Vec<(String, String)> {
        let entries = match self.collection {
            Some(c) => self
                .store
                .scan_records(self.session, c, start, ascending, limit),
            None => self
                .store
                .scan_resources(self.session, start, ascending, limit),
        };
        self.keep(entries)
    }
}

pub async fn list(
    app: &App,
    tenant: &str,
    session: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let collection = match param(query, "type") {
        None => None,
        Some(t) => Some(
            TYPES
                .iter()
                .find(|(name, _)| *name == t)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "type must be environment, terminal or file, not {t:?}"
                    ))
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
        failed: None,
    };
    let page = list_page(&mut source, query);
    if let Some(e) = source.failed {
        return Err(e.into());
    }
    ok(page?)
}

pub async fn get(app: &App, tenant: &str, session: &str, id: &str) -> ApiResult<Response<Body>> {
    app.authorize(
        tenant,
        session,
        Ask::new("resources.get", Some(session), Some(id)),
    )
    .await?;
    match app.store.resource(session, id)? {
        Some((_, value)) => ok(value),
        None => Err(ApiError::not_found(format!("no such resource: {id}"))),
    }
}
