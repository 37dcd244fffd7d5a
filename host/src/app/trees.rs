//! Which requests may use a workspace's tree at once: requests that read or
//! change it share it; taking a snapshot and restoring one have it alone, so
//! that a snapshot is of one moment and no request sees a tree half restored.
//! Locks are striped by session (a fixed number, whatever the sessions), so
//! none is kept per session; sessions sharing a stripe wait for each other
//! only while one of them snapshots or restores.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// Stripes: enough that two busy sessions rarely share one.
const STRIPES: usize = 1024;

pub struct Trees {
    stripes: Vec<Arc<RwLock<()>>>,
    hasher: RandomState,
}

impl Default for Trees {
    fn default() -> Trees {
        Trees {
            stripes: (0..STRIPES).map(|_| Arc::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Trees {
    fn stripe(&self, session: &str) -> Arc<RwLock<()>> {
        let n = self.hasher.hash_one(session) as usize % STRIPES;
        self.stripes[n].clone()
    }

    /// For a request that reads or changes the session's tree.
    pub async fn share(&self, session: &str) -> OwnedRwLockReadGuard<()> {
        self.stripe(session).read_owned().await
    }

    /// For a snapshot or a restore of the session's tree.
    pub async fn alone(&self, session: &str) -> OwnedRwLockWriteGuard<()> {
        self.stripe(session).write_owned().await
    }
}
