//! Background processes: shell commands that outlive the request that started
//! them, confined like every command, with their stdin fed by requests and
//! their output kept in bounded rings that any number of readers follow.
//!
//! Each process has one task that reads its output and waits for its end (its
//! shell's exit, which ends everything it started, or its timeout); the
//! process then keeps its exit code and its output until it is deleted. Its
//! record is stored when it starts and when it ends, so a restarted server
//! still lists it (as ended; the output was in memory).

pub mod output;

use crate::caps::exec::{Background, Ending, Pieces};
use crate::sandbox::Guard;
use crate::store::Store;
use crate::sync::Lock;
use output::{Stream, Streams};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// How long a process's output is still read after its shell exits (the
/// sandbox ends with it, closing every pipe at once; this is a bound).
const DRAIN: Duration = Duration::from_secs(1);

/// How long a deletion waits for a killed process to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Why a process refused what was asked of it.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("process {0} has ended")]
    Ended(String),
    #[error("the stdin of process {0} is closed")]
    StdinClosed(String),
    /// The process did not read its input in time; what was written stays written.
    #[error(
        "process {id} did not read its input within {wait_ms} ms: {written} of {total} bytes were written"
    )]
    Stalled {
        id: String,
        written: usize,
        total: usize,
        wait_ms: u64,
    },
    #[error("signalling process {0}: {1}")]
    Signal(String, std::io::Error),
}

/// How a process ended.
#[derive(Clone, Copy, Debug)]
pub struct End {
    /// The shell's exit code (signals as 128 + n); `None` when it timed out.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Unix seconds.
    pub ended_at: u64,
}

/// What a process was started as.
pub struct Spec {
    pub session: String,
    pub environment: String,
    pub command: String,
    /// As the client named it.
    pub cwd: String,
    /// Bytes kept of each output stream.
    pub ring_bytes: usize,
}

struct State {
    streams: Streams,
    end: Option<End>,
}

pub struct Process {
    pub id: String,
    spec: Spec,
    pid: u32,
    started_at: u64,
    guard: Arc<Guard>,
    stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    stdin_open: AtomicBool,
    state: Mutex<State>,
    /// Bumped whenever output comes or the process ends.
    changed: watch::Sender<u64>,
    /// Set once the process is deleted; held while its record is written, so
    /// that a late write cannot bring a deleted record back.
    forgotten: Mutex<bool>,
    /// The task following the process to its end.
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Process {
    pub fn environment(&self) -> &str {
        &self.spec.environment
    }

    pub fn end(&self) -> Option<End> {
        self.state.locked().end
    }

    /// The process as the API shows it.
    pub fn json(&self) -> Value {
        let state = self.state.locked();
        let end = state.end;
        json!({
            "id": self.id,
            "object": "process",
            "session_id": self.spec.session,
            "environment_id": self.spec.environment,
            "command": self.spec.command,
            "cwd": self.spec.cwd,
            "pid": self.pid,
            "running": end.is_none(),
            "exit_code": end.and_then(|e| e.exit_code),
            "timed_out": end.is_some_and(|e| e.timed_out),
            "started_at": self.started_at,
            "ended_at": end.map(|e| e.ended_at),
            "stdout_bytes": state.streams.stdout.end(),
            "stderr_bytes": state.streams.stderr.end(),
            "stdin_open": self.stdin_open.load(Ordering::SeqCst) && end.is_none(),
        })
    }

    /// Runs `f` on both output streams and whether the process has ended.
    pub fn read<T>(&self, f: impl FnOnce(&Streams, Option<End>) -> T) -> T {
        let state = self.state.locked();
        f(&state.streams, state.end)
    }

    /// Told whenever output comes or the process ends.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn running(&self) -> Result<(), Refused> {
        match self.end() {
            Some(_) => Err(Refused::Ended(self.id.clone())),
            None => Ok(()),
        }
    }

    /// Writes `bytes` to the process's stdin, waiting at most `wait` for it to
    /// take them, then closes it if `close`; the bytes written.
    pub async fn write_stdin(
        &self,
        bytes: &[u8],
        close: bool,
        wait: Duration,
    ) -> Result<usize, Refused> {
        self.running()?;
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err(Refused::StdinClosed(self.id.clone()));
        };
        let mut written = 0;
        let deadline = tokio::time::Instant::now() + wait;
        while written < bytes.len() {
            match tokio::time::timeout_at(deadline, pipe.write(&bytes[written..])).await {
                Ok(Ok(n)) if n > 0 => written += n,
                // The read end is gone: the process (or what holds its stdin) ended.
                Ok(_) => return Err(Refused::Ended(self.id.clone())),
                Err(_) => {
                    return Err(Refused::Stalled {
                        id: self.id.clone(),
                        written,
                        total: bytes.len(),
                        wait_ms: wait.as_millis() as u64,
                    });
                }
            }
        }
        if close {
            *stdin = None;
            self.stdin_open.store(false, Ordering::SeqCst);
        }
        Ok(written)
    }

    /// Sends `signal` to the process (its shell's process group).
    pub async fn signal(self: &Arc<Self>, signal: i32) -> Result<(), Refused> {
        self.running()?;
        let process = self.clone();
        let sent = tokio::task::spawn_blocking(move || process.guard.signal(signal))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match sent {
            Ok(()) => Ok(()),
            // Reaped since: it ended.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(Refused::Ended(self.id.clone())),
            Err(e) => Err(Refused::Signal(self.id.clone(), e)),
        }
    }

    /// Kills the process and everything it started, and waits (a bounded
    /// while) for its end to be recorded.
    async fn kill(&self) {
        self.guard.kill();
        let mut changed = self.watch();
        let _ = tokio::time::timeout(KILL_WAIT, async {
            while self.end().is_none() {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Stores the process's record as it now is, unless it was deleted.
    fn record(&self, store: &Store) {
        let forgotten = self.forgotten.locked();
        if *forgotten {
            return;
        }
        let json = self.json().to_string();
        if let Err(e) = store.put_process(&self.spec.session, &self.id, &json) {
            tracing::error!(process = %self.id, error = %e, "recording a process");
        }
    }

    /// Keeps the output until the process ends, then records how it ended.
    async fn follow(
        self: Arc<Self>,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
        mut end: Ending,
        store: Arc<Store>,
    ) {
        let output = self.keep_output(stdout, stderr);
        tokio::pin!(output);
        let mut read_all = false;
        let ended = loop {
            tokio::select! {
                ended = &mut end => break ended,
                () = &mut output, if !read_all => read_all = true,
            }
        };
        if !read_all {
            let _ = tokio::time::timeout(DRAIN, output).await;
        }
        let (exit_code, timed_out) = ended.unwrap_or_else(|e| {
            tracing::error!(process = %self.id, error = %e, "waiting for a process");
            (None, false)
        });
        self.state.locked().end = Some(End {
            exit_code,
            timed_out,
            ended_at: unix_now(),
        });
        *self.stdin.lock().await = None;
        let recorded = self.clone();
        let _ = tokio::task::spawn_blocking(move || recorded.record(&store)).await;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Reads both output streams into the rings until they end.
    async fn keep_output(
        &self,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
    ) {
        tokio::join!(
            self.keep(stdout, Stream::Stdout),
            self.keep(stderr, Stream::Stderr)
        );
    }

    /// Reads one output stream into its ring until it ends.
    async fn keep(&self, from: impl tokio::io::AsyncRead + Unpin, stream: Stream) {
        let mut pieces = Pieces::new(from);
        while let Some(read) = pieces.next().await {
            self.state.locked().streams.push(stream, read);
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

/// A process is known by its session and its id.
type Key = (String, String);

/// Every process the server started since it started.
#[derive(Default)]
pub struct Processes {
    all: Mutex<HashMap<Key, Arc<Process>>>,
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Processes {
    /// Registers a started command as process `id`, records it, and follows it
    /// to its end; `held` (its quota) is let go when it ends.
    pub async fn adopt<H: Send + 'static>(
        &self,
        id: String,
        spec: Spec,
        started: Background,
        store: Arc<Store>,
        held: H,
    ) -> Arc<Process> {
        let Background {
            pid,
            stdin,
            stdout,
            stderr,
            guard,
            end,
        } = started;
        let process = Arc::new(Process {
            id: id.clone(),
            pid,
            started_at: unix_now(),
            guard,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            stdin_open: AtomicBool::new(true),
            state: Mutex::new(State {
                streams: Streams::new(spec.ring_bytes),
                end: None,
            }),
            changed: watch::Sender::new(0),
            forgotten: Mutex::new(false),
            follower: Mutex::new(None),
            spec,
        });
        let key = (process.spec.session.clone(), id);
        self.all.locked().insert(key, process.clone());
        let (recorded, to_record) = (process.clone(), store.clone());
        let _ = tokio::task::spawn_blocking(move || recorded.record(&to_record)).await;
        let follower = process.clone();
        let handle = tokio::spawn(async move {
            follower.follow(stdout, stderr, end, store).await;
            drop(held);
        });
        *process.follower.locked() = Some(handle);
        process
    }

    pub fn get(&self, session: &str, id: &str) -> Option<Arc<Process>> {
        self.all
            .locked()
            .get(&(session.to_owned(), id.to_owned()))
            .cloned()
    }

    /// The process as the API shows it, from its record `stored` when it is
    /// not live (it ended before the server restarted).
    pub fn shown(&self, session: &str, id: &str, stored: &str) -> serde_json::Result<Value> {
        if let Some(live) = self.get(session, id) {
            return Ok(live.json());
        }
        let mut record: Value = serde_json::from_str(stored)?;
        record["running"] = false.into();
        record["stdin_open"] = false.into();
        Ok(record)
    }

    /// Kills process `id` if it runs (waiting, a bounded while, for its end)
    /// and forgets it: its record is no longer written.
    pub async fn forget(&self, session: &str, id: &str) {
        let live = self
            .all
            .locked()
            .remove(&(session.to_owned(), id.to_owned()));
        if let Some(process) = live {
            process.kill().await;
            *process.forgotten.locked() = true;
        }
    }

    /// Keeps the newest `keep` records of the session's processes (and every
    /// running one), forgetting the oldest ended ones.
    pub fn prune(&self, session: &str, keep: usize, store: &Store) -> crate::store::Result<()> {
        let ids = store.process_ids(session)?;
        let mut excess = ids.len().saturating_sub(keep);
        if excess == 0 {
            return Ok(());
        }
        let mut all = self.all.locked();
        let mut dropped = Vec::new();
        for id in ids {
            if excess == 0 {
                break;
            }
            let key = (session.to_owned(), id);
            if all.get(&key).is_some_and(|p| p.end().is_none()) {
                continue;
            }
            if let Some(process) = all.remove(&key) {
                *process.forgotten.locked() = true;
            }
            dropped.push(key.1);
            excess -= 1;
        }
        drop(all);
        store.delete_processes(session, &dropped)
    }

    /// Ends every process of a session (it is being deleted) and forgets them.
    pub fn close_session(&self, session: &str) {
        self.all.locked().retain(|(owner, _), process| {
            let keep = owner != session;
            if !keep {
                *process.forgotten.locked() = true;
                process.guard.kill();
            }
            keep
        });
    }

    /// Ends every process (the server is stopping), and waits a bounded while
    /// for their ends to be recorded.
    pub async fn close_all(&self) {
        let all: Vec<Arc<Process>> = self.all.locked().drain().map(|(_, p)| p).collect();
        let followers: Vec<_> = all
            .iter()
            .filter_map(|p| {
                p.guard.kill();
                p.follower.locked().take()
            })
            .collect();
        let _ = tokio::time::timeout(KILL_WAIT, futures_util::future::join_all(followers)).await;
    }
}
