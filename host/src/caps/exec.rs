//! Host side of `reshost:api/exec`: shell commands in the session's workspace.
//!
//! `bash -c` (else `sh -c`) runs confined by the server's sandbox (see
//! `crate::sandbox`) with the workspace (or a directory inside it) as working
//! directory. The answer comes when the shell exits; what it left running in
//! the background runs on until the command's deadline, which kills everything
//! the command started, as does a call that is abandoned or the session's
//! deletion. Each output stream is read concurrently and capped; the rest is
//! drained and dropped. A client that streams the output gets every piece as
//! it is read, through a tap.

use super::CapsView;
use crate::bindings::exec::{Command, Host, Outcome};
use crate::bindings::types::{Error, ErrorCode};
use crate::sandbox::{Guard, Launch, Sandbox};
use crate::sync::Lock;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// Which output stream a piece was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of output as it was read.
pub struct Piece {
    pub stream: Stream,
    pub bytes: bytes::Bytes,
}

/// Where a streamed command's output goes as it is read. A full tap holds the
/// reading back (and so the command's writes); a closed one is let go.
pub type Tap = mpsc::Sender<Piece>;

/// After the command exits, how long its output is still read (a background child
/// may hold the pipes open).
const DRAIN: Duration = Duration::from_millis(200);

/// What a workspace grants to commands.
#[derive(Clone)]
pub struct ExecLimits {
    /// Bytes kept of each output stream.
    pub output_bytes: usize,
    /// Where commands run confined.
    pub sandbox: Arc<Sandbox>,
    /// The session: its deletion ends its commands.
    pub session: String,
    /// The longest a command may run, whatever a component asks
    /// (`limits.max_command_timeout_ms`).
    pub max_timeout_ms: u64,
}

/// `bash` when the host has it, else `sh`.
fn shell() -> &'static str {
    static SHELL: OnceLock<&'static str> = OnceLock::new();
    SHELL.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let has_bash = std::env::split_paths(&path).any(|dir| dir.join("bash").is_file());
        if has_bash { "bash" } else { "sh" }
    })
}

/// The working directory `cwd` (relative) inside `workspace`, refusing anything
/// that resolves outside it. The path is resolved through the workspace's
/// capability-scoped directory, so an escape is refused where it is met and
/// nothing outside (not even whether a path exists there) is ever looked at.
pub fn working_dir(workspace: &Path, cwd: &str) -> Result<PathBuf, Error> {
    let fail = |code, message: String| Error { code, message };
    let missing = || fail(ErrorCode::InternalError, "the workspace is missing".into());
    let root = cap_std::fs::Dir::open_ambient_dir(workspace, cap_std::ambient_authority())
        .map_err(|_| missing())?;
    let target = if cwd.is_empty() { "." } else { cwd };
    if let Err(e) = root.open_dir(target) {
        return Err(match e.kind() {
            std::io::ErrorKind::PermissionDenied => fail(
                ErrorCode::PathForbidden,
                format!("cwd {cwd:?} resolves outside the environment"),
            ),
            std::io::ErrorKind::NotADirectory => fail(
                ErrorCode::InvalidInput,
                format!("cwd {cwd:?} is not a directory"),
            ),
            _ => fail(
                ErrorCode::PathNotFound,
                format!("cwd {cwd:?} does not exist"),
            ),
        });
    }
    // It resolved inside: name it by its real path for the process to start in.
    let root = workspace.canonicalize().map_err(|_| missing())?;
    let dir = root.join(target).canonicalize().map_err(|_| missing())?;
    if !dir.starts_with(&root) {
        return Err(fail(
            ErrorCode::PathForbidden,
            format!("cwd {cwd:?} resolves outside the environment"),
        ));
    }
    Ok(dir)
}

/// A captured output stream, shared so that what was read survives the reader.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Captured {
    fn text(&self) -> (String, bool) {
        (
            String::from_utf8_lossy(&self.bytes).into_owned(),
            self.truncated,
        )
    }
}

/// An output stream read piece by piece, as the process writes it.
pub struct Pieces<R> {
    from: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Pieces<R> {
    pub fn new(from: R) -> Pieces<R> {
        Pieces {
            from,
            buf: vec![0u8; 16 * 1024],
        }
    }

    /// The next piece; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<&[u8]> {
        match self.from.read(&mut self.buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(&self.buf[..n]),
        }
    }
}

async fn capture(
    from: impl AsyncRead + Unpin,
    into: Arc<Mutex<Captured>>,
    cap: usize,
    mut tap: Option<(Tap, Stream)>,
) {
    let mut pieces = Pieces::new(from);
    while let Some(read) = pieces.next().await {
        {
            let mut c = into.locked();
            let room = cap.saturating_sub(c.bytes.len());
            c.truncated |= read.len() > room;
            c.bytes.extend_from_slice(&read[..read.len().min(room)]);
        }
        if let Some((to, stream)) = &tap {
            let piece = Piece {
                stream: *stream,
                bytes: bytes::Bytes::copy_from_slice(read),
            };
            if to.send(piece).await.is_err() {
                tap = None;
            }
        }
    }
}

/// A command's stdout and stderr, each read concurrently into its capped buffer.
struct Outputs {
    out: Arc<Mutex<Captured>>,
    err: Arc<Mutex<Captured>>,
    readers: [tokio::task::JoinHandle<()>; 2],
}

impl Outputs {
    fn read(
        child: &mut tokio::process::Child,
        cap: usize,
        tap: Option<Tap>,
    ) -> std::io::Result<Outputs> {
        let unpiped = || std::io::Error::other("an output is not piped");
        let stdout = child.stdout.take().ok_or_else(unpiped)?;
        let stderr = child.stderr.take().ok_or_else(unpiped)?;
        let (out, err) = (Arc::default(), Arc::default());
        let tapped = |stream| tap.clone().map(|to| (to, stream));
        let readers = [
            tokio::spawn(capture(
                stdout,
                Arc::clone(&out),
                cap,
                tapped(Stream::Stdout),
            )),
            tokio::spawn(capture(
                stderr,
                Arc::clone(&err),
                cap,
                tapped(Stream::Stderr),
            )),
        ];
        Ok(Outputs { out, err, readers })
    }

    /// What was read, once both streams end or `DRAIN` has passed (a background
    /// child may hold them open): stdout and stderr, each with whether it was cut.
    async fn collect(self) -> ((String, bool), (String, bool)) {
        let drain_until = Instant::now() + DRAIN;
        for reader in self.readers {
            let left = drain_until.saturating_duration_since(Instant::now());
            // A stream a background child still holds open keeps what was read.
            let _ = tokio::time::timeout(left, reader).await;
        }
        (self.out.locked().text(), self.err.locked().text())
    }
}

/// How a command's wait ended.
enum Ended {
    /// The sandbox reported the shell's exit code; its jobs may run on.
    Reported(i32),
    /// The launcher exited.
    Exited(std::io::Result<std::process::ExitStatus>),
}

/// Kills the launch and everything it started, and reaps it: the command's
/// deadline passed (no exit code then).
async fn end(guard: &Guard, child: &mut tokio::process::Child) {
    guard.kill();
    let _ = child.wait().await;
    guard.reaped();
}

/// The shell's exit code from the sandbox's exit report; `None` when the
/// report ended without one (the sandbox was killed or could not start).
async fn exit_code(report: std::os::fd::OwnedFd) -> Option<i32> {
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(report).ok()?;
    let mut code = [0u8; 4];
    pipe.read_exact(&mut code).await.ok()?;
    Some(i32::from_le_bytes(code))
}

/// A started command: the launcher, the sandbox's exit report (when confined),
/// and the guard that kills what is left when dropped (on every way out, an
/// abandoned call included).
struct Started {
    child: tokio::process::Child,
    report: Option<std::os::fd::OwnedFd>,
    guard: Arc<Guard>,
}

/// How a launch is wired.
#[derive(Clone, Copy)]
struct Wiring {
    /// Its stdin is a pipe from the server (else `/dev/null`).
    stdin: bool,
    /// What the shell leaves running runs on after it exits (until the deadline).
    linger: bool,
}

/// Starts `bash -c COMMAND` confined, in `dir` inside `workspace`.
fn start(
    workspace: &Path,
    dir: &Path,
    limits: &ExecLimits,
    command: &Command,
    wiring: Wiring,
) -> std::io::Result<Started> {
    let mut prepared = limits
        .sandbox
        .prepare(Launch {
            session: &limits.session,
            ends_with_session: true,
            workspace,
            cwd: dir,
            argv: vec![shell().into(), "-c".into(), command.command.clone().into()],
            linger: wiring.linger,
            program_group: true,
        })
        .map_err(std::io::Error::other)?;
    let mut cmd = tokio::process::Command::from(prepared.command());
    cmd.current_dir(dir)
        .env_clear()
        .envs(limits.sandbox.env())
        .env("HOME", workspace)
        .env("LANG", "C.UTF-8")
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(match wiring.stdin {
            true => Stdio::piped(),
            false => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let (child, report) = prepared.spawn(&mut cmd)?;
    let guard = Arc::new(prepared.guard);
    if let Some(pid) = child.id() {
        guard.started(pid);
    }
    Ok(Started {
        child,
        report,
        guard,
    })
}

/// Waits for the shell to exit until `deadline`: its exit code (signals as
/// 128 + n), or `None` and timed out. What it left running in the background
/// runs on until the deadline.
async fn wait(
    started: Started,
    deadline: tokio::time::Instant,
) -> std::io::Result<(Option<i32>, bool)> {
    let Started {
        mut child,
        report,
        guard,
    } = started;
    let ended = tokio::time::timeout_at(deadline, async {
        // A sandboxed shell reports its own exit while what it left running
        // goes on; without a report (unconfined, or the sandbox died first)
        // the launcher's exit is the shell's.
        if let Some(report) = report {
            tokio::select! {
                biased;
                Some(code) = exit_code(report) => return Ended::Reported(code),
                status = child.wait() => return Ended::Exited(status),
            }
        }
        Ended::Exited(child.wait().await)
    })
    .await;
    Ok(match ended {
        Ok(Ended::Reported(code)) => {
            tokio::spawn(async move {
                match tokio::time::timeout_at(deadline, child.wait()).await {
                    Ok(_) => guard.reaped(),
                    Err(_) => end(&guard, &mut child).await,
                }
            });
            (Some(code), false)
        }
        Ok(Ended::Exited(status)) => {
            let status = status?;
            use std::os::unix::process::ExitStatusExt;
            guard.reaped();
            (
                status.code().or_else(|| status.signal().map(|s| 128 + s)),
                false,
            )
        }
        Err(_) => {
            end(&guard, &mut child).await;
            (None, true)
        }
    })
}

/// Why `command` cannot be handed to a process, if it cannot: exec takes no NUL
/// bytes, and a variable's name is neither empty nor holds `=`.
fn unusable(command: &Command) -> Option<String> {
    if command.command.contains('\0') {
        return Some("the command contains a NUL byte".into());
    }
    if command.cwd.contains('\0') {
        return Some("cwd contains a NUL byte".into());
    }
    command.env.iter().find_map(|(name, value)| {
        let bad_name = name.is_empty() || name.contains(['=', '\0']);
        match (bad_name, value.contains('\0')) {
            (true, _) => Some(format!("{name:?} cannot name an environment variable")),
            (_, true) => Some(format!("the value of {name:?} contains a NUL byte")),
            _ => None,
        }
    })
}

/// A started command. Dropped before it is finished, it is killed with
/// everything it started.
pub struct Running {
    started: Started,
    outputs: Outputs,
    deadline: tokio::time::Instant,
}

/// Starts `command` wired as asked, in the directory it names, once it is
/// checked; `Err` inside: it was refused (a message for the client), and
/// nothing started. Also its deadline.
fn begin(
    workspace: &Path,
    limits: &ExecLimits,
    command: &Command,
    wiring: Wiring,
) -> std::io::Result<Result<(Started, tokio::time::Instant), String>> {
    if let Some(refusal) = unusable(command) {
        return Ok(Err(refusal));
    }
    let dir = match working_dir(workspace, &command.cwd) {
        Ok(dir) => dir,
        Err(e) => return Ok(Err(e.message)),
    };
    let started = start(workspace, &dir, limits, command, wiring)?;
    let timeout = command.timeout_ms.min(limits.max_timeout_ms);
    Ok(Ok((
        started,
        tokio::time::Instant::now() + Duration::from_millis(timeout),
    )))
}

/// Starts `command` (its output also to `tap`, when given); `Err` inside: it
/// was refused (a message for the client), and nothing started.
pub fn launch(
    workspace: &Path,
    limits: &ExecLimits,
    command: &Command,
    tap: Option<Tap>,
) -> std::io::Result<Result<Running, String>> {
    let wiring = Wiring {
        stdin: false,
        linger: true,
    };
    let (mut started, deadline) = match begin(workspace, limits, command, wiring)? {
        Ok(begun) => begun,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let outputs = Outputs::read(&mut started.child, limits.output_bytes, tap)?;
    Ok(Ok(Running {
        started,
        outputs,
        deadline,
    }))
}

/// How a background command ends: its shell's exit code, or `None` and timed
/// out.
pub type Ending =
    std::pin::Pin<Box<dyn Future<Output = std::io::Result<(Option<i32>, bool)>> + Send>>;

/// A command started in the background: its pipes for whoever keeps its
/// output and feeds its input, its guard (to signal or kill it), and its end.
pub struct Background {
    pub pid: u32,
    pub stdin: tokio::process::ChildStdin,
    pub stdout: tokio::process::ChildStdout,
    pub stderr: tokio::process::ChildStderr,
    pub guard: Arc<Guard>,
    /// Resolves when the shell exits (with its exit code) or its deadline
    /// passed (then `None` and timed out, everything it started killed). What
    /// it started ends with it.
    pub end: Ending,
}

/// Starts `command` in the background with its stdin piped; `Err` inside: it
/// was refused (a message for the client), and nothing started.
pub fn background(
    workspace: &Path,
    limits: &ExecLimits,
    command: &Command,
) -> std::io::Result<Result<Background, String>> {
    let wiring = Wiring {
        stdin: true,
        linger: false,
    };
    let (mut started, deadline) = match begin(workspace, limits, command, wiring)? {
        Ok(begun) => begun,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let unpiped = || std::io::Error::other("a standard stream is not piped");
    let child = &mut started.child;
    Ok(Ok(Background {
        pid: child.id().ok_or_else(unpiped)?,
        stdin: child.stdin.take().ok_or_else(unpiped)?,
        stdout: child.stdout.take().ok_or_else(unpiped)?,
        stderr: child.stderr.take().ok_or_else(unpiped)?,
        guard: started.guard.clone(),
        end: Box::pin(wait(started, deadline)),
    }))
}

impl Running {
    /// Waits for the shell's exit (or the deadline) and what it wrote.
    pub async fn finish(self) -> std::io::Result<Outcome> {
        let (exit_code, timed_out) = wait(self.started, self.deadline).await?;
        let ((stdout, stdout_truncated), (stderr, stderr_truncated)) = self.outputs.collect().await;
        Ok(Outcome {
            exit_code,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            timed_out,
        })
    }
}

pub async fn run(
    workspace: &Path,
    limits: &ExecLimits,
    command: Command,
) -> std::io::Result<Result<Outcome, String>> {
    Ok(match launch(workspace, limits, &command, None)? {
        Ok(running) => Ok(running.finish().await?),
        Err(refusal) => Err(refusal),
    })
}

impl Host for CapsView<'_> {
    async fn run(&mut self, command: Command) -> wasmtime::Result<Result<Outcome, String>> {
        let Some((workspace, limits)) = self.caps.exec() else {
            wasmtime::bail!("commands are not granted to this call");
        };
        let (workspace, limits) = (workspace.to_owned(), limits.clone());
        // The command's own timeout bounds it; it does not use up the component's.
        let _held = self.deadline.hold();
        Ok(run(&workspace, &limits, command).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_no_process_can_take_is_refused_before_any_starts() {
        let command = |command: &str, cwd: &str, env: &[(&str, &str)]| Command {
            command: command.into(),
            cwd: cwd.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout_ms: 1000,
        };
        assert_eq!(unusable(&command("echo hi", "", &[("A", "1")])), None);
        for bad in [
            command("echo \0", "", &[]),
            command("true", "a\0", &[]),
            command("true", "", &[("A", "\0")]),
            command("true", "", &[("A=B", "1")]),
            command("true", "", &[("", "1")]),
        ] {
            assert!(unusable(&bad).is_some(), "{:?}", bad.command);
        }
    }

    use super::*;
    use std::os::unix::fs::symlink;

    fn code(workspace: &Path, cwd: &str) -> Result<(), ErrorCode> {
        working_dir(workspace, cwd).map(drop).map_err(|e| e.code)
    }

    #[test]
    fn working_dir_refuses_every_escape_alike_whether_or_not_the_target_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        symlink("/etc", root.join("to-etc")).unwrap();
        symlink("/no/such/place", root.join("to-nowhere")).unwrap();
        symlink("/etc/passwd", root.join("to-passwd")).unwrap();
        symlink("sub", root.join("to-sub")).unwrap();
        assert_eq!(code(&root, ""), Ok(()));
        assert_eq!(code(&root, "sub"), Ok(()));
        assert_eq!(code(&root, "to-sub"), Ok(()));
        assert_eq!(
            working_dir(&root, "to-sub").unwrap(),
            root.canonicalize().unwrap().join("sub")
        );
        for escape in [
            "..",
            "sub/../..",
            "to-etc",
            "to-nowhere",
            "to-passwd",
            "to-etc/ssl",
        ] {
            assert_eq!(
                code(&root, escape),
                Err(ErrorCode::PathForbidden),
                "{escape}"
            );
        }
        assert_eq!(code(&root, "missing"), Err(ErrorCode::PathNotFound));
        assert_eq!(code(&root, "file"), Err(ErrorCode::InvalidInput));
    }
}
