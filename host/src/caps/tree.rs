//! Host side of `reshost:api/tree`: bulk reads of the workspace tree, walked
//! natively through a capability-scoped directory (never following symlinks) on a
//! blocking thread.

use super::CapsView;
use super::grep::grep;
use crate::bindings::tree::{File, Found, GrepSpec, Grepped, Host};
use crate::workspace::walk::{Next, walk};
use cap_std::fs::Dir;
use std::path::Path;

fn unix_seconds(meta: &cap_std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// The walk behind `find`; `needle` is lowercase.
pub fn find(
    workspace: &Path,
    scope: &str,
    needle: &str,
    max_visited: usize,
) -> std::io::Result<Found> {
    let root = Dir::open_ambient_dir(workspace, cap_std::ambient_authority())?;
    let start = if scope.is_empty() {
        root
    } else {
        root.open_dir(scope)?
    };
    let mut files = Vec::new();
    let mut visited = 0usize;
    let mut truncated = false;
    walk(start, scope, |item| {
        visited += 1;
        if visited > max_visited {
            truncated = true;
            return Next::Stop;
        }
        if item.kind.is_file()
            && item.path.to_lowercase().contains(needle)
            && let Ok(meta) = item.entry.metadata()
        {
            files.push(File {
                modified_at: unix_seconds(&meta),
                bytes: meta.len(),
                path: item.path.to_owned(),
            });
        }
        Next::Continue
    })?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Found { files, truncated })
}

impl Host for CapsView<'_> {
    async fn find(
        &mut self,
        scope: String,
        needle: String,
        max_visited: u32,
    ) -> wasmtime::Result<Found> {
        let Some((workspace, cap, _)) = self.caps.tree() else {
            wasmtime::bail!("the workspace tree is not granted to this call");
        };
        let (workspace, max_visited) = (workspace.to_owned(), max_visited.min(cap));
        let needle = needle.to_lowercase();
        let found = tokio::task::spawn_blocking(move || {
            find(&workspace, &scope, &needle, max_visited as usize)
        })
        .await??;
        Ok(found)
    }

    async fn grep(&mut self, spec: GrepSpec) -> wasmtime::Result<Result<Grepped, String>> {
        let Some((workspace, max_visited, limits)) = self.caps.tree() else {
            wasmtime::bail!("the workspace tree is not granted to this call");
        };
        let workspace = workspace.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            grep(&workspace, &spec, max_visited, limits).map_err(|e| e.to_string())
        })
        .await?;
        Ok(found)
    }
}
