//! The capabilities the host grants to components, one module per WIT interface.
//! A call's capabilities are scoped when the call is made: a component can only
//! name records of the session (and collection) it was called for, and blobs those
//! records own or that it staged itself.

pub mod blobs;
pub mod exec;
pub mod grep;
pub mod pty;
pub mod records;
pub mod snapshots;
pub mod tree;
pub mod watch;

use crate::deadline::Deadline;
use crate::store::{Batch, StagedBlob, Store};
use crate::watch::Tracker;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{HasData, ResourceTable};

/// What a call's host functions work on, borrowed from the runtime's per-call
/// store data (as wasmtime's own WASI views are): the call's capability state, its
/// resource table, and its deadline.
pub struct CapsView<'a> {
    pub caps: &'a mut Caps,
    pub table: &'a mut ResourceTable,
    pub deadline: &'a Deadline,
}

/// Names `CapsView` as what the generated `add_to_linker` hands host functions.
pub struct HasCaps;

impl HasData for HasCaps {
    type Data<'a> = CapsView<'a>;
}

/// Which records a call may touch.
#[derive(Clone, Debug)]
pub struct Scope {
    pub session: String,
    /// The slot's collection, e.g. `file`.
    pub collection: &'static str,
}

/// A session's workspace, granted as the guest's only preopen (`/`), as the place
/// its commands run, and with its change tracking.
pub struct Workspace {
    pub dir: PathBuf,
    pub exec: exec::ExecLimits,
    pub tracker: Arc<Tracker>,
    /// The most of a file's baseline a call may read (`limits.read_cap_bytes`),
    /// whatever it asks.
    pub max_read_bytes: u64,
    /// The most entries one `tree.find` or `tree.grep` walks
    /// (`limits.max_find_visited`), whatever it asks.
    pub max_find_visited: u32,
    /// What one `tree.grep` may return, whatever it asks.
    pub grep: grep::GrepLimits,
}

/// The session's terminals, as granted to a call of the `terminals` slot.
pub struct TerminalsCap {
    pub terminals: Arc<crate::pty::Terminals>,
    /// The caller's tenant: terminals move only between its sessions.
    pub tenant: String,
    /// Where terminals start (their `cwd` is inside it).
    pub workspace: PathBuf,
    pub client_buffer_bytes: usize,
    /// The most scrollback a terminal may keep (`limits.max_scrollback_bytes`).
    pub max_scrollback_bytes: u64,
    /// Where terminals run confined.
    pub sandbox: Arc<crate::sandbox::Sandbox>,
}

/// The capability state of one component call.
pub struct Caps {
    /// None only in a spent call's leftover state (see `take`), so that a dropped
    /// store never keeps the database open.
    store: Option<Arc<Store>>,
    scope: Option<Scope>,
    batch: Batch,
    workspace: Option<Workspace>,
    terminals: Option<TerminalsCap>,
    /// Blobs staged during the call (uploads handed in, blobs written); those no
    /// record claims are discarded when the call's state is dropped.
    staged: Vec<StagedBlob>,
}

impl Caps {
    /// No capability at all (policies).
    pub fn none(store: &Arc<Store>) -> Caps {
        Caps {
            store: Some(store.clone()),
            scope: None,
            batch: Batch::default(),
            workspace: None,
            terminals: None,
            staged: Vec::new(),
        }
    }

    /// Adds the session's workspace.
    pub fn with_workspace(self, workspace: Workspace) -> Caps {
        Caps {
            workspace: Some(workspace),
            ..self
        }
    }

    pub fn workspace(&self) -> Option<&Path> {
        self.workspace.as_ref().map(|w| w.dir.as_path())
    }

    /// The workspace to walk, the most entries one walk may visit, and the
    /// bounds of a grep.
    pub fn tree(&self) -> Option<(&Path, u32, grep::GrepLimits)> {
        self.workspace
            .as_ref()
            .map(|w| (w.dir.as_path(), w.max_find_visited, w.grep))
    }

    /// Adds the session's terminals.
    pub fn with_terminals(self, terminals: TerminalsCap) -> Caps {
        Caps {
            terminals: Some(terminals),
            ..self
        }
    }

    /// The session's terminals, and the session.
    pub fn terminals(&self) -> Option<(&TerminalsCap, &str)> {
        Some((self.terminals.as_ref()?, &self.scope.as_ref()?.session))
    }

    /// Where commands run, and their limits.
    pub fn exec(&self) -> Option<(&Path, &exec::ExecLimits)> {
        self.workspace.as_ref().map(|w| (w.dir.as_path(), &w.exec))
    }

    /// The workspace's change tracking: the tracker, the session, the workspace,
    /// and the most of a baseline file one read returns.
    pub fn watch(&self) -> Option<(Arc<Tracker>, String, PathBuf, u64)> {
        let w = self.workspace.as_ref()?;
        let scope = self.scope.as_ref()?;
        Some((
            w.tracker.clone(),
            scope.session.clone(),
            w.dir.clone(),
            w.max_read_bytes,
        ))
    }

    /// The records of one session's collection, and blobs.
    pub fn scoped(store: &Arc<Store>, session: &str, collection: &'static str) -> Caps {
        Caps {
            scope: Some(Scope {
                session: session.to_owned(),
                collection,
            }),
            ..Caps::none(store)
        }
    }

    /// The database, while the call lasts.
    pub fn store(&self) -> wasmtime::Result<&Arc<Store>> {
        self.store
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("the call has ended"))
    }

    /// Hands a blob staged by the host (an upload) to the call.
    pub fn stage(&mut self, blob: StagedBlob) {
        self.staged.push(blob);
    }

    /// Moves the call's state out, leaving an empty one behind (so the spent store
    /// can be dropped elsewhere).
    pub fn take(&mut self) -> Caps {
        Caps {
            store: self.store.take(),
            scope: self.scope.take(),
            batch: std::mem::take(&mut self.batch),
            workspace: self.workspace.take(),
            terminals: self.terminals.take(),
            staged: std::mem::take(&mut self.staged),
        }
    }

    pub fn has_writes(&self) -> bool {
        !self.batch.ops.is_empty()
    }

    /// Stores the new session the call was scoped to (see `scoped`) together with
    /// the call's writes, atomically.
    pub fn create_session(
        self,
        store: &Store,
        tenant: &str,
        json: &str,
    ) -> crate::store::Result<()> {
        let scope = self.scope.as_ref().ok_or(crate::store::Error::Unscoped)?;
        store.create_session(tenant, &scope.session, json, scope.collection, &self.batch)
    }

    /// Applies the call's writes atomically; blobs left unclaimed are discarded.
    pub fn commit(self, store: &Store) -> crate::store::Result<()> {
        if let Some(scope) = &self.scope {
            store.commit(&scope.session, scope.collection, &self.batch)?;
        }
        Ok(())
    }
}
