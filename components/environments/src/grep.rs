//! `GET …/grep`: the lines of files under a scope that match a literal or a
//! regular expression, with context. The host searches (ripgrep's walker and
//! searcher, within its own limits); the query and the answer are decided here.

use crate::filters::{Filters, param};
use reshost_guest::invalid_input;
use reshost_guest::tree::{GrepMatch, GrepSpec};
use reshost_guest::types::Error;
use serde_json::{Value, json};

/// Matching lines returned when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;

fn flag(query: &[(String, String)], name: &str, default: bool) -> Result<bool, Error> {
    match param(query, name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(invalid_input(format!("{name} must be true or false"))),
    }
}

/// A non-negative integer parameter of at least `min`; `None` when absent.
fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    query: &[(String, String)],
    name: &str,
    min: T,
) -> Result<Option<T>, Error> {
    let Some(value) = param(query, name) else {
        return Ok(None);
    };
    value
        .parse::<T>()
        .ok()
        .filter(|n| *n >= min)
        .map(Some)
        .ok_or_else(|| invalid_input(format!("{name} must be an integer of at least {min}")))
}

fn shown(m: GrepMatch) -> Value {
    json!({
        "path": m.path,
        "line": m.line,
        "column": m.column,
        "text": m.text,
        "before": m.before,
        "after": m.after,
    })
}

pub fn grep(query: &[(String, String)]) -> Result<String, Error> {
    let pattern = param(query, "pattern").unwrap_or_default();
    if pattern.is_empty() {
        return Err(invalid_input("pattern must not be empty"));
    }
    let regex = flag(query, "regex", false)?;
    let case_sensitive = flag(query, "case_sensitive", true)?;
    let no_ignore = flag(query, "no_ignore", false)?;
    let hidden = flag(query, "hidden", false)?;
    // The host holds each of these to its own limit: asking for more is no error.
    let context = number(query, "context", 0u32)?.unwrap_or(0);
    let limit = number(query, "limit", 1u32)?.unwrap_or(DEFAULT_LIMIT);
    let max_file_bytes = number(query, "max_bytes_per_file", 1u64)?.unwrap_or(u64::MAX);
    let filters = Filters::parse(query)?;

    let spec = GrepSpec {
        scope: filters.real,
        shown_scope: filters.scope,
        pattern: pattern.to_owned(),
        regex,
        case_sensitive,
        include: filters.include.patterns,
        exclude: filters.exclude.patterns,
        ignore_rules: !no_ignore,
        hidden,
        context,
        max_matches: limit,
        max_file_bytes,
        max_visited: u32::MAX,
    };
    let found = reshost_guest::tree::grep(&spec).map_err(invalid_input)?;
    let data: Vec<Value> = found.matches.into_iter().map(shown).collect();
    Ok(json!({
        "object": "list",
        "truncated": found.truncated,
        "data": data,
        "has_more": found.has_more,
    })
    .to_string())
}
