//! Host side of `reshost:api/tree`: bulk reads of the workspace tree, walked
//! natively through a capability-scoped directory (never following symlinks) on a
//! blocking thread.

use super::CapsView;
use super::grep::grep;
use crate::bindings::tree::{Entry, EntryKind, File, Found, GrepSpec, Grepped, Host, ListFailure};
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

/// The read behind `list`: one `getdents` pass and an `fstatat` per entry,
/// where the component would make a wasi call for each.
pub fn list(workspace: &Path, dir: &str) -> std::io::Result<Vec<Entry>> {
    let root = Dir::open_ambient_dir(workspace, cap_std::ambient_authority())?;
    let dir = if dir.is_empty() {
        root
    } else {
        root.open_dir(dir)?
    };
    let mut entries = Vec::new();
    for item in dir.entries()? {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        let meta = match item.metadata() {
            Ok(meta) => meta,
            // Deleted since the directory was read: as if read a moment later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let kind = match meta.file_type() {
            t if t.is_symlink() => EntryKind::Symlink,
            t if t.is_dir() => EntryKind::Directory,
            _ => EntryKind::File,
        };
        entries.push(Entry {
            name,
            bytes: if kind == EntryKind::Directory {
                0
            } else {
                meta.len()
            },
            modified_at: unix_seconds(&meta),
            kind,
        });
    }
    Ok(entries)
}

fn failure(e: &std::io::Error) -> ListFailure {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => ListFailure::NotFound,
        ErrorKind::PermissionDenied => ListFailure::PermissionDenied,
        ErrorKind::NotADirectory => ListFailure::NotADirectory,
        _ => ListFailure::Other,
    }
}

impl Host for CapsView<'_> {
    async fn list(&mut self, dir: String) -> wasmtime::Result<Result<Vec<Entry>, ListFailure>> {
        let Some((workspace, _, _)) = self.caps.tree() else {
            wasmtime::bail!("the workspace tree is not granted to this call");
        };
        let workspace = workspace.to_owned();
        let listed = tokio::task::spawn_blocking(move || list(&workspace, &dir)).await?;
        Ok(listed.map_err(|e| failure(&e)))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_gives_every_entry_as_lstat_sees_it_and_leaves_out_names_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("f.txt"), "hello").unwrap();
        std::os::unix::fs::symlink("f.txt", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("../../../outside", dir.join("escape")).unwrap();
        std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"odd-\xff")), "x").unwrap();
        let mut got: Vec<(String, EntryKind, u64)> = list(root.path(), "d")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind, e.bytes))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("escape".to_owned(), EntryKind::Symlink, 16),
                ("f.txt".to_owned(), EntryKind::File, 5),
                ("link".to_owned(), EntryKind::Symlink, 5),
                ("sub".to_owned(), EntryKind::Directory, 0),
            ]
        );
        assert!(list(root.path(), "nope").is_err_and(|e| failure(&e) == ListFailure::NotFound));
        assert!(
            list(root.path(), "d/f.txt").is_err_and(|e| failure(&e) == ListFailure::NotADirectory)
        );
    }
}
