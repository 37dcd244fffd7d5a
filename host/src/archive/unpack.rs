//! Unpacking an uploaded tar archive into a directory, all or nothing.
//!
//! `check` reads the whole archive before anything is written and refuses it
//! unless every entry is safe: a relative path with no `..`, a directory,
//! regular file, symlink or hard link (no device or FIFO), nothing written
//! through a symlink, symlinks that resolve (through the archive's links and
//! the directory's) inside the directory, hard links to a file earlier in the
//! archive, no directory where the directory holds a file or the other way
//! round, and within the entry and byte limits. `unpack` then extracts it into
//! a scratch tree outside the workspace and moves that into place by renames,
//! so a refused or failed archive leaves nothing in the workspace.

use super::{Dest, MODE_BITS, Scratch};
use cap_std::fs::{Dir, Permissions, PermissionsExt};
use serde::Serialize;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::rc::Rc;
use tar::EntryType;

/// Longest accepted entry path, in bytes (as the API's paths).
const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Most symlinks followed while resolving one link's target.
const MAX_LINKS: usize = 40;
/// What one entry may take in the unpacked stream besides its data: headers,
/// long names, padding. Bounds what is decompressed (a gzip bomb of names).
const ENTRY_OVERHEAD_BYTES: u64 = 8 * 1024;

/// What an archive may hold.
#[derive(Clone, Copy)]
pub struct Limits {
    pub entries: u64,
    /// Regular files' bytes and symlinks' targets, in all.
    pub bytes: u64,
}

/// What an archive holds (and, once unpacked, what it extracted).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counts {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    /// Regular files' bytes and symlinks' targets, as the workspace quota counts.
    pub bytes: u64,
}

/// Why an archive is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the archive cannot be read: {0}")]
    Malformed(io::Error),
    /// An entry that would write outside the directory or what it must not.
    #[error("the archive's entry {path:?} is refused: {why}")]
    Unsafe { path: String, why: String },
    /// An entry that does not fit what the directory (or the archive) holds.
    #[error("{0}")]
    Conflict(String),
    #[error("the archive holds more than {0} entries (limits.max_archive_entries)")]
    TooManyEntries(u64),
    #[error("the archive unpacks to more than {0} bytes (limits.max_unpacked_bytes)")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn unsafe_entry(path: &str, why: impl Into<String>) -> Refused {
    Refused::Unsafe {
        path: path.to_owned(),
        why: why.into(),
    }
}

enum Kind {
    Dir,
    File,
    Symlink(String),
    HardLink(String),
}

/// An entry, its path checked and made relative to the directory.
struct Item {
    path: String,
    kind: Kind,
    mode: u32,
    size: u64,
}

/// An entry's path, relative and without `.` components; refused when it is
/// absolute, holds `..` anywhere, or cannot be an API path.
fn normalize(bytes: &[u8]) -> Result<String, &'static str> {
    let path = std::str::from_utf8(bytes).map_err(|_| "its name is not UTF-8")?;
    if path.starts_with('/') {
        return Err("absolute paths are refused");
    }
    if path.contains(['\\', '\0']) {
        return Err("names cannot hold a backslash or NUL");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("paths are limited to 4096 bytes");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("paths cannot climb with .."),
            name if name.len() > MAX_NAME_BYTES => {
                return Err("path components are limited to 255 bytes");
            }
            name => parts.push(name),
        }
    }
    Ok(parts.join("/"))
}

/// The entry as an item; none for what unpacks to nothing (extension headers,
/// the directory itself).
fn item<R: Read>(entry: &tar::Entry<R>) -> Result<Option<Item>, Refused> {
    let raw = entry.path_bytes();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let link = || -> Result<Vec<u8>, Refused> {
        match entry.link_name_bytes() {
            Some(target) if !target.is_empty() => Ok(target.into_owned()),
            _ => Err(unsafe_entry(&shown, "a link needs a target")),
        }
    };
    let kind = match entry.header().entry_type() {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => {
            let target = String::from_utf8(link()?)
                .map_err(|_| unsafe_entry(&shown, "its target is not UTF-8"))?;
            if target.starts_with('/') || target.contains('\0') {
                return Err(unsafe_entry(
                    &shown,
                    format!("its target {target:?} leads outside the directory"),
                ));
            }
            Kind::Symlink(target)
        }
        EntryType::Link => Kind::HardLink(
            normalize(&link()?)
                .map_err(|why| unsafe_entry(&shown, format!("its target is refused: {why}")))?,
        ),
        EntryType::XGlobalHeader | EntryType::XHeader => return Ok(None),
        EntryType::Char | EntryType::Block => {
            return Err(unsafe_entry(&shown, "device entries are refused"));
        }
        EntryType::Fifo => return Err(unsafe_entry(&shown, "FIFO entries are refused")),
        other => {
            return Err(unsafe_entry(
                &shown,
                format!("entry type {:?} is not supported", other.as_byte() as char),
            ));
        }
    };
    let path = normalize(&raw).map_err(|why| unsafe_entry(&shown, why))?;
    if path.is_empty() {
        return match kind {
            Kind::Dir => Ok(None),
            _ => Err(unsafe_entry(
                &shown,
                "only a directory can name the directory itself",
            )),
        };
    }
    let mode = entry.header().mode().map_err(Refused::Malformed)? & MODE_BITS;
    Ok(Some(Item {
        path,
        kind,
        mode,
        size: entry.size(),
    }))
}

/// A reader that fails past `left` bytes, noting it in `over`.
struct Bounded<R> {
    inner: R,
    left: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = match self.left.checked_sub(n as u64) {
            Some(left) => left,
            None => {
                self.over.set(true);
                return Err(io::Error::other("the archive unpacks to too much"));
            }
        };
        Ok(n)
    }
}

/// Reads every entry of the archive in `file`, handing each as an item, with its
/// data, to `visit`.
fn each(
    file: &std::fs::File,
    gzip: bool,
    limits: Limits,
    mut visit: impl FnMut(Item, &mut dyn Read) -> Result<(), Refused>,
) -> Result<(), Refused> {
    let mut file = file;
    io::Seek::rewind(&mut file)?;
    let buffered = BufReader::new(file);
    let stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let over = Rc::new(Cell::new(false));
    let bounded = Bounded {
        inner: stream,
        left: limits
            .bytes
            .saturating_add(limits.entries.saturating_mul(ENTRY_OVERHEAD_BYTES)),
        over: over.clone(),
    };
    let malformed = |e: io::Error| match over.get() {
        true => Refused::TooLarge(limits.bytes),
        false => Refused::Malformed(e),
    };
    let mut archive = tar::Archive::new(bounded);
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        if let Some(item) = item(&entry)? {
            visit(item, &mut entry).map_err(|e| match e {
                Refused::Malformed(e) => malformed(e),
                e => e,
            })?;
        }
    }
    Ok(())
}

#[derive(Clone, PartialEq)]
enum Node {
    Dir,
    File,
    Symlink(String),
}

/// What the directory will hold once the archive is unpacked, as far as the
/// checks need it: the archive's entries over what the directory holds now.
struct Tree<'a> {
    /// The directory, when it exists.
    dest: Option<&'a Dir>,
    nodes: HashMap<String, Node>,
}

fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(parent, _)| parent)
}

impl Tree<'_> {
    /// What will be at `path`: the archive's entry, else what the directory holds
    /// (links not followed).
    fn at(&self, path: &str) -> Result<Option<Node>, Refused> {
        if let Some(node) = self.nodes.get(path) {
            return Ok(Some(node.clone()));
        }
        let Some(dest) = self.dest else {
            return Ok(None);
        };
        let meta = match dest.symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(if meta.is_symlink() {
            let target = dest.read_link_contents(path)?;
            Node::Symlink(target.to_string_lossy().into_owned())
        } else if meta.is_dir() {
            Node::Dir
        } else {
            Node::File
        }))
    }

    /// Checks that every parent of `path` is or will be a directory: not a file,
    /// and not a symlink (nothing is written through one).
    fn parents(&mut self, path: &str) -> Result<(), Refused> {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            let above = &path[..end];
            end += 1;
            if self.nodes.get(above) == Some(&Node::Dir) {
                continue;
            }
            match self.at(above)? {
                None | Some(Node::Dir) => {}
                Some(Node::File) => {
                    return Err(Refused::Conflict(format!(
                        "{above} is a file; the archive's entry {path} needs a directory there"
                    )));
                }
                Some(Node::Symlink(_)) => {
                    return Err(unsafe_entry(
                        path,
                        format!("it would be written through the symlink {above}"),
                    ));
                }
            }
            self.nodes.insert(above.to_owned(), Node::Dir);
        }
        Ok(())
    }

    /// Records the entry at `path`: a later entry replaces a file or symlink, a
    /// directory merges with a directory, and a directory never replaces
    /// anything else nor the other way round.
    fn place(&mut self, path: &str, node: Node) -> Result<(), Refused> {
        match (self.at(path)?, &node) {
            (Some(Node::Dir), Node::Dir) | (None, _) => {}
            (Some(Node::Dir), _) => {
                return Err(Refused::Conflict(format!(
                    "{path} is a directory; the archive has a file or link there"
                )));
            }
            (Some(_), Node::Dir) => {
                return Err(Refused::Conflict(format!(
                    "{path} is a file or symlink; the archive has a directory there"
                )));
            }
            (Some(_), _) => {}
        }
        self.nodes.insert(path.to_owned(), node);
        Ok(())
    }

    /// Refuses the symlink at `link` unless `target`, resolved through the
    /// links of the archive and of the directory, stays inside the directory.
    fn confined(&self, link: &str, target: &str) -> Result<(), Refused> {
        let outside = || {
            unsafe_entry(
                link,
                format!("its target {target:?} leads outside the directory"),
            )
        };
        let mut done: Vec<String> = parent(link)
            .map(|p| p.split('/').map(str::to_owned).collect())
            .unwrap_or_default();
        let mut todo: Vec<String> = target.split('/').rev().map(str::to_owned).collect();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop().ok_or_else(outside)?;
                    continue;
                }
                _ => done.push(part),
            }
            if let Some(Node::Symlink(next)) = self.at(&done.join("/"))? {
                links += 1;
                if links > MAX_LINKS {
                    return Err(unsafe_entry(link, "its target passes too many symlinks"));
                }
                if next.starts_with('/') {
                    return Err(outside());
                }
                done.pop();
                todo.extend(next.split('/').rev().map(str::to_owned));
            }
        }
        Ok(())
    }
}

/// Reads the whole archive of `scratch` and refuses it unless every entry is safe to unpack
/// into `dest` and it is within `limits`; writes nothing. What it holds.
pub fn check(
    scratch: &Scratch,
    gzip: bool,
    dest: &Dest,
    limits: Limits,
) -> Result<Counts, Refused> {
    let mut tree = Tree {
        dest: match dest {
            Dest::Dir(dir) => Some(dir),
            Dest::New { .. } => None,
        },
        nodes: HashMap::new(),
    };
    let (mut counts, mut entries, mut symlinks) = (Counts::default(), 0u64, Vec::new());
    each(&scratch.archive, gzip, limits, |item, _| {
        entries += 1;
        if entries > limits.entries {
            return Err(Refused::TooManyEntries(limits.entries));
        }
        tree.parents(&item.path)?;
        let node = match &item.kind {
            Kind::Dir => Node::Dir,
            Kind::File | Kind::HardLink(_) => Node::File,
            Kind::Symlink(target) => Node::Symlink(target.clone()),
        };
        match &item.kind {
            Kind::Dir => counts.directories += 1,
            Kind::File => {
                counts.files += 1;
                counts.bytes = counts.bytes.saturating_add(item.size);
            }
            Kind::Symlink(target) => {
                counts.symlinks += 1;
                counts.bytes = counts.bytes.saturating_add(target.len() as u64);
                symlinks.push((item.path.clone(), target.clone()));
            }
            Kind::HardLink(target) => {
                if tree.nodes.get(target) != Some(&Node::File) {
                    return Err(unsafe_entry(
                        &item.path,
                        format!(
                            "a hard link must name a file earlier in the archive, not {target:?}"
                        ),
                    ));
                }
                counts.hard_links += 1;
            }
        }
        if counts.bytes > limits.bytes {
            return Err(Refused::TooLarge(limits.bytes));
        }
        tree.place(&item.path, node)
    })?;
    for (link, target) in &symlinks {
        tree.confined(link, target)?;
    }
    Ok(counts)
}

/// Unpacks the archive of `scratch`, which `check` accepted, into its tree,
/// then moves that into `dest`. Files keep their permission bits; directories
/// too, with the owner always allowed in (so the server can manage what is
/// below); directories `dest` already has keep their own. Owners and times are
/// not restored.
pub fn unpack(scratch: &Scratch, gzip: bool, limits: Limits, dest: &Dest) -> Result<(), Refused> {
    let tree = &scratch.tree;
    let mut dirs = Vec::new();
    each(&scratch.archive, gzip, limits, |item, data| {
        if let Some(parent) = parent(&item.path) {
            tree.create_dir_all(parent)?;
        }
        if let Kind::Dir = item.kind {
            tree.create_dir_all(&item.path)?;
            dirs.push((item.path, item.mode));
            return Ok(());
        }
        // A later entry of the same path wins, as with `tar x`.
        if tree
            .symlink_metadata(&item.path)
            .is_ok_and(|meta| !meta.is_dir())
        {
            tree.remove_file(&item.path)?;
        }
        match item.kind {
            Kind::File => {
                let mut file = tree.create(&item.path)?;
                io::copy(data, &mut file).map_err(Refused::Malformed)?;
                file.set_permissions(Permissions::from_mode(item.mode))?;
            }
            Kind::Symlink(target) => tree.symlink(target, &item.path)?,
            Kind::HardLink(target) => tree.hard_link(target, tree, &item.path)?,
            Kind::Dir => {}
        }
        Ok(())
    })?;
    for (path, mode) in dirs {
        tree.set_permissions(&path, Permissions::from_mode(mode | 0o700))?;
    }
    match dest {
        Dest::Dir(dir) => merge(tree, dir)?,
        Dest::New { root, path } => {
            if let Some(parent) = parent(path) {
                root.create_dir_all(parent)?;
            }
            scratch.move_tree(root, path)?;
        }
    }
    Ok(())
}

/// Moves everything in `from` into `to`: what `to` lacks, or what is no
/// directory, by one rename (replacing a file or symlink of that name); a
/// directory both have, entry by entry.
fn merge(from: &Dir, to: &Dir) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in from.entries()? {
        let entry = entry?;
        names.push((entry.file_name(), entry.file_type()?.is_dir()));
    }
    for (name, is_dir) in names {
        if is_dir {
            match to.symlink_metadata(&name) {
                Ok(meta) if meta.is_dir() => {
                    merge(&from.open_dir(&name)?, &to.open_dir(&name)?)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a file took the place of a directory while the archive was unpacked",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        from.rename(&name, to, &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_made_relative_and_never_climb() {
        assert_eq!(normalize(b"./a//b/./c/"), Ok("a/b/c".to_owned()));
        assert_eq!(normalize(b"./"), Ok(String::new()));
        assert_eq!(normalize(b"/etc/x"), Err("absolute paths are refused"));
        for climbing in [&b"../x"[..], b"a/../../x", b"a/../b", b".."] {
            assert_eq!(normalize(climbing), Err("paths cannot climb with .."));
        }
        assert_eq!(
            normalize(b"a\\..\\x"),
            Err("names cannot hold a backslash or NUL")
        );
        assert_eq!(normalize(b"\xff"), Err("its name is not UTF-8"));
    }
}
