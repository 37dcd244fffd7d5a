//! Reading tracked files for change tracking: their stat as `lstat` sees it, and
//! their content (a symlink's content is its target), always through the
//! workspace's capability-scoped directory.

use crate::store::{CHUNK_BYTES, FileStat};
use cap_std::fs::{Dir, Metadata, MetadataExt};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;

fn nanos(seconds: i64, nanos: i64) -> i64 {
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The stat of a file or symlink; `None` for anything else.
pub fn stat_of(meta: &Metadata) -> Option<FileStat> {
    let kind = meta.file_type();
    (kind.is_file() || kind.is_symlink()).then(|| FileStat {
        symlink: kind.is_symlink(),
        size: meta.len(),
        mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        ino: meta.ino(),
    })
}

fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    ) || e.raw_os_error() == Some(libc::ELOOP)
}

/// Whether every directory on the way to `path` is a real directory: a path
/// reached through a symlink names no tracked file.
fn reachable(root: &Dir, path: &str) -> io::Result<bool> {
    for (end, _) in path.match_indices('/') {
        match root.symlink_metadata(&path[..end]) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(e) if absent(&e) || e.kind() == io::ErrorKind::PermissionDenied => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `lstat` of `path`, if it is reachable and there.
pub fn metadata(root: &Dir, path: &str) -> io::Result<Option<Metadata>> {
    if !reachable(root, path)? {
        return Ok(None);
    }
    match root.symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The stat of the file (or symlink) at `path`, if one is there.
pub fn lstat(root: &Dir, path: &str) -> io::Result<Option<FileStat>> {
    Ok(metadata(root, path)?.as_ref().and_then(stat_of))
}

/// Whether `path` is a real directory.
pub fn is_dir(root: &Dir, path: &str) -> io::Result<bool> {
    Ok(metadata(root, path)?.is_some_and(|m| m.is_dir()))
}

/// Streams the content of `path` (of `dir`) in chunks of `CHUNK_BYTES`: the bytes
/// of a file, the target of a symlink.
pub fn read(dir: &Dir, path: &str, symlink: bool, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    if symlink {
        // The target as written: one leading outside (absolute, or up past the
        // root) is content like any other, never followed.
        each(dir.read_link_contents(path)?.as_os_str().as_bytes());
        return Ok(());
    }
    let mut file = crate::workspace::open_file(dir, path)?;
    let mut buffer = vec![0; CHUNK_BYTES];
    loop {
        // Fill whole chunks, so a content's chunk boundaries never depend on reads.
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read(&mut buffer[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled > 0 {
            each(&buffer[..filled]);
        }
        if filled < buffer.len() {
            return Ok(());
        }
    }
}

/// The sha256 of the content of `path`.
pub fn sha256(dir: &Dir, path: &str, symlink: bool) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    read(dir, path, symlink, |bytes| hasher.update(bytes))?;
    Ok(hasher.finalize().into())
}
