//! Which mechanism carries each layer on this machine, or why none can: what
//! `enforce` checks at start, the start log and `GET /admin/v1/sandbox` show.

use super::cgroup::Cgroups;
use super::{landlock, netfilter};
use crate::config::{Sandbox as SandboxConfig, SandboxNetwork};
use serde_json::{Value, json};
use std::path::PathBuf;

pub struct Layers {
    /// The server runs as root (the kernel exempts it from `RLIMIT_NPROC`, and
    /// its sandboxes are root to root's files).
    pub root: bool,
    landlock_abi: i32,
    processes: &'static str,
    memory: &'static str,
    network: &'static str,
    blocked_ports: Vec<u16>,
    /// Ports only Landlock keeps sandboxes from (no BPF here).
    pub landlock_blocked_ports: Vec<u16>,
    /// What `enforce` cannot have here, each naming its layer.
    pub missing: Vec<String>,
}

const NONE: &str = "none";

/// Looks at the kernel, the cgroups, and (for `network = "full"`) attaches the
/// filter keeping sandboxes off `port`.
pub fn detect(cgroups: &Cgroups, network: SandboxNetwork, port: u16) -> Layers {
    let landlock_abi = landlock::abi();
    let mut missing = Vec::new();
    if landlock_abi < 1 {
        missing.push(
            "filesystem: Landlock is not available (a kernel ≥ 5.13 with Landlock enabled in its `lsm=` list is needed)"
                .to_owned(),
        );
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let processes = match cgroups.processes() {
        Some(mechanism) => mechanism,
        None if !root => "RLIMIT_NPROC in a user namespace",
        None => {
            missing.push("resources: no pids cgroup the server may write to (root needs a writable pids controller: cgroup v1, or v2 with it delegated)".to_owned());
            NONE
        }
    };
    let (mut blocked_ports, mut landlock_blocked_ports) = (vec![port], Vec::new());
    let network = match network {
        SandboxNetwork::None => {
            blocked_ports.clear();
            "network namespace (loopback only)"
        }
        SandboxNetwork::Full => {
            match cgroups
                .unified_dir()
                .map(|d| netfilter::block_port(d, port))
            {
                Some(Ok(())) => "cgroup BPF connect filter",
                _ if landlock_abi >= 4 => {
                    landlock_blocked_ports.push(port);
                    "Landlock TCP connect rules"
                }
                failed => {
                    let why = match failed {
                        Some(Err(e)) => format!("loading the cgroup BPF filter failed: {e}"),
                        _ => "no cgroup v2 hierarchy is writable".into(),
                    };
                    missing.push(format!("network: the server's port cannot be kept out of reach ({why}; Landlock ABI 4 is not available either); `network = \"none\"` works without it"));
                    NONE
                }
            }
        }
    };
    Layers {
        root,
        landlock_abi,
        processes,
        memory: cgroups.memory().unwrap_or("RLIMIT_AS"),
        network,
        blocked_ports,
        landlock_blocked_ports,
        missing,
    }
}

impl Layers {
    /// The report of an enforced sandbox with these settings.
    pub fn report(
        &self,
        sb: &SandboxConfig,
        read_only: &[PathBuf],
        read_write: &[PathBuf],
    ) -> Value {
        let nonzero = |v: u64| (v > 0).then_some(v);
        json!({"mode": "enforce", "layers": {
            "filesystem": {"active": self.landlock_abi >= 1, "mechanism": "landlock",
                "landlock_abi": self.landlock_abi, "read_only": read_only,
                "read_write": read_write, "private_tmp": true},
            "processes": {"active": true,
                "mechanism": "user, pid, mount and ipc namespaces; no capabilities; no_new_privs; seccomp filter"},
            "resources": {"active": self.processes != NONE,
                "processes": {"limit": sb.max_processes, "mechanism": self.processes},
                "memory_bytes": {"limit": sb.memory_bytes, "mechanism": self.memory},
                "cpu_seconds": nonzero(sb.cpu_seconds),
                "file_size_bytes": nonzero(sb.file_size_bytes)},
            "network": {"active": self.network != NONE,
                "mode": if sb.network == SandboxNetwork::None { "none" } else { "full" },
                "blocked_ports": self.blocked_ports, "mechanism": self.network},
        }})
    }
}
