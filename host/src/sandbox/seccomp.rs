//! A system-call filter narrowing the kernel's surface: calls no workspace
//! program needs and that have carried most container escapes are refused
//! with `EPERM` — new namespaces (a nested user namespace would hand out
//! capabilities over fresh kernel code, netfilter above all), eBPF, perf,
//! userfaultfd, keyrings, io_uring, handle-based opens, mounts, modules,
//! kexec, reboot, clocks, the kernel log. `clone3` answers `ENOSYS`: its flags
//! are behind a pointer the filter cannot read, and libc then falls back to
//! `clone`, whose flags it can. Everything else is allowed (the kernel caches
//! that verdict per call, so allowed calls cost nothing). A process of
//! another architecture (a 32-bit binary) is killed by the filter's arch check.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Refused whatever their arguments.
const DENIED: [libc::c_long; 37] = [
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_lookup_dcookie,
];

/// Namespace flags `unshare` and `clone` may not carry.
const NEW_NAMESPACES: [libc::c_int; 7] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// x32 programs call the same numbers with this bit set (where the kernel
/// offers that ABI at all).
const X32: libc::c_long = 0x4000_0000;

/// Installs the filters on the calling process (inherited by all it starts;
/// needs `no_new_privs`).
pub fn install() -> Result<(), String> {
    let e = |e: seccompiler::BackendError| e.to_string();
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in DENIED {
        refused.insert(nr, Vec::new());
        refused.insert(nr | X32, Vec::new());
    }
    // `unshare(flags)` and `clone(flags, …)`: the flags are the first argument.
    let carries_one = NEW_NAMESPACES
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    for nr in [libc::SYS_unshare, libc::SYS_clone] {
        refused.insert(nr, carries_one.clone());
        refused.insert(nr | X32, carries_one.clone());
    }
    let errno = |code: i32| SeccompAction::Errno(code as u32);
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(e)?;
    let denied =
        SeccompFilter::new(refused, SeccompAction::Allow, errno(libc::EPERM), arch).map_err(e)?;
    let clone3 = [libc::SYS_clone3, libc::SYS_clone3 | X32]
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    let clone3 =
        SeccompFilter::new(clone3, SeccompAction::Allow, errno(libc::ENOSYS), arch).map_err(e)?;
    for filter in [denied, clone3] {
        let program: BpfProgram = filter.try_into().map_err(e)?;
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}
