//! The server's handle on a launch: who to kill, and the launch's cgroup.

use super::cgroup::Group;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// Ends a launch: kills it on demand, and on drop removes its cgroup (killing
/// whatever is left in it).
pub struct Guard {
    tracked: Arc<Tracked>,
}

pub(super) struct Tracked {
    /// The launcher's pid (its process group's id too); 0 before it starts and
    /// after it was reaped.
    pid: AtomicI32,
    group: Option<Group>,
}

impl Tracked {
    pub(super) fn new(group: Option<Group>) -> Tracked {
        Tracked {
            pid: AtomicI32::new(0),
            group,
        }
    }

    /// Has the launch's program (its process group, unless it is a
    /// terminal's) sent `signal`; `ESRCH` once the launch was reaped.
    fn signal(&self, signal: i32) -> std::io::Result<()> {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid <= 0 {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        // Only a confined launch has a cgroup; an unconfined one's program is
        // the launched process itself, leading its own process group.
        if self.group.is_some() {
            return super::relay::send(pid, signal);
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // unreaped child's, so it cannot name a stranger.
        match unsafe { libc::kill(-pid, signal) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    pub(super) fn kill(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill has no memory-safety preconditions; the pid is our
            // unreaped child's, so it cannot name a stranger.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(group) = &self.group {
            group.kill();
        }
    }
}

impl Guard {
    pub(super) fn new(tracked: Arc<Tracked>) -> Guard {
        Guard { tracked }
    }

    /// Records the launcher's pid once it started (it leads its own process group).
    pub fn started(&self, pid: u32) {
        self.tracked.pid.store(pid as i32, Ordering::SeqCst);
    }

    /// Records that the launcher was reaped: its pid may be reused from now on.
    pub fn reaped(&self) {
        self.tracked.pid.store(0, Ordering::SeqCst);
    }

    /// Kills the launch and everything it started.
    pub fn kill(&self) {
        self.tracked.kill();
    }

    /// Sends `signal` to the launch's program: to its process group where it
    /// leads one (see `Launch::program_group`). Blocks for as long as a launch
    /// just started takes to take signals (a few milliseconds).
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        self.tracked.signal(signal)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A launch never outlives its guard (an abandoned call, a dropped terminal).
        self.tracked.kill();
    }
}
