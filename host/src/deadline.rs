//! A component call's deadline, shared by the epoch callback (which stops wasm
//! code that runs past it) and the outer timer (which stops a call blocked in the
//! host). While the call waits on a host capability that has its own timeout (a
//! shell command), the deadline is held: that time does not count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Deadline {
    start: Instant,
    /// Microseconds after `start`.
    end_us: AtomicU64,
    /// Host waits in progress.
    holds: AtomicU64,
}

impl Deadline {
    pub fn new(timeout: Duration) -> Deadline {
        Deadline {
            start: Instant::now(),
            end_us: AtomicU64::new(timeout.as_micros() as u64),
            holds: AtomicU64::new(0),
        }
    }

    fn end(&self) -> Instant {
        self.start + Duration::from_micros(self.end_us.load(Ordering::Relaxed))
    }

    /// Time left (zero once past, whether or not held).
    pub fn remaining(&self) -> Duration {
        self.end().saturating_duration_since(Instant::now())
    }

    /// Past the deadline, and not held.
    pub fn expired(&self) -> bool {
        self.holds.load(Ordering::Relaxed) == 0 && Instant::now() >= self.end()
    }

    /// Stops the clock until the hold is dropped; the held time is added to the
    /// deadline.
    pub fn hold(&self) -> Hold<'_> {
        self.holds.fetch_add(1, Ordering::Relaxed);
        Hold {
            deadline: self,
            since: Instant::now(),
        }
    }
}

pub struct Hold<'a> {
    deadline: &'a Deadline,
    since: Instant,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let held = self.since.elapsed().as_micros() as u64;
        self.deadline.end_us.fetch_add(held, Ordering::Relaxed);
        self.deadline.holds.fetch_sub(1, Ordering::Relaxed);
    }
}
