//! Live file events of one workspace: what the watcher saw, kept in a bounded
//! ring so that a client that reconnects (with the id of the last event it got)
//! resumes where it left off, and told `reset` when that is no longer possible
//! (the ring moved past it, the watcher overflowed, or the server restarted).
//!
//! Ids are `<boot>.<n>`: `n` counts the workspace's events since the server
//! started and `boot` names that start, so an id from before a restart is
//! recognised as such rather than mistaken for a recent one.

use std::collections::{HashSet, VecDeque};
use std::sync::OnceLock;
use tokio::sync::broadcast;

/// What happened to a path (relative to the workspace root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Happened {
    Created,
    Modified,
    Deleted,
    /// From `from` to the event's path.
    Renamed {
        from: String,
    },
}

/// Why a client must re-read the state instead of following events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// The watcher's queue overflowed: events were lost.
    Overflow,
    /// The client's last event is no longer in the ring (or it fell behind).
    Expired,
    /// The client's last event is from before the server restarted.
    Restarted,
}

impl Reset {
    pub fn as_str(self) -> &'static str {
        match self {
            Reset::Overflow => "overflow",
            Reset::Expired => "expired",
            Reset::Restarted => "restarted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Path { path: String, happened: Happened },
    Reset(Reset),
}

/// An event with its id.
#[derive(Clone, Debug)]
pub struct FileEvent {
    pub id: String,
    pub kind: Kind,
}

/// This server start's name in event ids.
fn boot() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{:x}", now.as_micros())
    })
}

/// Live subscribers may fall this many events behind before they are told
/// `reset` (then they resume from the ring).
const LIVE_QUEUE: usize = 1024;

/// One workspace's recent events.
pub struct Ring {
    capacity: usize,
    /// The number of the last event (0: none yet).
    last: u64,
    events: VecDeque<(u64, Kind)>,
    /// The newest event's path was written to after it.
    unreported_write: bool,
    /// Paths told `created` when their new directory was first walked, whose
    /// own creation events may still be on their way (then not told again).
    announced: HashSet<String>,
    live: broadcast::Sender<FileEvent>,
}

/// What a subscriber gets: the events after its last one (or a `reset`), then
/// the live ones.
pub struct Subscription {
    pub backlog: Vec<FileEvent>,
    pub live: broadcast::Receiver<FileEvent>,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            capacity: capacity.max(1),
            last: 0,
            events: VecDeque::new(),
            unreported_write: false,
            announced: HashSet::new(),
            live: broadcast::channel(LIVE_QUEUE).0,
        }
    }

    fn id(n: u64) -> String {
        format!("{}.{n}", boot())
    }

    /// Adds an event, forgetting the oldest beyond the capacity.
    pub fn push(&mut self, kind: Kind) {
        self.last += 1;
        self.unreported_write = false;
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back((self.last, kind.clone()));
        let _ = self.live.send(FileEvent {
            id: Ring::id(self.last),
            kind,
        });
    }

    /// Adds an event unless it repeats the newest one (a directory's deletion
    /// is told by its parent's watch and its own).
    pub fn push_new(&mut self, path: String, happened: Happened) {
        if happened == Happened::Created && self.announced.remove(&path) {
            return;
        }
        let kind = Kind::Path { path, happened };
        if self.events.back().map(|(_, k)| k) != Some(&kind) {
            self.push(kind);
        }
    }

    /// Tells `created` for a path found in a directory that was just created
    /// (its creation may have come before the directory was watched).
    pub fn announce(&mut self, path: String) {
        self.announced.insert(path.clone());
        self.push(Kind::Path {
            path,
            happened: Happened::Created,
        });
    }

    /// Every event queued before the announcements has been handled: later
    /// creations are new ones.
    pub fn settled(&mut self) {
        self.announced.clear();
    }

    /// A write to `path` (`closing`: the writer closed it). A burst of writes
    /// gives one `modified` as it starts and, when more was written after that
    /// event, another as the file is closed; a write right after the file was
    /// created or renamed into place waits for the close.
    pub fn written(&mut self, path: &str, closing: bool) {
        let own_event = matches!(
            self.events.back(),
            Some((_, Kind::Path { path: p, happened })) if p == path && *happened != Happened::Deleted
        );
        if !own_event || (closing && self.unreported_write) {
            self.push(Kind::Path {
                path: path.to_owned(),
                happened: Happened::Modified,
            });
        } else if !closing {
            self.unreported_write = true;
        }
    }

    /// Events after the one named `after` (none: only new ones).
    pub fn subscribe(&self, after: Option<&str>) -> Subscription {
        let live = self.live.subscribe();
        let Some(after) = after else {
            return Subscription {
                backlog: Vec::new(),
                live,
            };
        };
        let seen = match after.rsplit_once('.') {
            Some((b, n)) if b == boot() => n.parse::<u64>().ok(),
            _ => None,
        };
        let oldest = self.events.front().map_or(self.last + 1, |(n, _)| *n);
        let reset = |why| FileEvent {
            id: Ring::id(self.last),
            kind: Kind::Reset(why),
        };
        let backlog = match seen {
            None => vec![reset(Reset::Restarted)],
            // Its next event has been forgotten (or it names one not yet made).
            Some(n) if n + 1 < oldest || n > self.last => vec![reset(Reset::Expired)],
            Some(n) => self
                .events
                .iter()
                .filter(|(m, _)| *m > n)
                .map(|(m, kind)| FileEvent {
                    id: Ring::id(*m),
                    kind: kind.clone(),
                })
                .collect(),
        };
        Subscription { backlog, live }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(path: &str) -> Kind {
        Kind::Path {
            path: path.into(),
            happened: Happened::Created,
        }
    }

    fn kinds(events: &[FileEvent]) -> Vec<Kind> {
        events.iter().map(|e| e.kind.clone()).collect()
    }

    #[test]
    fn a_subscriber_resumes_after_its_last_event_while_the_ring_holds_it() {
        let mut ring = Ring::new(3);
        ring.push(created("a"));
        let first = ring.subscribe(Some(&Ring::id(0))).backlog;
        assert_eq!(kinds(&first), [created("a")]);
        ring.push(created("b"));
        ring.push(created("c"));
        let rest = ring.subscribe(Some(&first[0].id)).backlog;
        assert_eq!(kinds(&rest), [created("b"), created("c")]);
        assert!(ring.subscribe(Some(&rest[1].id)).backlog.is_empty());
        // "a" and "b" fall out: resuming after "a" would lose "b".
        ring.push(created("d"));
        ring.push(created("e"));
        let lost = ring.subscribe(Some(&first[0].id)).backlog;
        assert_eq!(kinds(&lost), [Kind::Reset(Reset::Expired)]);
        let kept = ring.subscribe(Some(&rest[0].id)).backlog;
        assert_eq!(kinds(&kept), [created("c"), created("d"), created("e")]);
    }

    #[test]
    fn ids_of_another_start_or_not_yet_made_are_a_reset() {
        let mut ring = Ring::new(3);
        ring.push(created("a"));
        let restarted = ring.subscribe(Some("0.1")).backlog;
        assert_eq!(kinds(&restarted), [Kind::Reset(Reset::Restarted)]);
        let garbage = ring.subscribe(Some("nonsense")).backlog;
        assert_eq!(kinds(&garbage), [Kind::Reset(Reset::Restarted)]);
        let future = ring.subscribe(Some(&Ring::id(9))).backlog;
        assert_eq!(kinds(&future), [Kind::Reset(Reset::Expired)]);
    }

    #[test]
    fn a_burst_of_writes_is_one_modified_as_it_starts_and_one_as_it_is_closed() {
        let mut ring = Ring::new(10);
        let modified = |path: &str| Kind::Path {
            path: path.into(),
            happened: Happened::Modified,
        };
        // Created, written, closed: the content is told by the close.
        ring.push(created("new"));
        ring.written("new", false);
        ring.written("new", true);
        // Appended once and closed: one event.
        ring.written("log", false);
        ring.written("log", true);
        // Written on and on, then closed.
        ring.written("big", false);
        ring.written("big", false);
        ring.written("big", false);
        ring.written("big", true);
        let all = ring.subscribe(Some(&Ring::id(0))).backlog;
        assert_eq!(
            kinds(&all),
            [
                created("new"),
                modified("new"),
                modified("log"),
                modified("big"),
                modified("big")
            ]
        );
    }

    #[test]
    fn live_subscribers_get_each_new_event_with_its_id() {
        let mut ring = Ring::new(3);
        let mut sub = ring.subscribe(None);
        assert!(sub.backlog.is_empty());
        ring.push(created("a"));
        let event = sub.live.try_recv().unwrap();
        assert_eq!(event.kind, created("a"));
        assert_eq!(event.id, Ring::id(1));
    }
}
