//! What the two searches (`search` by path, `grep` by content) read alike from
//! their query: the include and exclude globs, and the directory scope.

use crate::fs::io_error;
use crate::paths::{guest, normalize, resolve};
use globset::{Glob, GlobSet, GlobSetBuilder};
use reshost_guest::invalid_input;
use reshost_guest::types::Error;

/// The first value of query parameter `name`.
pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

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

/// The globs of one parameter: every occurrence of it, each a comma-separated list.
pub struct Globs {
    pub patterns: Vec<String>,
    /// None when there are no patterns.
    pub set: Option<GlobSet>,
}

impl Globs {
    pub fn parse(query: &[(String, String)], name: &str) -> Result<Globs, Error> {
        let mut patterns = Vec::new();
        let mut set = GlobSetBuilder::new();
        for (_, list) in query.iter().filter(|(k, _)| k == name) {
            for pattern in split_globs(list) {
                let glob = Glob::new(pattern)
                    .map_err(|e| invalid_input(format!("{name}: bad glob {pattern:?}: {e}")))?;
                set.add(glob);
                patterns.push(pattern.to_owned());
            }
        }
        if patterns.is_empty() {
            return Ok(Globs {
                patterns,
                set: None,
            });
        }
        let set = set
            .build()
            .map_err(|e| invalid_input(format!("{name}: {e}")))?;
        Ok(Globs {
            patterns,
            set: Some(set),
        })
    }
}

/// The globs and directory a search is limited to.
pub struct Filters {
    pub include: Globs,
    pub exclude: Globs,
    /// The scope as the client named it (normalized): results are shown under it.
    pub scope: String,
    /// The scope with its symlinks resolved: what is walked.
    pub real: String,
}

impl Filters {
    /// Reads `include`, `exclude` and `path`; the scope must be a directory.
    pub fn parse(query: &[(String, String)]) -> Result<Filters, Error> {
        let include = Globs::parse(query, "include")?;
        let exclude = Globs::parse(query, "exclude")?;
        let scope = normalize(param(query, "path").unwrap_or_default())?;
        let real = resolve(&scope, true)?;
        let meta = std::fs::metadata(guest(&real)).map_err(|e| io_error(e, &scope))?;
        if !meta.is_dir() {
            return Err(invalid_input(format!("path {scope} is not a directory")));
        }
        Ok(Filters {
            include,
            exclude,
            scope,
            real,
        })
    }

    /// Whether the globs keep the path `shown`.
    pub fn keeps(&self, shown: &str) -> bool {
        self.include.set.as_ref().is_none_or(|g| g.is_match(shown))
            && self.exclude.set.as_ref().is_none_or(|g| !g.is_match(shown))
    }

    /// How the walked path `real` (under the real scope) is shown: under the
    /// scope as the client named it, which may be a link.
    pub fn shown(&self, real: String) -> String {
        if self.scope == self.real {
            return real;
        }
        let rest = real[self.real.len()..].trim_start_matches('/');
        if self.scope.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.scope)
        }
    }
}
