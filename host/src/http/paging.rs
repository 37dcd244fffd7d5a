//! Query strings and list pages for the host's own lists.

use super::error::{ApiError, ApiResult};
use reshost_paging::{PageError, PageRequest, STANDARD, Source};

/// Query parameters, percent-decoded, in request order.
pub type Query = Vec<(String, String)>;

pub fn parse_query(uri: &http::Uri) -> Query {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The value of a query parameter (the first, if repeated).
pub fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The list body of the page of `source` that `query` asks for.
pub fn list_page<S>(source: &mut S, query: &Query) -> ApiResult<String>
where
    S: Source<Item = String>,
    S::Error: Into<ApiError>,
{
    let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let request = PageRequest::from_query(pairs, STANDARD).map_err(ApiError::invalid)?;
    let page = reshost_paging::page(source, &request).map_err(|e| match e {
        PageError::UnknownCursor(message) => ApiError::invalid(message),
        PageError::Source(e) => e.into(),
    })?;
    Ok(page.render(""))
}

/// A store read of up to `limit` items with ids strictly past `start`.
type Scan<'a> =
    dyn Fn(Option<&str>, bool, usize) -> crate::store::Result<Vec<(String, String)>> + 'a;

/// The items of one environment of a session, stored by id (processes,
/// snapshots), as a page source: each shown as `shown` makes it from its stored
/// JSON, `None` for another environment's (left out).
pub struct EnvironmentItems<'a> {
    pub scan: &'a Scan<'a>,
    pub get: &'a (dyn Fn(&str) -> crate::store::Result<Option<String>> + 'a),
    pub shown: &'a (dyn Fn(&str, &str) -> Option<String> + 'a),
}

impl Source for EnvironmentItems<'_> {
    type Item = String;
    type Error = crate::store::Error;

    fn contains(&mut self, id: &str) -> Result<bool, Self::Error> {
        Ok((self.get)(id)?.is_some_and(|s| (self.shown)(id, &s).is_some()))
    }

    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>, Self::Error> {
        let mut found = Vec::new();
        let mut from = start.map(str::to_owned);
        while found.len() < limit {
            let batch = (self.scan)(from.as_deref(), ascending, limit)?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            from = Some(last.clone());
            let full = batch.len() == limit;
            found.extend(
                batch
                    .into_iter()
                    .filter_map(|(id, stored)| Some((id.clone(), (self.shown)(&id, &stored)?))),
            );
            if !full {
                break;
            }
        }
        found.truncate(limit);
        Ok(found)
    }
}
