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
    S: Source<Item = String, Error = crate::store::Error>,
{
    let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let request = PageRequest::from_query(pairs, STANDARD).map_err(ApiError::invalid)?;
    let page = reshost_paging::page(source, &request).map_err(|e| match e {
        PageError::UnknownCursor(message) => ApiError::invalid(message),
        PageError::Source(e) => e.into(),
    })?;
    Ok(page.render(""))
}
