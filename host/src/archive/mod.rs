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

/// The workspace's root, opened as a capability.
fn root(workspace: &Path) -> io::Result<Dir> {
    Dir::open_ambient_dir(workspace, cap_std::ambient_authority())
}

/// `path` as a path of a `Dir` (`.` for its root).
fn relative(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// The directory at `path` (relative, checked by the component) of `workspace`,
/// opened through the workspace's capability so it cannot lead outside.
pub fn open_dir(workspace: &Path, path: &str) -> io::Result<Dir> {
    root(workspace)?.open_dir(relative(path))
}

/// Where an archive is unpacked.
pub enum Dest {
    /// An existing directory: the archive merges into it.
    Dir(Dir),
    /// Nothing yet at `path` of the workspace `root`: the unpacked tree moves
    /// there whole, its missing parents made.
    New { root: Dir, path: String },
}

impl Dest {
    /// Where `path` (relative, checked by the component) of `workspace` is.
    pub fn of(workspace: &Path, path: &str) -> io::Result<Dest> {
        let root = root(workspace)?;
        match root.open_dir(relative(path)) {
            Ok(dir) => Ok(Dest::Dir(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Dest::New {
                root,
                path: path.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// An upload's archive and the tree it is unpacked into before it moves into
/// place: beside the workspaces, on the same filesystem (so the move is renames),
/// outside every session's tree. Both go when it is dropped.
pub struct Scratch {
    root: PathBuf,
    /// `root`, as a capability.
    base: Dir,
    pub archive: std::fs::File,
    /// `root/tree`, which the archive is unpacked into.
    pub tree: Dir,
}

/// The name of a scratch area's tree in its `base`.
const TREE: &str = "tree";

impl Scratch {
    /// A new scratch area in `staging`.
    pub fn new(staging: &Path) -> io::Result<Scratch> {
        let root = staging.join(uuid::Uuid::now_v7().simple().to_string());
        std::fs::create_dir_all(&root)?;
        let base = Dir::open_ambient_dir(&root, cap_std::ambient_authority())?;
        let archive = base
            .open_with(
                "archive",
                cap_std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true),
            )?
            .into_std();
        base.create_dir(TREE)?;
        let tree = base.open_dir(TREE)?;
        Ok(Scratch {
            root,
            base,
            archive,
            tree,
        })
    }

    /// Moves the unpacked tree to `path` of `root` (which must not exist).
    pub(super) fn move_tree(&self, root: &Dir, path: &str) -> io::Result<()> {
        self.base.rename(TREE, root, path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(error = %e, "removing an archive's scratch area");
        }
    }
}
