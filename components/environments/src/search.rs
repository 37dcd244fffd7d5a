//! `GET …/search`: files (never directories) whose environment-relative path
//! contains `q`, case-insensitively, filtered by include and exclude globs.

use crate::fs::io_error;
use crate::paths::{guest, normalize, resolve};
use globset::{Glob, GlobSet, GlobSetBuilder};
use reshost_guest::invalid_input;
use reshost_guest::types::Error;
use serde_json::{Value, json};

/// Largest `limit`, and the default.
const MAX_RESULTS: usize = 500;
/// Most directory entries one search visits before it stops (`truncated`).
const MAX_VISITED: u32 = 1_000_000;

/// Splits a comma-separated glob list; a comma inside `{…}` does not split.
fn split_globs(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn globs(param: &str, list: Option<&str>) -> Result<Option<GlobSet>, Error> {
    let Some(list) = list else { return Ok(None) };
    let mut set = GlobSetBuilder::new();
    let mut any = false;
    for pattern in split_globs(list) {
        let glob = Glob::new(pattern)
            .map_err(|e| invalid_input(format!("{param}: bad glob {pattern:?}: {e}")))?;
        set.add(glob);
        any = true;
    }
    if !any {
        return Ok(None);
    }
    set.build()
        .map(Some)
        .map_err(|e| invalid_input(format!("{param}: {e}")))
}

/// The `include` and `exclude` glob lists of a query, each glob checked.
pub fn glob_lists(query: &[(String, String)]) -> Result<(Vec<String>, Vec<String>), Error> {
    let list = |name: &str| -> Result<Vec<String>, Error> {
        let value = query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        globs(name, value)?;
        Ok(value.map_or_else(Vec::new, |v| {
            split_globs(v).into_iter().map(str::to_owned).collect()
        }))
    };
    Ok((list("include")?, list("exclude")?))
}

pub fn search(query: &[(String, String)]) -> Result<String, Error> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let q = param("q").unwrap_or_default();
    if q.trim().is_empty() {
        return Err(invalid_input("q must hold a non-whitespace character"));
    }
    let needle = q.to_lowercase();
    let limit = match param("limit") {
        None => MAX_RESULTS,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                invalid_input(format!("limit must be an integer from 1 to {MAX_RESULTS}"))
            })?,
    };
    let include = globs("include", param("include"))?;
    let exclude = globs("exclude", param("exclude"))?;
    let scope = normalize(param("path").unwrap_or_default())?;
    let real = resolve(&scope, true)?;
    let meta = std::fs::metadata(guest(&real)).map_err(|e| io_error(e, &scope))?;
    if !meta.is_dir() {
        return Err(invalid_input(format!("path {scope} is not a directory")));
    }

    // The host walks the tree natively (never following symlinks) and keeps the
    // paths containing `q`; the globs and the page are decided here.
    // Through a linked scope the shown paths differ from the real ones: then the
    // host cannot prefilter by `q`.
    let prefilter = if scope == real { needle.as_str() } else { "" };
    let found = reshost_guest::tree::find(&real, prefilter, MAX_VISITED);
    let prefix_len = real.len();
    let mut matches: Vec<(String, String)> = Vec::new();
    for file in found.files {
        // Report paths under the scope as the client named it (it may be a link).
        let shown = if scope == real {
            file.path
        } else {
            let rest = file.path[prefix_len..].trim_start_matches('/');
            if scope.is_empty() {
                rest.to_owned()
            } else {
                format!("{scope}/{rest}")
            }
        };
        if !shown.to_lowercase().contains(&needle)
            || include.as_ref().is_some_and(|g| !g.is_match(&shown))
            || exclude.as_ref().is_some_and(|g| g.is_match(&shown))
        {
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
