//! Drops spent stores off the request path. Tearing an instance down resets its
//! pooled memory (about 10 µs), which a client need not wait for.

use super::Guest;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use wasmtime::Store;

/// Spent stores waiting to be dropped; beyond this the caller drops its own, so
/// a reaper that falls behind slows requests down instead of hoarding instances.
const QUEUE: usize = 16;

pub struct Reaper {
    queue: SyncSender<Store<Guest>>,
}

impl Reaper {
    pub fn start() -> std::io::Result<Reaper> {
        let (queue, spent) = sync_channel::<Store<Guest>>(QUEUE);
        std::thread::Builder::new()
            .name("store-reaper".into())
            .spawn(move || spent.into_iter().for_each(drop))?;
        Ok(Reaper { queue })
    }

    pub fn reap(&self, store: Store<Guest>) {
        match self.queue.try_send(store) {
            Ok(()) => {}
            Err(TrySendError::Full(store) | TrySendError::Disconnected(store)) => drop(store),
        }
    }
}
