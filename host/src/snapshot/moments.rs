//! When each workspace last equalled each of its snapshots (taken or restored),
//! kept in memory: a restore looks only at the paths touched since then. A
//! server that starts knows of none, and restores compare everything until
//! each snapshot is taken or restored again.

use crate::store::{EntryKind, SnapshotEntry};
use crate::sync::Lock;
use crate::watch::{Moment, ignored, ignored_dir};
use std::collections::HashMap;
use std::sync::Mutex;

/// A workspace equalled a snapshot at a moment.
#[derive(Clone, Debug)]
pub struct Equal {
    pub at: Moment,
    pub unwatched: Unwatched,
}

/// What of a snapshot's tree changes unseen by the watcher, so that a restore
/// looks at it every time.
#[derive(Clone, Debug, Default)]
pub struct Unwatched {
    /// The outermost tool directories (not watched): looked at whole.
    pub tools: Vec<String>,
    /// Files with more than one link, with their inode: what is written
    /// through one link changes the others unseen. A restore that meets a
    /// file linked since falls back to comparing everything.
    pub linked: Vec<(String, u64)>,
}

impl Unwatched {
    /// Notes an entry of the tree at `path`, with its link count.
    pub fn note(&mut self, path: &str, entry: &SnapshotEntry, links: u64) {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        match entry.kind {
            EntryKind::Dir if ignored_dir(name) && !ignored(parent) => {
                self.tools.push(path.to_owned());
            }
            EntryKind::File if links > 1 => self.linked.push((path.to_owned(), entry.stat.ino)),
            _ => {}
        }
    }

    /// Every path to look at.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.tools
            .iter()
            .chain(self.linked.iter().map(|(path, _)| path))
    }
}

#[derive(Default)]
pub struct Moments {
    /// By session, then snapshot id.
    known: Mutex<HashMap<String, HashMap<String, Equal>>>,
}

impl Moments {
    pub fn get(&self, session: &str, id: &str) -> Option<Equal> {
        self.known.locked().get(session)?.get(id).cloned()
    }

    pub fn set(&self, session: &str, id: &str, equal: Equal) {
        self.known
            .locked()
            .entry(session.to_owned())
            .or_default()
            .insert(id.to_owned(), equal);
    }

    /// Forgets a deleted snapshot, or all of a deleted session's (`None`).
    pub fn forget(&self, session: &str, id: Option<&str>) {
        let mut known = self.known.locked();
        match id {
            Some(id) => {
                if let Some(of_session) = known.get_mut(session) {
                    of_session.remove(id);
                }
            }
            None => {
                known.remove(session);
            }
        }
    }
}
