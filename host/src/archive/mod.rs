//! Tar archives of workspace directories, made and unpacked natively by the host
//! through capability-scoped directories (the component has checked which
//! directory and which format).

pub mod pack;
pub mod unpack;

use cap_std::fs::Dir;
use std::io;
use std::path::{Path, PathBuf};

/// The `format` values that ask for an archive. The component decides what a
/// format means; the host knows these names only to tell the policy that a read
/// asks for an archive (`environments.archive`).
pub const FORMATS: &[&str] = &["tar", "tar.gz"];

/// Permission bits kept from a file's mode, both ways: setuid, setgid and sticky
/// are dropped.
pub const MODE_BITS: u32 = 0o777;

/// The directory at `path` (relative, checked by the component) of `workspace`,
/// opened through the workspace's capability so it cannot lead outside.
pub fn open_dir(workspace: &Path, path: &str) -> io::Result<Dir> {
    let root = Dir::open_ambient_dir(workspace, cap_std::ambient_authority())?;
    root.open_dir(if path.is_empty() { "." } else { path })
}

/// An upload's archive and the tree it is unpacked into before it moves into
/// place: beside the workspaces, on the same filesystem (so the move is renames),
/// outside every session's tree. Both go when it is dropped.
pub struct Scratch {
    root: PathBuf,
    pub archive: std::fs::File,
    pub tree: Dir,
}

impl Scratch {
    /// A new scratch area in `staging`.
    pub fn new(staging: &Path) -> io::Result<Scratch> {
        let root = staging.join(uuid::Uuid::now_v7().simple().to_string());
        std::fs::create_dir_all(&root)?;
        let archive = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(root.join("archive"))?;
        std::fs::create_dir(root.join("tree"))?;
        let tree = Dir::open_ambient_dir(root.join("tree"), cap_std::ambient_authority())?;
        Ok(Scratch {
            root,
            archive,
            tree,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(error = %e, "removing an archive's scratch area");
        }
    }
}
