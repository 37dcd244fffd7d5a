//! Packing a directory into a tar stream. The tree is walked through its
//! capability-scoped `Dir`: symlinks are stored as links, never followed, so
//! nothing outside the directory is read; the walk holds one sorted list of
//! names per level, so memory follows the tree's depth and width, not its size.

use super::MODE_BITS;
use cap_std::fs::{Dir, Metadata, MetadataExt};
use std::io::{self, Read, Write};
use tar::{Builder, EntryType, Header};

/// One directory being walked: its path in the archive and the names left.
struct Level {
    dir: Dir,
    at: String,
    names: std::vec::IntoIter<String>,
}

impl Level {
    fn new(dir: Dir, at: String) -> io::Result<Level> {
        // Names that are not UTF-8 cannot be addressed through the API: left out.
        let mut names: Vec<String> = dir
            .entries()?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        names.sort_unstable();
        Ok(Level {
            dir,
            at,
            names: names.into_iter(),
        })
    }
}

/// Writes the tree below `dir` to `out` as a tar archive, entries named relative
/// to `dir`: directories, regular files and symlinks, with their permission bits
/// and modification times (owners are not stored). Sockets, FIFOs and devices
/// are left out.
pub fn pack<W: Write>(dir: Dir, out: W) -> io::Result<W> {
    let mut tar = Builder::new(out);
    let mut levels = vec![Level::new(dir, String::new())?];
    while let Some(level) = levels.last_mut() {
        let Some(name) = level.names.next() else {
            levels.pop();
            continue;
        };
        let path = if level.at.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", level.at)
        };
        // Gone since it was listed: left out.
        let Ok(meta) = level.dir.symlink_metadata(&name) else {
            continue;
        };
        let kind = meta.file_type();
        let mut header = header(&meta);
        if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            tar.append_data(&mut header, format!("{path}/"), io::empty())?;
            let below = Level::new(level.dir.open_dir(&name)?, path)?;
            levels.push(below);
        } else if kind.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            let target = level.dir.read_link_contents(&name)?;
            tar.append_link(&mut header, &path, target)?;
        } else if kind.is_file() {
            let file = crate::workspace::open_file(&level.dir, &name)?;
            let len = meta.len();
            header.set_entry_type(EntryType::Regular);
            header.set_size(len);
            // A file whose size changes while it is read still fills exactly what
            // its header declares (cut, or padded with zeros): the archive stays
            // well-formed.
            let data = file.take(len).chain(io::repeat(0)).take(len);
            tar.append_data(&mut header, &path, data)?;
        }
    }
    tar.into_inner()
}

fn header(meta: &Metadata) -> Header {
    let mut header = Header::new_gnu();
    header.set_mode(meta.mode() & MODE_BITS);
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_size(0);
    header
}
