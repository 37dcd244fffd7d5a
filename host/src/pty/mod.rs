//! Terminals: processes on pseudo-terminals (portable-pty), their output kept in a
//! scrollback ring and fanned out to every attached client, whether or not anyone
//! is attached.
//!
//! Each terminal has one reader thread: it reads the PTY master until the child is
//! gone (EOF or EIO), then reaps the child and records its exit code. A client that
//! falls more than `client_buffer_bytes` behind is cut off, so no client can stall
//! the terminal or the others.

mod ring;
mod spawn;

use crate::sync::Lock;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The most columns or rows a terminal may have.
pub const MAX_DIMENSION: u16 = 1000;
pub use spawn::Spec;

/// Bytes read from the PTY per read.
const READ_BYTES: usize = 64 * 1024;

/// A read at least this big is taken for a burst of output (a keystroke's echo is
/// a byte or a few): more is read into the same piece while it keeps coming.
const BURST_BYTES: usize = 512;
/// How long a burst may pause and still be one piece.
const BURST_PAUSE_MS: i32 = 1;

/// Reads what follows within `BURST_PAUSE_MS` into `buffer` after `end`, up to
/// nearly full; returns the new end. The PTY hands out output in pieces of a few
/// hundred bytes: sent as they come, each costs a wake-up, a frame and a write per
/// client, which is most of the server's work when output streams.
fn read_burst(
    fd: std::os::fd::RawFd,
    output: &mut Box<dyn Read + Send>,
    buffer: &mut [u8],
    mut end: usize,
) -> usize {
    let room = buffer.len() - 4096;
    while end < room {
        let mut ready = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the length given.
        if unsafe { libc::poll(&mut ready, 1, BURST_PAUSE_MS) } <= 0 {
            break;
        }
        match output.read(&mut buffer[end..]) {
            Ok(n) if n > 0 => end += n,
            _ => break, // The end shows again on the next read.
        }
    }
    end
}

/// The stack of a terminal's reader and waiter threads: they only copy bytes.
const THREAD_STACK: usize = 256 * 1024;

/// A terminal's live state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub running: bool,
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub cols: u16,
    pub rows: u16,
}

/// What an attached client receives.
pub enum Output {
    Data(Bytes),
    /// The process ended with this code (signals: 128 + the signal number).
    Exit(i32),
}

/// One attached client's side of the fan-out.
struct Client {
    tx: mpsc::UnboundedSender<Output>,
    /// Bytes sent to the client and not yet written to its socket.
    queued: Arc<AtomicUsize>,
    /// Set when the client was cut off for being too slow.
    slow: Arc<AtomicBool>,
}

struct Shared {
    ring: ring::Ring,
    clients: Vec<Client>,
    exit_code: Option<i32>,
    cols: u16,
    rows: u16,
}

pub struct Terminal {
    pid: u32,
    /// Whether the process was reaped: from then on its pid may be reused, so
    /// nothing may be killed by it.
    reaped: Mutex<bool>,
    /// The terminal's sandbox: killing it ends every process the terminal started.
    guard: crate::sandbox::Guard,
    master: Mutex<Box<dyn portable_pty::MasterPty + Send>>,
    writer: Mutex<Box<dyn Write + Send>>,
    shared: Mutex<Shared>,
    client_buffer_bytes: usize,
}

/// An attached client: the scrollback to replay first, then live output.
pub struct Attachment {
    pub replay: Vec<u8>,
    pub output: mpsc::UnboundedReceiver<Output>,
    pub queued: Arc<AtomicUsize>,
    pub slow: Arc<AtomicBool>,
    /// The process had already ended: its exit code.
    pub exited: Option<i32>,
}

impl Terminal {
    pub fn status(&self) -> Status {
        let shared = self.shared.locked();
        Status {
            running: shared.exit_code.is_none(),
            pid: self.pid,
            exit_code: shared.exit_code,
            cols: shared.cols,
            rows: shared.rows,
        }
    }

    /// Input from a client.
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut writer = self.writer.locked();
        writer.write_all(bytes)?;
        writer.flush()
    }

    pub fn resize(&self, cols: u16, rows: u16) -> anyhow::Result<()> {
        self.master.locked().resize(portable_pty::PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let mut shared = self.shared.locked();
        (shared.cols, shared.rows) = (cols, rows);
        Ok(())
    }

    /// Attaches a client: the scrollback and the live output, with nothing lost or
    /// repeated in between (both are taken under one lock).
    pub fn attach(&self) -> Attachment {
        let (tx, output) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let slow = Arc::new(AtomicBool::new(false));
        let mut shared = self.shared.locked();
        let exited = shared.exit_code;
        if exited.is_none() {
            shared.clients.push(Client {
                tx,
                queued: queued.clone(),
                slow: slow.clone(),
            });
        }
        Attachment {
            replay: shared.ring.contents(),
            output,
            queued,
            slow,
            exited,
        }
    }

    /// Keeps output and hands it to every client; cuts off those too far behind.
    fn publish(&self, data: &[u8]) {
        let mut shared = self.shared.locked();
        shared.ring.push(data);
        let bytes = Bytes::copy_from_slice(data);
        let limit = self.client_buffer_bytes;
        shared.clients.retain(|client| {
            let queued = client.queued.fetch_add(bytes.len(), Ordering::SeqCst) + bytes.len();
            if queued > limit {
                client.slow.store(true, Ordering::SeqCst);
                return false; // Dropping the sender ends the client's stream.
            }
            client.tx.send(Output::Data(bytes.clone())).is_ok()
        });
    }

    fn exited(&self, code: i32) {
        let mut shared = self.shared.locked();
        shared.exit_code = Some(code);
        for client in shared.clients.drain(..) {
            let _ = client.tx.send(Output::Exit(code));
        }
    }

    /// Kills every process of the terminal's session (the shell, its jobs, their
    /// children), not only the shell's process group; nothing once it was reaped.
    pub fn kill(&self) {
        let reaped = self.reaped.locked();
        if !*reaped {
            spawn::kill_session(self.pid);
            self.guard.kill();
        }
    }

    /// Waits for the shell to end, kills what it left running in its session (so
    /// that nothing holds the PTY open and no job outlives its terminal), then
    /// reaps it. Until then the zombie keeps the pid, so the kill cannot hit a
    /// stranger.
    fn reap(&self, child: &mut (dyn portable_pty::Child + Send + Sync)) -> i32 {
        spawn::wait_exited(self.pid);
        let mut reaped = self.reaped.locked();
        spawn::kill_session(self.pid);
        self.guard.kill();
        let code = spawn::exit_code(child);
        self.guard.reaped();
        *reaped = true;
        code
    }
}

/// A terminal is known by its session and its id: ids repeat across sessions.
type Key = (String, String);

fn key(session: &str, id: &str) -> Key {
    (session.to_owned(), id.to_owned())
}

/// Every live terminal of the server.
#[derive(Default)]
pub struct Terminals {
    all: Mutex<HashMap<Key, Arc<Terminal>>>,
    /// Held while a terminal starts, so that two launches of the same terminal at
    /// once start one process, not one that the other kills.
    starting: Mutex<()>,
}

impl Terminals {
    /// Starts a terminal with id `id` for `session`, ending the exited one it
    /// replaces; one that is running (a concurrent launch won) is kept.
    pub fn spawn(
        &self,
        session: &str,
        id: &str,
        spec: &Spec,
        sandbox: &crate::sandbox::Sandbox,
        client_buffer_bytes: usize,
    ) -> anyhow::Result<Arc<Terminal>> {
        let _one = self.starting.locked();
        if let Some(running) = self.get(session, id).filter(|t| t.status().running) {
            return Ok(running);
        }
        let spawned = spawn::spawn(spec, sandbox, session)?;
        let terminal = Arc::new(Terminal {
            pid: spawned.pid,
            guard: spawned.guard,
            reaped: Mutex::new(false),
            master: Mutex::new(spawned.master),
            writer: Mutex::new(spawned.writer),
            shared: Mutex::new(Shared {
                ring: ring::Ring::new(spec.scrollback_bytes),
                clients: Vec::new(),
                exit_code: None,
                cols: spec.cols,
                rows: spec.rows,
            }),
            client_buffer_bytes,
        });
        let waiter = terminal.clone();
        let mut child = spawned.child;
        let exit = std::thread::Builder::new()
            .name(format!("pty-wait-{}", spawned.pid))
            .stack_size(THREAD_STACK)
            .spawn(move || waiter.reap(child.as_mut()))?;
        let reader = terminal.clone();
        let mut output = spawned.reader;
        // Stays open as long as `reader` holds the terminal and so its master.
        let fd = terminal.master.locked().as_raw_fd();
        std::thread::Builder::new()
            .name(format!("pty-{}", spawned.pid))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let mut buffer = vec![0u8; READ_BYTES];
                let mut held = 0;
                loop {
                    match output.read(&mut buffer[held..]) {
                        Ok(0) | Err(_) => break, // EOF, or EIO: the child is gone.
                        Ok(n) => {
                            let mut end = held + n;
                            if n >= BURST_BYTES
                                && let Some(fd) = fd
                            {
                                end = read_burst(fd, &mut output, &mut buffer, end);
                            }
                            let keep = ring::incomplete_tail(&buffer[..end]);
                            reader.publish(&buffer[..end - keep]);
                            buffer.copy_within(end - keep..end, 0);
                            held = keep;
                        }
                    }
                }
                if held > 0 {
                    reader.publish(&buffer[..held]);
                }
                reader.exited(exit.join().unwrap_or(-1));
            })?;
        let replaced = self.all.locked().insert(key(session, id), terminal.clone());
        if let Some(old) = replaced {
            old.kill();
        }
        Ok(terminal)
    }

    /// How many terminals of the sessions `owned` picks have a running process.
    pub fn running(&self, owned: impl Fn(&str) -> bool) -> u64 {
        let all = self.all.locked();
        all.iter()
            .filter(|((session, _), t)| owned(session) && t.status().running)
            .count() as u64
    }

    pub fn get(&self, session: &str, id: &str) -> Option<Arc<Terminal>> {
        self.all.locked().get(&key(session, id)).cloned()
    }

    /// Ends a terminal: its processes are killed and it is forgotten.
    pub fn close(&self, session: &str, id: &str) -> bool {
        let terminal = self.all.locked().remove(&key(session, id));
        terminal.inspect(|t| t.kill()).is_some()
    }

    /// Ends every terminal of a session (it is being deleted).
    pub fn close_session(&self, session: &str) {
        self.all.locked().retain(|(owner, _), t| {
            let keep = owner != session;
            if !keep {
                t.kill();
            }
            keep
        });
    }

    /// Hands a terminal to another session; its process and clients are untouched.
    pub fn transfer(&self, from: &str, id: &str, to: &str) -> bool {
        let mut all = self.all.locked();
        let Some(terminal) = all.remove(&key(from, id)) else {
            return false;
        };
        if let Some(displaced) = all.insert(key(to, id), terminal) {
            displaced.kill();
        }
        true
    }

    /// Adds the live fields to the metadata of the terminal resources in a JSON
    /// body (one resource, or a list page); anything else passes unchanged. A
    /// terminal with no live process (ended before a restart) is not running.
    pub fn overlay(&self, body: String) -> String {
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&body) else {
            return body;
        };
        match value.get_mut("data").and_then(|d| d.as_array_mut()) {
            Some(items) => items.iter_mut().for_each(|item| self.overlay_one(item)),
            None => self.overlay_one(&mut value),
        }
        value.to_string()
    }

    fn overlay_one(&self, resource: &mut serde_json::Value) {
        if resource["type"] != "terminal" {
            return;
        }
        let (Some(id), Some(session)) = (resource["id"].as_str(), resource["session_id"].as_str())
        else {
            return;
        };
        let live = self.get(session, id).map(|t| t.status());
        let Some(metadata) = resource.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
            return;
        };
        metadata.insert("running".into(), live.is_some_and(|s| s.running).into());
        metadata.insert("pid".into(), live.map(|s| s.pid).into());
        metadata.insert("exit_code".into(), live.and_then(|s| s.exit_code).into());
        if let Some(s) = live {
            metadata.insert("cols".into(), s.cols.into());
            metadata.insert("rows".into(), s.rows.into());
        }
    }

    /// Ends every terminal (the server is stopping).
    pub fn close_all(&self) {
        for (_, t) in self.all.locked().drain() {
            t.kill();
        }
    }
}
