//! Session workspaces: the directory each session's `default` environment is rooted
//! at, created empty (a template is copied into it by `watch::Tracker::start_from`,
//! which records the baseline as it copies).

pub mod walk;

use std::io;
use std::path::Path;

/// Creates the empty workspace `dir`.
pub fn create(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir.parent().unwrap_or(dir))?;
    std::fs::create_dir(dir)
}

/// Removes the workspaces in `root` that belong to no session: left behind by a
/// crash between creating (or deleting) a session and its workspace.
pub fn sweep(root: &Path, live: &std::collections::HashSet<String>) -> io::Result<usize> {
    let entries = match std::fs::read_dir(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if !live.contains(name.to_string_lossy().as_ref()) {
            remove(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes a workspace and everything in it; a missing one is not an error.
/// The bytes of everything in a workspace (each file's size, a symlink's own),
/// walked without following links; 0 for a missing workspace.
pub fn bytes(dir: &Path) -> io::Result<u64> {
    let root = match cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority()) {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    walk::walk(root, "", |item| {
        if !item.kind.is_dir() {
            total += item.entry.metadata().map_or(0, |m| m.len());
        }
        walk::Next::Continue
    })?;
    Ok(total)
}

pub fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Opens a regular file of `dir` for reading. Non-blocking, so that a FIFO swapped
/// in for the file cannot hang the open; anything but a regular file is refused
/// with `InvalidInput`.
pub fn open_file(dir: &cap_std::fs::Dir, path: &str) -> io::Result<cap_std::fs::File> {
    use cap_std::fs::OpenOptionsExt;
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true).custom_flags(libc::O_NONBLOCK);
    let file = dir.open_with(path, &options)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}
