//! Change tracking of session workspaces: what differs from each workspace's
//! baseline (the workspace as its session began), whoever changed it.
//!
//! One inotify instance (through `notify`) watches every tracked workspace, one
//! non-recursive watch per directory, ignored directories left out. Events only
//! mark paths *dirty*; a `changes` request re-checks the dirty paths alone (stat,
//! and the content hash when the size alone cannot tell), so it never rescans the
//! tree. A workspace is tracked from its first use after the server starts: that
//! first use compares the whole tree with the baseline once, which also finds what
//! changed while the server was down.
//!
//! Before answering, a request waits for a *barrier*: it creates a file in a
//! watched directory of its own and waits until the event of that file has been
//! handled. inotify delivers events in order, so every change made before the
//! request has been seen by then.
//!
//! The same events are also told live (created, modified, deleted, renamed) to
//! whoever follows a workspace, through its ring (`events`).

mod events;
mod files;
mod history;
mod ignore;
mod record;
mod resolve;

use crate::store::{BaselineFile, FileStat, Store};
use crate::sync::Lock;
use cap_std::fs::Dir;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use events::{FileEvent, Happened, Kind, Reset, Subscription};
pub use files::{lstat, metadata, sha256, stat_of};
pub use history::Moment;
pub use ignore::{ignored, ignored_dir};
pub use record::{Keep, keep_content};

use events::Ring;
use history::History;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};

/// How long a request waits for its barrier before answering with what it has.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(2);

/// Names barrier files that settle announcements (others are numbers).
const SETTLE: &str = "settle-";

/// How long the first half of a rename waits for its second before it is told
/// as a deletion (the file moved out of every watched directory).
const RENAME_WAIT: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Modified,
    Deleted,
}

/// A file that differs from the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub status: Status,
    /// The file now; `None` when deleted.
    pub now: Option<FileStat>,
}

/// What is known about a changed file: its status, and the stat and hash it was
/// last checked with (so an unchanged stat is not hashed again).
#[derive(Clone, Debug)]
struct Known {
    status: Status,
    now: Option<FileStat>,
    sha256: Option<[u8; 32]>,
}

/// Paths to re-check, marked by the event thread.
#[derive(Default)]
struct Dirty {
    paths: BTreeSet<String>,
    /// Everything: the first use, an event queue overflow, a watch that failed.
    all: bool,
}

/// One tracked workspace.
struct Env {
    root: PathBuf,
    dirty: Mutex<Dirty>,
    /// The files known to differ; locked for the whole of a re-check, so that
    /// concurrent requests see each other's results.
    changed: Mutex<BTreeMap<String, Known>>,
    /// Its recent file events, for those who follow it.
    events: Mutex<Ring>,
    /// Which paths were touched when.
    history: Mutex<History>,
}

/// A visible path: its workspace and its path there.
type Visible = (Arc<Env>, String);

/// The first half of a rename, waiting for its second.
struct Moving {
    cookie: usize,
    /// Where it came from.
    from: PathBuf,
}

struct Shared {
    workspaces: PathBuf,
    barriers: PathBuf,
    envs: Mutex<HashMap<String, Arc<Env>>>,
    watcher: Mutex<Option<notify::INotifyWatcher>>,
    /// The highest barrier whose event has been handled.
    passed: Mutex<u64>,
    barrier_passed: Condvar,
    /// Events kept per workspace for clients that resume.
    ring_capacity: usize,
    moving: Mutex<Option<Moving>>,
    /// Numbers the barriers that settle announcements.
    settles: AtomicU64,
    /// The number of the last event handled (see `history`).
    numbered: AtomicU64,
}

pub struct Tracker {
    store: Arc<Store>,
    shared: Arc<Shared>,
    next_barrier: AtomicU64,
}

impl Tracker {
    /// Starts the event thread. Workspaces live in `workspaces`; barrier files are
    /// made in `barriers`, which is emptied; each workspace keeps its last
    /// `ring_capacity` events.
    pub fn new(
        store: Arc<Store>,
        workspaces: &Path,
        barriers: &Path,
        ring_capacity: usize,
    ) -> anyhow::Result<Tracker> {
        match std::fs::remove_dir_all(barriers) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        std::fs::create_dir_all(barriers)?;
        std::fs::create_dir_all(workspaces)?;
        let shared = Arc::new(Shared {
            // Events name paths as watched: canonical ones, to strip prefixes reliably.
            workspaces: workspaces.canonicalize()?,
            barriers: barriers.canonicalize()?,
            envs: Mutex::default(),
            watcher: Mutex::default(),
            passed: Mutex::new(0),
            barrier_passed: Condvar::new(),
            ring_capacity,
            moving: Mutex::default(),
            settles: AtomicU64::new(0),
            numbered: AtomicU64::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = watcher(tx)?;
        watcher.watch(&shared.barriers, RecursiveMode::NonRecursive)?;
        *shared.watcher.locked() = Some(watcher);
        let events = shared.clone();
        std::thread::Builder::new()
            .name("reshost-watch".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                loop {
                    match rx.recv_timeout(RENAME_WAIT) {
                        Ok(Ok(event)) => events.handle(event),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "file watching failed; rescanning");
                            crate::metrics::METRICS.watch_overflows.inc();
                            events.rescan_all();
                        }
                        Err(RecvTimeoutError::Timeout) => events.settle_move(),
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Tracker {
            store,
            shared,
            next_barrier: AtomicU64::new(0),
        })
    }

    /// Records the baseline of a new session's workspace and starts tracking it.
    /// Fills the new workspace `root` with a copy of `template` and starts
    /// tracking it, its baseline recorded while copying. Nothing else can write
    /// into a workspace whose session does not exist yet, so the copy is made
    /// before the watch (which then sees none of its files being made).
    pub fn start_from(&self, session: &str, root: &Path, template: &Path) -> anyhow::Result<usize> {
        let root = root.canonicalize()?;
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
        // Each directory is watched once all its files are copied (no event
        // comes from it after), by a thread of its own while the copy goes on:
        // adding a watch waits on the watcher's thread.
        let (done, copied) = std::sync::mpsc::channel::<String>();
        let (files, watched) = std::thread::scope(|scope| {
            let watching = scope.spawn(|| {
                let mut watched = true;
                for path in copied {
                    watched &= self.shared.watch_dir(&root.join(path));
                }
                watched
            });
            let files = record::copy_and_record(&self.store, session, template, &dir, &|path| {
                let _ = done.send(path.to_owned());
            });
            drop(done);
            (files, watching.join().unwrap_or(false))
        });
        let files = files?;
        self.shared.track_with(session, &root, false, |_| watched);
        Ok(files)
    }

    pub fn start(&self, session: &str, root: &Path) -> anyhow::Result<usize> {
        let env = self.shared.track(session, root, false);
        let dir = Dir::open_ambient_dir(&env.root, cap_std::ambient_authority())?;
        let files = record::record(&self.store, session, &dir)?;
        Ok(files)
    }

    /// The workspace's file events after the one named `after` (or only new
    /// ones), then live.
    pub fn subscribe(&self, session: &str, root: &Path, after: Option<&str>) -> Subscription {
        self.env(session, root).events.locked().subscribe(after)
    }

    /// Stops tracking a session (it is being deleted).
    pub fn stop(&self, session: &str) {
        let env = self.shared.envs.locked().remove(session);
        if let Some(env) = env {
            self.shared.unwatch(&env.root);
        }
    }

    /// Every file of the session's workspace that differs from its baseline,
    /// sorted by path.
    pub fn changes(&self, session: &str, root: &Path) -> anyhow::Result<Vec<Change>> {
        let env = self.env(session, root);
        self.barrier();
        let mut changed = env.changed.locked();
        let dirty = std::mem::take(&mut *env.dirty.locked());
        let dir = Dir::open_ambient_dir(&env.root, cap_std::ambient_authority())?;
        let check = resolve::Check {
            store: &self.store,
            session,
            dir: &dir,
        };
        if dirty.all {
            *changed = check.everything()?;
        } else {
            check.paths(&dirty.paths, &mut changed)?;
        }
        Ok(changed
            .iter()
            .map(|(path, known)| Change {
                path: path.clone(),
                status: known.status,
                now: known.now,
            })
            .collect())
    }

    /// The baseline of one file, and up to `max` bytes of its content.
    pub fn baseline(
        &self,
        session: &str,
        path: &str,
        max: u64,
    ) -> anyhow::Result<Option<(BaselineFile, Vec<u8>)>> {
        let Some(file) = self.store.baseline_file(session, path)? else {
            return Ok(None);
        };
        let content = self.store.content(file.sha256, max)?;
        Ok(Some((file, content)))
    }

    /// The moment before a look at the session's workspace (tracking it from
    /// now on if it was not): what changes after it is touched after it.
    pub fn moment(&self, session: &str, root: &Path) -> Moment {
        let env = self.env(session, root);
        let number = self.shared.numbered.load(Ordering::SeqCst);
        env.history.locked().keep(number);
        Moment(number)
    }

    /// The paths of the session's workspace touched after `moment`, once every
    /// change made before now has been handled; `None` when that is not all
    /// known (see `history`). Tool directories are named when they are made,
    /// removed or renamed, never what happens inside them (they are not watched).
    pub fn touched_since(
        &self,
        session: &str,
        root: &Path,
        moment: Moment,
    ) -> Option<BTreeSet<String>> {
        let env = self.env(session, root);
        if !self.barrier() {
            return None;
        }
        env.history.locked().since(moment)
    }

    /// The tracked workspace of a session, tracking it from now on if it was not.
    fn env(&self, session: &str, root: &Path) -> Arc<Env> {
        if let Some(env) = self.shared.envs.locked().get(session) {
            return env.clone();
        }
        self.shared.track(session, root, true)
    }

    /// Waits until every event queued before now has been handled; false
    /// when it could not tell.
    fn barrier(&self) -> bool {
        let n = self.next_barrier.fetch_add(1, Ordering::SeqCst) + 1;
        let file = self.shared.barriers.join(n.to_string());
        if let Err(e) = std::fs::File::create(&file).and_then(|_| std::fs::remove_file(&file)) {
            tracing::warn!(error = %e, "making a watch barrier");
            return false;
        }
        let deadline = Instant::now() + BARRIER_TIMEOUT;
        let mut passed = self.shared.passed.locked();
        while *passed < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("a watch barrier timed out; answering with the events seen");
                return false;
            }
            passed = self
                .shared
                .barrier_passed
                .wait_timeout(passed, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Whether a directory is watched.
enum Watched {
    Yes,
    /// It is gone: nothing to watch.
    Gone,
    No,
}

/// The inotify watcher, sending to `tx`. Only changes are asked of the kernel
/// (and a written file's close, which ends a burst of writes): opens and reads
/// queue no event, so reading workspace files costs no wake-ups of the
/// watcher's two threads (it was a tenth of a small read's cost).
fn watcher(
    tx: std::sync::mpsc::Sender<notify::Result<notify::Event>>,
) -> notify::Result<notify::INotifyWatcher> {
    let kinds = notify::EventKindMask::CORE | notify::EventKindMask::ACCESS_CLOSE;
    notify::INotifyWatcher::new(tx, notify::Config::default().with_event_kinds(kinds))
}

fn watch_one(watcher: &mut notify::INotifyWatcher, dir: &Path) -> Watched {
    match watcher.watch(dir, RecursiveMode::NonRecursive) {
        Ok(()) => Watched::Yes,
        Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => Watched::Gone,
        Err(e) => {
            tracing::warn!(error = %e, "watching a workspace directory; falling back to full comparisons");
            Watched::No
        }
    }
}

impl Shared {
    /// Starts tracking a workspace: its directories are watched before `all` asks
    /// for the comparison of the whole tree, so nothing falls in between.
    fn track(&self, session: &str, root: &Path, all: bool) -> Arc<Env> {
        self.track_with(session, root, all, |root| self.watch_tree(root, None))
    }

    /// As `track`, its directories watched by `watch` (false: some could not be).
    fn track_with(
        &self,
        session: &str,
        root: &Path,
        all: bool,
        watch: impl FnOnce(&Path) -> bool,
    ) -> Arc<Env> {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
        let env = Arc::new(Env {
            root: root.clone(),
            dirty: Mutex::new(Dirty {
                paths: BTreeSet::new(),
                all,
            }),
            changed: Mutex::default(),
            events: Mutex::new(Ring::new(self.ring_capacity)),
            history: Mutex::new(History::new()),
        });
        let env = self
            .envs
            .locked()
            .entry(session.to_owned())
            .or_insert(env)
            .clone();
        match watch(&root) {
            true => env
                .history
                .locked()
                .watched(self.numbered.load(Ordering::SeqCst)),
            false => {
                env.dirty.locked().all = true;
                env.history.locked().blind();
            }
        }
        env
    }

    /// Watches `dir` and every directory below it that is not ignored, adding
    /// what it finds below to `found`; false when a watch could not be added
    /// (then changes are found by comparing everything).
    fn watch_tree(&self, dir: &Path, mut found: Option<&mut Vec<PathBuf>>) -> bool {
        let mut dirs = vec![dir.to_owned()];
        let mut guard = self.watcher.locked();
        let Some(watcher) = guard.as_mut() else {
            return false;
        };
        while let Some(dir) = dirs.pop() {
            match watch_one(watcher, &dir) {
                Watched::Yes => {}
                Watched::Gone => continue,
                Watched::No => return false,
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let name = entry.file_name();
                if let Some(found) = found.as_deref_mut() {
                    found.push(entry.path());
                }
                if is_dir && !name.to_str().is_some_and(ignore::ignored_dir) {
                    dirs.push(entry.path());
                }
            }
        }
        true
    }

    /// Watches the one directory `dir`; false when it could not be.
    fn watch_dir(&self, dir: &Path) -> bool {
        let mut guard = self.watcher.locked();
        guard
            .as_mut()
            .is_some_and(|watcher| !matches!(watch_one(watcher, dir), Watched::No))
    }

    fn unwatch(&self, root: &Path) {
        if let Some(watcher) = self.watcher.locked().as_mut() {
            // Watches below the root go with their directories.
            let _ = watcher.unwatch(root);
        }
    }

    /// Events were lost: every workspace is compared whole at its next use, and
    /// its followers are told to re-read.
    fn rescan_all(&self) {
        let number = self.numbered.load(Ordering::SeqCst);
        for env in self.envs.locked().values() {
            env.dirty.locked().all = true;
            env.history.locked().reset(number);
            env.events.locked().push(Kind::Reset(Reset::Overflow));
        }
    }

    /// Marks what an event names as dirty.
    fn handle(&self, event: notify::Event) {
        if event.need_rescan() {
            tracing::warn!("the file event queue overflowed; rescanning");
            crate::metrics::METRICS.watch_overflows.inc();
            self.rescan_all();
        }
        let closed_written = matches!(
            event.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
        );
        if matches!(event.kind, EventKind::Access(_)) && !closed_written {
            return;
        }
        self.record(&event);
        self.tell(&event);
        if closed_written {
            return;
        }
        for path in &event.paths {
            if let Ok(name) = path.strip_prefix(&self.barriers) {
                if let EventKind::Create(_) = event.kind
                    && name.to_str().is_some_and(|n| n.starts_with(SETTLE))
                {
                    for env in self.envs.locked().values() {
                        env.events.locked().settled();
                    }
                } else if let EventKind::Create(_) = event.kind
                    && let Some(n) = name.to_str().and_then(|n| n.parse::<u64>().ok())
                {
                    let mut passed = self.passed.locked();
                    *passed = (*passed).max(n);
                    self.barrier_passed.notify_all();
                }
                continue;
            }
            self.mark(path, &event.kind);
        }
    }

    /// The tracked workspace `path` is in and its path there, unless it is
    /// the root or not UTF-8 (not addressable through the API).
    fn located(&self, path: &Path) -> Option<Visible> {
        let inside = path.strip_prefix(&self.workspaces).ok()?;
        let mut parts = inside.components();
        let session = parts.next()?.as_os_str().to_str()?;
        let rel = parts.as_path().to_str()?;
        if rel.is_empty() {
            return None;
        }
        let env = self.envs.locked().get(session).cloned()?;
        Some((env, rel.to_owned()))
    }

    /// As [`Self::located`], unless ignored.
    fn visible(&self, path: &Path) -> Option<Visible> {
        self.located(path).filter(|(_, rel)| !ignored(rel))
    }

    /// Numbers the event and records what it touched in the history of the
    /// workspaces it names, with what may have been a hidden hard link.
    fn record(&self, event: &notify::Event) {
        let number = self.numbered.fetch_add(1, Ordering::SeqCst) + 1;
        for (env, rel) in event.paths.iter().filter_map(|p| self.located(p)) {
            env.history.locked().touch(&rel, number);
        }
        let arrived = match event.kind {
            EventKind::Create(CreateKind::Folder) => None,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                event.paths.first()
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                self.settle(event.paths.first(), true, number);
                None
            }
            EventKind::Remove(_) => {
                self.settle(event.paths.first(), false, number);
                None
            }
            _ => None,
        };
        let Some((path, (env, rel))) = arrived.and_then(|p| Some((p, self.located(p)?))) else {
            return;
        };
        let mut history = env.history.locked();
        // Looked at only where a record is kept: the event thread serves every workspace.
        if !history.kept() {
            return;
        }
        match std::fs::symlink_metadata(path) {
            // A hard link: what is written through it changes a file no event names.
            Ok(meta) if meta.is_file() && meta.nlink() > 1 => history.reset(number),
            Ok(_) => {}
            Err(_) => history.vanished(&rel),
        }
    }

    /// A file left `path`: renamed, or deleted (see [`History::settled`]).
    fn settle(&self, path: Option<&PathBuf>, renamed: bool, number: u64) {
        if let Some((env, rel)) = path.and_then(|p| self.located(p)) {
            env.history.locked().settled(&rel, renamed, number);
        }
    }

    /// Tells the event to the followers of the workspace it is in. A rename is
    /// told once its two halves are known: `renamed` within the workspace, a
    /// deletion or creation when the other side is out of sight, and `modified`
    /// for a file put in place from an ignored name (an atomic save: editors'
    /// and the API's writes).
    fn tell(&self, event: &notify::Event) {
        let first = || event.paths.first().and_then(|p| self.visible(p));
        let tell = |(env, path): Visible, happened| {
            env.events.locked().push(Kind::Path { path, happened });
        };
        match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                self.settle_move();
                // Without a cookie it is a watched directory's own move, which
                // its parent's watch tells.
                if let Some(cookie) = event.attrs.tracker() {
                    *self.moving.locked() = Some(Moving {
                        cookie,
                        from: event.paths.first().cloned().unwrap_or_default(),
                    });
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                let paired = self
                    .moving
                    .locked()
                    .as_ref()
                    .is_some_and(|m| Some(m.cookie) == event.attrs.tracker());
                // A paired half is told with the whole rename, which follows.
                if !paired {
                    self.settle_move();
                    if let Some(to) = first() {
                        tell(to, Happened::Created);
                    }
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                let from = self
                    .moving
                    .locked()
                    .take()
                    .and_then(|m| self.visible(&m.from));
                let to = event.paths.get(1).and_then(|p| self.visible(p));
                match (from, to) {
                    (Some((a, from)), Some((b, to))) if Arc::ptr_eq(&a, &b) => {
                        tell((b, to), Happened::Renamed { from });
                    }
                    (from, to) => {
                        if let Some(from) = from {
                            tell(from, Happened::Deleted);
                        }
                        if let Some(to) = to {
                            tell(to, Happened::Modified);
                        }
                    }
                }
            }
            ref kind => {
                self.settle_move();
                for (env, path) in event.paths.iter().filter_map(|p| self.visible(p)) {
                    let mut ring = env.events.locked();
                    match kind {
                        EventKind::Create(_) => ring.push_new(path, Happened::Created),
                        EventKind::Remove(_) => ring.push_new(path, Happened::Deleted),
                        EventKind::Modify(ModifyKind::Data(_)) => ring.written(&path, false),
                        EventKind::Access(_) => ring.written(&path, true),
                        _ => {}
                    }
                }
            }
        }
    }

    /// The first half of a rename whose second has not come is a deletion.
    fn settle_move(&self) {
        let Some(moving) = self.moving.locked().take() else {
            return;
        };
        let number = self.numbered.load(Ordering::SeqCst);
        self.settle(Some(&moving.from), false, number);
        if let Some((env, path)) = self.visible(&moving.from) {
            env.events.locked().push(Kind::Path {
                path,
                happened: Happened::Deleted,
            });
        }
    }

    fn mark(&self, path: &Path, kind: &EventKind) {
        let Some((env, rel)) = self.visible(path) else {
            return;
        };
        env.dirty.locked().paths.insert(rel);
        // A directory that appears is watched with all it holds; what was written in
        // it before its watch existed is found when the dirty directory is walked,
        // and a new one's content is told to followers now (a moved one's is told
        // by its move).
        let created = matches!(kind, EventKind::Create(_));
        let appeared = created || matches!(kind, EventKind::Modify(ModifyKind::Name(_)));
        if !appeared || !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            return;
        }
        let mut found = Vec::new();
        if !self.watch_tree(path, created.then_some(&mut found)) {
            env.dirty.locked().all = true;
            env.history.locked().blind();
        }
        let found: Vec<_> = found.iter().filter_map(|p| self.visible(p)).collect();
        if found.is_empty() {
            return;
        }
        {
            let mut ring = env.events.locked();
            found.into_iter().for_each(|(_, rel)| ring.announce(rel));
        }
        self.settle_later();
    }

    /// Makes a barrier whose event, once handled, settles the announcements
    /// made before it.
    fn settle_later(&self) {
        let n = self.settles.fetch_add(1, Ordering::Relaxed);
        let file = self.barriers.join(format!("{SETTLE}{n}"));
        if let Err(e) = std::fs::File::create(&file).and_then(|_| std::fs::remove_file(&file)) {
            tracing::warn!(error = %e, "making a settle barrier");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn reading_a_watched_file_queues_no_event_and_writing_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = watcher(tx).unwrap();
        watcher
            .watch(dir.path(), RecursiveMode::NonRecursive)
            .unwrap();
        for _ in 0..10 {
            assert_eq!(std::fs::read(&file).unwrap(), b"x");
        }
        std::fs::write(&file, "y").unwrap();
        // Events come in order: the first is the write's, not a read's.
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(
            first.kind,
            EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any))
        );
        let kinds: Vec<_> = rx.try_iter().map(|e| e.unwrap().kind).collect();
        assert!(
            kinds.iter().all(|k| !matches!(
                k,
                EventKind::Access(
                    AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
                )
            )),
            "{kinds:?}"
        );
    }

    #[test]
    fn an_overflowed_event_queue_tells_every_follower_to_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("data"), 1 << 20).unwrap());
        let workspaces = dir.path().join("workspaces");
        let tracker = Tracker::new(store, &workspaces, &dir.path().join("watch"), 16).unwrap();
        let root = workspaces.join("s");
        std::fs::create_dir_all(&root).unwrap();
        tracker.start("s", &root).unwrap();
        let mut followed = tracker.subscribe("s", &root, None);
        let before = tracker.moment("s", &root);
        assert!(tracker.touched_since("s", &root, before).is_some());
        let overflow = notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        tracker.shared.handle(overflow);
        let told = followed.live.try_recv().unwrap();
        assert_eq!(told.kind, Kind::Reset(Reset::Overflow));
        // And `changes` compares the whole tree again, as does a restore.
        assert!(tracker.shared.envs.locked()["s"].dirty.locked().all);
        assert_eq!(tracker.touched_since("s", &root, before), None);
    }
}
