//! `GET …/search`: files (never directories) whose environment-relative path
//! contains `q`, case-insensitively, filtered by include and exclude globs.

use crate::filters::{Filters, param};
use reshost_guest::invalid_input;
use reshost_guest::types::Error;
use serde_json::{Value, json};

/// Largest `limit`, and the default.
const MAX_RESULTS: usize = 500;
/// Most directory entries one search visits before it stops (`truncated`).
const MAX_VISITED: u32 = 1_000_000;

pub fn search(query: &[(String, String)]) -> Result<String, Error> {
    let q = param(query, "q").unwrap_or_default();
    if q.trim().is_empty() {
        return Err(invalid_input("q must hold a non-whitespace character"));
    }
    let needle = q.to_lowercase();
    let limit = match param(query, "limit") {
        None => MAX_RESULTS,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                invalid_input(format!("limit must be an integer from 1 to {MAX_RESULTS}"))
            })?,
    };
    let filters = Filters::parse(query)?;

    // The host walks the tree natively (never following symlinks) and keeps the
    // paths containing `q`; the globs and the page are decided here.
    // Through a linked scope the shown paths differ from the real ones: then the
    // host cannot prefilter by `q`.
    let prefilter = if filters.scope == filters.real {
        needle.as_str()
    } else {
        ""
    };
    let found = reshost_guest::tree::find(&filters.real, prefilter, MAX_VISITED);
    let mut matches: Vec<(String, String)> = Vec::new();
    for file in found.files {
        let shown = filters.shown(file.path);
        if !shown.to_lowercase().contains(&needle) || !filters.keeps(&shown) {
            continue;
        }
        let entry = json!({
            "id": shown,
            "object": "session.environment.filesystem.entry",
            "name": shown.rsplit('/').next().unwrap_or(&shown),
            "path": shown,
            "type": "file",
            "bytes": file.bytes,
            "modified_at": file.modified_at,
        });
        matches.push((shown, entry.to_string()));
    }
    let truncated = found.truncated;
    matches.sort_by(|a, b| a.0.cmp(&b.0));
    let has_more = matches.len() > limit;
    matches.truncate(limit);
    let page = reshost_paging::Page {
        items: matches,
        has_more,
    };
    Ok(page.render(&format!("\"truncated\":{},", Value::from(truncated))))
}
