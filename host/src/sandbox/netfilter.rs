//! Keeps sandboxes off the server's own port when they share its network
//! (`network = "full"`): two tiny cgroup BPF programs (`connect4`, `connect6`),
//! attached once to the server's v2 cgroup that every launch joins, refuse a
//! `connect` to the listen port with `EPERM`, whatever the address (loopback,
//! an interface address, IPv4-mapped IPv6). Per launch this costs nothing;
//! Landlock's TCP rules (allow-only, per port) cost ~45 ms a launch for
//! "every port but one", so they are only the fallback where BPF is not allowed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

// From linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
const BPF_CGROUP_INET6_CONNECT: u32 = 11;
/// `offsetof(struct bpf_sock_addr, user_port)`.
const USER_PORT_OFFSET: i16 = 24;

#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8, // dst (low nibble), src (high nibble)
    off: i16,
    imm: i32,
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// The program: `return ctx->user_port == port ? 0 (EPERM) : 1 (allow)`.
fn program(port: u16) -> [Insn; 5] {
    const LDX_W_MEM: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
    const MOV64_K: u8 = 0xb7;
    const JNE_K: u8 = 0x55;
    const EXIT: u8 = 0x95;
    [
        Insn {
            code: LDX_W_MEM,
            regs: 2 | (1 << 4), // r2 = ctx->user_port (network byte order)
            off: USER_PORT_OFFSET,
            imm: 0,
        },
        Insn {
            code: MOV64_K,
            regs: 0,
            off: 0,
            imm: 1,
        },
        Insn {
            code: JNE_K,
            regs: 2,
            off: 1,
            imm: i32::from(port.to_be()),
        },
        Insn {
            code: MOV64_K,
            regs: 0,
            off: 0,
            imm: 0,
        },
        Insn {
            code: EXIT,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ]
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a properly laid out prefix of `union bpf_attr`; the
    // kernel reads `size_of::<T>()` bytes and zero-extends the rest.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Attaches the filter refusing connections to `port` to the cgroup `dir`
/// (and so to every group under it). The programs stay attached as long as
/// the cgroup exists.
pub fn block_port(dir: &Path, port: u16) -> std::io::Result<()> {
    let cgroup = std::fs::File::open(dir)?;
    let insns = program(port);
    let license = c"GPL";
    for attach_type in [BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT] {
        let load = LoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            expected_attach_type: attach_type,
            ..LoadAttr::default()
        };
        let fd = bpf(BPF_PROG_LOAD, &load)?;
        // SAFETY: BPF_PROG_LOAD returned a new descriptor that we own.
        let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let attach = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type,
            attach_flags: 0, // no override below: a launch cannot lift it
        };
        bpf(BPF_PROG_ATTACH, &attach)?;
    }
    Ok(())
}
