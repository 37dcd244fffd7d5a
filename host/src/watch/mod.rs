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

mod files;
mod ignore;
mod record;
mod resolve;

use crate::store::{BaselineFile, FileStat, Store};
use crate::sync::Lock;
use cap_std::fs::Dir;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use ignore::ignored;

/// How long a request waits for its barrier before answering with what it has.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(2);

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
}

struct Shared {
    workspaces: PathBuf,
    barriers: PathBuf,
    envs: Mutex<HashMap<String, Arc<Env>>>,
    watcher: Mutex<Option<notify::INotifyWatcher>>,
    /// The highest barrier whose event has been handled.
    passed: Mutex<u64>,
    barrier_passed: Condvar,
}

pub struct Tracker {
    store: Arc<Store>,
    shared: Arc<Shared>,
    next_barrier: AtomicU64,
}

impl Tracker {
    /// Starts the event thread. Workspaces live in `workspaces`; barrier files are
    /// made in `barriers`, which is emptied.
    pub fn new(store: Arc<Store>, workspaces: &Path, barriers: &Path) -> anyhow::Result<Tracker> {
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
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = notify::INotifyWatcher::new(tx, notify::Config::default())?;
        watcher.watch(&shared.barriers, RecursiveMode::NonRecursive)?;
        *shared.watcher.locked() = Some(watcher);
        let events = shared.clone();
        std::thread::Builder::new()
            .name("reshost-watch".into())
            .spawn(move || {
                for event in rx {
                    match event {
                        Ok(event) => events.handle(event),
                        Err(e) => {
                            tracing::warn!(error = %e, "file watching failed; rescanning");
                            crate::metrics::METRICS.watch_overflows.inc();
                            events.rescan_all();
                        }
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
    pub fn start(&self, session: &str, root: &Path) -> anyhow::Result<usize> {
        let env = self.shared.track(session, root, false);
        let dir = Dir::open_ambient_dir(&env.root, cap_std::ambient_authority())?;
        let files = record::record(&self.store, session, &dir)?;
        Ok(files)
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
        let content = self.store.baseline_content(file.sha256, max)?;
        Ok(Some((file, content)))
    }

    /// The tracked workspace of a session, tracking it from now on if it was not.
    fn env(&self, session: &str, root: &Path) -> Arc<Env> {
        if let Some(env) = self.shared.envs.locked().get(session) {
            return env.clone();
        }
        self.shared.track(session, root, true)
    }

    /// Waits until every event queued before now has been handled.
    fn barrier(&self) {
        let n = self.next_barrier.fetch_add(1, Ordering::SeqCst) + 1;
        let file = self.shared.barriers.join(n.to_string());
        if let Err(e) = std::fs::File::create(&file).and_then(|_| std::fs::remove_file(&file)) {
            tracing::warn!(error = %e, "making a watch barrier");
            return;
        }
        let deadline = Instant::now() + BARRIER_TIMEOUT;
        let mut passed = self.shared.passed.locked();
        while *passed < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("a watch barrier timed out; answering with the events seen");
                return;
            }
            passed = self
                .shared
                .barrier_passed
                .wait_timeout(passed, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl Shared {
    /// Starts tracking a workspace: its directories are watched before `all` asks
    /// for the comparison of the whole tree, so nothing falls in between.
    fn track(&self, session: &str, root: &Path, all: bool) -> Arc<Env> {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
        let env = Arc::new(Env {
            root: root.clone(),
            dirty: Mutex::new(Dirty {
                paths: BTreeSet::new(),
                all,
            }),
            changed: Mutex::default(),
        });
        let env = self
            .envs
            .locked()
            .entry(session.to_owned())
            .or_insert(env)
            .clone();
        if !self.watch_tree(&root) {
            env.dirty.locked().all = true;
        }
        env
    }

    /// Watches `dir` and every directory below it that is not ignored; false when a
    /// watch could not be added (then changes are found by comparing everything).
    fn watch_tree(&self, dir: &Path) -> bool {
        let mut dirs = vec![dir.to_owned()];
        let mut guard = self.watcher.locked();
        let Some(watcher) = guard.as_mut() else {
            return false;
        };
        while let Some(dir) = dirs.pop() {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                if matches!(e.kind, notify::ErrorKind::PathNotFound) {
                    continue;
                }
                tracing::warn!(error = %e, "watching a workspace directory; falling back to full comparisons");
                return false;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let name = entry.file_name();
                if is_dir && !name.to_str().is_some_and(ignore::ignored_dir) {
                    dirs.push(entry.path());
                }
            }
        }
        true
    }

    fn unwatch(&self, root: &Path) {
        if let Some(watcher) = self.watcher.locked().as_mut() {
            // Watches below the root go with their directories.
            let _ = watcher.unwatch(root);
        }
    }

    fn rescan_all(&self) {
        for env in self.envs.locked().values() {
            env.dirty.locked().all = true;
        }
    }

    /// Marks what an event names as dirty.
    fn handle(&self, event: notify::Event) {
        if event.need_rescan() {
            tracing::warn!("the file event queue overflowed; rescanning");
            crate::metrics::METRICS.watch_overflows.inc();
            self.rescan_all();
        }
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Ok(name) = path.strip_prefix(&self.barriers) {
                if let EventKind::Create(_) = event.kind
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

    fn mark(&self, path: &Path, kind: &EventKind) {
        let Ok(inside) = path.strip_prefix(&self.workspaces) else {
            return;
        };
        let mut parts = inside.components();
        let Some(session) = parts.next().and_then(|c| c.as_os_str().to_str()) else {
            return;
        };
        let Some(rel) = parts.as_path().to_str() else {
            return; // Not UTF-8: not addressable through the API.
        };
        if rel.is_empty() || ignored(rel) {
            return;
        }
        let Some(env) = self.envs.locked().get(session).cloned() else {
            return;
        };
        env.dirty.locked().paths.insert(rel.to_owned());
        // A directory that appears is watched with all it holds; what was written in
        // it before its watch existed is found when the dirty directory is walked.
        let appeared = matches!(
            kind,
            EventKind::Create(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
        );
        if appeared
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
            && !self.watch_tree(path)
        {
            env.dirty.locked().all = true;
        }
    }
}
