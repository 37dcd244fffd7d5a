//! The filesystem layer: a Landlock ruleset that grants the plan's paths and
//! nothing else, plus, from ABI 6, scoping of signals and abstract Unix sockets
//! to the sandbox, and from ABI 9 connecting to named Unix sockets only where
//! it may write. Landlock is path-based and stackable: hard links or symlinks
//! planted in the workspace do not reach what the rules do not grant, and a
//! program cannot lift the restriction, only add to it.

use super::plan::Plan;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::path::Path;

/// The newest ABI whose rights we ask for; older kernels get what they know
/// (best effort), and the server refuses to start below ABI 1.
const TARGET: ABI = ABI::V9;

/// Devices a program may open read-write (and `ioctl`): the PTYs (the
/// terminal's own on `/dev/console`, and the sandbox's private devpts), the
/// bit buckets and randomness. Nothing else in `/dev` (no disks, no memory).
const DEVICES: [&str; 9] = [
    super::mounts::CONSOLE,
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// The Landlock ABI this kernel offers (0: none).
pub fn abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // only returns the version.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(version).unwrap_or(0).max(0)
}

/// Restricts the calling process (and everything it starts) to the plan.
pub fn restrict(plan: &Plan) -> Result<(), super::child::Failed> {
    let fail = super::child::at("landlock");
    build(plan).map_err(fail)
}

fn build(plan: &Plan) -> Result<(), String> {
    let everything = AccessFs::from_all(TARGET);
    let read = AccessFs::from_read(TARGET);
    let mut ruleset = Ruleset::default()
        .handle_access(everything)
        .map_err(|e| e.to_string())?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(|e| e.to_string())?;
    if !plan.landlock_blocked_ports.is_empty() {
        ruleset = ruleset
            .handle_access(AccessNet::ConnectTcp)
            .map_err(|e| e.to_string())?;
    }
    let mut rules: Vec<(&Path, BitFlags<AccessFs>)> = Vec::new();
    rules.extend(plan.read_only.iter().map(|p| (p.as_path(), read)));
    rules.push((Path::new("/proc"), read));
    rules.push((Path::new("/dev"), AccessFs::ReadDir.into()));
    rules.extend(DEVICES.iter().map(|d| (Path::new(d), everything)));
    rules.extend(
        std::iter::once(&plan.workspace)
            .chain(&plan.read_write)
            .map(|p| (p.as_path(), everything)),
    );
    // The session's temp dirs, by the names they are mounted on.
    rules.extend(
        super::mounts::TMP_MOUNTS
            .into_iter()
            .chain([super::mounts::SHM_MOUNT])
            .map(|m| (Path::new(m), everything)),
    );
    let mut created = ruleset.create().map_err(|e| e.to_string())?;
    for (path, access) in rules {
        let Ok(fd) = PathFd::new(path) else {
            continue; // Missing here (/lib32 on some systems): nothing to grant.
        };
        // On a file, the crate keeps only the rights a file can have (best effort).
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // Every port but the blocked ones: Landlock only knows allow rules.
    if !plan.landlock_blocked_ports.is_empty() {
        for port in (0..=u16::MAX).filter(|p| !plan.landlock_blocked_ports.contains(p)) {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(|e| e.to_string())?;
        }
    }
    let status = created.restrict_self().map_err(|e| e.to_string())?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("this kernel does not enforce Landlock".into());
    }
    Ok(())
}
