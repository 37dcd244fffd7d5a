//! `reshost sandbox-exec PLAN -- PROGRAM ARGS…`: the re-executed side of a
//! confined launch. It runs before anything else in `main` (no threads, no async
//! runtime: a threaded process may not enter a new user namespace) and ends in
//! `exec` of the program, three processes deep:
//!
//! 1. the launcher (what the server started, and what it waits for and kills)
//!    joins the launch's cgroups and enters new user, mount, PID and IPC
//!    namespaces (and a network one for `network = "none"`), then forks;
//! 2. the namespace's init (PID 1) dies with the launcher (`PDEATHSIG`), sets
//!    up the sandbox's view of the filesystem (`mounts`), applies Landlock, a
//!    seccomp filter, rlimits and an empty capability set, then forks the
//!    program and reaps orphans; it exits with the program (terminals) or once
//!    nothing is left (shell commands, after reporting the program's exit), and
//!    its end makes the kernel kill everything else in the namespace;
//! 3. the program itself.
//!
//! Signals the server sends the program go through both ([`super::relay`]).

use super::plan::{Plan, Rlimits, SETUP_FAILED};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setpgid};
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// What went wrong, and at which step: printed by the launcher as
/// `reshost sandbox: <step>: <error>`.
pub(super) struct Failed(String);

/// Names the step an error happened at: `.map_err(at("mounting /proc"))`.
pub(super) fn at<E: std::fmt::Display>(step: impl std::fmt::Display) -> impl FnOnce(E) -> Failed {
    move |e| Failed(format!("{step}: {e}"))
}

type Step<T = ()> = Result<T, Failed>;

/// Entry point; `args` are the arguments after `sandbox-exec`. Never returns.
pub fn main(args: &[OsString]) -> ! {
    let code = match parse(args).and_then(|(plan, argv)| launch(&plan, &argv)) {
        Ok(never) => match never {},
        Err(Failed(message)) => {
            eprintln!("reshost sandbox: {message}");
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

fn parse(args: &[OsString]) -> Step<(Plan, Vec<CString>)> {
    let [plan, dashes, argv @ ..] = args else {
        return Err(Failed(
            "usage: reshost sandbox-exec PLAN -- PROGRAM [ARGS…]".into(),
        ));
    };
    if dashes != "--" || argv.is_empty() {
        return Err(Failed(
            "usage: reshost sandbox-exec PLAN -- PROGRAM [ARGS…]".into(),
        ));
    }
    let plan: Plan = serde_json::from_slice(plan.as_bytes()).map_err(at("the plan"))?;
    let argv = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(at("an argument")))
        .collect::<Step<_>>()?;
    Ok((plan, argv))
}

enum Never {}

/// Step 1, the launcher.
fn launch(plan: &Plan, argv: &[CString]) -> Step<Never> {
    // Descriptors another launch's spawn let through (the server's threads
    // spawn at once) are none of this sandbox's business.
    close_from(3, plan.exit_fd);
    super::relay::hold();
    for dir in &plan.cgroups {
        // cgroup v1's `tasks` moves just this (single-threaded) process without
        // the global threadgroup lock, whose write side waits out an RCU grace
        // period (~10-20 ms on an idle machine); v2 has only `cgroup.procs`.
        let tasks = dir.join("tasks");
        let file = if tasks.exists() {
            tasks
        } else {
            dir.join("cgroup.procs")
        };
        std::fs::write(file, "0").map_err(at(format!("joining cgroup {}", dir.display())))?;
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC;
    if plan.isolate_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(at("entering new namespaces"))?;
    // The same ids inside as outside: files the program writes belong to the
    // server's user, and root inside is root outside only for files it owns.
    std::fs::write("/proc/self/setgroups", "deny").map_err(at("setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")).map_err(at("uid_map"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")).map_err(at("gid_map"))?;
    if plan.isolate_network {
        loopback_up().map_err(at("bringing up loopback"))?;
    }
    // Tells the init whether the launcher still lives once it has asked to die with it.
    let (alive_r, alive_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(at("pipe"))?;
    // Keystrokes meant for the program must not end the sandbox around it.
    ignore(&[
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ]);
    // SAFETY: single-threaded (this runs before any thread is started).
    match unsafe { fork() }.map_err(at("fork"))? {
        ForkResult::Parent { child } => {
            super::relay::pass_to(child.as_raw(), true);
            drop(alive_r);
            if let Some(fd) = plan.exit_fd {
                // Only the init holds it, so that its end is the report's end.
                let _ = nix::unistd::close(fd);
            }
            let code = wait_for(child);
            drop(alive_w);
            std::process::exit(code)
        }
        ForkResult::Child => {
            drop(alive_w);
            init(plan, argv, alive_r)
        }
    }
}

/// Step 2, PID 1 of the new namespace.
fn init(plan: &Plan, argv: &[CString], launcher_alive: OwnedFd) -> Step<Never> {
    // Relays (still blocked, as in the launcher) are the init's to handle now.
    super::relay::hold();
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(at("pdeathsig"))?;
    // The launcher may have died before the line above: then nobody would kill us.
    let mut poll = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&launcher_alive),
        nix::poll::PollFlags::POLLIN,
    )];
    if nix::poll::poll(&mut poll, nix::poll::PollTimeout::ZERO).map_err(at("poll"))? > 0 {
        std::process::exit(SETUP_FAILED);
    }
    drop(launcher_alive);
    if let Some(fd) = plan.exit_fd {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(at("the exit report descriptor"))?;
    }
    // It ends only by its program's end or SIGKILL.
    let all: Vec<Signal> = Signal::iterator()
        .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCHLD))
        .collect();
    ignore(&all);
    super::mounts::mounts(plan)?;
    super::landlock::restrict(plan)?;
    super::seccomp::install().map_err(at("seccomp"))?;
    set_rlimits(&plan.rlimits)?;
    drop_capabilities()?;
    // The program inherits its stdio only.
    close_from(3, None);
    // Nothing inside may ptrace the init.
    nix::sys::prctl::set_dumpable(false).map_err(at("dumpable"))?;
    // Signals meant for the program wait, blocked, until it has its own
    // dispositions back (until then it has the init's, which ignore them all).
    let mut held = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut held),
    )
    .map_err(at("sigprocmask"))?;
    // SAFETY: single-threaded.
    match unsafe { fork() }.map_err(at("fork"))? {
        ForkResult::Parent { child } => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&held), None);
            let target = match plan.program_group {
                // Set here too, so that no relay can come before the group exists.
                true => {
                    let _ = setpgid(child, child);
                    -child.as_raw()
                }
                false => child.as_raw(),
            };
            super::relay::pass_to(target, false);
            reap(child, plan.exit_fd)
        }
        ForkResult::Child => program(plan, argv),
    }
}

/// Step 3: the program, with the signal state a fresh process has.
fn program(plan: &Plan, argv: &[CString]) -> ! {
    for n in 1..32 {
        if let Ok(sig) = Signal::try_from(n)
            && !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP)
        {
            // SAFETY: restoring the default disposition installs no handler.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    if plan.program_group {
        let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    }
    if let Err(e) = std::env::set_current_dir(&plan.cwd) {
        eprintln!("reshost sandbox: cwd {}: {e}", plan.cwd.display());
        std::process::exit(SETUP_FAILED);
    }
    let e = nix::unistd::execvp(&argv[0], argv).unwrap_err();
    eprintln!(
        "reshost sandbox: {}: {}",
        argv[0].to_string_lossy(),
        e.desc()
    );
    std::process::exit(if e == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}

/// The exit code a shell would report for `status`.
fn code_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn wait_for(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(status) => {
                if let Some(code) = code_of(status) {
                    return code;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return SETUP_FAILED,
        }
    }
}

/// Reaps every orphan of the namespace. Without an exit report, exits when
/// `program` does, which makes the kernel kill whatever is left inside; with
/// one, reports the program's exit code on it and exits when nothing is left
/// (or when the server kills the launch).
fn reap(program: Pid, exit_fd: Option<i32>) -> ! {
    let mut code = None;
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(status) if status.pid() == Some(program) => {
                code = code_of(status);
                match (code, exit_fd) {
                    (Some(code), None) => std::process::exit(code),
                    (Some(c), Some(fd)) => {
                        // SAFETY: `fd` is the report descriptor the plan names, ours.
                        let report = unsafe { OwnedFd::from_raw_fd(fd) };
                        let _ = nix::unistd::write(&report, &c.to_le_bytes());
                    }
                    (None, _) => {}
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => std::process::exit(code.unwrap_or(SETUP_FAILED)),
        }
    }
}

/// Closes every descriptor from `first` on but `keep`; with `keep` `None`,
/// marks them close-on-exec instead (the init still holds what it needs).
fn close_from(first: u32, keep: Option<i32>) {
    const CLOEXEC: libc::c_uint = 4; // CLOSE_RANGE_CLOEXEC
    let range = |from: u32, to: u32, flags: libc::c_uint| {
        // SAFETY: close_range only closes (or flags) descriptors; none of
        // them is owned by a Rust object that would be used afterwards.
        unsafe { libc::syscall(libc::SYS_close_range, from, to, flags) };
    };
    match keep.and_then(|k| u32::try_from(k).ok()) {
        Some(k) if k >= first => {
            if k > first {
                range(first, k - 1, 0);
            }
            range(k + 1, u32::MAX, 0);
        }
        Some(_) => range(first, u32::MAX, 0),
        None => range(first, u32::MAX, CLOEXEC),
    }
}

fn ignore(signals: &[Signal]) {
    for &sig in signals {
        // SAFETY: SIG_IGN installs no handler.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

fn set_rlimits(limits: &Rlimits) -> Step {
    use nix::sys::resource::{Resource, setrlimit};
    let all = [
        (Resource::RLIMIT_AS, limits.address_space),
        (Resource::RLIMIT_NPROC, limits.processes),
        (Resource::RLIMIT_CPU, limits.cpu_seconds),
        (Resource::RLIMIT_FSIZE, limits.file_size),
    ];
    for (resource, value) in all {
        if let Some(value) = value {
            setrlimit(resource, value, value).map_err(at("setrlimit"))?;
        }
    }
    Ok(())
}

/// Empties every capability set (bounding, ambient, effective, permitted,
/// inheritable), so the program has none even where it runs as uid 0.
fn drop_capabilities() -> Step {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            // EINVAL: past the last capability this kernel knows.
            break;
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads the header and two data structs we pass.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(at("dropping capabilities")(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `ip link set lo up` in the new network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain socket for the ioctls below, closed by OwnedFd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor we own.
    let sock: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; the ioctls read the name and read/write the flags.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
