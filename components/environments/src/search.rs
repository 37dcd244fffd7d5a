//! `GET …/search`: files (never directories) whose environment-relative path
//! contains `q`, case-insensitively, filtered by include and exclude globs.

use crate::fs::{entry, io_error};
use crate::paths::{guest, normalize, resolve};
use globset::{Glob, GlobSet, GlobSetBuilder};
use reshost_guest::invalid_input;
use reshost_guest::types::Error;
use serde_json::Value;

/// Largest `limit`, and the default.
const MAX_RESULTS: usize = 500;
/// Most directory entries one search visits before it stops (`truncated`).
const MAX_VISITED: usize = 1_000_000;

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

    // Depth-first over the scope without following symlinks, so the walk never
    // leaves the scope or loops. Paths are reported under the scope as asked.
    let mut matches: Vec<(String, String)> = Vec::new();
    let mut truncated = false;
    let mut visited = 0usize;
    let mut dirs = vec![(real, scope)];
    while let Some((real_dir, shown_dir)) = dirs.pop() {
        let Ok(items) = std::fs::read_dir(guest(&real_dir)) else {
            continue;
        };
        for item in items.flatten() {
            visited += 1;
            if visited > MAX_VISITED {
                truncated = true;
                break;
            }
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            let join = |base: &str| {
                if base.is_empty() {
                    name.clone()
                } else {
                    format!("{base}/{name}")
                }
            };
            let (real_path, shown) = (join(&real_dir), join(&shown_dir));
            let Ok(kind) = item.file_type() else { continue };
            if kind.is_dir() {
                dirs.push((real_path, shown));
                continue;
            }
            if !kind.is_file()
                || !shown.to_lowercase().contains(&needle)
                || include.as_ref().is_some_and(|g| !g.is_match(&shown))
                || exclude.as_ref().is_some_and(|g| g.is_match(&shown))
            {
                continue;
            }
            if let Ok(meta) = item.metadata() {
                matches.push((shown.clone(), entry(&shown, &meta).to_string()));
            }
        }
        if truncated {
            break;
        }
    }
    matches.sort_by(|a, b| a.0.cmp(&b.0));
    let has_more = matches.len() > limit;
    matches.truncate(limit);
    let page = reshost_paging::Page {
        items: matches,
        has_more,
    };
    Ok(page.render(&format!("\"truncated\":{},", Value::from(truncated))))
}
