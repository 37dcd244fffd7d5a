//! A walk of a workspace tree through a capability-scoped directory: symlinks are
//! never followed, and names that are not UTF-8 (which the API cannot address)
//! are skipped.

use cap_std::fs::{Dir, DirEntry, FileType};
use std::io;

/// One entry met on the walk.
pub struct Entry<'a> {
    /// The directory holding it, to open it by `name` without resolving `path` again.
    pub parent: &'a Dir,
    pub entry: &'a DirEntry,
    pub name: &'a str,
    /// Relative to the workspace root, `/`-separated.
    pub path: &'a str,
    pub kind: FileType,
}

/// What the walk does after an entry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on (into the entry, if it is a directory).
    Continue,
    /// Go on, but not into this directory.
    Skip,
    Stop,
}

/// Walks the tree below `start` (whose path relative to the root is `at`), depth
/// first, calling `visit` for every entry.
pub fn walk(start: Dir, at: &str, mut visit: impl FnMut(&Entry) -> Next) -> io::Result<()> {
    let mut dirs = vec![(start, at.to_owned())];
    while let Some((dir, at)) = dirs.pop() {
        for item in dir.entries()? {
            let Ok(item) = item else { continue };
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            let Ok(kind) = item.file_type() else { continue };
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}/{name}")
            };
            let next = visit(&Entry {
                parent: &dir,
                entry: &item,
                name: &name,
                path: &path,
                kind,
            });
            match next {
                Next::Stop => return Ok(()),
                Next::Continue if kind.is_dir() => {
                    if let Ok(sub) = item.open_dir() {
                        dirs.push((sub, path));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
