//! Snapshots: point-in-time copies of an environment's workspace (files with
//! their bytes and modes, symlinks, directories), each content stored once in
//! the shared content tables however many snapshots and baselines hold it.
//! They are taken ([`take`]), compared with each other or with the workspace
//! now ([`compare`]), and restored ([`restore`]).

pub mod moments;
pub mod restore;
pub mod take;

use crate::store::{EntryKind, SnapshotEntry, Store};
use crate::watch::{Status, ignored, lstat, sha256};
use cap_std::fs::Dir;
use std::collections::BTreeMap;
use std::path::Path;

use moments::Unwatched;
pub use moments::{Equal, Moments};
pub use restore::{Tracked, materialize, restore};
pub use take::Taken;

/// A file or symlink that differs: how, and the entry on the other side
/// (`None`: deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub status: Status,
    pub other: Option<SnapshotEntry>,
}

/// The entries of snapshot `id`: all, or only `path`'s.
fn entries(
    store: &Store,
    (session, id): (&str, &str),
    path: Option<&str>,
) -> anyhow::Result<BTreeMap<String, SnapshotEntry>> {
    Ok(match path {
        None => store.snapshot_entries(session, id)?,
        Some(path) => store
            .snapshot_entry(session, id, path)?
            .map(|e| (path.to_owned(), e))
            .into_iter()
            .collect(),
    })
}

/// The workspace as a snapshot would hold it: all of it, or only `path`;
/// contents hashed unless `known` vouches for them.
fn current(
    root: &Path,
    known: &BTreeMap<String, SnapshotEntry>,
    path: Option<&str>,
) -> anyhow::Result<BTreeMap<String, SnapshotEntry>> {
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
    let Some(path) = path else {
        return take::scan(&dir, known);
    };
    let Some(stat) = lstat(&dir, path)? else {
        return Ok(BTreeMap::new());
    };
    let kind = match stat.symlink {
        true => EntryKind::Symlink,
        false => EntryKind::File,
    };
    let mut entry = SnapshotEntry {
        kind,
        mode: 0,
        stat,
        sha256: [0; 32],
    };
    entry.sha256 = match take::vouched(known, path, &entry) {
        Some(sha) => sha,
        None => sha256(&dir, path, stat.symlink)?,
    };
    Ok(BTreeMap::from([(path.to_owned(), entry)]))
}

/// The files and symlinks that differ between snapshot `base` and snapshot
/// `other` (`None`: the workspace `root` now), sorted by path; only `path`'s
/// when given. Tool directories and swap files are left out, as from
/// `changes`.
pub fn compare(
    store: &Store,
    (session, root): (&str, &Path),
    (base, other): (&str, Option<&str>),
    path: Option<&str>,
) -> anyhow::Result<Vec<Difference>> {
    let before = entries(store, (session, base), path)?;
    let after = match other {
        Some(other) => entries(store, (session, other), path)?,
        None => current(root, &before, path)?,
    };
    let file = |e: &&SnapshotEntry| e.kind != EntryKind::Dir;
    let mut paths: Vec<&String> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    Ok(paths
        .into_iter()
        .filter(|p| !ignored(p))
        .filter_map(|p| {
            let (was, now) = (before.get(p).filter(file), after.get(p).filter(file));
            let status = match (was, now) {
                (None, None) => return None,
                (None, Some(_)) => Status::Created,
                (Some(_), None) => Status::Deleted,
                (Some(w), Some(n)) if w.kind == n.kind && w.sha256 == n.sha256 => return None,
                (Some(_), Some(_)) => Status::Modified,
            };
            Some(Difference {
                path: p.clone(),
                status,
                other: now.copied(),
            })
        })
        .collect())
}

/// A file of snapshot `id` and up to `max` bytes of its content.
pub fn file(
    store: &Store,
    (session, id): (&str, &str),
    path: &str,
    max: u64,
) -> anyhow::Result<Option<(SnapshotEntry, Vec<u8>)>> {
    let Some(entry) = store
        .snapshot_entry(session, id, path)?
        .filter(|e| e.kind != EntryKind::Dir)
    else {
        return Ok(None);
    };
    Ok(Some((entry, store.content(entry.sha256, max)?)))
}

/// Takes snapshot `id` of the session's workspace `root`; the JSON of the
/// snapshot comes from `json`. What the session's latest snapshot recorded
/// vouches for the files that did not change since. Returns also what the
/// watcher cannot vouch for in the workspace.
pub fn snapshot(
    store: &Store,
    (session, id): (&str, &str),
    root: &Path,
    json: impl FnOnce(&Taken) -> String,
) -> anyhow::Result<(Taken, Unwatched)> {
    let latest = store.scan_snapshots(session, None, false, 1)?;
    let known = match latest.first() {
        Some((latest, _)) => store.snapshot_entries(session, latest)?,
        None => BTreeMap::new(),
    };
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
    take::take(store, (session, id), &dir, &known, json)
}
