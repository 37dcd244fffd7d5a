//! Restoring a snapshot: the workspace is compared with it (contents hashed only
//! where the stat says a file changed since the snapshot), and only what
//! differs is changed. When it is known what was touched since the workspace
//! last equalled the snapshot, only that is compared (with what the watcher
//! cannot vouch for: tool directories, files with several links); otherwise
//! everything is. New contents are first written to a staging directory on
//! the same filesystem and renamed into place; the restore is noted in the
//! store before the workspace is touched and cleared once the changes are on
//! disk, so one cut short by a crash is done again, from the start, at the
//! next start (it is idempotent): the workspace is the old tree until then
//! and the snapshot after.

use super::moments::{Equal, Moments, Unwatched};
use super::take::{entry_of, is_api_temporary, survey};
use crate::store::{EntryKind, SnapshotEntry, Store};
use crate::watch::{Tracker, metadata, sha256};
use cap_std::fs::{Dir, MetadataExt, Permissions, PermissionsExt};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// What a restore changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Files and symlinks written.
    pub written: u64,
    /// Entries removed (a directory with everything in it counts once).
    pub removed: u64,
    /// Directories made.
    pub made: u64,
    /// Modes set: of entries whose mode alone differed, and of directories
    /// made or whose mode differed.
    pub modes: u64,
}

/// The changes that make the workspace the snapshot, in the order they are made.
#[derive(Default)]
struct Plan {
    /// Entries the snapshot does not have, or has as another kind: (path, is a directory).
    remove: Vec<(String, bool)>,
    mkdir: Vec<String>,
    /// Files to write: (path, the snapshot's entry).
    put: Vec<(String, SnapshotEntry)>,
    /// Symlinks to make: (path, target).
    link: Vec<(String, Vec<u8>)>,
    /// Modes to set, files first, then directories deepest first (a directory
    /// is made read-only only once its content is in place).
    chmod: Vec<(String, u32)>,
    /// Files kept that have more than one link, with their inode.
    linked: Vec<(String, u64)>,
}

/// An entry of the workspace now, with its link count.
type Present = (SnapshotEntry, u64);

/// What was touched since the workspace last equalled the snapshot, and what
/// the watcher could not vouch for then.
struct Since {
    touched: BTreeSet<String>,
    unwatched: Unwatched,
}

/// A running server's record of its workspaces: what was touched when, and
/// when each last equalled each snapshot.
pub struct Tracked<'a> {
    pub tracker: &'a Tracker,
    pub moments: &'a Moments,
}

/// Whether `path` lies in one of the directories `dirs`.
fn inside(dirs: &HashSet<&str>, path: &str) -> bool {
    path.match_indices('/')
        .any(|(end, _)| dirs.contains(&path[..end]))
}

fn plan(
    dir: &Dir,
    store: &Store,
    target: &BTreeMap<String, SnapshotEntry>,
    current: &BTreeMap<String, Present>,
) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    let mut removed = HashSet::new();
    for (path, (now, _)) in current {
        let keep = target.get(path).is_some_and(|want| want.kind == now.kind);
        if keep || inside(&removed, path) {
            continue;
        }
        let is_dir = now.kind == EntryKind::Dir;
        if is_dir {
            removed.insert(path.as_str());
        }
        plan.remove.push((path.clone(), is_dir));
    }
    let mut dir_modes = Vec::new();
    for (path, want) in target {
        let (now, links) = match current.get(path) {
            Some((now, links)) if now.kind == want.kind => (Some(now), *links),
            _ => (None, 0),
        };
        let mode_differs = now.is_none_or(|now| now.mode != want.mode);
        match want.kind {
            EntryKind::Dir => {
                if now.is_none() {
                    plan.mkdir.push(path.clone());
                }
                if mode_differs {
                    dir_modes.push((path.clone(), want.mode));
                }
                continue;
            }
            EntryKind::File | EntryKind::Symlink => {}
        }
        let symlink = want.kind == EntryKind::Symlink;
        // Untouched since the snapshot, or the same content written again.
        let same = now.is_some_and(|now| {
            now.stat == want.stat
                || (now.stat.size == want.stat.size
                    && sha256(dir, path, symlink).is_ok_and(|sha| sha == want.sha256))
        });
        if !same && symlink {
            let mut target = Vec::new();
            store.content_chunks(want.sha256, |bytes| {
                target.extend_from_slice(bytes);
                true
            })?;
            plan.link.push((path.clone(), target));
        } else if !same {
            plan.put.push((path.clone(), *want));
        } else if !symlink {
            if mode_differs {
                plan.chmod.push((path.clone(), want.mode));
            }
            if let Some(now) = now.filter(|_| links > 1) {
                plan.linked.push((path.clone(), now.stat.ino));
            }
        }
    }
    dir_modes.reverse();
    plan.chmod.extend(dir_modes);
    Ok(plan)
}

/// Writes the new contents into `staging` (named by their place in
/// `plan.put`), with their modes.
fn stage(store: &Store, plan: &Plan, staging: &Dir) -> anyhow::Result<()> {
    for (n, (path, want)) in plan.put.iter().enumerate() {
        let mut file = staging.create(n.to_string())?;
        let mut written = Ok(());
        store.content_chunks(want.sha256, |bytes| {
            written = file.write_all(bytes);
            written.is_ok()
        })?;
        written?;
        file.set_permissions(Permissions::from_mode(want.mode))?;
        let size = file.metadata()?.len();
        anyhow::ensure!(
            size == want.stat.size,
            "the stored content of {path} has {size} bytes, not {}",
            want.stat.size
        );
    }
    Ok(())
}

/// Ignores a "not found": what was to go is gone already.
fn gone(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn apply(plan: &Plan, dir: &Dir, staging: &Dir) -> io::Result<Restored> {
    for (path, is_dir) in &plan.remove {
        gone(match is_dir {
            true => dir.remove_dir_all(path),
            false => dir.remove_file(path),
        })?;
    }
    for path in &plan.mkdir {
        match dir.create_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    for (n, (path, _)) in plan.put.iter().enumerate() {
        staging.rename(n.to_string(), dir, path)?;
    }
    for (path, target) in &plan.link {
        gone(dir.remove_file(path))?;
        dir.symlink_contents(OsString::from_vec(target.clone()), path)?;
    }
    for (path, mode) in &plan.chmod {
        dir.set_permissions(path, Permissions::from_mode(*mode))?;
    }
    Ok(Restored {
        written: (plan.put.len() + plan.link.len()) as u64,
        removed: plan.remove.len() as u64,
        made: plan.mkdir.len() as u64,
        modes: plan.chmod.len() as u64,
    })
}

/// The snapshot's entries and the workspace's, everywhere.
type Sides = (BTreeMap<String, SnapshotEntry>, BTreeMap<String, Present>);

fn everything(store: &Store, (session, id): (&str, &str), dir: &Dir) -> anyhow::Result<Sides> {
    let target = store.snapshot_entries(session, id)?;
    let mut current = BTreeMap::new();
    survey(dir, "", |found| {
        current.insert(found.path.to_owned(), (found.entry, found.links));
        Ok(())
    })?;
    Ok((target, current))
}

/// The snapshot's entries and the workspace's at the paths `since` names
/// (and everything under those that are directories on either side); `None`
/// when the workspace holds a file linked since, through which any file may
/// have changed unseen.
fn touched(
    store: &Store,
    (session, id): (&str, &str),
    dir: &Dir,
    since: &Since,
) -> anyhow::Result<Option<Sides>> {
    let mut paths: Vec<&str> = since
        .touched
        .iter()
        .chain(since.unwatched.paths())
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    paths.dedup();
    // What lies in another of them is looked at with it.
    let mut roots = HashSet::new();
    for path in paths {
        if !inside(&roots, path) {
            roots.insert(path);
        }
    }
    let target = store.snapshot_subtrees(session, id, roots.iter().copied())?;
    let mut current = BTreeMap::new();
    for &root in &roots {
        let name = root.rsplit('/').next().unwrap_or(root);
        let Some(meta) = metadata(dir, root)?.filter(|_| !is_api_temporary(name)) else {
            continue;
        };
        let Some(entry) = entry_of(&meta) else {
            continue;
        };
        current.insert(root.to_owned(), (entry, meta.nlink()));
        if entry.kind == EntryKind::Dir {
            survey(dir, root, |found| {
                current.insert(found.path.to_owned(), (found.entry, found.links));
                Ok(())
            })?;
        }
    }
    let linked: HashSet<u64> = since.unwatched.linked.iter().map(|(_, ino)| *ino).collect();
    let unseen = current
        .values()
        .any(|(e, links)| e.kind == EntryKind::File && *links > 1 && !linked.contains(&e.stat.ino));
    Ok((!unseen).then_some((target, current)))
}

/// Makes `session`'s workspace `root` exactly its snapshot `id`: files (bytes
/// and modes), symlinks and directories; nothing else is left in it. The
/// restore is noted in the store while the workspace changes (see the module).
/// `staging` is a directory on the workspace's filesystem. With `tracked`,
/// only what was touched since the workspace last equalled the snapshot is
/// compared, when that is known, and the moment it equals it again is kept.
pub fn restore(
    store: &Store,
    (session, id): (&str, &str),
    root: &Path,
    staging: &Path,
    tracked: Option<Tracked>,
) -> anyhow::Result<Restored> {
    let place = (session, root);
    let Some(Tracked { tracker, moments }) = tracked else {
        return Ok(make(store, (session, id), place, staging, None)?.0);
    };
    let at = tracker.moment(session, root);
    let since = moments.get(session, id).and_then(|equal| {
        Some(Since {
            touched: tracker.touched_since(session, root, equal.at)?,
            unwatched: equal.unwatched,
        })
    });
    let (restored, unwatched) = make(store, (session, id), place, staging, since.as_ref())?;
    moments.set(session, id, Equal { at, unwatched });
    Ok(restored)
}

/// Fills the new workspace `root` of session `into` with snapshot `id` of
/// `session` (no note: a session whose creation fails goes with its workspace).
pub fn materialize(
    store: &Store,
    (session, id): (&str, &str),
    (into, root): (&str, &Path),
    staging: &Path,
) -> anyhow::Result<Restored> {
    Ok(make(store, (session, id), (into, root), staging, None)?.0)
}

fn make(
    store: &Store,
    (session, id): (&str, &str),
    (into, root): (&str, &Path),
    staging: &Path,
    since: Option<&Since>,
) -> anyhow::Result<(Restored, Unwatched)> {
    // A restore in place is noted; the filling of a new workspace is not.
    let noted = into == session;
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
    let looked = match since {
        Some(since) => touched(store, (session, id), &dir, since)?
            .map(|sides| (sides, since.unwatched.tools.clone())),
        None => None,
    };
    if noted {
        let compared = if looked.is_some() {
            "touched"
        } else {
            "everything"
        };
        crate::metrics::METRICS
            .restores
            .get_or_create(&crate::metrics::RestoreLabels { compared })
            .inc();
    }
    let ((target, current), tools) = match looked {
        Some(looked) => looked,
        None => {
            let (target, current) = everything(store, (session, id), &dir)?;
            let mut tools = Unwatched::default();
            target
                .iter()
                .for_each(|(path, entry)| tools.note(path, entry, 1));
            ((target, current), tools.tools)
        }
    };
    let mut plan = plan(&dir, store, &target, &current)?;
    let unwatched = Unwatched {
        tools,
        linked: std::mem::take(&mut plan.linked),
    };
    let scratch = staging.join(format!("restore-{into}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let staged = Dir::open_ambient_dir(&scratch, cap_std::ambient_authority())?;
    stage(store, &plan, &staged)?;
    if noted {
        store.set_restoring(into, Some(id))?;
    }
    let applied = apply(&plan, &dir, &staged).and_then(|restored| {
        // What was renamed and written is on disk before the note goes (the
        // capability's descriptor is a path only: syncfs needs an open one).
        let opened = std::fs::File::open(root)?;
        // SAFETY: syncfs takes a descriptor we hold open.
        match unsafe { libc::syncfs(opened.as_raw_fd()) } {
            0 => Ok(restored),
            _ => Err(io::Error::last_os_error()),
        }
    });
    // The note is for a crash only: a restore that failed says so now, and a
    // later start must not apply it over what was done since.
    if noted {
        store.set_restoring(into, None)?;
    }
    let restored = applied?;
    drop(staged);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok((restored, unwatched))
}
