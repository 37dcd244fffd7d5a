//! Starting a terminal's process on a new PTY, and ending it with everything it
//! started.

use crate::sandbox::{Guard, Launch, Sandbox};
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::path::PathBuf;

/// What to run, where, and how big the screen is.
#[derive(Clone, Debug)]
pub struct Spec {
    pub command: String,
    pub args: Vec<String>,
    /// Added to the minimal environment every terminal gets.
    pub env: Vec<(String, String)>,
    /// The working directory: the workspace or a directory inside it (checked).
    pub cwd: PathBuf,
    /// The workspace root (`HOME`).
    pub home: PathBuf,
    pub cols: u16,
    pub rows: u16,
    pub scrollback_bytes: usize,
}

pub struct Spawned {
    pub pid: u32,
    pub master: Box<dyn MasterPty + Send>,
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    pub child: Box<dyn Child + Send + Sync>,
    /// Ends the terminal's sandbox with it.
    pub guard: Guard,
}

/// Starts `spec`, confined, as the leader of a new session on a new PTY; its
/// temp dir is `session`'s.
pub fn spawn(spec: &Spec, sandbox: &Sandbox, session: &str) -> anyhow::Result<Spawned> {
    let pair = native_pty_system().openpty(PtySize {
        rows: spec.rows,
        cols: spec.cols,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let prepared = sandbox.prepare(Launch {
        session,
        ends_with_session: false,
        workspace: &spec.home,
        cwd: &spec.cwd,
        argv: std::iter::once(&spec.command)
            .chain(&spec.args)
            .map(Into::into)
            .collect(),
        linger: false,
        program_group: false,
    })?;
    let mut command = CommandBuilder::from_argv(prepared.argv);
    command.cwd(&spec.cwd);
    command.env_clear();
    for (key, value) in sandbox.env() {
        command.env(key, value);
    }
    command.env("HOME", &spec.home);
    command.env("TERM", "xterm-256color");
    command.env("LANG", "C.UTF-8");
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    let child = pair.slave.spawn_command(command)?;
    let guard = prepared.guard;
    // Without this the master never reads EOF when the child exits.
    drop(pair.slave);
    let pid = child
        .process_id()
        .ok_or_else(|| anyhow::anyhow!("the terminal's process has no pid"))?;
    guard.started(pid);
    Ok(Spawned {
        guard,
        pid,
        reader: pair.master.try_clone_reader()?,
        writer: pair.master.take_writer()?,
        master: pair.master,
        child,
    })
}

/// Blocks until process `pid` (a child of ours) has ended, leaving it unreaped.
pub fn wait_exited(pid: u32) {
    loop {
        // SAFETY: waitid only writes into the siginfo we pass.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let done = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if done == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Reaps the child and reports its exit code; a signal counts as 128 + its
/// number, as shells report it.
pub fn exit_code(child: &mut (dyn Child + Send + Sync)) -> i32 {
    match child.wait() {
        Ok(status) => match status.signal() {
            None => status.exit_code() as i32,
            Some(name) => 128 + signal_number(name).unwrap_or(0),
        },
        Err(_) => -1,
    }
}

/// The number of a signal from its description (what portable-pty reports).
fn signal_number(name: &str) -> Option<i32> {
    (1..32).find(|&n| {
        // SAFETY: strsignal returns a pointer to a static or thread-local string.
        let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(n)) };
        text.to_str().is_ok_and(|t| t == name)
    })
}

/// SIGKILLs every process whose session is `sid` (the terminal's shell leads its
/// own session, and job control puts its jobs in process groups of their own).
pub fn kill_session(sid: u32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state ppid pgrp session ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let session = after
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<u32>().ok());
        if session == Some(sid) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
