//! Signals the server sends to a confined program. The server knows only the
//! launcher's pid, and a signal sent to the launcher would end the sandbox
//! around the program, not reach it; nor may the server's signals reach the
//! namespace's init unless it handles them. So the server queues one real-time
//! signal, [`RELAY`], carrying the signal it means (`sigqueue`): the launcher
//! passes it on to the init, and the init sends the signal meant to the
//! program's process group (or, for a terminal, the program alone).
//!
//! Each side installs its handler while [`RELAY`] is blocked and unblocks it
//! only once it knows where to pass it on: a relay that arrives early waits,
//! pending. The server sends only once the launcher handles [`RELAY`] (its
//! `SigCgt` says so), since until then a relay would kill it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The real-time signal that carries a signal to relay.
fn relay_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

/// Where this process passes a relay on: a pid, or a process group as `-pgid`;
/// 0 while unknown (a relay is then dropped).
static TARGET: AtomicI32 = AtomicI32::new(0);
/// Whether this process passes the relay on as it came (the launcher) or sends
/// the signal it carries (the init).
static FORWARD: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_relay(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let target = TARGET.load(Ordering::SeqCst);
    if target == 0 || info.is_null() {
        return;
    }
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler; the
    // value was queued by `send` (or passed on by a launcher) as a signal number.
    let value = unsafe { (*info).si_value() };
    let signal = value.sival_ptr as usize as libc::c_int;
    if !(1..32).contains(&signal) {
        return;
    }
    // SAFETY: sigqueue and kill are async-signal-safe and take plain values.
    unsafe {
        if FORWARD.load(Ordering::SeqCst) == 1 {
            libc::sigqueue(target, relay_signal(), value);
        } else {
            libc::kill(target, signal);
        }
    }
}

fn mask(how: libc::c_int) {
    // SAFETY: a signal set built and used only here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, relay_signal());
        libc::sigprocmask(how, &set, std::ptr::null_mut());
    }
}

/// Blocks relays and handles them from now on (the launcher, before it forks
/// the init; the init, as it starts): they wait until [`pass_to`].
pub(super) fn hold() {
    mask(libc::SIG_BLOCK);
    // SAFETY: installs a handler that only reads atomics and makes
    // async-signal-safe calls.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_relay as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(relay_signal(), &action, std::ptr::null_mut());
    }
}

/// Where relays go from now on, then lets them in: the launcher passes them to
/// the init (`forward`), the init sends the signal to `target` (a pid, or
/// `-pgid`).
pub(super) fn pass_to(target: i32, forward: bool) {
    FORWARD.store(i32::from(forward), Ordering::SeqCst);
    TARGET.store(target, Ordering::SeqCst);
    mask(libc::SIG_UNBLOCK);
}

/// How long a launch may take to handle relays before a signal is refused.
const READY_WAIT: Duration = Duration::from_secs(2);

/// Whether `pid` handles relays (its `SigCgt` mask has the bit).
fn handles_relays(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = (relay_signal() - 1) as u32;
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << bit) != 0)
}

/// Asks the launcher `pid` to have `signal` sent to its program, once it
/// handles relays (a launch just started may not yet).
pub(super) fn send(pid: i32, signal: i32) -> std::io::Result<()> {
    let until = Instant::now() + READY_WAIT;
    while !handles_relays(pid) {
        if Instant::now() > until {
            return Err(std::io::Error::other("the sandbox does not take signals"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let value = libc::sigval {
        sival_ptr: signal as usize as *mut libc::c_void,
    };
    // SAFETY: sigqueue takes plain values.
    match unsafe { libc::sigqueue(pid, relay_signal(), value) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
