//! Taking a snapshot: a walk of the whole workspace (nothing is left out but
//! the temporary files of API writes), hashing only the files whose stat
//! differs from what an earlier snapshot recorded of them.

use super::moments::Unwatched;
use crate::store::{EntryKind, FileStat, SnapshotEntry, Store};
use crate::watch::{Keep, keep_content, sha256, stat_of};
use crate::workspace::walk::{Next, walk};
use cap_std::fs::{Dir, Metadata, MetadataExt};
use std::collections::BTreeMap;

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Taken {
    /// Files and symlinks.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of contents the store did not hold before.
    pub new_bytes: u64,
}

/// The entry of what `meta` describes, its content not yet hashed; `None` for
/// what a snapshot does not hold (sockets, devices, FIFOs).
pub fn entry_of(meta: &Metadata) -> Option<SnapshotEntry> {
    let mode = meta.mode() & 0o7777;
    if meta.is_dir() {
        let none = FileStat {
            symlink: false,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
        };
        return Some(SnapshotEntry {
            kind: EntryKind::Dir,
            mode,
            stat: none,
            sha256: [0; 32],
        });
    }
    let stat = stat_of(meta)?;
    let kind = match stat.symlink {
        true => EntryKind::Symlink,
        false => EntryKind::File,
    };
    Some(SnapshotEntry {
        kind,
        mode,
        stat,
        sha256: [0; 32],
    })
}

/// The content hash `known` vouches for: the same kind of entry with the same
/// stat (a change of content changes the ctime).
pub fn vouched(
    known: &BTreeMap<String, SnapshotEntry>,
    path: &str,
    entry: &SnapshotEntry,
) -> Option<[u8; 32]> {
    known
        .get(path)
        .filter(|k| k.kind == entry.kind && k.kind != EntryKind::Dir && k.stat == entry.stat)
        .map(|k| k.sha256)
}

/// Whether `name` is the temporary file of an API write (renamed into place
/// when complete): never part of a snapshot.
pub fn is_api_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp") && name.contains(".reshost-")
}

/// An entry met by [`survey`].
pub struct Found<'a> {
    /// The directory holding it, and its name there, to read it by.
    pub dir: &'a Dir,
    pub name: &'a str,
    pub path: &'a str,
    pub entry: SnapshotEntry,
    /// Its link count.
    pub links: u64,
}

/// Walks the workspace `root` below `at` (a real directory; `""`: all of it),
/// handing `each` every entry a snapshot holds.
pub fn survey(
    root: &Dir,
    at: &str,
    mut each: impl FnMut(Found) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let start = match at {
        "" => root.try_clone()?,
        at => root.open_dir(at)?,
    };
    let mut failure = None;
    walk(start, at, |item| {
        if is_api_temporary(item.name) {
            return Next::Continue;
        }
        let Ok(meta) = item.entry.metadata() else {
            return Next::Continue;
        };
        let Some(entry) = entry_of(&meta) else {
            return Next::Continue;
        };
        let found = Found {
            dir: item.parent,
            name: item.name,
            path: item.path,
            entry,
            links: meta.nlink(),
        };
        match each(found) {
            Ok(()) => Next::Continue,
            Err(e) => {
                failure = Some(e);
                Next::Stop
            }
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// The workspace as a snapshot would hold it, stored nowhere: contents are
/// hashed unless `known` vouches for them.
pub fn scan(
    root: &Dir,
    known: &BTreeMap<String, SnapshotEntry>,
) -> anyhow::Result<BTreeMap<String, SnapshotEntry>> {
    let mut scanned = BTreeMap::new();
    survey(root, "", |found| {
        let mut entry = found.entry;
        if entry.kind != EntryKind::Dir {
            entry.sha256 = match vouched(known, found.path, &entry) {
                Some(sha) => sha,
                None => sha256(found.dir, found.name, entry.kind == EntryKind::Symlink)?,
            };
        }
        scanned.insert(found.path.to_owned(), entry);
        Ok(())
    })?;
    Ok(scanned)
}

/// Records snapshot `id` of `session`'s workspace `root` and stores it as the
/// JSON `json` makes of what it holds. Contents are hashed unless `known`
/// vouches for them, and stored unless the store holds them already.
pub fn take(
    store: &Store,
    (session, id): (&str, &str),
    root: &Dir,
    known: &BTreeMap<String, SnapshotEntry>,
    json: impl FnOnce(&Taken) -> String,
) -> anyhow::Result<(Taken, Unwatched)> {
    let mut taken = Taken::default();
    let mut unwatched = Unwatched::default();
    let mut writer = store.snapshot_writer(session, id);
    survey(root, "", |found| {
        let Found {
            dir, name, path, ..
        } = found;
        let mut entry = found.entry;
        unwatched.note(path, &entry, found.links);
        if entry.kind == EntryKind::Dir {
            writer.add_known(path, &entry)?;
            return Ok(());
        }
        taken.files += 1;
        taken.bytes += entry.stat.size;
        if let Some(sha256) = vouched(known, path, &entry) {
            entry.sha256 = sha256;
            // A snapshot still holding it vouched for it: the store has it.
            writer.add_known(path, &entry)?;
            return Ok(());
        }
        let mut fresh = false;
        keep_content((dir, name), entry.stat, None, |step| match step {
            Keep::Claim(sha256) => {
                fresh = writer.add(path, &SnapshotEntry { sha256, ..entry })?;
                Ok(fresh)
            }
            Keep::Chunk(sha256, index, bytes) => {
                writer.content(sha256, index, bytes).map(|()| true)
            }
        })?;
        if fresh {
            taken.new_bytes += entry.stat.size;
        }
        Ok(())
    })?;
    writer.finish(&json(&taken))?;
    Ok((taken, unwatched))
}
