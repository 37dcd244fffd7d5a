//! The plan of one confined launch: everything the re-executed `sandbox-exec`
//! needs, decided by the server and handed over as one JSON argument, so that
//! the child makes no decision of its own.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The one argument after `sandbox-exec`; the program and its arguments follow `--`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The session's workspace: read-write.
    pub workspace: PathBuf,
    /// The session's private temp dir, mounted on `/tmp` and `/var/tmp`.
    pub tmp: PathBuf,
    /// The session's private shared-memory dir, mounted on `/dev/shm`.
    pub shm: PathBuf,
    /// Where the program starts (the workspace or a directory in it).
    pub cwd: PathBuf,
    /// Directories covered with an empty one inside (the data dir, `/run`):
    /// granted paths in them are mounted back.
    pub masks: Vec<PathBuf>,
    /// Readable and executable, nothing more (already stripped of hidden paths).
    pub read_only: Vec<PathBuf>,
    /// Fully usable besides the workspace and the temp dirs.
    pub read_write: Vec<PathBuf>,
    /// cgroup directories the launch joins (one per hierarchy in use).
    pub cgroups: Vec<PathBuf>,
    pub rlimits: Rlimits,
    /// A network namespace of its own with only loopback (`network = "none"`).
    pub isolate_network: bool,
    /// TCP ports the launch may not connect to, enforced with Landlock; empty
    /// when the server's cgroup connect filter does it (or the network is isolated).
    pub landlock_blocked_ports: Vec<u16>,
    /// For a launch whose leftovers may run on (shell commands): the descriptor
    /// the init writes the program's exit code to (4 bytes, little endian) when
    /// the program exits; it then waits for the rest before exiting itself.
    /// Without it, the init exits with the program and so ends the rest.
    pub exit_fd: Option<i32>,
    /// The program leads a process group of its own, which the signals the
    /// server relays reach; otherwise they reach the program alone (a
    /// terminal's program stays in the terminal's foreground group).
    pub program_group: bool,
}

/// Per-process limits set with `setrlimit`; `None` leaves the inherited one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rlimits {
    /// `RLIMIT_AS`: only when no memory cgroup is available.
    pub address_space: Option<u64>,
    /// `RLIMIT_NPROC`: only when no pids cgroup is available (and the server is
    /// not root, whom the kernel does not hold to it).
    pub processes: Option<u64>,
    pub cpu_seconds: Option<u64>,
    pub file_size: Option<u64>,
}

/// The exit code of a launch whose sandbox could not be set up (the message is
/// on its stderr). 126 and 127 keep their shell meanings.
pub const SETUP_FAILED: i32 = 125;
