//! Confinement of every process a session starts: shell commands, terminals and
//! everything they start in turn.
//!
//! The server never starts a workspace's program directly. It starts its own
//! binary in the hidden mode `reshost sandbox-exec PLAN -- PROGRAM ARGS…`
//! ([`child`]), which sets up the sandbox single-threaded and then `exec`s the
//! program, so `std::process` (shell) and portable-pty (terminals) start
//! confined programs unchanged. The layers:
//!
//! - filesystem: Landlock ([`landlock`]) grants the workspace and the session's
//!   private temp dir read-write, the system paths read-only minus the data dir,
//!   cache and config ([`paths`]), a few devices, nothing else; a mount
//!   namespace ([`mounts`]) hides the data dir, `/run` and other terminals' PTYs;
//! - processes: new user, PID, mount and IPC namespaces: the server and other
//!   sessions are invisible and out of reach, `/proc` shows the sandbox only, no
//!   capability is left and `no_new_privs` is set; a seccomp filter
//!   ([`seccomp`]) takes away the riskiest kernel interfaces;
//! - resources: a cgroup per launch caps processes and memory ([`cgroup`]),
//!   with rlimits where cgroups are not writable; ending the launch ends the
//!   PID namespace and so every process in it;
//! - network: `none` is a network namespace with loopback only; `full` shares
//!   the host's, minus the server's own port ([`netfilter`]).
//!
//! With `mode = "enforce"` (the default) the server refuses to start when a
//! layer is missing, naming it ([`layers`]); `mode = "off"` runs programs
//! unconfined. [`guard`] is the server's handle on one launch.

mod cgroup;
mod child;
mod guard;
mod landlock;
mod layers;
mod mounts;
mod netfilter;
mod paths;
mod plan;
mod relay;
mod seccomp;

pub use child::main as exec_main;
pub use guard::Guard;

use crate::config::{Config, SandboxMode, SandboxNetwork};
use crate::sync::Lock;
use anyhow::bail;
use cgroup::{Cgroups, GroupLimits};
use guard::Tracked;
use plan::{Plan, Rlimits};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// What sandboxes must not see of the server's own: its data, cache, config,
/// the components it names, and (for a root server, whose sandboxes are root
/// to root's files) what only root may read under the read-only roots.
fn hidden_paths(
    config: &Config,
    config_path: Option<&Path>,
    read_only_roots: &[PathBuf],
    root: bool,
) -> Vec<PathBuf> {
    let mut hidden = vec![config.data_dir.clone(), config.cache_dir()];
    hidden.extend(config_path.map(Path::to_owned));
    hidden.extend(config.components.values().cloned());
    hidden.extend(config.tenants.iter().filter_map(|t| t.policy.clone()));
    if root {
        hidden.extend(private_files(read_only_roots));
    }
    hidden
}

/// Where the sessions' private temp dirs live: `<data_dir>/sandbox/<session>`.
pub fn temp_root(config: &Config) -> PathBuf {
    config.data_dir.join("sandbox")
}

/// Entries of one read-only root looked at for files only their owner may read.
const PRIVATE_SCAN_CAP: usize = 50_000;

/// What only its owner may read under the read-only roots, but `/usr` (where
/// packages put no host secrets, and which is too big to walk at every start).
fn private_files(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut hidden = Vec::new();
    for root in roots.iter().filter_map(|r| r.canonicalize().ok()) {
        if root.starts_with("/usr") {
            continue;
        }
        let (found, complete) = paths::private_to_owner(&root, PRIVATE_SCAN_CAP);
        if !complete {
            tracing::warn!(
                root = %root.display(),
                "[sandbox] read_only: only the first {PRIVATE_SCAN_CAP} entries were checked for files only root may read"
            );
        }
        hidden.extend(found);
    }
    hidden
}

/// The hidden subcommand `main` hands to [`exec_main`].
pub const EXEC_SUBCOMMAND: &str = "sandbox-exec";

/// How the server confines what sessions start; built once at start.
pub struct Sandbox {
    /// `PATH` of the programs.
    path: OsString,
    enforced: Option<Enforced>,
    /// Launches that end with their session, by session.
    running: Mutex<HashMap<String, Vec<Weak<Tracked>>>>,
    report: Value,
}

struct Enforced {
    masks: Vec<PathBuf>,
    read_only: Vec<PathBuf>,
    read_write: Vec<PathBuf>,
    cgroups: Cgroups,
    group_limits: GroupLimits,
    rlimits: Rlimits,
    isolate_network: bool,
    landlock_blocked_ports: Vec<u16>,
    /// `<data_dir>/sandbox`: each session's private temp dirs.
    temp_root: PathBuf,
    next: AtomicU64,
}

/// One program to start confined.
pub struct Launch<'a> {
    /// The session whose temp dir the launch gets.
    pub session: &'a str,
    /// Whether the session's deletion ends the launch (shell commands; a
    /// terminal is ended by its own owner, and may move to another session).
    pub ends_with_session: bool,
    pub workspace: &'a Path,
    pub cwd: &'a Path,
    pub argv: Vec<OsString>,
    /// Whether what the program leaves running may outlive it (until the
    /// guard kills it): then [`Prepared::spawn`] tells when the program
    /// itself exits. Otherwise the program's exit ends everything it started.
    pub linger: bool,
    /// Whether the program leads a process group of its own, which signals
    /// from [`Guard::signal`] reach (not for a terminal's program, which must
    /// stay in the terminal's foreground group).
    pub program_group: bool,
}

/// A launch ready to start: the command line to run (with the environment of
/// [`Sandbox::env`]) and the guard that must live as long as the process.
pub struct Prepared {
    pub argv: Vec<OsString>,
    pub guard: Guard,
    /// The exit report pipe of a lingering launch: (read end, write end).
    exit_pipe: Option<(OwnedFd, OwnedFd)>,
}

impl Prepared {
    /// A command that runs [`Prepared::argv`]; start it with [`Prepared::spawn`].
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        cmd
    }

    /// Starts `cmd` (made from [`Prepared::command`]) and returns it with,
    /// for a lingering launch, where the program's exit code arrives (4 bytes,
    /// little endian; nothing if the sandbox died first). The report's write
    /// end is inheritable only during the spawn (no `pre_exec`: that would
    /// make the spawn a `fork` of the whole server instead of a `posix_spawn`),
    /// and the launcher closes every other descriptor it may have inherited.
    pub fn spawn(
        &mut self,
        cmd: &mut tokio::process::Command,
    ) -> std::io::Result<(tokio::process::Child, Option<OwnedFd>)> {
        let Some((read, write)) = self.exit_pipe.take() else {
            return Ok((cmd.spawn()?, None));
        };
        let flags = nix::fcntl::FdFlag::empty();
        nix::fcntl::fcntl(write.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(flags))?;
        let child = cmd.spawn();
        drop(write);
        Ok((child?, Some(read)))
    }
}

impl Sandbox {
    /// Detects what this machine offers and checks, with a real confined launch,
    /// that it works; in `enforce` mode a missing layer is an error that names
    /// it. `listen` is the address the server serves on, kept out of reach.
    pub fn start(
        config: &Config,
        config_path: Option<&Path>,
        listen: SocketAddr,
    ) -> anyhow::Result<Sandbox> {
        let sb = &config.sandbox;
        if sb.mode == SandboxMode::Off {
            tracing::warn!(
                "[sandbox] mode = \"off\": shell commands and terminals run unconfined, as the server's user"
            );
            return Ok(Sandbox {
                path: std::env::var_os("PATH").unwrap_or_else(|| sb.path.clone().into()),
                enforced: None,
                running: Mutex::default(),
                report: json!({"mode": "off", "layers": {
                    "filesystem": {"active": false},
                    "processes": {"active": false},
                    "resources": {"active": false},
                    "network": {"active": false, "mode": "full"},
                }}),
            });
        }
        let cgroups = Cgroups::detect();
        let layers = layers::detect(&cgroups, sb.network, listen.port());
        let mut read_only_roots = sb.read_only.clone();
        // A resolver config symlinked elsewhere (systemd-resolved) must stay readable.
        read_only_roots.extend(Path::new("/etc/resolv.conf").canonicalize().ok());
        let hidden = hidden_paths(config, config_path, &read_only_roots, layers.root);
        let nonzero = |v: u64| (v > 0).then_some(v);
        let mut masks: Vec<PathBuf> = [
            config.data_dir.as_path(),
            Path::new("/run"),
            Path::new("/var/run"),
        ]
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
        masks.dedup();
        let enforced = Enforced {
            // Hidden as a whole, whatever Landlock can or cannot guard there.
            masks,
            read_only: paths::visible(&read_only_roots, &hidden),
            read_write: paths::visible(&sb.read_write, &hidden),
            group_limits: GroupLimits {
                processes: sb.max_processes,
                memory_bytes: sb.memory_bytes,
            },
            rlimits: Rlimits {
                address_space: cgroups.memory().is_none().then_some(sb.memory_bytes),
                processes: cgroups.processes().is_none().then_some(sb.max_processes),
                cpu_seconds: nonzero(sb.cpu_seconds),
                file_size: nonzero(sb.file_size_bytes),
            },
            cgroups,
            isolate_network: sb.network == SandboxNetwork::None,
            landlock_blocked_ports: layers.landlock_blocked_ports.clone(),
            temp_root: temp_root(config),
            next: AtomicU64::new(0),
        };
        let report = layers.report(sb, &enforced.read_only, &enforced.read_write);
        let mut missing = layers.missing;
        let sandbox = Sandbox {
            path: sb.path.clone().into(),
            enforced: Some(enforced),
            running: Mutex::default(),
            report,
        };
        if missing.is_empty()
            && let Err(e) = sandbox.self_test()
        {
            missing.push(format!("a confined test command failed: {e:#}"));
        }
        if !missing.is_empty() {
            bail!(
                "the sandbox cannot be enforced on this machine:\n  - {}\nFix that, or set `[sandbox] mode = \"off\"` in the config to run shell commands and terminals unconfined (not recommended).",
                missing.join("\n  - ")
            );
        }
        tracing::info!(sandbox = %sandbox.report["layers"], "sandbox enforced");
        Ok(sandbox)
    }

    /// Starts `true` confined in a scratch workspace.
    fn self_test(&self) -> anyhow::Result<()> {
        let Some(enforced) = &self.enforced else {
            return Ok(());
        };
        let workspace = enforced.temp_root.join(".self-test");
        std::fs::create_dir_all(&workspace)?;
        let prepared = self.prepare(Launch {
            session: ".self-test",
            ends_with_session: false,
            workspace: &workspace,
            cwd: &workspace,
            argv: vec!["true".into()],
            linger: false,
            program_group: true,
        })?;
        let output = prepared
            .command()
            .env_clear()
            .envs(self.env())
            .stdin(std::process::Stdio::null())
            .output()?;
        drop(prepared);
        let _ = std::fs::remove_dir_all(enforced.temp_root.join(".self-test"));
        if !output.status.success() {
            bail!(
                "{} ({})",
                String::from_utf8_lossy(&output.stderr).trim(),
                output.status
            );
        }
        Ok(())
    }

    /// What `GET /admin/v1/sandbox` shows: the mode and each layer's state.
    pub fn report(&self) -> &Value {
        &self.report
    }

    /// The environment every program gets, before its own variables.
    pub fn env(&self) -> [(&'static str, OsString); 2] {
        [("PATH", self.path.clone()), ("TMPDIR", "/tmp".into())]
    }

    /// The command line that starts `launch` confined (itself, unchanged, with
    /// `mode = "off"`), and its guard.
    pub fn prepare(&self, launch: Launch<'_>) -> anyhow::Result<Prepared> {
        let Some(e) = &self.enforced else {
            let session = launch.ends_with_session.then_some(launch.session);
            return Ok(self.track(session, launch.argv, Tracked::new(None), None));
        };
        let n = e.next.fetch_add(1, Ordering::Relaxed);
        let group = e.cgroups.create(&format!("l{n}"), e.group_limits)?;
        let temp = e.temp_root.join(launch.session);
        let exit_pipe = if launch.linger {
            Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
        } else {
            None
        };
        let plan = Plan {
            // By its real path: the masks are real paths (a data dir reached
            // through a symlink is masked where it really is).
            workspace: launch.workspace.canonicalize()?,
            tmp: temp.join("tmp"),
            shm: temp.join("shm"),
            cwd: launch.cwd.canonicalize()?,
            masks: e.masks.clone(),
            read_only: e.read_only.clone(),
            read_write: e.read_write.clone(),
            cgroups: group.dirs(),
            rlimits: e.rlimits.clone(),
            isolate_network: e.isolate_network,
            landlock_blocked_ports: e.landlock_blocked_ports.clone(),
            exit_fd: exit_pipe.as_ref().map(|(_, write)| write.as_raw_fd()),
            program_group: launch.program_group,
        };
        let mut argv: Vec<OsString> = vec![
            "/proc/self/exe".into(),
            EXEC_SUBCOMMAND.into(),
            serde_json::to_string(&plan)?.into(),
            "--".into(),
        ];
        argv.extend(launch.argv);
        let session = launch.ends_with_session.then_some(launch.session);
        Ok(self.track(session, argv, Tracked::new(Some(group)), exit_pipe))
    }

    fn track(
        &self,
        session: Option<&str>,
        argv: Vec<OsString>,
        tracked: Tracked,
        exit_pipe: Option<(OwnedFd, OwnedFd)>,
    ) -> Prepared {
        let tracked = Arc::new(tracked);
        if let Some(session) = session {
            let mut running = self.running.locked();
            let list = running.entry(session.to_owned()).or_default();
            list.retain(|t| t.strong_count() > 0);
            list.push(Arc::downgrade(&tracked));
        }
        Prepared {
            argv,
            guard: Guard::new(tracked),
            exit_pipe,
        }
    }

    /// Kills every running launch of `session` and removes its temp dirs (the
    /// session is being deleted).
    pub fn end_session(&self, session: &str) {
        let launches = self.running.locked().remove(session);
        for tracked in launches.into_iter().flatten().filter_map(|t| t.upgrade()) {
            tracked.kill();
        }
        if let Some(e) = &self.enforced {
            let _ = std::fs::remove_dir_all(e.temp_root.join(session));
        }
    }
}
