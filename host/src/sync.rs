//! Locks that outlive a panic. A panic while a lock is held fails the request it
//! happened in; the lock must not then fail every later request until restart.
//! Every lock here guards data that is consistent between statements, so a
//! poisoned one is used as it is.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub trait Lock<T> {
    /// Locks, taking over a lock poisoned by a panic.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Lock<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
