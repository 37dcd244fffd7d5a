//! Which paths of a workspace were touched, and when, as far as inotify tells:
//! so that a restore looks only at what was touched since the workspace last
//! equalled the snapshot, instead of at every entry.
//!
//! Events are numbered as they are handled, across all workspaces. A
//! [`Moment`] is a number read before looking at a workspace: whatever changes
//! after it is handled after it, so has a greater number. The record of a
//! workspace is *complete* from some number on; what was touched since a
//! moment is known only if the moment is within the complete part. A workspace
//! is recorded only from its first moment on (one that never snapshots costs
//! nothing).
//!
//! What inotify does not tell, the record makes up for by giving up (the next
//! restore then compares everything): a lost event, a directory it could not
//! watch, a hard link made (what is written through it changes a file that no
//! event names), and a file made and gone before its event was handled (it may
//! have been such a link). Links made where nothing is watched (in tool
//! directories) are the restore's to find, by their link count.

use std::collections::{BTreeSet, HashMap, HashSet};

/// A point in the numbering of handled events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment(pub(super) u64);

/// The most paths one workspace's record keeps: past it the record starts
/// afresh. Looking at that many touched paths costs about what comparing the
/// whole tree does, so the limit only ever trades one for the other.
const MAX_PATHS: usize = 65_536;

pub(super) struct History {
    /// Each touched path (relative to the workspace), with its last event's number.
    touched: HashMap<String, u64>,
    /// Events numbered above this are all recorded; `u64::MAX` until the
    /// workspace's directories are watched.
    complete_after: u64,
    /// Whether anyone asked for a moment (until then nothing is recorded).
    kept: bool,
    /// A directory could not be watched: the record is never complete.
    blind: bool,
    /// Files made (or moved in) and gone before their event was handled, whose
    /// fate is not yet known: a rename of one is benign (its new name is
    /// touched and looked at); its deletion resets the record.
    vanished: HashSet<String>,
}

impl History {
    pub(super) fn new() -> History {
        History {
            touched: HashMap::new(),
            complete_after: u64::MAX,
            kept: false,
            blind: false,
            vanished: HashSet::new(),
        }
    }

    /// The workspace's directories are watched: events after `number` are seen.
    pub(super) fn watched(&mut self, number: u64) {
        self.complete_after = number;
    }

    /// Records from now on (event `number`), if it did not yet.
    pub(super) fn keep(&mut self, number: u64) {
        if !self.kept {
            self.kept = true;
            self.complete_after = self.complete_after.max(number);
        }
    }

    pub(super) fn touch(&mut self, path: &str, number: u64) {
        if !self.kept {
            return;
        }
        if let Some(last) = self.touched.get_mut(path) {
            *last = number;
            return;
        }
        if self.touched.len() >= MAX_PATHS {
            self.reset(number);
        }
        self.touched.insert(path.to_owned(), number);
    }

    /// Starts the record afresh: complete after event `number`.
    pub(super) fn reset(&mut self, number: u64) {
        self.touched.clear();
        self.vanished.clear();
        self.complete_after = number;
    }

    pub(super) fn blind(&mut self) {
        self.blind = true;
    }

    pub(super) fn kept(&self) -> bool {
        self.kept
    }

    pub(super) fn vanished(&mut self, path: &str) {
        self.vanished.insert(path.to_owned());
    }

    /// A vanished file was renamed (true) or deleted (false); its event is `number`.
    pub(super) fn settled(&mut self, path: &str, renamed: bool, number: u64) {
        if self.vanished.remove(path) && !renamed {
            self.reset(number);
        }
    }

    /// The paths touched after `moment`, if the record is complete since.
    pub(super) fn since(&self, moment: Moment) -> Option<BTreeSet<String>> {
        if self.blind || !self.kept || moment.0 < self.complete_after {
            return None;
        }
        Some(
            self.touched
                .iter()
                .filter(|(_, n)| **n > moment.0)
                .map(|(path, _)| path.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn only_paths_touched_after_the_moment_are_told() {
        let mut history = History::new();
        history.keep(0);
        assert_eq!(history.since(Moment(0)), None, "not watched yet");
        history.watched(10);
        history.touch("a", 11);
        history.touch("b", 12);
        history.touch("a", 14);
        assert_eq!(history.since(Moment(9)), None, "before the record");
        let since = |m| {
            history
                .since(Moment(m))
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(since(10), ["a", "b"]);
        assert_eq!(since(12), ["a"]);
        assert!(since(14).is_empty());
    }

    #[test]
    fn a_vanished_file_that_is_deleted_starts_the_record_afresh() {
        let mut history = History::new();
        history.watched(0);
        history.keep(0);
        history.vanished("renamed");
        history.settled("renamed", true, 1);
        assert!(history.since(Moment(0)).is_some());
        history.vanished("deleted");
        history.settled("deleted", false, 2);
        assert_eq!(history.since(Moment(1)), None);
        assert!(history.since(Moment(2)).is_some());
    }

    #[test]
    fn nothing_is_recorded_before_the_first_moment() {
        let mut history = History::new();
        history.watched(0);
        history.touch("before", 1);
        assert_eq!(history.since(Moment(1)), None, "no moment asked for");
        history.keep(2);
        assert_eq!(history.since(Moment(1)), None, "before the record");
        history.touch("after", 3);
        let since: Vec<_> = history.since(Moment(2)).unwrap().into_iter().collect();
        assert_eq!(since, ["after"]);
    }

    #[test]
    fn past_the_most_paths_the_record_starts_afresh() {
        let mut history = History::new();
        history.watched(0);
        history.keep(0);
        for n in 0..MAX_PATHS as u64 {
            history.touch(&n.to_string(), n + 1);
        }
        assert_eq!(history.since(Moment(0)).unwrap().len(), MAX_PATHS);
        let past = MAX_PATHS as u64 + 1;
        history.touch("one more", past);
        assert_eq!(history.since(Moment(0)), None, "the record restarted");
        let since: Vec<_> = history.since(Moment(past)).unwrap().into_iter().collect();
        assert!(since.is_empty(), "{since:?}");
    }

    #[test]
    fn a_blind_record_is_never_complete() {
        let mut history = History::new();
        history.watched(0);
        history.keep(0);
        history.blind();
        assert_eq!(history.since(Moment(5)), None);
    }
}
