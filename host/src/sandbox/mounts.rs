//! The sandbox's view of the filesystem, set up by its init in its own mount
//! namespace: a `/proc` of its PID namespace; the session's temp dirs on
//! `/tmp`, `/var/tmp` and `/dev/shm`; empty directories over the masked places
//! (the data dir with every workspace, `/run` with the host's sockets, which
//! Landlock before ABI 9 does not guard), the granted paths they hide mounted
//! back at their own path; a private devpts, with a terminal's own PTY on
//! `/dev/console`.

use super::child::{Failed, at};
use super::plan::Plan;
use nix::mount::{MsFlags, mount};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where the session's temp dir is mounted inside.
pub(super) const TMP_MOUNTS: [&str; 2] = ["/tmp", "/var/tmp"];
pub(super) const SHM_MOUNT: &str = "/dev/shm";
/// Where a terminal's own PTY is mounted inside.
pub(super) const CONSOLE: &str = "/dev/console";

type Step<T = ()> = Result<T, Failed>;

/// What a directory of the host is covered with inside.
enum Cover<'a> {
    /// The session's own directory (its temp dirs).
    Session(&'a Path),
    /// An empty tmpfs: the place is hidden (the data dir, `/run`).
    Empty,
}

/// Sets the view up (see the module's doc); needs `CAP_SYS_ADMIN` in the
/// sandbox's user namespace, so it comes before anything drops it.
pub(super) fn mounts(plan: &Plan) -> Step {
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(at("making mounts private"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(at("mounting /proc"))?;
    for dir in [&plan.tmp, &plan.shm] {
        std::fs::create_dir_all(dir).map_err(at("creating the session's temp dir"))?;
    }
    let mut covered: Vec<(&Path, Cover)> = TMP_MOUNTS
        .iter()
        .map(|m| (Path::new(*m), Cover::Session(&plan.tmp)))
        .chain([(Path::new(SHM_MOUNT), Cover::Session(&plan.shm))])
        .filter(|(target, _)| is_real_dir(target))
        .collect();
    for mask in &plan.masks {
        // One already covered (a data dir under /tmp) is hidden already.
        if is_real_dir(mask) && !covered.iter().any(|(t, _)| mask.starts_with(t)) {
            covered.push((mask, Cover::Empty));
        }
    }
    // Everything is opened before the first mount, which may hide it.
    let sources = covered
        .iter()
        .map(|(_, cover)| match cover {
            Cover::Session(dir) => open_path(dir).map(Some),
            Cover::Empty => Ok(None),
        })
        .collect::<Step<Vec<_>>>()?;
    let hidden: Vec<(&Path, OwnedFd)> = granted(plan)
        .filter(|p| covered.iter().any(|(t, _)| p.starts_with(t)))
        .filter_map(|p| Some((p, open_path(p).ok()?)))
        .collect();
    for ((target, _), source) in covered.iter().zip(&sources) {
        match source {
            Some(source) => bind(source, target)?,
            None => mount(
                Some("tmpfs"),
                *target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("size=64k,mode=755"),
            )
            .map_err(at(format!("masking {}", target.display())))?,
        }
    }
    for (path, fd) in &hidden {
        // The mount point, made in what now covers it: a directory, or an
        // empty file for a file.
        let is_dir = nix::sys::stat::fstat(fd.as_raw_fd())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let made = if is_dir {
            std::fs::create_dir_all(path)
        } else {
            path.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(path).map(drop))
        };
        made.map_err(at(format!("re-exposing {}", path.display())))?;
        bind(fd, path)?;
    }
    private_ptys()
}

/// A devpts of the sandbox's own on `/dev/pts` (the host's `/dev/ptmx` then
/// allocates from it): no other terminal's PTY can be opened. The terminal's
/// own PTY (stdin, when it is one) goes on `/dev/console`, where `ttyname`
/// finds it, as in containers.
fn private_ptys() -> Step {
    // The PTY reopened by its path in this mount namespace: a descriptor
    // inherited from before the unshare belongs to the host's mounts, which
    // cannot be bound from here.
    let terminal = if nix::unistd::isatty(0).unwrap_or(false) && Path::new(CONSOLE).exists() {
        let path = std::fs::read_link("/proc/self/fd/0").map_err(at("the terminal's path"))?;
        Some(open_path(&path)?)
    } else {
        None
    };
    mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(at("mounting a private /dev/pts"))?;
    match terminal {
        Some(pty) => bind(&pty, Path::new(CONSOLE)),
        None => Ok(()),
    }
}

fn open_path(path: &Path) -> Step<OwnedFd> {
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .map(OwnedFd::from)
        .map_err(at(format!("opening {}", path.display())))
}

/// Bind-mounts what is open as `source` on `target`.
fn bind(source: &OwnedFd, target: &Path) -> Step {
    let from = format!("/proc/self/fd/{}", source.as_raw_fd());
    mount(
        Some(from.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(at(format!("mounting {}", target.display())))
}

/// Every path the plan grants besides the temp dirs.
fn granted(plan: &Plan) -> impl Iterator<Item = &Path> {
    std::iter::once(plan.workspace.as_path())
        .chain(plan.read_write.iter().map(PathBuf::as_path))
        .chain(plan.read_only.iter().map(PathBuf::as_path))
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}
