//! What every reshost component shares: the bindings of the host's capabilities
//! (components map their imports onto these with wit-bindgen's `with`), error
//! constructors, and pagination over the slot's records.

wit_bindgen::generate!({
    path: "../../wit",
    world: "capabilities",
});

pub use reshost::api::{blobs, exec, pty, records, snapshots, tree, types, watch};
use reshost_paging::{Limits, PageError, PageRequest, Source};
use types::{Error, ErrorCode};

/// An error with the given code and message.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Error {
    Error {
        code,
        message: message.into(),
    }
}

pub fn invalid_input(message: impl Into<String>) -> Error {
    error(ErrorCode::InvalidInput, message)
}

pub fn not_found(message: impl Into<String>) -> Error {
    error(ErrorCode::NotFound, message)
}

/// The slot's records as a pagination source: ids are keys, items the stored JSON.
pub struct Records;

impl Source for Records {
    type Item = String;
    type Error = std::convert::Infallible;
    fn contains(&mut self, id: &str) -> Result<bool, Self::Error> {
        Ok(records::get(id).is_some())
    }
    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, String)>, Self::Error> {
        let direction = if ascending {
            records::Direction::Ascending
        } else {
            records::Direction::Descending
        };
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        Ok(records::scan(start, direction, limit)
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect())
    }
}

/// The list body of the page of records that `query` asks for.
pub fn list_records(query: &[(String, String)], limits: Limits) -> Result<String, Error> {
    let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let request = PageRequest::from_query(pairs, limits).map_err(invalid_input)?;
    let page = reshost_paging::page(&mut Records, &request).map_err(|e| match e {
        PageError::UnknownCursor(message) => invalid_input(message),
        PageError::Source(never) => match never {},
    })?;
    Ok(page.render(""))
}

/// Seconds since the Unix epoch, by the host's wall clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
