//! Drops spent stores. Tearing an instance down resets its pooled memory: where
//! the kernel tells which pages an instance wrote (see `engine`), a small
//! instance is reset in a few microseconds, less than handing it to another
//! thread costs (a wake-up, and the allocator's locks taken from two threads);
//! a large one (or any, where every kept page is reset) is dropped off the request
//! path, on the reaper's thread.

use super::{Admitted, Guest};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use wasmtime::Store;

/// Spent stores waiting to be dropped; beyond this the caller drops its own, so
/// a reaper that falls behind slows requests down instead of hoarding instances.
const QUEUE: usize = 16;

pub struct Reaper {
    queue: SyncSender<(Store<Guest>, Admitted)>,
    /// Stores whose instances stayed within this much memory are dropped inline.
    inline_bytes: usize,
}

impl Reaper {
    /// `inline_bytes`: the most memory an instance may have reached and still be
    /// dropped by its caller (0: none is).
    pub fn start(inline_bytes: usize) -> std::io::Result<Reaper> {
        let (queue, spent) = sync_channel::<(Store<Guest>, Admitted)>(QUEUE);
        std::thread::Builder::new()
            .name("store-reaper".into())
            .spawn(move || spent.into_iter().for_each(drop))?;
        Ok(Reaper {
            queue,
            inline_bytes,
        })
    }

    /// Drops a spent store, then its admission: the instance is back in the pool
    /// before another call is admitted to it.
    pub fn reap(&self, store: Store<Guest>, admitted: Admitted) {
        let spent = (store, admitted);
        if spent.0.data().peak_memory_bytes() <= self.inline_bytes {
            return drop(spent);
        }
        match self.queue.try_send(spent) {
            Ok(()) => {}
            Err(TrySendError::Full(spent) | TrySendError::Disconnected(spent)) => drop(spent),
        }
    }
}
