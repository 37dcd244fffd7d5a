//! Admission: every component call needs one of the pool's instances. When all
//! are in use, a call waits in a bounded queue for a bounded time, then is
//! refused as busy: a capacity problem, never reported as a component's failure
//! or a policy's denial.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    /// One per instance the pool holds.
    instances: Arc<Semaphore>,
    /// Calls waiting for one now.
    waiting: AtomicUsize,
    /// The most calls that may wait at once; later ones are refused at once.
    queue: usize,
    /// How long a call waits.
    wait: Duration,
    capacity: usize,
}

/// A call's instance, held until its store (and so the pooled instance) is gone.
pub struct Admitted(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

/// No instance came free in time.
#[derive(Debug)]
pub struct Busy;

/// Counts a waiting call out again however its wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(instances: u32, queue: usize, wait: Duration) -> Admission {
        Admission {
            instances: Arc::new(Semaphore::new(instances as usize)),
            waiting: AtomicUsize::new(0),
            queue,
            wait,
            capacity: instances as usize,
        }
    }

    /// Instances in use, and how many the pool holds.
    pub fn in_use(&self) -> (usize, usize) {
        (
            self.capacity - self.instances.available_permits(),
            self.capacity,
        )
    }

    pub async fn admit(&self) -> Result<Admitted, Busy> {
        if let Ok(permit) = self.instances.clone().try_acquire_owned() {
            return Ok(Admitted(permit));
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Busy);
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.wait, self.instances.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Admitted(permit)),
            _ => Err(Busy),
        }
    }
}
